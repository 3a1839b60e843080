"""The uplink through the OS's routing: TCP streams and UDP datagrams on loopback, a refused
connection as OSError with the reason in the state (the medium stays "os" and up)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from meterd.runtime.direct_uplink import DirectUplink


def test_datagram_and_stream_reach_loopback_and_a_refusal_is_reported() -> None:
    async def scenario() -> None:
        uplink = DirectUplink()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                got.put_nowait(data)

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
        try:
            port = transport.get_extra_info("sockname")[1]
            await uplink.send_datagram("127.0.0.1", port, b"\x00\x01\x00\x01\x00\x66\x00\x01\x0f")
            assert await asyncio.wait_for(got.get(), 5.0) == b"\x00\x01\x00\x01\x00\x66\x00\x01\x0f"
        finally:
            transport.close()

        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.put_nowait(await reader.read(100))
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await uplink.open_stream("127.0.0.1", port, 5.0)
        writer.write(b"frame")
        await writer.drain()
        writer.close()
        assert await asyncio.wait_for(received.get(), 5.0) == b"frame"
        server.close()
        await server.wait_closed()

        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        free_port = closed.getsockname()[1]
        closed.close()  # nothing listens there now
        with pytest.raises(OSError):
            await uplink.open_stream("127.0.0.1", free_port, 5.0)
        state = uplink.state()
        assert state.medium == "os" and state.up and str(free_port) in state.reason

    asyncio.run(scenario())

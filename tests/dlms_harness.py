"""Runs the meter's DLMS runtimes on an asyncio loop in a background thread for blocking clients.

Also a length-framed HDLC reader for dlms-cosem (its own reader scans for 0x7E flags and hangs
when a payload or FCS contains 0x7E; see the DLMS reference notes §9).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.hdlc import HdlcParameters
from meterd.runtime.dlms_serial import SerialLink
from meterd.runtime.dlms_tcp import start_tcp_server
from tests.dlms_fakes import FakeMeter, make_keyring


class LoopThread:
    """An asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._closers: list[Callable[[], Any]] = []

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tcp(self, factory: Callable[[], Any]) -> int:
        server = self.run(start_tcp_server("127.0.0.1", 0, factory))
        self._closers.append(server.close)
        return int(server.port)

    def serial(self, factory: Callable[[], Any], **kwargs: Any) -> SerialLink:
        link = self.run(SerialLink(factory, None, **kwargs).start())
        self._closers.append(link.close)
        return link

    def stop(self) -> None:
        for close in self._closers:
            self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class Meter:
    """A fake meter with a DLMS server on TCP (wrapper) and a pty (HDLC)."""

    def __init__(self, profile_rows: int = 96, max_info: int = 2030, with_pty: bool = True) -> None:
        self.model = FakeMeter(profile_rows)
        self.store = MemoryCounterStore()
        self.keys = make_keyring()
        self.loop = LoopThread()
        self.wrapper_factory = build_session_factory(self.model, self.store, self.keys)
        params = HdlcParameters(max_info_tx=max_info, max_info_rx=max_info)
        self.hdlc_factory = build_session_factory(self.model, self.store, self.keys,
                                                  ServerConfig(link="hdlc", hdlc_params=params))
        self.port = self.loop.tcp(self.wrapper_factory)
        self.hdlc_port = self.loop.tcp(self.hdlc_factory)
        self.pty = self.loop.serial(self.hdlc_factory) if with_pty else None

    def next_client_ic(self) -> int:
        return self.store.last_accepted("management/in") + 1

    def stop(self) -> None:
        self.loop.stop()


class SocketIO:
    """Blocking socket with send/receive used by the gurux client driver."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("meter closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


class PtyIO:
    """Client side of the meter's pty (raw mode, non-blocking reads with a deadline)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        import tty

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.timeout = timeout
        self.bytes_out = 0
        self.bytes_in = 0

    def send(self, data: bytes) -> None:
        self.bytes_out += len(data)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def receive(self) -> bytes:
        import select

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                data = os.read(self.fd, 65536)
                self.bytes_in += len(data)
                return data
        raise TimeoutError("no answer on the pty")

    def close(self) -> None:
        os.close(self.fd)


class LengthFramedIO:
    """dlms-cosem IoImplementation that returns whole HDLC frames delimited by their length."""

    def __init__(self, io: Any) -> None:
        self.io = io
        self._buf = bytearray()

    def connect(self) -> None:
        """Already connected."""

    def disconnect(self) -> None:
        self.io.close()

    def send(self, data: bytes) -> None:
        self.io.send(data)

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            self._buf += self.io.receive()

    def recv(self, amount: int = 1) -> bytes:
        self._fill(amount)
        out, self._buf = bytes(self._buf[:amount]), self._buf[amount:]
        return out

    def recv_until(self, end: bytes) -> bytes:
        # dlms-cosem reads a frame as "up to the next flag" twice: the opening flag alone,
        # then the rest. Answer the second call with the length-delimited remainder.
        self._fill(1)
        if self._buf[0] == 0x7E:
            return self.recv(1)
        self._fill(2)
        length = ((self._buf[0] & 0x07) << 8) | self._buf[1]
        return self.recv(length + 1)


def length_framed_hdlc_transport(io: Any, client_sap: int) -> Any:
    """A dlms-cosem HdlcTransport that reads frames by length and retries its flag search.

    dlms-cosem cuts frames at the first 0x7E it finds; when that octet is payload the parse
    fails and it would wait for more data. Here the whole frame is already buffered, so the
    search is retried from the next flag inside the buffer before reading the line again.
    """
    from dlms_cosem.hdlc import state as cosem_state
    from dlms_cosem.io import HdlcTransport

    class _Transport(HdlcTransport):  # type: ignore[misc]
        def next_event(self) -> Any:
            while True:
                event = self.hdlc_connection.next_event()
                if event is not cosem_state.NEED_DATA:
                    return event
                conn = self.hdlc_connection
                if conn.buffer_search_position < len(conn.buffer):
                    continue
                conn.receive_data(self.recv_frame())

    return _Transport(client_logical_address=client_sap, server_logical_address=1, io=LengthFramedIO(io))

"""DLMS over TCP (IEC 62056-47 wrapper): an asyncio server, one protocol session per connection.

The runtime knows nothing of COSEM nor of the wrapper header (``meterd.proto.wrapper``, framed by
the session): the composition root passes a session factory (see
``meterd.cosem.server.build_session_factory`` with a wrapper ``ServerConfig``); every accepted connection
gets a fresh :class:`~meterd.proto.session.ByteSession`, made for the connection's source
(:func:`peer_source`: the peer's IP address, an IPv6 peer by its /64 prefix), by which the server
counts authentication failures. A connection idle for the session's inactivity time is closed.
The simulator default address is 127.0.0.1:4059.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable

from meterd.proto.session import ByteSession

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4059
READ_CHUNK = 4096
_log = logging.getLogger("meterd.runtime.dlms_tcp")


def peer_source(peername: object) -> str:
    """The source of a TCP client, from asyncio's ``peername``: its IP address without the port
    (a client reconnecting from another port is the same source); an IPv6 address by its /64
    prefix, the block one host is usually given (an IPv4-mapped one as IPv4); "unknown" when there
    is no address."""
    host = peername[0] if isinstance(peername, tuple) and peername else peername
    try:
        address = ipaddress.ip_address(str(host))
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class DlmsTcpServer:
    """A listening wrapper server; ``connections`` counts the sessions currently open. The
    factory is called with each connection's :func:`peer_source`."""

    def __init__(self, factory: Callable[[str], ByteSession], max_connections: int = 8) -> None:
        self._factory = factory
        self._max = max_connections
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound TCP port (useful after binding port 0)."""
        if self.server is None or not self.server.sockets:
            raise RuntimeError("server not started")
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> DlmsTcpServer:
        """Bind and start accepting."""
        self.server = await asyncio.start_server(self._serve, host, port)
        _log.info("DLMS wrapper listening on %s:%d", host, self.port)
        return self

    async def close(self) -> None:
        """Stop accepting, end the open sessions (releasing their associations), wait for both."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        sessions = list(self._tasks)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.connections >= self._max:
            _log.warning("DLMS connection from %s refused: %d sessions open", peer, self.connections)
            writer.close()
            return
        self.connections += 1
        session = self._factory(peer_source(peer))
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._pump(session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            _log.info("DLMS connection from %s dropped: %s", peer, exc)
        except asyncio.CancelledError:
            _log.info("DLMS connection from %s closed: the meter is stopping", peer)
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            session.close()
            writer.close()

    @staticmethod
    async def _pump(session: ByteSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = session.inactivity_timeout_s or None
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
            except TimeoutError:
                for chunk in session.timeout():
                    writer.write(chunk)
                return
            if not data:
                return
            for chunk in session.receive(data):
                writer.write(chunk)
            await writer.drain()


async def start_tcp_server(host: str, port: int, factory: Callable[[str], ByteSession],
                           max_connections: int = 8) -> DlmsTcpServer:
    """Start a wrapper server on ``host:port`` (port 0 picks a free one; see ``.port``)."""
    return await DlmsTcpServer(factory, max_connections).start(host, port)

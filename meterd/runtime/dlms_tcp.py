"""DLMS over TCP (IEC 62056-47 wrapper): an asyncio server, one protocol session per connection.

The runtime knows nothing of COSEM nor of the wrapper header (``meterd.proto.wrapper``, framed by
the session): the composition root passes a session factory (see
``meterd.cosem.server.build_session_factory`` with a wrapper ``ServerConfig``); every accepted connection
gets a fresh :class:`~meterd.proto.session.ByteSession`, made for the connection's source
(:func:`peer_source`: the peer's IP address, an IPv6 peer by its /64 prefix), by which the server
counts authentication failures. A connection idle for the session's inactivity time is closed.
The simulator default address is 127.0.0.1:4059.

No client can hold the wrapper: a :class:`meterd.proto.wrapper.ConnectionGuard` (on the loop's
clock) keeps at most ``max_connections``, closes a connection that has no association
``association_timeout_s`` after it opened (or after its association ended) whatever trickle of
bytes it sends, and, when every place is taken, drops the connection without an association that
has been idle longest for the new one; only when every connection is associated is a new one
refused. Each of the three is reported to ``on_event`` (TCP_ASSOCIATION_TIMEOUT,
TCP_CONNECTION_DISPLACED, TCP_CONNECTION_REFUSED with the count and the peer) and logged, at most
once a minute per kind (the count includes those held back), never a flood.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping

from meterd.proto.session import AssociatingSession, ByteSession
from meterd.proto.wrapper import ConnectionGuard, TcpLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4059
READ_CHUNK = 4096
_log = logging.getLogger("meterd.runtime.dlms_tcp")
#: What the guard did, as the event names of :mod:`meterd.core.event_codes` (links, 188-190).
ASSOCIATION_TIMEOUT = "TCP_ASSOCIATION_TIMEOUT"
DISPLACED = "TCP_CONNECTION_DISPLACED"
REFUSED = "TCP_CONNECTION_REFUSED"
_TEXT = {ASSOCIATION_TIMEOUT: "closed without an association after %.0f s",
         DISPLACED: "without an association, dropped for a new connection (%d open)",
         REFUSED: "refused: all %d connections associated"}
#: ``on_event(name, detail)``: one of the names above, detail ``count`` and ``peer``.
EventHook = Callable[[str, Mapping[str, object]], None]


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
    factory is called with each connection's :func:`peer_source`; ``limits`` bound the
    connections (see the module notes), ``on_event`` hears what the guard did."""

    def __init__(self, factory: Callable[[str], ByteSession], max_connections: int = 8,
                 limits: TcpLimits | None = None, on_event: EventHook | None = None) -> None:
        self._factory = factory
        self.limits = limits or TcpLimits(max_connections=max_connections)
        self.guard = ConnectionGuard(self.limits)
        self._on_event = on_event
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: dict[int, asyncio.StreamWriter] = {}

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

    def _report(self, name: str, peer: object, *args: object) -> None:
        """Report ``name`` (rate-limited by the guard): an event and one log line."""
        count = self.guard.report(name, asyncio.get_running_loop().time())
        if count is None:
            return
        _log.warning("DLMS connection from %s " + _TEXT[name] + " (%d such since the last report)", peer, *args, count)
        if self._on_event is not None:
            self._on_event(name, {"peer": str(peer_source(peer)), "count": count})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        admission = self.guard.admit(asyncio.get_running_loop().time())
        if admission.conn_id is None:
            self._report(REFUSED, peer, self.limits.max_connections)
            writer.close()
            return
        conn_id = admission.conn_id
        if admission.displaced is not None:
            victim = self._writers.pop(admission.displaced, None)
            if victim is not None:
                self._report(DISPLACED, victim.get_extra_info("peername"), self.guard.open)
                victim.close()
        self._writers[conn_id] = writer
        self.connections += 1
        session = self._factory(peer_source(peer))
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._pump(conn_id, session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            _log.info("DLMS connection from %s dropped: %s", peer, exc)
        except asyncio.CancelledError:
            _log.info("DLMS connection from %s closed: the meter is stopping", peer)
        finally:
            self.connections -= 1
            self.guard.closed(conn_id)
            self._writers.pop(conn_id, None)
            if task is not None:
                self._tasks.discard(task)
            session.close()
            writer.close()

    async def _pump(self, conn_id: int, session: ByteSession, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        inactivity = session.inactivity_timeout_s or None
        while self.guard.held(conn_id):
            deadline = self.guard.deadline_s(conn_id) if isinstance(session, AssociatingSession) else None
            wait = inactivity
            if deadline is not None:
                wait = max(0.0, deadline - loop.time()) if wait is None else min(wait, max(0.0, deadline - loop.time()))
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), wait)
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    self._report(ASSOCIATION_TIMEOUT, writer.get_extra_info("peername"),
                                 self.limits.association_timeout_s)
                    return
                for chunk in session.timeout():
                    writer.write(chunk)
                return
            if not data:
                return
            for chunk in session.receive(data):
                writer.write(chunk)
            associated = session.associated if isinstance(session, AssociatingSession) else True
            self.guard.input(conn_id, loop.time(), associated)
            await writer.drain()


async def start_tcp_server(host: str, port: int, factory: Callable[[str], ByteSession],
                           max_connections: int = 8, limits: TcpLimits | None = None,
                           on_event: EventHook | None = None) -> DlmsTcpServer:
    """Start a wrapper server on ``host:port`` (port 0 picks a free one; see ``.port``)."""
    return await DlmsTcpServer(factory, max_connections, limits, on_event).start(host, port)

"""The DLMS TCP wrapper server (meterd.runtime.dlms_tcp) under the defect-3 attack: connections
that never associate cannot keep a head end out; they are dropped for a new connection when every
place is taken and closed after the association time-out whatever they trickle; every such act is
an event, at most one per window."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Mapping

from gurux_dlms.objects import GXDLMSData

from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.wrapper import TcpLimits
from meterd.runtime.dlms_tcp import ASSOCIATION_TIMEOUT, DISPLACED, REFUSED, DlmsTcpServer, start_tcp_server
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import LoopThread, SocketIO

WAIT_S = 5.0


class Rig:
    """A wrapper server on a loop thread, recording the guard's events."""

    def __init__(self, limits: TcpLimits) -> None:
        self.loop = LoopThread()
        self.events: list[tuple[str, dict[str, object]]] = []
        factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring())
        self.server: DlmsTcpServer = self.loop.run(start_tcp_server(
            "127.0.0.1", 0, factory, limits=limits, on_event=self._event))
        self.sockets: list[socket.socket] = []

    def _event(self, name: str, detail: Mapping[str, object]) -> None:
        self.events.append((name, dict(detail)))

    def until(self, condition: Callable[[], bool]) -> None:
        async def wait() -> None:
            deadline = time.monotonic() + WAIT_S
            while not condition() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
        self.loop.run(wait())
        assert condition()

    def attacker(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=WAIT_S)
        sock.sendall(b"\x00")  # a byte of a wrapper header that never completes
        self.sockets.append(sock)
        return sock

    def head_end(self) -> tuple[GuruxSession, SocketIO]:
        io = SocketIO(self.server.port)
        gs = GuruxSession(make_client(17), io.send, io.receive)
        gs.connect()
        return gs, io

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.loop.run(self.server.close())
        self.loop.stop()


def _closed_by_meter(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_eight_trickling_sockets_do_not_keep_a_head_end_out():
    rig = Rig(TcpLimits(max_connections=8, association_timeout_s=10.0))
    try:
        attackers = [rig.attacker() for _ in range(8)]
        rig.until(lambda: rig.server.connections == 8)
        gs, io = rig.head_end()  # associates at once: the longest idle attacker made room
        ldn = GXDLMSData("0.0.42.0.0.255")
        gs.read(ldn, 2)
        assert bytes(ldn.value) == b"PMM0001221000042"
        assert _closed_by_meter(attackers[0])
        assert rig.events == [(DISPLACED, {"peer": "127.0.0.1", "count": 1})]
        # an attacker coming back displaces another attacker, never the association
        rig.attacker()
        assert _closed_by_meter(attackers[1])
        gs.read(ldn, 2)
        assert rig.events == [(DISPLACED, {"peer": "127.0.0.1", "count": 1})]  # the next within the minute: held back
        gs.close()
        io.close()
    finally:
        rig.close()


def test_connections_without_association_are_closed_after_the_time_out_whatever_they_send():
    rig = Rig(TcpLimits(max_connections=4, association_timeout_s=0.3))
    try:
        gs, io = rig.head_end()
        loop_time = rig.loop.loop.time
        opened = loop_time()
        sock = rig.attacker()
        for _ in range(3):
            sock.sendall(b"\x00")  # a trickle of bytes does not extend the time-out
        assert _closed_by_meter(sock)  # blocks until the meter closes it (bounded by the socket time-out)
        assert loop_time() - opened >= 0.3
        rig.until(lambda: bool(rig.events))
        assert rig.events == [(ASSOCIATION_TIMEOUT, {"peer": "127.0.0.1", "count": 1})]
        ldn = GXDLMSData("0.0.42.0.0.255")
        gs.read(ldn, 2)  # the associated head end stays, past the association time-out
        assert bytes(ldn.value) == b"PMM0001221000042"
        gs.close()
        io.close()
    finally:
        rig.close()


def test_a_new_connection_is_refused_when_every_place_is_associated():
    rig = Rig(TcpLimits(max_connections=1, association_timeout_s=10.0))
    try:
        gs, io = rig.head_end()
        late = socket.create_connection(("127.0.0.1", rig.server.port), timeout=WAIT_S)
        rig.sockets.append(late)
        assert _closed_by_meter(late)
        rig.until(lambda: bool(rig.events))
        assert rig.events == [(REFUSED, {"peer": "127.0.0.1", "count": 1})]
        gs.close()
        io.close()
    finally:
        rig.close()

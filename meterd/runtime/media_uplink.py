"""The uplink to the head end over the current communication medium, with automatic fallback.

:class:`MediaUplink` implements :class:`meterd.services.uplink.Uplink`. Every stream and
datagram goes over the medium :class:`~meterd.services.media.MediaSelector` holds current *at
the moment of the send*, so a push that retries after a switch continues on the new medium.

"Through a medium" means from that medium's source: each :class:`MediumRoute` gives, at the
time of the connect, the IPv4 source address to bind to (a fixed address, or the cellular
bearer's address from ModemManager) and optionally the network interface (``SO_BINDTODEVICE``,
which needs CAP_NET_RAW; the source address alone needs policy routing per source on the Pi,
see docs/communications.md). A medium without a source now (no bearer) fails its check at once
with the reason. In simulation every medium is a loopback source address (127.0.0.x) and a
:class:`MediumGate` lets the simulated world cut one (its connects fail as an unreachable
network would).

:meth:`MediaUplink.run` is the health checker: whenever the selector says a medium's check is
due it opens a TCP connection to the head end's address through that medium (bounded by the
policy's connect time-out) and closes it at once; the result goes back to the selector.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from meterd.services.media import MediaSelector
from meterd.services.uplink import UplinkDown, UplinkState

log = logging.getLogger("meterd.media")

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


class MediumGate(Protocol):
    """Says whether a medium is blocked (the reason) or not (None)."""

    def blocked(self, medium: str) -> str | None: ...


@dataclass(frozen=True)
class MediumRoute:
    """How to send through one medium: ``source()`` gives the IPv4 source address now ("" = any;
    None = the medium has no address now, e.g. no bearer), ``device`` the interface to bind to
    ("" = none)."""

    name: str
    source: Callable[[], str | None]
    device: str = ""


def _socket(route: MediumRoute, kind: socket.SocketKind) -> socket.socket:
    source = route.source()
    if source is None:
        raise OSError(errno.ENETDOWN, "no address (not connected)")
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setblocking(False)
        if route.device:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, route.device.encode() + b"\0")
        if source:
            sock.bind((source, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _reason(exc: OSError) -> str:
    """A failed connect in words ("Connection refused", not asyncio's "Connect call failed")."""
    text = exc.strerror or str(exc)
    if exc.errno and text.startswith("Connect call failed"):
        return os.strerror(exc.errno)
    return text


class MediaUplink:
    """Streams and datagrams over the current medium; health checks of every medium (module
    docstring). ``head_end``: the (host, port) the health checks connect to."""

    def __init__(self, selector: MediaSelector, routes: dict[str, MediumRoute], head_end: tuple[str, int],
                 gate: MediumGate | None = None, poll_s: float = 0.2) -> None:
        missing = set(selector.media) - set(routes)
        if missing:
            raise ValueError(f"no route for media {sorted(missing)}")
        self.selector = selector
        self.routes = routes
        self.head_end = head_end
        self.gate = gate
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[bool]] = set()

    # --- Uplink ---

    def state(self) -> UplinkState:
        s = self.selector.state()
        return UplinkState(s.current, s.up, s.reason)

    async def open_stream(self, host: str, port: int,
                          timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        name = self._current()
        try:
            return await self._connect(self.routes[name], host, port, timeout_s)
        except OSError:
            self.selector.send_failed(name)
            raise

    async def send_datagram(self, host: str, port: int, data: bytes) -> None:
        name = self._current()
        route = self.routes[name]
        try:
            self._check_gate(name)
            sock = _socket(route, socket.SOCK_DGRAM)
            try:
                info = await asyncio.get_running_loop().getaddrinfo(host, port, family=socket.AF_INET,
                                                                    type=socket.SOCK_DGRAM)
                await asyncio.get_running_loop().sock_sendto(sock, data, info[0][4])
            finally:
                sock.close()
        except OSError:
            self.selector.send_failed(name)
            raise

    def _current(self) -> str:
        state = self.selector.state()
        if not state.up:
            raise UplinkDown(state.reason)
        return state.current

    def _check_gate(self, name: str) -> None:
        reason = self.gate.blocked(name) if self.gate is not None else None
        if reason is not None:
            raise OSError(errno.ENETUNREACH, reason)

    async def _connect(self, route: MediumRoute, host: str, port: int,
                       timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._check_gate(route.name)
        sock = _socket(route, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        try:
            info = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
            await asyncio.wait_for(loop.sock_connect(sock, info[0][4]), timeout_s)
        except TimeoutError:
            sock.close()
            raise OSError(errno.ETIMEDOUT, f"connect to {host}:{port} timed out") from None
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    # --- health checks ---

    def start(self) -> MediaUplink:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="media-health")
        return self

    async def run(self) -> None:
        """Run every due check, forever (each in its own task), looking every ``poll_s`` (s)."""
        while True:
            self.start_due()
            await asyncio.sleep(self.poll_s)

    def start_due(self) -> int:
        """Start every check that is due now, each in its own task (what :meth:`run` does at
        each look); how many started. A simulator running faster than real time calls it after
        each step, so no check waits for the next look."""
        started = 0
        for name in self.selector.due():
            self.selector.started(name)
            task = asyncio.get_running_loop().create_task(self._check(name))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
            started += 1
        return started

    @property
    def checking(self) -> bool:
        """Whether a health check is running now."""
        return bool(self._checks)

    async def check_now(self, name: str) -> bool:
        """One health check of ``name`` (also what :meth:`run` does); True when it passed."""
        self.selector.started(name)
        return await self._check(name)

    async def _check(self, name: str) -> bool:
        host, port = self.head_end
        try:
            _reader, writer = await self._connect(self.routes[name], host, port,
                                                  self.selector.policy.connect_timeout_s)
        except OSError as exc:
            self.selector.result(name, False, _reason(exc))
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.selector.result(name, True)
        return True

    async def close(self) -> None:
        tasks: list[asyncio.Task[None] | asyncio.Task[bool]] = [*self._checks]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

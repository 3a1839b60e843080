"""The uplink without a media manager: plain asyncio connections through the operating system's
routing (medium "os").

It implements :class:`meterd.services.uplink.Uplink`. The medium counts as up until a connection
fails and again after the next one succeeds: the OS chooses the interface, so the meter can only
learn whether the head end was reachable by trying. A failure never blocks the next attempt.
"""

from __future__ import annotations

import asyncio
import socket

from meterd.services.uplink import UplinkState


class DirectUplink:
    """Streams and datagrams through the host's own routing."""

    def __init__(self) -> None:
        self._reason = ""

    def state(self) -> UplinkState:
        """Medium "os", always up (the last failure as the reason, "" after a success)."""
        return UplinkState("os", True, self._reason)

    async def open_stream(self, host: str, port: int,
                          timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``host``:``port`` within ``timeout_s`` (s); OSError or
        TimeoutError when it fails."""
        try:
            pair = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            self._reason = f"{host}:{port}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc!r}"
            raise
        self._reason = ""
        return pair

    async def send_datagram(self, host: str, port: int, data: bytes) -> None:
        """One UDP datagram to ``host``:``port`` (OSError when it cannot be sent)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"{host}: no address")
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_sendto(sock, data, address)
        except OSError as exc:
            self._reason = f"{host}:{port}: {exc.strerror or exc!r}"
            raise
        finally:
            sock.close()
        self._reason = ""

"""The meter's way out to the head end: what pushes (DataNotification) need of the media.

A push opens a stream (TCP, the DLMS wrapper) or sends a datagram (UDP) to the destination its
push setup names (0-0:25.9.0.255 attribute 3, ``send_destination_and_method``). Which medium
carries it (Ethernet, cellular, ...) is the uplink's business: the media manager implements
this port with automatic fallback; without configured media the meter sends through the
operating system's routing. A push never chooses a medium itself, so a push in progress
continues on whatever medium is current when it retries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


class UplinkDown(Exception):
    """No medium can reach the head end now (the push stays queued)."""


@dataclass(frozen=True)
class UplinkState:
    """The current medium's name ("ethernet", "cellular", "os" for plain routing), whether any
    medium is up and healthy, and a one-line reason when not."""

    medium: str
    up: bool
    reason: str = ""


class Uplink(Protocol):
    """Streams and datagrams to the head end over the current medium."""

    def state(self) -> UplinkState:
        """The medium a send would use now."""
        ...

    async def open_stream(self, host: str, port: int,
                          timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``host``:``port`` over the current medium; raises UplinkDown when
        no medium is up, OSError when the connection fails (the medium's health counts it)."""
        ...

    async def send_datagram(self, host: str, port: int, data: bytes) -> None:
        """One UDP datagram over the current medium; raises UplinkDown or OSError as above."""
        ...

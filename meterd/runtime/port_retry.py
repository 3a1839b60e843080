"""The back-off retries of a serial device that failed, on the event loop.

:class:`PortRetry` drives one :class:`hw.serial_link.ReopeningPort` (which keeps the device, the
back-off and the state changes): at most one retry is pending at a time, each after the port's
own wait (``retry_in_s``), and one that fails schedules the next. The DLMS serial link and the CIU
port runner share it.
"""

from __future__ import annotations

import asyncio

from hw.serial_link import ReopeningPort


class PortRetry:
    """Reopen ``port`` on ``loop`` after its back-off, until it opens."""

    def __init__(self, port: ReopeningPort, loop: asyncio.AbstractEventLoop) -> None:
        self.port = port
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """True while a retry is scheduled."""
        return self._handle is not None

    def schedule(self) -> None:
        """Try again after the port's wait (s), unless a retry is already pending."""
        if self._handle is None:
            self._handle = self._loop.call_later(self.port.retry_in_s(), self._fire)

    def now(self) -> None:
        """Try at once instead of after the wait (nothing to do while the port is open)."""
        self.cancel()
        if self.port.connected:
            return
        self.port.expire_wait()
        self._fire()

    def cancel(self) -> None:
        """Drop the pending retry."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if not self.port.reopen():
            self.schedule()

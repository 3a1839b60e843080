"""Clocks for the daemon: the host's real clock, and the simulator's scaled clock.

Both satisfy :class:`meterd.core.clock.Clock`. On a Pi, setting the clock goes through a clock
setter (the privileged helper that steps CLOCK_REALTIME and writes /dev/rtc0); without one the
meter keeps its own offset from the host clock and says so in the log, so a DLMS clock write still
changes meter time without root.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable

from hw.monotonic import monotonic_s

UTC = _dt.UTC
log = logging.getLogger("meterd.clock")


class HostClock:
    """Meter time from the host: monotonic from CLOCK_MONOTONIC (:mod:`hw.monotonic`), UTC from
    CLOCK_REALTIME + offset."""

    def __init__(self, setter: Callable[[_dt.datetime], None] | None = None,
                 mono: Callable[[], float] = monotonic_s, wall: Callable[[], float] = time.time) -> None:
        self._setter = setter
        self._mono = mono
        self._wall = wall
        self._offset_s = 0.0

    def mono(self) -> float:
        return self._mono()

    def utc(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self._wall() + self._offset_s, tz=UTC)

    def set_utc(self, new_utc: _dt.datetime) -> None:
        if new_utc.tzinfo is None:
            raise ValueError("new_utc must be timezone-aware")
        if self._setter is not None:
            self._setter(new_utc)
            self._offset_s = 0.0
        else:
            self._offset_s = new_utc.timestamp() - self._wall()
            log.warning("no clock setter: meter time kept as an offset of %.3f s from the host clock",
                        self._offset_s)

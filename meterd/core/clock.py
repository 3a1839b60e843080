"""Injected time: the only source of "now" for domain code.

Names say which time they carry: ``*_mono`` (monotonic seconds, never jumps), ``*_utc`` (aware
UTC datetime). Legal (local) time is derived elsewhere from UTC with the DLMS time-zone rules.
"""

from __future__ import annotations

import datetime as _dt
from typing import Protocol

UTC = _dt.UTC


class Clock(Protocol):
    """What domain code needs from a clock."""

    def mono(self) -> float:
        """Monotonic seconds (s); only differences are meaningful."""
        ...

    def utc(self) -> _dt.datetime:
        """The meter's current UTC time (timezone-aware)."""
        ...

    def set_utc(self, new_utc: _dt.datetime) -> None:
        """Set the meter's UTC time (DLMS clock write, sync). Monotonic time is unaffected."""
        ...


class SimClock:
    """A clock that moves only when told to: tests and the simulator drive it.

    ``advance(dt_s)`` moves both monotonic and UTC time forward by ``dt_s`` seconds.
    ``set_utc`` changes wall time only (a clock set or shift), as a real RTC would.
    """

    def __init__(self, start_utc: _dt.datetime | None = None, start_mono: float = 1000.0) -> None:
        if start_utc is None:
            start_utc = _dt.datetime(2026, 1, 1, tzinfo=UTC)
        if start_utc.tzinfo is None:
            raise ValueError("start_utc must be timezone-aware")
        self._mono = float(start_mono)
        self._offset_s = start_utc.timestamp() - self._mono

    def mono(self) -> float:
        return self._mono

    def utc(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self._mono + self._offset_s, tz=UTC)

    def utc_timestamp(self) -> float:
        """UTC as POSIX seconds (s)."""
        return self._mono + self._offset_s

    def set_utc(self, new_utc: _dt.datetime) -> None:
        if new_utc.tzinfo is None:
            raise ValueError("new_utc must be timezone-aware")
        self._offset_s = new_utc.timestamp() - self._mono

    def advance(self, dt_s: float) -> None:
        """Move time forward by ``dt_s`` seconds (s); negative steps are refused."""
        if dt_s < 0:
            raise ValueError("time only moves forward")
        self._mono += dt_s

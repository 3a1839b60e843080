"""The host's monotonic clock (s), the one real-time source both daemons read for intervals.

CLOCK_MONOTONIC never steps when the wall clock is set, so protocol timers, debounce and
watchdog intervals measured on it stay right across a DLMS clock write or an NTP step. Only the
composition roots construct it; everything below them is handed a clock and never reads time.
"""

from __future__ import annotations

import time


def monotonic_s() -> float:
    """Seconds of CLOCK_MONOTONIC (arbitrary origin; only differences mean anything)."""
    return time.monotonic()


class MonotonicClock:
    """The real monotonic clock as an object with ``mono()`` (s), what the clocked cores take."""

    def mono(self) -> float:
        """Seconds of CLOCK_MONOTONIC."""
        return monotonic_s()

"""How late the metering cycles start: a small, pure statistic of the metering loop's timing.

Each cycle (tick) of the metering loop has a scheduled start; :meth:`LatenessStats.record` takes
how late it really started (ms, never negative). The stats keep the number of ticks, the number
later than ``late_ms``, the largest lateness since start, and the 99th percentile over a rolling
window of the last ``window`` ticks. Served by ``meterctl status`` (the status extras ``loop``)
and over DLMS (0-0:96.51.0–4.255, see docs/dlms.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LatenessSummary:
    """A copy of the stats at one moment: ticks, late ticks, missed ticks, max and p99 lateness (ms)."""

    count: int = 0
    late: int = 0
    missed: int = 0
    max_ms: float = 0.0
    p99_ms: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        """JSON-able form (``meterctl status``)."""
        return {"ticks": self.count, "late_ticks": self.late, "missed_ticks": self.missed,
                "lateness_max_ms": round(self.max_ms, 3), "lateness_p99_ms": round(self.p99_ms, 3)}


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0–100) of ``values`` by the nearest-rank method; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass
class LatenessStats:
    """Lateness of each tick's start against its schedule (ms).

    ``late_ms``: a tick starting later than this counts as late; ``window``: how many of the
    latest ticks the p99 covers. Not thread-safe by itself: one writer (the metering loop); a
    reader takes :meth:`summary`, whose fields are read in one go (the GIL makes each read whole).
    """

    late_ms: float = 100.0
    window: int = 1000
    count: int = 0
    late: int = 0
    missed: int = 0
    max_ms: float = 0.0
    _recent: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        self._recent = deque(self._recent, maxlen=self.window)

    def record(self, lateness_ms: float) -> None:
        """One tick started ``lateness_ms`` after its schedule (negative counts as 0)."""
        value = max(float(lateness_ms), 0.0)
        self.count += 1
        if value > self.late_ms:
            self.late += 1
        if value > self.max_ms:
            self.max_ms = value
        self._recent.append(value)

    def skipped(self, ticks: int) -> None:
        """``ticks`` scheduled starts were given up (the loop was far behind and resynchronised)."""
        if ticks > 0:
            self.missed += ticks

    @property
    def p99_ms(self) -> float:
        """99th percentile of the lateness over the rolling window (ms)."""
        return percentile(list(self._recent), 99.0)

    def summary(self) -> LatenessSummary:
        """The stats now."""
        return LatenessSummary(self.count, self.late, self.missed, self.max_ms, self.p99_ms)

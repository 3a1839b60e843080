"""The wall-clock cost of work done in a metering cycle (ms), for the status."""

from __future__ import annotations


class CycleTimer:
    """Wall-clock cost of the PQ work per cycle (ms): a measurement for the status, not meter time."""

    def __init__(self) -> None:
        self.cycles = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        """One cycle's cost (ms)."""
        self.cycles += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def view(self) -> dict[str, float]:
        """Mean and max (ms)."""
        return {"mean_ms": round(self.total_ms / self.cycles, 2) if self.cycles else 0.0,
                "max_ms": round(self.max_ms, 2)}

"""A reference standard gated on the meter's test LED: for gates of n pulses between rising edges,
the energy the LED says (n / imp_per_kwh) against the true energy the grid model delivered between
the same two instants."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GateStats:
    """Errors (%) of one gate length over every gate that fits (consecutive, non-overlapping)."""

    pulses: int
    gates: int
    min_pct: float
    max_pct: float
    mean_pct: float

    @property
    def worst_pct(self) -> float:
        """The largest error magnitude (%)."""
        return max(abs(self.min_pct), abs(self.max_pct))


def gate_errors(rises: Sequence[float], true_wh: Callable[[float], float], imp_per_kwh: int,
                pulses: int) -> list[float]:
    """Error (%) of each gate of ``pulses`` pulses: rising edge i to rising edge i + pulses
    (instants in s), true energy ``true_wh(t)`` (Wh since any fixed origin)."""
    errors = []
    for i in range(0, len(rises) - pulses, pulses):
        led_wh = pulses * 1000.0 / imp_per_kwh
        true = true_wh(rises[i + pulses]) - true_wh(rises[i])
        errors.append(100.0 * (led_wh - true) / true)
    return errors


def gate_stats(rises: Sequence[float], true_wh: Callable[[float], float], imp_per_kwh: int,
               pulses: int) -> GateStats:
    """:func:`gate_errors` summarised (at least one gate must fit)."""
    errors = gate_errors(rises, true_wh, imp_per_kwh, pulses)
    if not errors:
        raise ValueError(f"no {pulses}-pulse gate in {len(rises)} pulses")
    return GateStats(pulses, len(errors), min(errors), max(errors), sum(errors) / len(errors))

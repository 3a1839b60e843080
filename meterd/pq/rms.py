"""RMS over windows with fractional boundaries, and the half-cycle refreshed Urms(1/2) (IEC 61000-4-30).

The squared signal is integrated with the trapezoidal rule between fractional sample positions
(boundary samples weighted by their fractional share, power-quality.md §3.1), so that one exact
cycle of a sine reads its RMS also when a cycle is not a whole number of samples (60 Hz at 8 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from meterd.pq.history import SampleHistory
from meterd.pq.zerocross import Mark


def window_mean_square(history: SampleHistory, row: int, start: float, stop: float) -> float:
    """Mean of x² (V² or A²) over the continuous interval [start, stop] in fractional sample indices."""
    i0 = math.floor(start)
    i1 = math.ceil(stop)
    g = history.get(row, i0, i1 + 1) ** 2
    return _trapezoid_mean(g, start - i0, stop - i0)


def _trapezoid_mean(g: np.ndarray, a: float, b: float) -> float:
    """Mean of the piecewise-linear curve through g[0], g[1], … over [a, b] (positions in samples)."""
    ia, ib = math.ceil(a), math.floor(b)
    if ib < ia:  # both ends inside one sample interval
        ga, gb = _lerp(g, a), _lerp(g, b)
        return float((ga + gb) / 2.0)
    inner = float(np.sum(g[ia : ib + 1])) - (g[ia] + g[ib]) / 2.0
    left = (ia - a) * (_lerp(g, a) + g[ia]) / 2.0
    right = (b - ib) * (g[ib] + _lerp(g, b)) / 2.0
    return float((inner + left + right) / (b - a))


def _lerp(g: np.ndarray, pos: float) -> float:
    i = min(math.floor(pos), len(g) - 2)
    f = pos - i
    return float(g[i] * (1.0 - f) + g[i + 1] * f)


@dataclass(frozen=True)
class HalfCycleValue:
    """One Urms(1/2) value: channel row, RMS (V) over [start_index, end_index], stamped at its end."""

    row: int
    start_index: float
    end_index: float
    rms_v: float
    real: bool


class HalfCycleRms:
    """Urms(1/2) of one channel: one-cycle RMS ending at every half-cycle mark (refresh every ½ cycle)."""

    def __init__(self, row: int, nominal_period: float) -> None:
        self.row = row
        self._nominal = nominal_period
        self._last: dict[int, Mark] = {}
        self._period = nominal_period

    def on_mark(self, mark: Mark, period: float, history: SampleHistory) -> HalfCycleValue | None:
        """Compute the value that ends at ``mark``; None until a same-direction mark is known."""
        prev = self._last.get(mark.direction)
        self._last[mark.direction] = mark
        if prev is None and not self._last.get(-mark.direction):
            return None
        start = prev.index if prev is not None else mark.index - period
        if not 0.5 * self._nominal <= mark.index - start <= 1.5 * self._nominal:
            start = mark.index - period
        if start < history.start_index:
            return None
        rms = math.sqrt(max(window_mean_square(history, self.row, start, mark.index), 0.0))
        return HalfCycleValue(self.row, start, mark.index, rms, mark.real and (prev is None or prev.real))

"""RMS over windows with fractional boundaries, and the half-cycle refreshed Urms(1/2) (IEC 61000-4-30).

The squared signal is integrated with the trapezoidal rule between fractional sample positions
(boundary samples weighted by their fractional share, power-quality.md §3.1), so that one exact
cycle of a sine reads its RMS also when a cycle is not a whole number of samples (60 Hz at 8 kHz).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from meterd.pq.history import SampleHistory
from meterd.pq.zerocross import Mark


def window_mean_square(history: SampleHistory, row: int, start: float, stop: float) -> float:
    """Mean of x² (V² or A²) over the continuous interval [start, stop] in fractional sample indices.

    x² is taken as the piecewise-linear curve through the squared samples (trapezoidal rule): the
    whole sample intervals inside come from the history's running sums, the fractional ends are
    interpolated (:meth:`SampleHistory.mean_square`).
    """
    return history.mean_square(row, start, stop)


class HalfCycleValue(NamedTuple):
    """One Urms(1/2) value: channel row, RMS (V) over [start_index, end_index], stamped at its end
    (a named tuple: about 300 a second per three-phase supply)."""

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
        window = self.window(mark, period, history)
        if window is None:
            return None
        start, real = window
        rms = math.sqrt(max(window_mean_square(history, self.row, start, mark.index), 0.0))
        return HalfCycleValue(self.row, start, mark.index, rms, real)

    def on_marks(self, marks: list[Mark], period: float, history: SampleHistory) -> list[HalfCycleValue]:
        """:meth:`on_mark` of consecutive marks, the RMS of all their windows in one pass."""
        windows = [(m, w) for m in marks if (w := self.window(m, period, history)) is not None]
        if not windows:
            return []
        starts = np.array([w[0] for _m, w in windows])
        stops = np.array([m.index for m, _w in windows])
        rms = np.sqrt(np.maximum(history.mean_squares(self.row, starts, stops), 0.0)).tolist()
        return [HalfCycleValue(self.row, w[0], m.index, r, w[1]) for (m, w), r in zip(windows, rms, strict=True)]

    def window(self, mark: Mark, period: float, history: SampleHistory) -> tuple[float, bool] | None:
        """The start (fractional sample index) and realness of the one-cycle window ending at
        ``mark``; None until a same-direction mark is known or when the start left the history."""
        prev = self._last.get(mark.direction)
        self._last[mark.direction] = mark
        if prev is None and not self._last.get(-mark.direction):
            return None
        start = prev.index if prev is not None else mark.index - period
        if not 0.5 * self._nominal <= mark.index - start <= 1.5 * self._nominal:
            start = mark.index - period
        if start < history.start_index:
            return None
        return start, mark.real and (prev is None or prev.real)

"""Fundamental zero crossings of one voltage channel (power-quality.md §2.4), streaming.

The voltage is low-passed (2nd-order Butterworth at 1.2·f_nom) to suppress harmonics; a crossing
is the last sign change of the filtered signal before it leaves a ±``min_amplitude_v`` dead band
on the other side (a Schmitt trigger, so that noise during an interruption does not count). Its
position is interpolated linearly and shifted back by the filter's phase delay at the measured
frequency. Without a crossing for 1.5 nominal half cycles (interruption, deep dip) the detector
free-runs on the last good period, from the last good mark: a crossing is good when it lies
half a period (±20 %) after the mark before it. The crossing the filter's ringing makes just
after the voltage collapsed is late (it is not good), so the grid continues from the crossing
before it and stays on the supply's own grid through the interruption. When the voltage
returns, a crossing off that grid by more than 5 % of a half period (the filter's step response,
or a real phase jump) is used only once the next crossing confirms it half a period later. The period is updated
from good crossings one period apart (within ±5 %), as the median of the last five, so that one
crossing the filter's ringing moved cannot change the free-running period.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import signal

from meterd.pq.source import FloatArray


@dataclass(frozen=True)
class Mark:
    """A half-cycle boundary: fractional sample index, direction (+1 rising, −1 falling), real or free-run."""

    index: float
    direction: int
    real: bool


class ZeroCrossingDetector:
    """Turns one voltage channel's samples into a stream of half-cycle marks (fractional indices)."""

    def __init__(self, sample_rate_hz: float, f_nom_hz: float, min_amplitude_v: float) -> None:
        self._fs = sample_rate_hz
        self._sos = signal.butter(2, 1.2 * f_nom_hz, fs=sample_rate_hz, output="sos")
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._dead_band = min_amplitude_v
        self._nominal_period = sample_rate_hz / f_nom_hz  # samples
        self.period = self._nominal_period  # samples, last good measurement
        self._delay = self._phase_delay(self.period)
        self._prev_y = 0.0
        self._strong_sign = 0
        self._pending: float | None = None
        self.marks: list[Mark] = []  # recent marks, oldest first (trimmed by the caller)
        self._last_by_dir: dict[int, Mark] = {}
        self._good: Mark | None = None  # the last real mark half a period after its predecessor
        self._good_by_dir: dict[int, Mark] = {}
        self._candidate: Mark | None = None  # a real crossing off the free-running grid, unconfirmed
        self._anchor: Mark | None = None  # a confirmed crossing the free-running grid moves onto
        self._periods: deque[float] = deque(maxlen=5)  # recent good periods (samples); the median is used

    def _phase_delay(self, period: float) -> float:
        """Phase delay of the pre-filter (samples) at the frequency of ``period`` samples."""
        w = 2 * np.pi / period
        z = np.exp(-1j * w * np.arange(3))
        h = np.prod((self._sos[:, :3] @ z) / (self._sos[:, 3:] @ z))
        return float(-np.angle(h) / w)

    def process(self, first_index: int, x: FloatArray) -> list[Mark]:
        """Feed consecutive samples (V); return the marks that became known, in time order."""
        y, self._zi = signal.sosfilt(self._sos, x, zi=self._zi)
        yy = np.concatenate(([self._prev_y], y))
        self._prev_y = float(y[-1])
        out: list[Mark] = []
        for kind, at, value in self._events(first_index, yy):
            self._free_run_until(at, out)
            if kind == 0:
                self._on_crossing(int(value))
                if int(value) != self._strong_sign and self._strong_sign != 0:
                    self._pending = at - 1 + yy[at - first_index] / (yy[at - first_index] - yy[at - first_index + 1])
            else:
                self._on_strong(int(value), out)
        self._free_run_until(first_index + len(x), out)
        return out

    def _events(self, first_index: int, yy: FloatArray) -> list[tuple[int, int, float]]:
        """(kind, sample index, value) sorted by index: kind 0 crossing (value: direction), 1 strong flip."""
        pos = yy >= 0
        cross = np.nonzero(pos[1:] != pos[:-1])[0]  # crossing between yy[c] and yy[c+1]
        events = [(0, first_index + int(c), 1.0 if pos[c + 1] else -1.0) for c in cross]
        y = yy[1:]
        strong = np.nonzero(np.abs(y) > self._dead_band)[0]
        if strong.size:
            signs = np.sign(y[strong])
            prev = np.concatenate(([self._strong_sign], signs[:-1]))
            flips = np.nonzero(signs != prev)[0]
            events += [(1, first_index + int(strong[i]), float(signs[i])) for i in flips]
        events.sort(key=lambda e: (e[1], e[0]))
        return events

    def _on_crossing(self, direction: int) -> None:
        if direction == self._strong_sign:
            self._pending = None

    def _on_strong(self, sign: int, out: list[Mark]) -> None:
        if self._pending is not None:
            self._accept(Mark(self._pending - self._delay, sign, True), out)
        self._pending = None
        self._strong_sign = sign

    def _accept(self, mark: Mark, out: list[Mark]) -> bool:
        last = self.marks[-1] if self.marks else None
        half = self.period / 2
        if mark.real and last is not None and not last.real and abs(mark.index - last.index - half) > 0.025 * self.period:
            # off the free-running grid: two consistent crossings move the grid onto them
            if self._confirms(mark):
                self._anchor, self._candidate = mark, None
            else:
                self._candidate = mark
            return False
        if last is None and mark.real and not self._confirms(mark):
            self._candidate = mark  # the first crossing (filter start-up): confirmed by the next one
            return False
        if last is not None and mark.index <= last.index:
            return False
        same = self._last_by_dir.get(mark.direction)
        if same is not None and mark.index - same.index < 0.4 * self._nominal_period:
            return False
        if mark.real:
            self._candidate = None
        if mark.real and (last is None or abs(mark.index - last.index - half) <= 0.1 * self.period):
            good = self._good_by_dir.get(mark.direction)
            if same is not None and good is same:
                period = mark.index - same.index
                if abs(period - self.period) <= 0.05 * self.period:
                    self._periods.append(period)
                    self.period = float(np.median(self._periods))
                    self._delay = self._phase_delay(self.period)
            self._good = self._good_by_dir[mark.direction] = mark
        self.marks.append(mark)
        self._last_by_dir[mark.direction] = mark
        out.append(mark)
        return True

    def _confirms(self, mark: Mark) -> bool:
        """True when ``mark`` lies half a period (±20 %) after the held off-grid crossing."""
        c = self._candidate
        return c is not None and c.direction != mark.direction and \
            abs(mark.index - c.index - self.period / 2) <= 0.1 * self.period

    def _free_run_until(self, position: int, out: list[Mark]) -> None:
        """Synthesise marks while no crossing arrived within 1.5 nominal half cycles of the last mark."""
        while self.marks and position > self.marks[-1].index + 0.75 * self._nominal_period:
            if not self._accept(self._next_free_run(), out):
                break

    def _next_free_run(self) -> Mark:
        """The next grid mark: half a period after the last mark; on the grid of a confirmed pair
        of crossings off the old grid (re-lock), or, when the last real mark was not good (the
        filter's ringing), on the grid of the last good mark."""
        last = self.marks[-1]
        half = self.period / 2
        anchor, self._anchor = self._anchor, None
        if anchor is None and last.real and self._good is not None and self._good is not last \
                and last.index - self._good.index < 2 * self.period:
            anchor = self._good
        if anchor is None:
            return Mark(last.index + half, -last.direction, False)
        k = math.floor((last.index + 0.25 * half - anchor.index) / half) + 1
        if anchor.direction * (-1) ** k == last.direction:
            k += 1
        return Mark(anchor.index + k * half, anchor.direction * (-1) ** k, False)

    def trim(self, keep: int) -> None:
        """Keep only the newest ``keep`` marks."""
        if len(self.marks) > keep:
            del self.marks[: len(self.marks) - keep]

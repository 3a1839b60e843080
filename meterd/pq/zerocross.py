"""Fundamental zero crossings of one voltage channel (power-quality.md §2.4), streaming.

The voltage is low-passed (2nd-order Butterworth at 1.2·f_nom) to suppress harmonics; a crossing
is the last sign change of the filtered signal before it leaves a ±``min_amplitude_v`` dead band
on the other side (a Schmitt trigger, so that noise during an interruption does not count). Its
position is interpolated linearly and shifted back by the filter's phase delay at the measured
frequency. Without crossings the detector free-runs on the last good period.
"""

from __future__ import annotations

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

    def _accept(self, mark: Mark, out: list[Mark]) -> None:
        last = self.marks[-1] if self.marks else None
        same = self._last_by_dir.get(mark.direction)
        if last is not None and mark.index <= last.index:
            return
        if same is not None and mark.index - same.index < 0.4 * self._nominal_period:
            return
        if mark.real and same is not None and same.real:
            period = mark.index - same.index
            if 0.5 * self._nominal_period <= period <= 1.5 * self._nominal_period:
                self.period = period
                self._delay = self._phase_delay(period)
        self.marks.append(mark)
        self._last_by_dir[mark.direction] = mark
        out.append(mark)

    def _free_run_until(self, position: int, out: list[Mark]) -> None:
        """Synthesise marks while no crossing arrived within one nominal cycle of the last mark."""
        while self.marks and position > self.marks[-1].index + self._nominal_period:
            last = self.marks[-1]
            self._accept(Mark(last.index + self.period / 2, -last.direction, False), out)

    def trim(self, keep: int) -> None:
        """Keep only the newest ``keep`` marks."""
        if len(self.marks) > keep:
            del self.marks[: len(self.marks) - keep]

"""Fundamental zero crossings of one voltage channel (power-quality.md §2.4), streaming.

The voltage is low-passed (2nd-order Butterworth at 1.2·f_nom) to suppress harmonics; a crossing
is the last sign change of the filtered signal before it leaves a ±``min_amplitude_v`` dead band
on the other side (a Schmitt trigger, so that noise during an interruption does not count). Its
position is interpolated linearly and shifted back by the filter's phase delay at the measured
frequency. That estimate is exact only in steady state: after an amplitude step the filter's step
response moves it by up to 7 samples for about two cycles. So when it lies more than a quarter
sample off the raw signal's crossing, the crossing is placed on the raw signal instead: the one sign change of the raw samples within a tenth of a period of the estimate
(linear interpolation between the two straddling samples), plus the steady offset between the
filtered estimate and the raw crossing (the median of the last nine, per direction: harmonics
move the raw crossing away from the fundamental's by a constant amount, an amplitude step does
not move it at all). Where the raw signal crosses several times there (a distorted waveform),
the filtered estimate is used; where it does not cross there, or stays within half the dead band
(the supply has collapsed), the filtered crossing is the filter's ringing and is dropped.

Without a crossing for 1.5 nominal half cycles (interruption, deep dip) the detector free-runs on
the last good period, from the last good mark: a crossing is good when it lies half a period
(±20 %) after the mark before it. The crossing the filter's ringing makes just after the voltage
collapsed is late (it is not good), so the grid continues from the crossing before it and stays
on the supply's own grid through the interruption. When the voltage returns, a crossing off that
grid by more than 5 % of a half period (a real phase jump) is used only once the next crossing
confirms it half a period later. The period is the median of the last five good periods (two
good crossings of one direction) lying within ±15 % of nominal (42.5–57.5 Hz at 50 Hz, wider than
EN 50160's 47–52 Hz), so that it follows any supply frequency within three cycles while one
period that the filter's ringing moved cannot change it.
"""

from __future__ import annotations

import bisect
import cmath
import math
from collections import deque
from typing import NamedTuple

import numpy as np

from meterd.pq.iir import SosFilter, butter_sos
from meterd.pq.source import FloatArray

_DISTURBED_SAMPLES = 0.25  # a filtered estimate this far (samples) off the raw crossing is disturbed


def _median(values: deque[float]) -> float:
    """Median of a few values (as :func:`statistics.median`: the mean of the middle two when even)."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class Mark(NamedTuple):
    """A half-cycle boundary: fractional sample index, direction (+1 rising, −1 falling), real or free-run.

    A named tuple (immutable, made about 300 times a second per three-phase supply: cheaper than
    a frozen dataclass)."""

    index: float  # type: ignore[assignment]  # the field hides tuple.index, which marks never use
    direction: int
    real: bool


def prefilter_sos(sample_rate_hz: float, f_nom_hz: float) -> FloatArray:
    """The detector's low-pass: 2nd-order Butterworth at 1.2·f_nom (second-order sections)."""
    return butter_sos(2, 1.2 * f_nom_hz, sample_rate_hz)


_NO_COUNT = np.zeros(1, dtype=np.int64)


class PreFilter:
    """The detectors' low-pass run over several channels at once (one filter call per block)."""

    def __init__(self, sample_rate_hz: float, f_nom_hz: float, channels: int) -> None:
        self._filter = SosFilter(prefilter_sos(sample_rate_hz, f_nom_hz), channels)

    def filter(self, x: FloatArray) -> FloatArray:
        """Filtered samples of consecutive blocks, shape (channels, n) as ``x`` (V)."""
        return self._filter.filter(x)


class ZeroCrossingDetector:
    """Turns one voltage channel's samples into a stream of half-cycle marks (fractional indices)."""

    def __init__(self, sample_rate_hz: float, f_nom_hz: float, min_amplitude_v: float) -> None:
        self._fs = sample_rate_hz
        self._sos = prefilter_sos(sample_rate_hz, f_nom_hz)
        self._filter = SosFilter(self._sos, 1)
        self._sections = [tuple(float(c) for c in row) for row in self._sos]  # for the phase delay
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
        self._raw: FloatArray = np.zeros(0)  # the newest raw samples (V), for placing crossings on them
        self._raw_first = 0  # sample index of self._raw[0]
        self._raw_keep = int(2 * self._nominal_period)
        self._search = self._nominal_period / 10  # half-width of the raw crossing search (samples)
        self._offsets: dict[int, deque[float]] = {1: deque(maxlen=9), -1: deque(maxlen=9)}

    def _phase_delay(self, period: float) -> float:
        """Phase delay of the pre-filter (samples) at the frequency of ``period`` samples."""
        w = 2 * math.pi / period
        z1, z2 = cmath.exp(-1j * w), cmath.exp(-2j * w)
        h = complex(1.0)
        for b0, b1, b2, a0, a1, a2 in self._sections:
            h *= (b0 + b1 * z1 + b2 * z2) / (a0 + a1 * z1 + a2 * z2)
        return -cmath.phase(h) / w

    def process(self, first_index: int, x: FloatArray, filtered: FloatArray | None = None) -> list[Mark]:
        """Feed consecutive samples (V); return the marks that became known, in time order.

        ``filtered``: the same samples through :func:`prefilter_sos` with carried state (a
        :class:`PreFilter` shared by several channels); None filters here.
        """
        y = self._filter.filter(np.asarray(x, dtype=np.float64)[None, :])[0] if filtered is None else filtered
        yy = np.concatenate(([self._prev_y], y))
        self._prev_y = float(y[-1])
        if self._raw.size and self._raw_first + self._raw.size == first_index:
            self._raw = np.concatenate((self._raw, x))
        else:
            self._raw, self._raw_first = np.asarray(x, dtype=np.float64), first_index
        self._index_raw()
        out: list[Mark] = []
        at_list, kinds, values, pending_at = self._events(first_index, yy)
        marks = self.marks
        late = 0.75 * self._nominal_period
        for i, (at, kind, value) in enumerate(zip(at_list, kinds, values, strict=True)):
            if marks and at - self._delay > marks[-1].index + late:
                self._free_run_until(at, out)
            if kind == 0:  # a crossing of the filtered signal, in direction ``value``
                strong = self._strong_sign
                if value == strong:
                    self._pending = None
                elif strong != 0:
                    self._pending = pending_at[i]  # a numpy float, as the marks have always been
            else:  # the filtered signal left the dead band with sign ``value``
                self._on_strong(value, at, out)
        self._free_run_until(first_index + len(x), out)
        if self._raw.size > self._raw_keep:
            self._raw_first += self._raw.size - self._raw_keep
            self._raw = self._raw[-self._raw_keep :].copy()  # a copy: a view would keep the whole block
        self._strong_count = _NO_COUNT  # this block's index (64 kB a second of 8 kHz) is not kept
        return out

    def _index_raw(self) -> None:
        """Sign changes and strong samples of the raw samples held, found once per block for
        :meth:`_place` (positions relative to ``_raw_first``; a change at c lies between c and c+1)."""
        raw = self._raw
        nonneg, nonpos = raw >= 0, raw <= 0
        self._changes = {1: np.flatnonzero(nonneg[1:] != nonneg[:-1]).tolist(),  # rising made rising
                         -1: np.flatnonzero(nonpos[1:] != nonpos[:-1]).tolist()}  # falling made rising
        self._strong_count = np.concatenate(([0], np.cumsum(np.abs(raw) >= self._dead_band / 2)))

    def _events(self, first_index: int, yy: FloatArray) -> tuple[list[int], list[int], list[int], FloatArray]:
        """The block's events in time order as columns: sample index, kind (0 crossing, 1 strong
        flip), value (the crossing's direction, the flip's new sign) and, for a crossing, its
        linearly interpolated position (fractional sample index; 0.0 for a flip). At one index a
        crossing comes before a flip."""
        pos = yy >= 0
        cross = np.flatnonzero(pos[1:] != pos[:-1])  # crossing between yy[c] and yy[c+1]
        y0, y1 = yy[cross], yy[cross + 1]
        at_cross = first_index + cross
        placed = (at_cross - 1) + y0 / (y0 - y1)
        directions = np.where(pos[cross + 1], 1, -1)
        y = yy[1:]
        strong = np.flatnonzero(np.abs(y) > self._dead_band)
        if strong.size:
            signs = np.where(y[strong] > 0, 1, -1)
            prev = np.empty_like(signs)
            prev[0] = self._strong_sign
            prev[1:] = signs[:-1]
            flips = np.flatnonzero(signs != prev)
            at_flip = first_index + strong[flips]
            flip_signs = signs[flips]
        else:
            at_flip = flip_signs = np.zeros(0, dtype=np.int64)
        if not at_flip.size:
            return at_cross.tolist(), [0] * cross.size, directions.tolist(), placed
        at = np.concatenate((at_cross, at_flip))
        kind = np.concatenate((np.zeros(cross.size, dtype=np.int64), np.ones(at_flip.size, dtype=np.int64)))
        order = np.argsort(2 * at + kind, kind="stable")
        return (at[order].tolist(), kind[order].tolist(),
                np.concatenate((directions, flip_signs))[order].tolist(),
                np.concatenate((placed, np.zeros(at_flip.size)))[order])

    def _on_strong(self, sign: int, at: int, out: list[Mark]) -> None:
        if self._pending is not None:
            index = self._place(self._pending - self._delay, sign, at)
            if index is not None:
                self._accept(Mark(index, sign, True), out)
        self._pending = None
        self._strong_sign = sign

    def _place(self, estimate: float, direction: int, known_until: int) -> float | None:
        """The crossing near the filtered ``estimate`` placed on the raw samples (see the module text).

        Within a tenth of a period of the estimate: one sign change of the raw signal in the
        crossing's direction gives the crossing; several (a distorted waveform) leave the estimate;
        none, or one the other way, or a raw signal within half the dead band (a collapsed supply)
        mean that the filtered crossing is the filter's ringing or its step response: None.
        Only raw samples before ``known_until`` (the sample that confirmed the crossing) are used,
        so the result does not depend on how the stream is cut into blocks.
        """
        lo = math.floor(estimate - self._search)
        hi = math.ceil(estimate + self._search) + 1
        if lo < self._raw_first or hi > known_until:
            return estimate
        r0, r1 = lo - self._raw_first, hi - self._raw_first
        if int(self._strong_count[r1]) == int(self._strong_count[r0]):  # all within half the dead band
            return None
        changes = self._changes[direction]
        first = bisect.bisect_left(changes, r0)
        n_changes = bisect.bisect_left(changes, r1 - 1) - first  # changes at r0 … r1 − 2
        if n_changes > 1:
            return estimate
        if n_changes == 0 or direction * float(self._raw[r1 - 1]) < 0:
            return None
        c = changes[first]
        a, b = float(self._raw[c]), float(self._raw[c + 1])
        raw = self._raw_first + c + a / (a - b)
        offsets = self._offsets[direction]
        offsets.append(float(estimate - raw))  # plain floats: sorted for the median 100 times a second
        placed = np.float64(raw + _median(offsets))  # a numpy float, as every mark index
        # in steady state the (smooth) filtered estimate is kept: interpolating between raw samples
        # that carry harmonics up to 2.5 kHz jitters by a few hundredths of a sample
        return estimate if abs(estimate - placed) <= _DISTURBED_SAMPLES else placed

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
                if abs(period - self._nominal_period) <= 0.15 * self._nominal_period:
                    self._periods.append(float(period))
                    median = _median(self._periods)
                    if median != self.period:  # the delay only changes with the period
                        self.period = median
                        self._delay = self._phase_delay(median)
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
        """Synthesise marks while no crossing arrived within 1.5 nominal half cycles of the last mark.

        ``position`` is a sample index of the filtered signal, which lags the marks by the filter's
        delay (about 35 samples at 47 Hz): without that allowance a 47 Hz half cycle (85 samples)
        would look missing before its crossing could be seen.
        """
        while self.marks and position - self._delay > self.marks[-1].index + 0.75 * self._nominal_period:
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

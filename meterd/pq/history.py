"""A ring buffer of the most recent samples of all channels, addressed by absolute sample index.

It also keeps running sums of the squared samples, so that the sum of x² over any run of samples
(the RMS windows) costs two look-ups instead of a pass over the run. The sums restart at every
multiple of ``SUM_SEGMENT`` samples (and after a gap), so they stay small (≤ 16384 · x², rounding
below 10⁻¹³ of a window's sum), and they are accumulated strictly in sample order, so they are the
same however the stream was cut into blocks.
"""

from __future__ import annotations

import math

import numpy as np

from meterd.pq.errors import SampleStreamError
from meterd.pq.source import FloatArray

SUM_SEGMENT = 1 << 14  # samples; longer than any window (10/12 cycles at 42.5 Hz: 1900 samples)


class SampleHistory:
    """Keeps the last ``capacity`` samples of ``n_rows`` channels (V, A) for window computations."""

    def __init__(self, n_rows: int, capacity: int) -> None:
        self._buf = np.zeros((n_rows, capacity))
        self._sums = np.zeros((n_rows, capacity))  # running Σx² within each sum segment (V², A²)
        self._carry = np.zeros(n_rows)  # Σx² of the current segment up to the newest sample
        self._restart = 0  # index where the sums restarted after a gap
        self._capacity = capacity
        self.end_index = 0  # one past the newest sample held
        self._count = 0

    @property
    def start_index(self) -> int:
        """Index of the oldest sample still held."""
        return self.end_index - self._count

    def append(self, first_index: int, samples: FloatArray) -> None:
        """Append a block whose first sample has index ``first_index`` (must follow the last one)."""
        n = samples.shape[1]
        if self._count and first_index != self.end_index:
            raise SampleStreamError(f"history expects index {self.end_index}, got {first_index}")
        if not self._count:
            self._restart = first_index
            self._carry[:] = 0.0
        sums = self._running_sums(first_index, samples)
        if n >= self._capacity:
            samples = samples[:, n - self._capacity :]
            sums = sums[:, n - self._capacity :]
            first_index += n - self._capacity
            n = self._capacity
        a = first_index % self._capacity
        if a + n <= self._capacity:
            self._buf[:, a : a + n] = samples
            self._sums[:, a : a + n] = sums
        else:
            pos = (first_index + np.arange(n)) % self._capacity
            self._buf[:, pos] = samples
            self._sums[:, pos] = sums
        self.end_index = first_index + n
        self._count = min(self._capacity, self._count + n)

    def _running_sums(self, first_index: int, samples: FloatArray) -> FloatArray:
        """Σx² from the start of each sample's segment, continuing from the newest sum held."""
        g = samples * samples
        out = np.empty_like(g)
        done = 0
        while done < g.shape[1]:
            k = first_index + done
            if k % SUM_SEGMENT == 0:
                self._carry[:] = 0.0
            m = min(g.shape[1] - done, SUM_SEGMENT - k % SUM_SEGMENT)
            chunk = np.concatenate((self._carry[:, None], g[:, done : done + m]), axis=1)
            out[:, done : done + m] = np.cumsum(chunk, axis=1)[:, 1:]
            self._carry = out[:, done + m - 1].copy()
            done += m
        return out

    def square_sum(self, row: int, first: int, last: int) -> float:
        """Σx² (V², A²) of one row over the samples first…last (inclusive, last − first < SUM_SEGMENT)."""
        if first < self.start_index or last >= self.end_index:
            raise SampleStreamError(f"window {first}..{last} outside history {self.start_index}..{self.end_index}")
        sums, cap = self._sums, self._capacity
        seg_first = max(first - first % SUM_SEGMENT, self._restart)
        seg_last = max(last - last % SUM_SEGMENT, self._restart)
        before = float(sums[row, (first - 1) % cap]) if first > seg_first else 0.0
        if seg_first == seg_last:
            return float(sums[row, last % cap]) - before
        return (float(sums[row, (seg_last - 1) % cap]) - before) + float(sums[row, last % cap])

    def mean_square(self, row: int, start: float, stop: float) -> float:
        """Mean of x² (V², A²) over [start, stop] (fractional sample indices), x² piecewise linear
        between the squared samples (trapezoidal rule; whole intervals from the running sums)."""
        buf, cap = self._buf, self._capacity
        i0, j0 = math.floor(start), math.floor(stop)
        if i0 < self.start_index or math.ceil(stop) >= self.end_index:
            raise SampleStreamError(f"window {start}..{stop} outside history {self.start_index}..{self.end_index}")
        fa, fb = start - i0, stop - j0
        a0, a1 = float(buf[row, i0 % cap]) ** 2, float(buf[row, (i0 + 1) % cap]) ** 2
        ga = a0 if fa == 0.0 else a0 * (1.0 - fa) + a1 * fa  # x² at start
        b0 = float(buf[row, j0 % cap]) ** 2
        gb = b0 if fb == 0.0 else b0 * (1.0 - fb) + float(buf[row, (j0 + 1) % cap]) ** 2 * fb  # x² at stop
        ia = i0 if fa == 0.0 else i0 + 1  # first whole sample inside
        if j0 < ia:  # both ends inside one sample interval
            return (ga + gb) / 2.0
        g_ia = a0 if ia == i0 else a1
        inner = self.square_sum(row, ia, j0) - (g_ia + b0) / 2.0
        left = (ia - start) * (ga + g_ia) / 2.0
        right = (stop - j0) * (b0 + gb) / 2.0
        return (inner + left + right) / (stop - start)

    def mean_squares(self, row: int, start: FloatArray, stop: FloatArray) -> FloatArray:
        """:meth:`mean_square` of many intervals [start[i], stop[i]] of one row at once (V², A²),
        each stop − start at least one sample and shorter than ``SUM_SEGMENT``; the same
        arithmetic element by element, so the same values."""
        buf, sums, cap = self._buf[row], self._sums[row], self._capacity
        i0, j0 = np.floor(start).astype(np.int64), np.floor(stop).astype(np.int64)
        if start.size == 0:
            return np.zeros(0)
        if int(i0.min()) < self.start_index or int(np.ceil(stop).max()) >= self.end_index:
            raise SampleStreamError(f"windows outside history {self.start_index}..{self.end_index}")
        fa, fb = start - i0, stop - j0
        a0, a1 = buf[i0 % cap] ** 2, buf[(i0 + 1) % cap] ** 2
        b0, b1 = buf[j0 % cap] ** 2, buf[(j0 + 1) % cap] ** 2
        whole_a, whole_b = fa == 0.0, fb == 0.0
        ga = np.where(whole_a, a0, a0 * (1.0 - fa) + a1 * fa)
        gb = np.where(whole_b, b0, b0 * (1.0 - fb) + b1 * fb)
        ia = np.where(whole_a, i0, i0 + 1)
        g_ia = np.where(whole_a, a0, a1)
        seg_first = np.maximum(ia - ia % SUM_SEGMENT, self._restart)
        seg_last = np.maximum(j0 - j0 % SUM_SEGMENT, self._restart)
        before = np.where(ia > seg_first, sums[(ia - 1) % cap], 0.0)
        last = sums[j0 % cap]
        total = np.where(seg_first == seg_last, last - before, (sums[(seg_last - 1) % cap] - before) + last)
        inner = total - (g_ia + b0) / 2.0
        left = (ia - start) * (ga + g_ia) / 2.0
        right = (stop - j0) * (b0 + gb) / 2.0
        one_interval = j0 < ia
        return np.asarray(np.where(one_interval, (ga + gb) / 2.0, (inner + left + right) / (stop - start)),
                          dtype=np.float64)

    def value(self, row: int, index: int) -> float:
        """One sample (V or A)."""
        return float(self._buf[row, index % self._capacity])

    def reset(self, next_index: int) -> None:
        """Forget everything (after a gap); the next block starts at ``next_index``."""
        self._count = 0
        self.end_index = next_index

    def get(self, row: int | slice, start: int, stop: int) -> FloatArray:
        """Samples with absolute indices start…stop−1 of one row (or a row slice); read-only use
        (a view into the ring when the run does not wrap)."""
        if start < self.start_index or stop > self.end_index:
            raise SampleStreamError(f"window {start}..{stop} outside history {self.start_index}..{self.end_index}")
        a, b = start % self._capacity, stop % self._capacity
        if a < b or (b == 0 and stop > start):  # one contiguous run of the ring: a view, no copy
            return self._buf[row, ..., a : b or self._capacity]
        pos = np.arange(start, stop) % self._capacity
        return np.asarray(self._buf[row][..., pos], dtype=np.float64)

    def get_at(self, rows: slice, indices: np.ndarray) -> FloatArray:
        """Samples at an integer index array (any shape) for a slice of rows: shape (rows, *indices.shape)."""
        if indices.min() < self.start_index or indices.max() >= self.end_index:
            raise SampleStreamError("requested samples outside history")
        return np.asarray(self._buf[rows][:, indices % self._capacity], dtype=np.float64)

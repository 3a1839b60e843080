"""A ring buffer of the most recent samples of all channels, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np

from meterd.pq.errors import SampleStreamError
from meterd.pq.source import FloatArray


class SampleHistory:
    """Keeps the last ``capacity`` samples of ``n_rows`` channels (V, A) for window computations."""

    def __init__(self, n_rows: int, capacity: int) -> None:
        self._buf = np.zeros((n_rows, capacity))
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
        if n >= self._capacity:
            samples = samples[:, n - self._capacity :]
            first_index += n - self._capacity
            n = self._capacity
        pos = (first_index + np.arange(n)) % self._capacity
        self._buf[:, pos] = samples
        self.end_index = first_index + n
        self._count = min(self._capacity, self._count + n)

    def reset(self, next_index: int) -> None:
        """Forget everything (after a gap); the next block starts at ``next_index``."""
        self._count = 0
        self.end_index = next_index

    def get(self, row: int | slice, start: int, stop: int) -> FloatArray:
        """Samples with absolute indices start…stop−1 of one row (or a row slice)."""
        if start < self.start_index or stop > self.end_index:
            raise SampleStreamError(f"window {start}..{stop} outside history {self.start_index}..{self.end_index}")
        pos = np.arange(start, stop) % self._capacity
        return np.asarray(self._buf[row][..., pos], dtype=np.float64)

    def get_at(self, rows: slice, indices: np.ndarray) -> FloatArray:
        """Samples at an integer index array (any shape) for a slice of rows: shape (rows, *indices.shape)."""
        if indices.min() < self.start_index or indices.max() >= self.end_index:
            raise SampleStreamError("requested samples outside history")
        return np.asarray(self._buf[rows][:, indices % self._capacity], dtype=np.float64)

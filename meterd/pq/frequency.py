"""Class A frequency (power-quality.md §2.5): whole cycles inside each 10-s clock interval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TEN_S = 10.0


@dataclass(frozen=True)
class FrequencyValue:
    """10-s frequency (Hz) for the interval ending at end_posix_s (s); flagged by the monitor."""

    end_posix_s: float
    frequency_hz: float
    n_cycles: int
    start_index: float
    end_index: float


class TenSecondFrequency:
    """Counts whole cycles (rising crossing to rising crossing) that lie inside each 10-s interval."""

    def __init__(self, sample_rate_hz: float, to_posix: Callable[[float], float]) -> None:
        self._fs = sample_rate_hz
        self._to_posix = to_posix
        self._prev: float | None = None
        self._key: int | None = None
        self._n = 0
        self._dur = 0.0
        self._first = 0.0
        self._last = 0.0

    def on_rising(self, index: float, real: bool) -> list[FrequencyValue]:
        """Feed a rising mark; free-run marks break the chain. Returns intervals that closed."""
        out: list[FrequencyValue] = []
        prev, self._prev = self._prev, (index if real else None)
        if prev is None:
            return out
        k_start = int(self._to_posix(prev) // TEN_S)
        k_end = int(self._to_posix(index) // TEN_S)
        if self._key is not None and k_end != self._key:
            out += self._close()
        if k_start != k_end:
            return out  # a cycle straddling the boundary is dropped
        if self._key is None:
            self._key, self._first = k_end, prev
        self._n += 1
        self._dur += index - prev
        self._last = index
        return out

    def _close(self) -> list[FrequencyValue]:
        out = []
        if self._n and self._key is not None:
            out.append(FrequencyValue((self._key + 1) * TEN_S, self._n * self._fs / self._dur, self._n,
                                      self._first, self._last))
        self._key, self._n, self._dur = None, 0, 0.0
        return out

"""Map sample indices to UTC (power-quality.md §2.3): a linear index→time map re-anchored on clock steps."""

from __future__ import annotations

import datetime as _dt

UTC = _dt.UTC


class IndexTimebase:
    """Turns a sample index into UTC using the latest block's (index, UTC) anchor.

    The anchor is kept while the blocks' stated UTC agrees with the extrapolation within
    ``step_tolerance_s`` (s); a larger disagreement is a clock step and re-anchors the map, so that
    results do not depend on how the stream was cut into blocks.
    """

    def __init__(self, sample_rate_hz: float, step_tolerance_s: float = 0.005) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._tolerance_s = step_tolerance_s
        self._anchor_index: int | None = None
        self._anchor_posix_s = 0.0

    def observe(self, first_index: int, utc_first: _dt.datetime) -> None:
        """Take note of a block's first sample index and its UTC time."""
        posix_s = utc_first.timestamp()
        if self._anchor_index is None or abs(self.posix_s(first_index) - posix_s) > self._tolerance_s:
            self._anchor_index = first_index
            self._anchor_posix_s = posix_s

    def posix_s(self, index: float) -> float:
        """UTC of a (fractional) sample index as POSIX seconds (s)."""
        if self._anchor_index is None:
            raise ValueError("timebase has no anchor yet")
        return self._anchor_posix_s + (index - self._anchor_index) / self.sample_rate_hz

    def utc(self, index: float) -> _dt.datetime:
        """UTC datetime (ms resolution) of a (fractional) sample index."""
        ms = round(self.posix_s(index) * 1000.0)
        return _dt.datetime.fromtimestamp(ms // 1000, tz=UTC) + _dt.timedelta(milliseconds=ms % 1000)

    def index_at(self, posix_s: float) -> float:
        """Fractional sample index at which UTC reaches ``posix_s`` (s)."""
        if self._anchor_index is None:
            raise ValueError("timebase has no anchor yet")
        return self._anchor_index + (posix_s - self._anchor_posix_s) * self.sample_rate_hz

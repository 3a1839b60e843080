"""The metering loop's lateness statistic: counts, late ticks, max, p99 over a rolling window."""

from __future__ import annotations

import pytest

from meterd.core.lateness import LatenessStats, percentile


def test_percentile_nearest_rank():
    assert percentile([], 99) == 0.0
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == 50.0


def test_counts_late_max_and_p99():
    stats = LatenessStats(late_ms=10.0, window=100)
    for value in [0.0] * 98 + [20.0, 50.0]:
        stats.record(value)
    summary = stats.summary()
    assert (summary.count, summary.late, summary.max_ms) == (100, 2, 50.0)
    assert summary.p99_ms == 20.0
    stats.record(-3.0)  # early counts as on time
    assert stats.summary().count == 101 and stats.summary().late == 2


def test_p99_covers_the_rolling_window_and_max_stays():
    stats = LatenessStats(late_ms=10.0, window=10)
    stats.record(500.0)
    for _ in range(10):
        stats.record(1.0)
    summary = stats.summary()
    assert summary.p99_ms == 1.0  # the 500 ms tick left the window
    assert summary.max_ms == 500.0 and summary.late == 1


def test_skipped_ticks_and_dict():
    stats = LatenessStats()
    stats.skipped(0)
    stats.skipped(12)
    stats.record(2.5)
    assert stats.summary().as_dict() == {"ticks": 1, "late_ticks": 0, "missed_ticks": 12,
                                         "lateness_max_ms": 2.5, "lateness_p99_ms": 2.5}


def test_window_must_hold_a_tick():
    with pytest.raises(ValueError):
        LatenessStats(window=0)

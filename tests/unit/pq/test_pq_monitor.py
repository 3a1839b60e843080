"""PqMonitor: frequency, 10-min clock-aligned aggregation with event flags, register-only fallback."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.monitor import PqMonitor, indicative_from_chip
from meterd.pq.source import WaveformBlock

FS = 8000.0


def feed_sine(mon: PqMonitor, t0: dt.datetime, seconds: float, f_hz: float = 50.0,
              level: tuple[float, float, float] = (0.0, 0.0, 1.0), block: int = 8000) -> None:
    """230 V three-phase; ``level`` = (t_on, t_off, pu) applied to phase 1 between t_on and t_off."""
    n = int(seconds * FS)
    for s in range(0, n, block):
        t = (s + np.arange(min(block, n - s))) / FS
        x = np.zeros((7, t.size))
        for p in range(3):
            a = np.where((t >= level[0]) & (t < level[1]), level[2], 1.0) if p == 0 else 1.0
            x[2 * p] = math.sqrt(2) * 230 * a * np.sin(2 * np.pi * f_hz * t - 2 * np.pi * p / 3)
        mon.feed(WaveformBlock(s, x, FS, t0 + dt.timedelta(seconds=s / FS)))


def test_ten_second_frequency_of_an_off_nominal_supply() -> None:
    mon = PqMonitor()
    feed_sine(mon, dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC), 21.0, f_hz=49.87)
    v = mon.latest()
    assert v.frequency_hz == pytest.approx(49.87, abs=1e-3)
    assert not v.frequency_flagged


def test_ten_minute_aggregate_is_clock_aligned_and_flagged_by_a_dip() -> None:
    mon = PqMonitor()
    t0 = dt.datetime(2026, 1, 1, 0, 9, 54, tzinfo=dt.UTC)  # 6 s before a 10-min tick
    feed_sine(mon, t0, 12.0, level=(2.0, 2.2, 0.5))
    agg = mon.latest().aggregates["10-min"]
    assert agg.end_utc == dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
    assert agg.flagged
    assert agg.rms[0] < 230 and agg.rms_min[0] < 0.75 * 230  # windows are not aligned with the dip
    short = mon.latest().aggregates["150-cycle"]
    assert short.n_values == 15 and not short.flagged  # the series after the tick is clean
    assert short.rms[0] == pytest.approx(230.0, rel=1e-5)
    assert short.thds_pct[0] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.slow
def test_clean_interval_after_a_tick_holds_about_3000_windows_unflagged() -> None:
    mon = PqMonitor()
    t0 = dt.datetime(2026, 1, 1, 0, 9, 59, tzinfo=dt.UTC)
    feed_sine(mon, t0, 1.0 + 600 + 1.0, block=80000)
    agg = mon.latest().aggregates["10-min"]
    assert agg.end_utc == dt.datetime(2026, 1, 1, 0, 20, tzinfo=dt.UTC)
    assert abs(agg.n_values - 3000) <= 1
    assert not agg.flagged
    assert agg.rms[2] == pytest.approx(230.0, rel=1e-5)
    pst = mon.latest().pst[1]
    assert pst.pst < 0.02  # steady sine: no flicker


def test_register_only_fallback_is_marked_indicative() -> None:
    v = indicative_from_chip([2.0, 2.1, 2.2], [10.0, 11.0, 12.0], {"U1": [1.0, 3.0] + [0.1] * 29})
    assert v.indicative
    assert v.thd_pct["U2"] == 2.1 and v.thd_pct["I3"] == 12.0
    ratios = v.harmonic_pct["U1"]
    assert ratios[1] == 100.0 and ratios[3] == 3.0 and ratios[32] == 0.1
    assert math.isnan(ratios[33])  # the chip's DFT stops at order 32
    with pytest.raises(ValueError):
        indicative_from_chip([], [], {"X9": [1.0]})
    assert PqMonitor.indicative_from_chip([1.0], [], {}).thd_pct == {"U1": 1.0}

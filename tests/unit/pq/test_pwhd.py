"""PWHD (orders 14–40) and THD to order 40 (THDS40, THDG40) from a known spectrum, aggregated.

Expected values from the definitions (ref. §6.5, IEC 61000-4-7 / IEC 61000-3-12):
THD40 = sqrt(Σ_{h=2..40} u_h²), PWHD = sqrt(Σ_{h=14..40} h·u_h²), u_h in % of the fundamental;
the order-50 THDS keeps orders 41–50, which THD40 leaves out.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.harmonics import pwhd_pct
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import N_ROWS, ROW_U1, ROW_U2, ROW_U3, WaveformBlock

FS = 8000.0
UTC0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
SPECTRUM_PCT = {3: 4.0, 5: 5.0, 7: 3.0, 13: 1.0, 14: 0.8, 20: 0.5, 27: 0.6, 39: 0.4, 40: 0.3, 41: 0.7, 47: 0.5}


def _expected() -> tuple[float, float, float]:
    thd40 = math.sqrt(sum(u**2 for h, u in SPECTRUM_PCT.items() if h <= 40))
    thd50 = math.sqrt(sum(u**2 for u in SPECTRUM_PCT.values()))
    pwhd = math.sqrt(sum(h * u**2 for h, u in SPECTRUM_PCT.items() if 14 <= h <= 40))
    return thd40, thd50, pwhd


def _monitor_values(f_hz: float = 50.0) -> PqMonitor:
    t = np.arange(int(4.5 * FS)) / FS
    rows = np.zeros((N_ROWS, t.size))
    for row, shift in ((ROW_U1, 0.0), (ROW_U2, -2 * np.pi / 3), (ROW_U3, 2 * np.pi / 3)):
        w = 2 * np.pi * f_hz * t + shift
        rows[row] = math.sqrt(2) * 230 * (np.sin(w) + sum(u / 100 * np.sin(h * w + 0.1 * h)
                                                         for h, u in SPECTRUM_PCT.items()))
    monitor = PqMonitor(PqSettings(f_nom_hz=60.0 if f_hz > 55 else 50.0))
    for first in range(0, t.size, 5000):
        monitor.feed(WaveformBlock(first, rows[:, first:first + 5000], FS, UTC0 + dt.timedelta(seconds=first / FS)))
    return monitor


@pytest.mark.parametrize("f_hz", [50.0, 49.6, 60.0])
def test_thd40_and_pwhd_of_a_known_spectrum(f_hz: float) -> None:
    thd40, thd50, pwhd = _expected()
    values = _monitor_values(f_hz).latest()
    agg = values.aggregates.get("150-cycle") or values.aggregates["180-cycle"]
    assert not agg.flagged
    for row in (ROW_U1, ROW_U2, ROW_U3):
        # IEC 61000-4-7 class I allows 5 % of each component; measured far inside (0.1 %)
        assert agg.thds40_pct[row] == pytest.approx(thd40, rel=1e-3)
        assert agg.thdg40_pct[row] == pytest.approx(thd40, rel=1e-3)  # no interharmonics: groups = subgroups
        assert agg.pwhd_pct[row] == pytest.approx(pwhd, rel=1e-3)
        assert agg.thds_pct[row] == pytest.approx(thd50, rel=1e-3)
    window = values.harmonics["U1"]
    assert window.thd40_pct == pytest.approx(thd40, rel=1e-3)
    assert pwhd_pct(window.subgroup_rms) == pytest.approx(pwhd, rel=1e-3)


def test_pwhd_weights_each_order_by_its_number() -> None:
    values = np.zeros(51)
    values[1] = 100.0
    values[13] = 10.0  # below the range
    values[14] = 1.0
    values[40] = 1.0
    values[41] = 10.0  # above the range
    assert pwhd_pct(values) == pytest.approx(math.sqrt(14 + 40))

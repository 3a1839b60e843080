"""IEC 61000-4-15 flickermeter: weighting filter, scale k, Table 1/2 Pinst,max and Table 5 Pst points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from meterd.pq.flicker import (
    Flickermeter,
    calibrated_k,
    modulated_sine,
    plt_from_pst,
    pst_from_pinst,
    weighting_filter_analog,
)

FS = 8000.0
# (mains Hz, lamp, rms V) for the 230 V / 50 Hz and 120 V / 60 Hz tables of IEC 61000-4-15 Ed. 2
SUPPLIES = {"230V50": (50.0, "230V", 230.0), "120V60": (60.0, "120V", 120.0)}
# Table 5 (rectangular modulation, Pst = 1): changes per minute -> dV/V in %
TABLE5 = {
    "230V50": {1: 2.715, 2: 2.191, 7: 1.450, 39: 0.894, 110: 0.722, 1620: 0.407, 4000: 2.343},
    "120V60": {1: 3.181, 2: 2.564, 7: 1.694, 39: 1.040, 110: 0.844, 1620: 0.548, 4800: 4.837},
}
# Tables 1 and 2 (Pinst,max = 1): modulation Hz -> dV/V in % (a subset of the points)
TABLE1_SINE = {"230V50": {0.5: 2.325, 3.0: 0.645, 8.8: 0.250, 15.0: 0.438, 25.0: 1.037},
               "120V60": {0.5: 2.453, 3.0: 0.717, 8.8: 0.321, 15.0: 0.592, 25.0: 1.464}}
TABLE2_RECT = {"230V50": {0.5: 0.509, 3.0: 0.352, 8.8: 0.196, 15.0: 0.341, 20.0: 0.553},
               "120V60": {0.5: 0.598, 3.0: 0.419, 8.8: 0.252, 15.0: 0.457, 20.0: 0.746}}


def _pst(supply: str, cpm: float, seconds: float, settle_s: float, block: int = 80000) -> float:
    f_mains, lamp, rms = SUPPLIES[supply]
    meter = Flickermeter(FS, f_mains, lamp)
    n = int((seconds + settle_s) * FS)
    parts = []
    for s in range(0, n, block):
        x = modulated_sine(min(block, n - s), FS, f_mains, cpm / 120.0, TABLE5[supply][cpm] / 100, True,
                           rms_v=rms, first_index=s)
        idx, p = meter.process(s, x)
        parts.append(p[idx >= settle_s * FS])
    return pst_from_pinst(np.concatenate(parts))


def test_weighting_filter_matches_reference_check_values() -> None:
    for lamp, f_hz, gain in (("230V", 8.8, 1.0017), ("230V", 10.0, 0.9621), ("230V", 5.0, 0.6263),
                             ("230V", 100.0, 0.0185), ("120V", 8.8, 0.7826), ("120V", 5.0, 0.5330)):
        b, a = weighting_filter_analog(lamp)
        _, h = signal.freqs(b, a, [2 * np.pi * f_hz])
        assert abs(h[0]) == pytest.approx(gain, abs=2e-4)


def test_scale_k_self_calibration_lands_on_reference_values() -> None:
    assert calibrated_k(FS, 50.0, "230V") == pytest.approx(3.095e5, rel=5e-3)
    assert calibrated_k(FS, 60.0, "120V") == pytest.approx(3.076e5, rel=5e-3)


@pytest.mark.parametrize("supply", sorted(SUPPLIES))
@pytest.mark.parametrize("table", ["sine", "rect"])
def test_pinst_max_of_table_1_and_2_points(supply: str, table: str) -> None:
    f_mains, lamp, rms = SUPPLIES[supply]
    points = (TABLE1_SINE if table == "sine" else TABLE2_RECT)[supply]
    for f_mod, dvv in points.items():
        meter = Flickermeter(FS, f_mains, lamp)
        x = modulated_sine(int(FS * 10), FS, f_mains, f_mod, dvv / 100, table == "rect", rms_v=rms)
        idx, p = meter.process(0, x, full_rate=True)
        assert np.max(p[idx >= 5 * FS]) == pytest.approx(1.0, abs=0.05), (f_mod, dvv)


@pytest.mark.parametrize("supply", sorted(SUPPLIES))
def test_table5_pst_points_with_short_observation(supply: str) -> None:
    """39…4800 changes/min repeat often enough that 60 s of Pinst already give the 10-min Pst."""
    for cpm in (39, 110, 1620, 4000 if supply == "230V50" else 4800):
        assert _pst(supply, cpm, seconds=60, settle_s=10) == pytest.approx(1.0, abs=0.05), cpm


@pytest.mark.slow
@pytest.mark.parametrize("supply", sorted(SUPPLIES))
def test_table5_pst_points_over_ten_minutes(supply: str) -> None:
    for cpm in TABLE5[supply]:
        assert _pst(supply, cpm, seconds=600, settle_s=20) == pytest.approx(1.0, abs=0.05), cpm


def test_steady_sine_is_flicker_free_and_scaling_is_linear() -> None:
    meter = Flickermeter(FS, 50.0, "230V")
    t = np.arange(int(FS * 30)) / FS
    x = np.sqrt(2) * 230 * (np.sin(2 * np.pi * 50 * t) + 0.08 * np.sin(2 * np.pi * 250 * t))
    idx, p = meter.process(0, x)
    assert pst_from_pinst(p[idx >= 10 * FS]) < 0.02
    one = _pst("230V50", 110, seconds=30, settle_s=10)
    meter2 = Flickermeter(FS, 50.0, "230V")
    x2 = modulated_sine(int(FS * 40), FS, 50.0, 110 / 120, 2 * 0.722 / 100, True, rms_v=230)
    idx2, p2 = meter2.process(0, x2)
    assert pst_from_pinst(p2[idx2 >= 10 * FS]) == pytest.approx(2 * one, rel=0.01)


def test_block_size_does_not_change_pinst() -> None:
    x = modulated_sine(int(FS * 3), FS, 50.0, 8.8, 0.0025, False, rms_v=230)
    a = Flickermeter(FS, 50.0, "230V")
    b = Flickermeter(FS, 50.0, "230V")
    _, pa = a.process(0, x)
    pb = np.concatenate([b.process(s, x[s : s + 1337])[1] for s in range(0, x.size, 1337)])
    np.testing.assert_allclose(pa, pb, rtol=1e-12)


def test_plt_is_cube_mean_of_pst() -> None:
    assert plt_from_pst([1.0] * 12) == pytest.approx(1.0)
    assert plt_from_pst([2.0] + [0.0] * 11) == pytest.approx((8 / 12) ** (1 / 3))

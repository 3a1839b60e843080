"""IEC 61000-4-7 harmonics: magnitudes, subgroups and THD of synthetic multi-harmonic signals."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.harmonics import analyse_lines, line_rms, resample_window
from meterd.pq.history import SampleHistory
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import WaveformBlock

FS = 8000.0


def _spectrum(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    amps = np.zeros(51)
    amps[1] = 230.0
    amps[2:] = 230.0 * rng.uniform(0.002, 0.04, 49)
    return amps, rng.uniform(0, 2 * np.pi, 51)


def _signal(amps: np.ndarray, phases: np.ndarray, f_hz: float, n: int) -> np.ndarray:
    t = np.arange(n) / FS
    return sum(math.sqrt(2) * amps[h] * np.sin(2 * np.pi * h * f_hz * t + phases[h]) for h in range(1, 51))


def _true_thd_pct(amps: np.ndarray) -> float:
    return math.sqrt(float(np.sum(amps[2:] ** 2))) / amps[1] * 100.0


@pytest.mark.parametrize("f_hz", [50.0, 49.73, 50.5, 60.0, 59.6])
def test_synchronised_window_reads_every_order_within_0_1_pct(f_hz: float) -> None:
    amps, phases = _spectrum(int(f_hz * 100))
    cycles = 10 if f_hz < 55 else 12
    hist = SampleHistory(7, 1 << 14)
    rows = np.zeros((7, 6000))
    rows[0] = _signal(amps, phases, f_hz, 6000)
    hist.append(0, rows)
    start = 1234.567
    res = analyse_lines(line_rms(resample_window(hist, slice(0, 1), start, start + cycles * FS / f_hz))[0], cycles)
    assert np.max(np.abs(res.harmonic_rms[1:] / amps[1:] - 1)) < 1e-3
    assert res.thd_pct == pytest.approx(_true_thd_pct(amps), rel=1e-3)
    # no interharmonics: subgroups equal components
    assert np.allclose(res.subgroup_rms[1:], res.harmonic_rms[1:], rtol=1e-4)


def test_interharmonic_tone_counts_in_group_not_in_component() -> None:
    hist = SampleHistory(7, 1 << 14)
    rows = np.zeros((7, 6000))
    t = np.arange(6000) / FS
    rows[0] = math.sqrt(2) * (230 * np.sin(2 * np.pi * 50 * t) + 10 * np.sin(2 * np.pi * 255 * t))
    hist.append(0, rows)
    res = analyse_lines(line_rms(resample_window(hist, slice(0, 1), 1000.0, 2600.0))[0], 10)
    assert res.harmonic_rms[5] < 1e-3
    assert res.subgroup_rms[5] == pytest.approx(10.0, rel=1e-3)  # 255 Hz is line 51 = 10·5 + 1
    assert res.group_rms[5] == pytest.approx(10.0, rel=1e-3)


def test_square_wave_series_thd_in_closed_form() -> None:
    amps = np.zeros(51)
    for h in range(1, 51, 2):
        amps[h] = 100.0 / h
    x = _signal(amps, np.zeros(51), 50.0, 6000)
    hist = SampleHistory(7, 1 << 14)
    rows = np.zeros((7, 6000))
    rows[0] = x
    hist.append(0, rows)
    res = analyse_lines(line_rms(resample_window(hist, slice(0, 1), 100.0, 1700.0))[0], 10)
    expected = math.sqrt(sum(1 / h**2 for h in range(3, 51, 2))) * 100
    assert res.thd_pct == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("f_hz", "f_nom_hz"), [(50.0, 50.0), (49.8, 50.0), (60.0, 60.0), (59.7, 60.0)])
def test_monitor_reports_harmonics_of_all_phases_from_the_stream(f_hz: float, f_nom_hz: float) -> None:
    """At 60 Hz the windows are 12 cycles (§3.2, §6.1) and orders 34–50 lie above 2 kHz."""
    amps, phases = _spectrum(7)
    n = int(FS * 0.8)
    x = np.zeros((7, n))
    for p in range(3):
        x[2 * p] = _signal(amps, phases + p, f_hz, n)
    x[1] = _signal(amps / 23.0, phases, f_hz, n)
    mon = PqMonitor(PqSettings(f_nom_hz=f_nom_hz))
    assert mon.settings.cycles_per_window == (12 if f_nom_hz == 60.0 else 10)
    t0 = dt.datetime(2026, 3, 1, 12, 0, 1, tzinfo=dt.UTC)
    for s in range(0, n, 800):
        mon.feed(WaveformBlock(s, x[:, s : s + 800], FS, t0 + dt.timedelta(seconds=s / FS)))
    v = mon.latest()
    for name in ("U1", "U2", "U3", "I1"):
        h = v.harmonics[name]
        scale = 1 / 23.0 if name == "I1" else 1.0
        assert np.max(np.abs(h.harmonic_rms[1:] / (amps[1:] * scale) - 1)) < 1e-3
        assert h.thd_pct == pytest.approx(_true_thd_pct(amps), rel=1e-3)
    assert v.thd_pct["IN"] is None  # no current: THD not available

"""Voltage unbalance u2 / u0 by symmetrical components (IEC 61000-4-30 §5.7, ref. §8).

Each signal is built from chosen sequence components (or chosen phase voltages); the expected
ratios come from the definitions: Fortescue with a = e^{j2π/3} written out here, and for one
phase at 90 % also from the line-to-line magnitudes alone (ref. §8.2), which needs no angle.
Class A: ±0.15 % (absolute) on u2 and u0.
"""

from __future__ import annotations

import cmath
import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.aggregation import Aggregate, Aggregator, WindowValues
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import N_ROWS, ROW_U1, ROW_U2, ROW_U3, WaveformBlock
from meterd.pq.unbalance import fundamental_phasors, sequence_components, unbalance

FS = 8000.0
CLASS_A_PCT = 0.15
UTC0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
A = cmath.exp(2j * math.pi / 3)


def _phases_from_sequences(pos: complex, neg: complex, zero: complex) -> list[complex]:
    """Phase phasors L1, L2, L3 of given positive, negative and zero sequence phasors (V RMS)."""
    return [pos + neg + zero, A * A * pos + A * neg + zero, A * pos + A * A * neg + zero]


def _expected(phasors: list[complex]) -> tuple[float, float]:
    ua, ub, uc = phasors
    pos = (ua + A * ub + A * A * uc) / 3
    neg = (ua + A * A * ub + A * uc) / 3
    zero = (ua + ub + uc) / 3
    return abs(neg) / abs(pos) * 100, abs(zero) / abs(pos) * 100


def _waveforms(phasors: list[complex], seconds: float, f_hz: float = 50.0,
               fifth_pct: float = 0.0) -> np.ndarray:
    """Seven rows (U1, I1, U2, I2, U3, I3, IN) with the fundamental phasors given (V RMS) and
    an optional 5th harmonic in % of each phase's fundamental (a negative-sequence harmonic)."""
    t = np.arange(int(seconds * FS)) / FS
    rows = np.zeros((N_ROWS, t.size))
    for row, u in zip((ROW_U1, ROW_U2, ROW_U3), phasors, strict=True):
        w = 2 * np.pi * f_hz * t + cmath.phase(u)
        rows[row] = math.sqrt(2) * abs(u) * (np.sin(w) + fifth_pct / 100 * np.sin(5 * w))
    return rows


def _short_aggregates(phasors: list[complex], f_hz: float = 50.0, fifth_pct: float = 0.0) -> list[Aggregate]:
    # L1 at exactly 90 % sits on the default dip threshold: a lower threshold keeps it a steady state
    monitor = PqMonitor(PqSettings(f_nom_hz=60.0 if f_hz > 55 else 50.0, dip_threshold_pct=85.0,
                                   undervoltage_threshold_pct=85.0))
    samples = _waveforms(phasors, 7.0, f_hz, fifth_pct)
    out = []
    for first in range(0, samples.shape[1], 4000):
        monitor.feed(WaveformBlock(first, samples[:, first:first + 4000], FS,
                                   UTC0 + dt.timedelta(seconds=first / FS)))
        agg = monitor.latest().aggregates.get("150-cycle") or monitor.latest().aggregates.get("180-cycle")
        if agg is not None and (not out or agg.end_utc != out[-1].end_utc):
            out.append(agg)
    return out


CASES = {
    "pure positive sequence": _phases_from_sequences(230, 0, 0),
    "2 % negative sequence": _phases_from_sequences(230, 4.6 * cmath.exp(0.7j), 0),
    "3 % zero sequence": _phases_from_sequences(230, 0, 6.9 * cmath.exp(-1.1j)),
    "negative and zero sequence": _phases_from_sequences(225, 2.3 * cmath.exp(2.0j), 3.5 * cmath.exp(0.3j)),
    "L1 at 90 %": [207 + 0j, 230 * A * A, 230 * A],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_unbalance_of_known_sequence_mixes_within_class_a(name: str) -> None:
    phasors = CASES[name]
    u2, u0 = _expected(phasors)
    aggregates = _short_aggregates(phasors)
    assert len(aggregates) >= 2
    for agg in aggregates:
        assert not agg.flagged
        assert agg.u2_pct is not None and agg.u0_pct is not None
        assert agg.u2_pct == pytest.approx(u2, abs=CLASS_A_PCT)
        assert agg.u0_pct == pytest.approx(u0, abs=CLASS_A_PCT)
    assert aggregates[-1].u2_pct == pytest.approx(u2, abs=0.01)  # measured far inside the tolerance


def test_one_phase_at_90_pct_agrees_with_the_line_to_line_formula() -> None:
    """ref. §8.2: u2 from the three line-to-line magnitudes only (no angles, no Fortescue)."""
    ua, ub, uc = CASES["L1 at 90 %"]
    lines = [abs(ua - ub), abs(ub - uc), abs(uc - ua)]
    beta = sum(x**4 for x in lines) / sum(x**2 for x in lines) ** 2
    u2 = math.sqrt((1 - math.sqrt(3 - 6 * beta)) / (1 + math.sqrt(3 - 6 * beta))) * 100
    assert u2 == pytest.approx(3.448, abs=0.001)  # (1 − 0.9) / (2 + 0.9) written out
    assert _short_aggregates(CASES["L1 at 90 %"])[-1].u2_pct == pytest.approx(u2, abs=CLASS_A_PCT)


def test_harmonics_do_not_enter_the_unbalance() -> None:
    """A 5th harmonic is a negative-sequence system; only the fundamental may count."""
    agg = _short_aggregates(CASES["pure positive sequence"], fifth_pct=6.0)[-1]
    assert agg.u2_pct is not None and agg.u2_pct < 0.01
    assert agg.u0_pct is not None and agg.u0_pct < 0.01


def test_60_hz_supply_off_nominal() -> None:
    phasors = CASES["2 % negative sequence"]
    agg = _short_aggregates(phasors, f_hz=59.7)[-1]
    assert agg.kind == "180-cycle"
    assert agg.u2_pct == pytest.approx(_expected(phasors)[0], abs=CLASS_A_PCT)


def test_sequence_components_and_phasors_of_a_window() -> None:
    pos, neg, zero = sequence_components(*_phases_from_sequences(230, 4.6j, 1.0))
    assert (pos, neg, zero) == (pytest.approx(230), pytest.approx(4.6j), pytest.approx(1.0))
    n = 2048
    t = np.arange(n) / n * 10  # ten cycles
    window = math.sqrt(2) * 100 * np.cos(2 * np.pi * t + 0.5)[None, :]
    assert fundamental_phasors(window, 10)[0] == pytest.approx(100 * cmath.exp(0.5j))
    assert unbalance(np.array([0j, 0j, 0j]), 11.5) is None  # an interruption has no unbalance


def _window(start_s: float, u2: float | None, flagged: bool = False) -> WindowValues:
    rms = np.full(N_ROWS, 230.0)
    sub = np.zeros((N_ROWS, 51))
    sub[:, 1] = 230.0
    return WindowValues(start_s * FS, (start_s + 0.2) * FS, start_s, start_s + 0.2, rms, sub, flagged,
                        unbalance_pct=None if u2 is None else np.array([u2, u2 / 2]))


def test_aggregation_is_the_rms_of_the_window_ratios_and_keeps_flags() -> None:
    t0 = UTC0.timestamp()
    agg = Aggregator(230.0)
    values = [1.0, 3.0] * 7 + [None]  # 15 windows: one without a value (an interruption)
    out = [a for i, u in enumerate(values) for a in agg.feed(_window(t0 + 0.2 * i, u, flagged=u is None))]
    assert len(out) == 1
    assert out[0].u2_pct == pytest.approx(math.sqrt((1 + 9) / 2))
    assert out[0].u0_pct == pytest.approx(math.sqrt((1 + 9) / 2) / 2)
    assert out[0].flagged
    empty = Aggregator(230.0)
    only_none = [a for i in range(15) for a in empty.feed(_window(t0 + 0.2 * i, None))]
    assert only_none[0].u2_pct is None and only_none[0].u0_pct is None


def test_two_hour_value_is_the_rms_of_its_ten_minute_values() -> None:
    """Fifteen windows in each of the twelve 10-min intervals of a 2-h interval, then windows of
    the next two intervals to close it: the 2-h u2 is the RMS of the twelve 10-min values (each
    weighs one)."""
    t0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp()  # an even hour
    agg = Aggregator(230.0)
    out: list[Aggregate] = []
    ten_minute_u2 = [0.5 + 0.25 * k for k in range(12)]
    for k, u2 in enumerate(ten_minute_u2):
        for i in range(15):
            out += agg.feed(_window(t0 + 600 * k + 0.2 * i, u2))
    out += agg.feed(_window(t0 + 7200.0, 1.0)) + agg.feed(_window(t0 + 7800.0, 1.0))
    two = [a for a in out if a.kind == "2-h"]
    assert len(two) == 1 and two[0].partial  # windows cover little of each interval: flagged, kept
    assert two[0].u2_pct == pytest.approx(math.sqrt(sum(u**2 for u in ten_minute_u2) / 12))
    assert [a.u2_pct for a in out if a.kind == "10-min"] == pytest.approx([*ten_minute_u2, 1.0])

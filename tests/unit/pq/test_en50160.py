"""EN 50160 weekly statistics: a week of synthetic 10-min values with a known share outside the
limits gives the verdict and percentiles computed here from the definitions (not by the code):
the share of unflagged values inside the band against 95 % (99.5 % / 100 % for frequency and the
+10/−15 % voltage band), flagged values left out, the 95th percentile by linear interpolation of
the sorted values."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.aggregation import Aggregate
from meterd.pq.en50160 import (
    HARMONIC_LIMITS_PCT,
    LIMITS,
    Quantity,
    Sample,
    Verdict,
    WeekStatistics,
    aggregate_samples,
    interval_week,
    week_start,
)
from meterd.pq.source import N_ROWS, VOLTAGE_ROWS

MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
WEEK = 1008


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by linear interpolation between closest ranks (the definition)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def voltage_week(outside: dict[int, int], flagged_outside: int = 0) -> tuple[WeekStatistics, dict[int, list[float]]]:
    """1008 intervals; phase p has ``outside[p]`` unflagged values above 110 % and, on phase 1,
    ``flagged_outside`` more flagged ones far outside (they must not count)."""
    week = WeekStatistics(MONDAY)
    rng = np.random.default_rng(7)
    kept: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for i in range(WEEK):
        samples = []
        flagged = i < flagged_outside
        for phase in (1, 2, 3):
            if flagged and phase == 1:
                value = 70.0
            elif i >= WEEK - outside[phase]:
                value = 110.5 + float(rng.uniform(0, 3))
            else:
                value = 100.0 + float(rng.uniform(-5, 5))
            samples.append(Sample(Quantity.VOLTAGE, phase, value, flagged))
            if not flagged:
                kept[phase].append(value)
        week.add_interval(samples, flagged)
    return week, kept


def test_voltage_share_and_percentile_against_the_definition() -> None:
    week, kept = voltage_week({1: 50, 2: 51, 3: 0})
    record = week.record()
    result = record.result("voltage")
    # phase 2: 51 of 1008 outside -> 94.94 % < 95 %; phase 1: 50 of 1008 -> 95.04 %: compliant
    assert result.verdict is Verdict.NOT_COMPLIANT and result.worst_phase == 2
    assert result.within_pct == pytest.approx(100.0 * (WEEK - 51) / WEEK)
    assert result.p95 == pytest.approx(percentile(kept[2], 95), rel=1e-12)
    assert result.p5 == pytest.approx(percentile(kept[2], 5), rel=1e-12)
    assert result.n_values == 3 * WEEK and result.n_outside == 101
    assert record.result("voltage_always").verdict is Verdict.NOT_COMPLIANT  # above +10 %: outside both bands
    assert record.verdict is Verdict.NOT_COMPLIANT and "voltage" in record.failed


def test_exactly_fifty_of_1008_outside_is_still_compliant() -> None:
    week, kept = voltage_week({1: 50, 2: 10, 3: 0})
    result = week.record().result("voltage")
    assert result.verdict is Verdict.COMPLIANT and result.worst_phase == 1
    assert result.within_pct == pytest.approx(100.0 * 958 / 1008)
    assert result.p95 == pytest.approx(percentile(kept[1], 95), rel=1e-12)


def test_flagged_values_are_left_out() -> None:
    # 200 flagged intervals at 70 % of Un would fail both voltage limits if they counted
    week, kept = voltage_week({1: 0, 2: 0, 3: 0}, flagged_outside=200)
    record = week.record()
    result = record.result("voltage")
    assert result.verdict is Verdict.COMPLIANT and result.within_pct == 100.0
    assert result.n_flagged == 3 * 200 and result.n_values == 3 * (WEEK - 200)  # the interval flag: every phase
    assert record.result("voltage_always").verdict is Verdict.COMPLIANT
    assert record.flagged_intervals == 200 and record.intervals == WEEK


def test_unmeasured_quantities_are_not_measured() -> None:
    week, _ = voltage_week({1: 0, 2: 0, 3: 0})
    record = week.record()
    for key in ("unbalance", "plt", "frequency", "thd", "h5"):
        assert record.result(key).verdict is Verdict.NOT_MEASURED
    assert record.verdict is Verdict.COMPLIANT


def test_frequency_995_and_always_band() -> None:
    week = WeekStatistics(MONDAY)
    n = 60 * WEEK  # 10-s values of a week
    low = round(n * 0.005)  # 0.5 %: exactly at the 99.5 % share
    values = [100.0] * (n - low - 1) + [98.9] * low + [93.5]  # 49.45 Hz x low, one 46.75 Hz
    for i in range(0, n, 60):
        week.add_interval([Sample(Quantity.FREQUENCY, 0, v, False) for v in values[i:i + 60]], False)
    record = week.record()
    narrow, wide = record.result("frequency"), record.result("frequency_always")
    assert narrow.within_pct == pytest.approx(100.0 * (n - low - 1) / n)
    assert narrow.verdict is Verdict.NOT_COMPLIANT  # one value too many outside ±1 %
    assert wide.verdict is Verdict.NOT_COMPLIANT and wide.n_outside == 1  # 47 Hz (−6 %) is a hard bound


def test_plt_on_84_values_and_harmonic_table() -> None:
    week = WeekStatistics(MONDAY)
    plts = [0.5] * 80 + [1.2] * 4  # 4 of 84 above 1: 95.2 % -> compliant; 5 would not be
    for i in range(WEEK):
        samples = [Sample(Quantity.harmonic(5), 1, 6.5 if i < 60 else 3.0, False)]
        if i % 12 == 11:
            samples.append(Sample(Quantity.PLT, 1, plts[i // 12], False))
        week.add_interval(samples, False)
    record = week.record()
    assert record.result("plt").verdict is Verdict.COMPLIANT
    assert record.result("plt").p95 == pytest.approx(percentile(plts, 95))
    assert record.result("h5").verdict is Verdict.NOT_COMPLIANT  # 60 of 1008 above 6 %
    assert record.result("h7").verdict is Verdict.NOT_MEASURED


def test_the_limit_table_follows_en50160() -> None:
    by_key = {limit.key: limit for limit in LIMITS}
    assert (by_key["voltage"].low, by_key["voltage"].high, by_key["voltage"].required_pct) == (90.0, 110.0, 95.0)
    assert (by_key["voltage_always"].low, by_key["voltage_always"].high) == (85.0, 110.0)
    assert (by_key["frequency"].low, by_key["frequency"].high, by_key["frequency"].required_pct) == (99.0, 101.0, 99.5)
    assert (by_key["frequency_always"].low, by_key["frequency_always"].high) == (94.0, 104.0)
    assert by_key["thd"].high == 8.0 and by_key["plt"].high == 1.0 and by_key["unbalance"].high == 2.0
    assert {h: by_key[f"h{h}"].high for h, _ in HARMONIC_LIMITS_PCT} == {
        2: 2, 3: 5, 4: 1, 5: 6, 6: 0.5, 7: 5, 8: 0.5, 9: 1.5, 10: 0.5, 11: 3.5, 12: 0.5, 13: 3, 14: 0.5, 15: 0.5,
        16: 0.5, 17: 2, 18: 0.5, 19: 1.5, 20: 0.5, 21: 0.5, 22: 0.5, 23: 1.5, 24: 0.5, 25: 1.5}
    obis = [(limit.obis_c, limit.obis_e) for limit in LIMITS]
    assert len(set(obis)) == len(obis)


def test_weeks_start_on_monday_utc() -> None:
    assert week_start(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)) == dt.datetime(2025, 12, 29, tzinfo=dt.UTC)
    assert week_start(MONDAY) == MONDAY
    assert interval_week(MONDAY) == dt.datetime(2025, 12, 29, tzinfo=dt.UTC)  # the last interval of the week before
    assert interval_week(MONDAY + dt.timedelta(minutes=10)) == MONDAY


def test_aggregate_samples_from_the_subgroups() -> None:
    sg = np.zeros((N_ROWS, 51))
    sg[:, 1] = 230.0
    sg[:, 5] = 230.0 * 0.04
    sg[:, 45] = 230.0 * 0.10  # above order 40: not in EN 50160's THD
    rms = np.full(N_ROWS, 234.6)
    agg = Aggregate("10-min", MONDAY, 3000, True, rms, rms, rms, sg, np.zeros(N_ROWS), np.zeros(N_ROWS))
    samples = aggregate_samples(agg, 230.0, VOLTAGE_ROWS)
    by = {(s.quantity, s.phase): s for s in samples}
    assert by[(Quantity.VOLTAGE, 2)].value == pytest.approx(102.0)
    assert by[(Quantity.THD_40, 3)].value == pytest.approx(4.0)
    assert by[(Quantity.harmonic(5), 1)].value == pytest.approx(4.0)
    assert all(s.flagged for s in samples) and len(samples) == 3 * (2 + len(HARMONIC_LIMITS_PCT))


def test_unbalance_of_the_aggregates_enters_the_week() -> None:
    """u2 of each unflagged 10-min aggregate is judged against 2 % for 95 % of the week: 60 of
    1008 values at 2.5 % (5.95 % outside) fail it; a 1P2W aggregate (no unbalance) adds none."""
    sg = np.zeros((N_ROWS, 51))
    sg[:, 1] = 230.0
    rms = np.full(N_ROWS, 230.0)
    week = WeekStatistics(MONDAY)
    for i in range(WEEK):
        u2 = 2.5 if i < 60 else 0.5
        agg = Aggregate("10-min", MONDAY + (i + 1) * dt.timedelta(minutes=10), 3000, False, rms, rms, rms, sg,
                        np.zeros(N_ROWS), np.zeros(N_ROWS), unbalance_pct=np.array([u2, 0.1]))
        week.add_interval(aggregate_samples(agg, 230.0, VOLTAGE_ROWS), False)
    result = week.record().result("unbalance")
    assert result.verdict is Verdict.NOT_COMPLIANT and result.n_values == WEEK
    assert result.within_pct == pytest.approx(100.0 * (WEEK - 60) / WEEK)
    single = Aggregate("10-min", MONDAY, 3000, False, rms, rms, rms, sg, np.zeros(N_ROWS), np.zeros(N_ROWS))
    assert not [s for s in aggregate_samples(single, 230.0, (0,)) if s.quantity is Quantity.UNBALANCE_U2]

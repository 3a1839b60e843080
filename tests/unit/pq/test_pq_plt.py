"""Plt over the 12 Pst of a 2-h UTC interval, carrying the Pst flags (IEC 61000-4-30 §4.7)."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.pq.monitor import FlickerValue, PltSeries

T0 = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)


def pst(i: int, value: float = 0.5, flagged: bool = False, phase: int = 1) -> FlickerValue:
    """The Pst of the i-th 10-min interval after T0 (ending at T0 + 10·(i+1) min)."""
    return FlickerValue(phase, T0 + dt.timedelta(minutes=10 * (i + 1)), value, flagged)


def feed(series: PltSeries, values: list[FlickerValue]) -> list[object]:
    return [plt for v in values if (plt := series.add(v)) is not None]


def test_clean_plt_is_the_cube_mean_and_unflagged() -> None:
    got = feed(PltSeries(), [pst(i, 0.4 + 0.05 * i) for i in range(12)])
    assert len(got) == 1
    expected = (sum((0.4 + 0.05 * i) ** 3 for i in range(12)) / 12) ** (1 / 3)
    assert got[0].plt == pytest.approx(expected, rel=1e-12)  # type: ignore[attr-defined]
    assert got[0].end_utc == T0 + dt.timedelta(hours=2) and not got[0].flagged  # type: ignore[attr-defined]


@pytest.mark.parametrize("flagged_index", [0, 5, 11])
def test_one_flagged_pst_flags_its_plt_only(flagged_index: int) -> None:
    series = PltSeries()
    first = feed(series, [pst(i, flagged=i == flagged_index) for i in range(12)])
    second = feed(series, [pst(i) for i in range(12, 24)])
    assert [p.flagged for p in first + second] == [True, False]  # type: ignore[attr-defined]


def test_a_missing_pst_gives_a_flagged_plt_of_the_pst_present() -> None:
    series = PltSeries()
    present = [pst(i, 0.3 + 0.1 * i) for i in range(12) if i != 4]
    got = feed(series, present)
    assert len(got) == 1 and got[0].flagged  # type: ignore[attr-defined]
    expected = (sum(v.pst**3 for v in present) / 11) ** (1 / 3)
    assert got[0].plt == pytest.approx(expected, rel=1e-12)  # type: ignore[attr-defined]
    clean = feed(series, [pst(i) for i in range(12, 24)])
    assert len(clean) == 1 and not clean[0].flagged  # type: ignore[attr-defined]


def test_a_missing_last_pst_leaves_that_interval_without_plt() -> None:
    series = PltSeries()
    assert feed(series, [pst(i) for i in range(11)]) == []
    got = feed(series, [pst(i) for i in range(12, 24)])
    assert len(got) == 1 and not got[0].flagged  # type: ignore[attr-defined]


def test_plt_flags_object_sets_one_bit_per_flagged_phase() -> None:
    from meterd.cosem import axdr
    from meterd.cosem.objects_pq import _plt_flags
    from meterd.pq.monitor import PqValues
    from meterd.services.power_quality import PowerQualityService

    service = PowerQualityService(None, None)
    service.set_chip_values(PqValues(plt={1: 0.5, 2: 0.4, 3: 0.9}, plt_flagged={1: True, 2: False, 3: True}))
    assert _plt_flags(service)() == (axdr.UINT8, 0b101)
    service.set_chip_values(PqValues())
    assert _plt_flags(service)() == (axdr.UINT8, 0)

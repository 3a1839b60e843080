"""Demand: exact block and sliding averages, per-rate maximum demand, disturbed windows, reset."""

import datetime as dt
from fractions import Fraction

import pytest

from meterd.core.demand import DemandConfig, DemandError, DemandQuantity, DemandRegisters
from meterd.core.energy import Quantity
from meterd.core.reading import Channel

P = DemandQuantity.ACTIVE_IMPORT
AI = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def run(regs, energies_mwh, rates=None, period_min=15):
    total = 0
    regs.begin(at(0), {AI: 0})
    for i, e in enumerate(energies_mwh, start=1):
        total += e
        regs.close(at(i * period_min), {AI: total}, (rates or [1] * len(energies_mwh))[i - 1])
    return total


def test_block_demand_is_exact():
    regs = DemandRegisters(DemandConfig(900, 1))
    run(regs, [250_000, 1_000_001, 500_000])
    assert regs.last_average(P) == Fraction(500_000 * 4)          # 500 Wh in 15 min = 2 kW
    md = regs.max_demand(P)
    assert md.value_milli == Fraction(1_000_001 * 4) and md.capture_utc == at(30)
    assert md.value_w == pytest.approx(4000.004)


def test_non_dividing_period_keeps_rationals():
    regs = DemandRegisters(DemandConfig(480, 1))      # 8 min: 3600/480 is not whole
    regs.begin(at(0), {AI: 0})
    regs.close(at(8), {AI: 1}, 1)
    assert regs.last_average(P) == Fraction(15, 2)


def test_sliding_window_averages_last_n_subperiods():
    regs = DemandRegisters(DemandConfig(300, 3))
    run(regs, [300, 600, 900, 0], period_min=5)
    # window 15 min: after 4 subperiods it holds 600, 900, 0
    assert regs.last_average(P) == Fraction(1500 * 3600, 900)
    assert regs.max_demand(P).value_milli == Fraction(1800 * 3600, 900)
    assert regs.max_demand(P).capture_utc == at(15)


def test_per_rate_maxima_and_current_average():
    regs = DemandRegisters(DemandConfig(900, 1))
    total = run(regs, [100, 400, 200], rates=[1, 2, 1])
    assert regs.max_demand(P, 1).value_milli == 800 and regs.max_demand(P, 2).value_milli == 1600
    assert regs.max_demand(P, 0).value_milli == 1600
    assert regs.current_average(P, {AI: total + 50}) == 200


def test_disturbed_window_is_not_used_for_md_and_reset_clears():
    regs = DemandRegisters(DemandConfig(900, 1))
    regs.begin(at(0), {AI: 0})
    regs.close(at(15), {AI: 100}, 1)
    regs.mark_disturbed()
    regs.close(at(30), {AI: 10_100}, 1)
    assert regs.last_average(P) == 40_000
    assert regs.max_demand(P).value_milli == 400
    regs.close(at(45), {AI: 10_300}, 1)
    assert regs.max_demand(P).value_milli == 800
    regs.reset_max()
    assert regs.max_demand(P).value_milli == 0 and regs.max_demand(P).capture_utc is None


def test_round_trip_and_config_checks():
    regs = DemandRegisters(DemandConfig(300, 3, rates=2))
    run(regs, [300, 600, 900], rates=[1, 2, 2], period_min=5)
    back = DemandRegisters.from_dict(regs.to_dict())
    assert back.to_dict() == regs.to_dict()
    assert back.max_demand(P, 2) == regs.max_demand(P, 2)
    for bad in (dict(period_s=59), dict(period_s=700), dict(number_of_periods=0), dict(rates=9)):
        with pytest.raises(DemandError):
            DemandConfig(**bad)
    with pytest.raises(DemandError):
        DemandRegisters().close(at(1), {}, 1)


def test_reconfigured_restarts_windows_and_keeps_maxima_of_existing_rates() -> None:
    t0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    regs = DemandRegisters(DemandConfig(900, 1, 3))
    key = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
    regs.begin(t0, {key: 0})
    regs.close(t0 + dt.timedelta(seconds=900), {key: 500_000}, 3)  # 500 Wh in 15 min: 2 kW in rate 3
    assert regs.max_demand(DemandQuantity.ACTIVE_IMPORT, 3).value_w == 2000
    new = regs.reconfigured(DemandConfig(300, 3, 2))
    assert not new.started and new.config.window_s == 900
    assert new.max_demand(DemandQuantity.ACTIVE_IMPORT, 0) == regs.max_demand(DemandQuantity.ACTIVE_IMPORT, 0)
    assert new.max_demand(DemandQuantity.ACTIVE_IMPORT, 3).capture_utc is None  # rate 3 no longer exists
    assert new.last_average(DemandQuantity.ACTIVE_IMPORT) == 0

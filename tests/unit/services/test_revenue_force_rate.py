"""Tariff script execute (0-0:10.0.100.255 method 1): the rate is forced from the last cycle to
the next switch of the calendar, then the calendar rules again; the override survives a restart."""

import datetime as dt

import pytest

from meterd.core.energy import EnergyRegisters, Quantity
from meterd.core.reading import Channel
from meterd.core.tariff import TariffError
from meterd.services.revenue import RevenueService
from tests.revenue_helpers import T0, run


def rates(svc):
    return [svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in range(1, 5)]


def test_forced_rate_holds_to_the_next_switch_and_survives_a_restart():
    svc, regs = RevenueService(), EnergyRegisters()  # one rate all day: the next switch is midnight
    with pytest.raises(ValueError):
        svc.force_rate(3)  # no cycle yet
    run(svc, regs, T0, 60)
    assert rates(svc) == [60_000, 0, 0, 0]
    with pytest.raises(TariffError):
        svc.force_rate(5)
    until = svc.force_rate(3)
    assert until == T0 + dt.timedelta(days=1) and svc.current_rate == 3
    assert svc.forced_rate == (3, until)
    run(svc, regs, T0 + dt.timedelta(hours=1), 60)
    assert rates(svc) == [60_000, 0, 60_000, 0]
    state = svc.state_dict()
    again = RevenueService()
    again.restore(state)
    run(again, regs, T0 + dt.timedelta(hours=2), 22 * 60)  # up to midnight, inclusive
    assert rates(again) == [60_000, 0, 60_000 + 22 * 60_000, 0]
    run(again, regs, T0 + dt.timedelta(days=1), 60)  # the calendar rules again
    assert rates(again) == [120_000, 0, 60_000 + 22 * 60_000, 0] and again.current_rate == 1
    assert "force" not in again.state_dict() and again.forced_rate is None

"""The [revenue] section is edited between two runs of the whole simulated meter: the new
configuration wins, as on a meter whose parameters were changed. Demand windows restart with the
new period (recorded maxima kept); rate registers are widened (new rates at 0) or narrowed (the
energy of removed rates stays in the totals, and the change is logged); a load profile whose
capture objects or period changed is cleared, and meterd starts. Each change is a
PARAMETERS_CHANGED event in the standard log. The state directory is on a RAM file system
(:mod:`tests.ram_dir`): these runs prove what a changed configuration does, not the medium."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from meterd.core import event_codes
from meterd.core.demand import DemandQuantity
from meterd.core.energy import Quantity
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.core.profile import LOAD_PROFILE_OBIS
from meterd.core.reading import Channel
from meterd.services.revenue import RevenueService
from meterd.services.revenue_setup import default_calendar
from tests.simmeter import SimMeter

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday, CET
A_PLUS = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)


def open_meter(state_dir: Path, **revenue: Any) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat(), "current_a": 4.0},
                    display={"kind": "dummy"}, revenue={"max_cycle_gap_s": 2000.0, **revenue})


def changes(meter: SimMeter) -> list[dict[str, object]]:
    log = meter.service(EventRecorder).log(LogId.STANDARD)
    code = event_codes.code("PARAMETERS_CHANGED")
    return [dict(e.detail) for e in log.entries() if e.code == code]


def rates_of(meter: SimMeter) -> list[int]:
    svc = meter.service(RevenueService)
    return [svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in range(1, svc.tariff.rates + 1)]


def test_demand_period_change_restarts_the_windows_and_keeps_maxima(ram_tmp_path: Path) -> None:
    meter = open_meter(ram_tmp_path)
    try:
        meter.run(4 * 3600, 60)
        svc = meter.service(RevenueService)
        held = svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0)
        assert held.value_w > 2000 and svc.demand.config.period_s == 900
    finally:
        meter.close()
    meter = open_meter(ram_tmp_path, demand_period_s=300, demand_periods=3)
    try:
        svc = meter.service(RevenueService)
        assert (svc.demand.config.period_s, svc.demand.config.number_of_periods) == (300, 3)
        assert svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0) == held
        restart = meter.clock.utc()
        meter.run(3600, 60)
        assert svc.demand.start_utc is not None and svc.demand.start_utc > restart
        captured = svc.demand.last_capture_utc
        assert captured is not None and captured.timestamp() % 300 == 0
        # the window is three 5-minute subperiods at a steady load: the same demand as before
        last = float(svc.demand.last_average(DemandQuantity.ACTIVE_IMPORT)) / 1000
        assert last == pytest.approx(held.value_w, rel=0.01)
        assert any(c["object"] == "1.0.1.4.0.255" and "300 s x 3" in str(c["change"]) for c in changes(meter))
    finally:
        meter.close()


def test_more_rates_are_added_at_zero(ram_tmp_path: Path) -> None:
    meter = open_meter(ram_tmp_path, rates=3)
    try:
        meter.run(86400, 60)
        before = rates_of(meter)
        assert all(v > 0 for v in before)
    finally:
        meter.close()
    meter = open_meter(ram_tmp_path, rates=4)
    try:
        assert rates_of(meter) == [*before, 0]
        meter.run(6 * 3600, 60)  # no TariffError: every cycle books to a rate that exists
        svc = meter.service(RevenueService)
        assert sum(rates_of(meter)) == svc.tariff.totals()[A_PLUS] == meter.meter.registers.snapshot()[A_PLUS]
        assert any(c["object"] == "0.0.14.0.0.255" and c["change"] == "rates 3 -> 4" for c in changes(meter))
    finally:
        meter.close()


def two_rate_calendar() -> dict[str, Any]:
    calendar = default_calendar()
    for day in calendar["day_profiles"]:
        for switch in day["switches"]:
            switch["rate"] = min(switch["rate"], 2)
    return calendar


def test_fewer_rates_keep_the_removed_energy_in_the_totals(ram_tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    meter = open_meter(ram_tmp_path, rates=3)
    try:
        meter.run(86400, 60)
        before = rates_of(meter)
        total = meter.meter.registers.snapshot()[A_PLUS]
        assert sum(before) == total and before[2] > 0
    finally:
        meter.close()
    with caplog.at_level(logging.WARNING, logger="meterd.revenue"):
        meter = open_meter(ram_tmp_path, rates=2, calendar=two_rate_calendar())
    try:
        assert rates_of(meter) == before[:2]
        assert meter.meter.registers.snapshot()[A_PLUS] == total  # nothing taken from the total
        removed = f"1.8 {before[2] / 1000:.3f}"
        assert any("rates 3 -> 2" in r.getMessage() and removed in r.getMessage() for r in caplog.records)
        meter.run(6 * 3600, 60)
        grown = rates_of(meter)
        now = meter.meter.registers.snapshot()[A_PLUS]
        assert now - total == sum(grown) - sum(before[:2]) > 0  # new energy is split over 2 rates
        assert any(c["object"] == "0.0.14.0.0.255" and removed in str(c["change"]) for c in changes(meter))
    finally:
        meter.close()


def test_changed_load_profile_is_cleared_and_meterd_starts(ram_tmp_path: Path) -> None:
    meter = open_meter(ram_tmp_path)
    try:
        meter.run(2 * 3600, 60)
        assert meter.service(RevenueService).load_profile.entries_in_use() == 8
        daily_before = meter.service(RevenueService).daily_profile.entries_in_use()
    finally:
        meter.close()
    meter = open_meter(ram_tmp_path, profile_period_s=600, profile_channels=("status", "active_import_interval"))
    try:
        svc = meter.service(RevenueService)
        assert svc.load_profile.entries_in_use() == 0
        assert svc.daily_profile.entries_in_use() == daily_before  # its definition did not change
        restart = meter.clock.utc()
        meter.run(3600, 60)
        rows = svc.load_profile.rows_between(restart, meter.clock.utc())
        assert len(rows) == 6 and all(len(r.values) == 2 for r in rows)
        assert all(r.utc.timestamp() % 600 == 0 for r in rows)
        assert rows[-1].values[1] == pytest.approx(3 * 4.0 * 230 * 600 / 3.6, rel=0.01)  # mWh: 10 min, 3 x 4 A
        assert any(c["object"] == LOAD_PROFILE_OBIS for c in changes(meter))
    finally:
        meter.close()
    meter = open_meter(ram_tmp_path, profile_period_s=600, profile_channels=("status", "active_import_interval"))
    try:  # same definition again: rows are kept
        assert meter.service(RevenueService).load_profile.entries_in_use() == 6
    finally:
        meter.close()


def test_remotely_written_profile_definition_survives_a_restart(ram_tmp_path: Path) -> None:
    """A capture definition written at run time (as over DLMS) is the stored one: a restart with
    the same [revenue] section keeps its rows."""
    import dataclasses

    meter = open_meter(ram_tmp_path)
    try:
        meter.run(3600, 60)
        svc = meter.service(RevenueService)
        config = dataclasses.replace(svc.load_profile.config, capture_period_s=300,
                                     channels=svc.load_profile.config.channels[:3])
        svc.set_load_profile_config(config)
        meter.run(3600, 60)
        rows = svc.load_profile.rows_by_entry(1, 0)
        assert len(rows) == 12 and all(len(r.values) == 2 for r in rows)
    finally:
        meter.close()
    meter = open_meter(ram_tmp_path)
    try:
        svc = meter.service(RevenueService)
        assert svc.load_profile.config.capture_period_s == 300
        assert svc.load_profile.rows_by_entry(1, 0) == rows
        assert not any(c["object"] == LOAD_PROFILE_OBIS for c in changes(meter))
    finally:
        meter.close()

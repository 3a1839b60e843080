"""60 simulated days through the whole meter (the daemon's own wiring, ``revenue`` attached):
rate registers against energy computed independently from the grid's truth and a time-of-use
model written here with ``zoneinfo`` (not the meter's legal-time code), across the DST change
of 29 March 2026, a season change, two holidays, a power cut, two clock shifts, an MD reset on
command, monthly billing and a restart. 15-min cycles keep it fast (one cycle = one profile
period = one demand period; the load keeps each 16-bit chip register far from overflow). The
state directory is on a RAM file system (:mod:`tests.ram_dir`): this proves the rates, not the
medium, and a 15-min cycle's fsyncs on the disk cost twice its computing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterd.core.demand import DemandQuantity
from meterd.core.energy import Quantity
from meterd.core.profile import DAILY_PROFILE_OBIS, LOAD_PROFILE_OBIS, ProfileStatus
from meterd.core.reading import Channel
from meterd.services.revenue import RevenueService
from meterd.services.revenue_setup import default_calendar
from tests.ram_dir import ram_directory
from tests.simmeter import SimMeter

BERLIN = ZoneInfo("Europe/Berlin")
CYCLE = 900
DAYS = 60
START = dt.datetime(2026, 2, 15, tzinfo=dt.UTC)
HOLIDAYS = {dt.date(2026, 3, 17), dt.date(2026, 4, 3)}
SHIFT_FWD = (20, dt.timedelta(hours=2))        # day index, clock set forward
SHIFT_BACK = (40, dt.timedelta(minutes=-45))   # clock set backward
OUTAGE = (30, 10 * 4, 12 * 4)                  # day, first and last cycle of the power cut
MD_RESET_DAY = 25
RESTART_DAY = 45
T = Channel.TOTAL
COUNT_MWH = 100
"""One chip register count at 1000 imp/kWh and 0.1 CF (mWh)."""


def calendar() -> dict:
    cal = default_calendar()
    cal["special_days"] = [*cal["special_days"],
                           {"index": 10, "date": {"month": 3, "day": 17}, "day_id": 3},
                           {"index": 11, "date": {"month": 4, "day": 3, "year": 2026}, "day_id": 3}]
    return cal


SWITCHES = {  # independent restatement of the default calendar: (minute of day, rate)
    "winter": [(0, 1), (420, 2), (1020, 3), (1200, 2), (1320, 1)],
    "summer": [(0, 1), (420, 2), (660, 3), (900, 2), (1320, 1)],
    "weekend": [(0, 1), (480, 2), (1200, 1)],
}


def expected_rate(meter_utc: dt.datetime) -> int:
    """Rate of the cycle ending at ``meter_utc``: the schedule in force just before it, local time."""
    local = (meter_utc - dt.timedelta(microseconds=1)).astimezone(BERLIN)
    day = local.date()
    if day.weekday() >= 5 or day in HOLIDAYS or (day.month, day.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}:
        kind = "weekend"
    else:
        kind = "summer" if dt.date(day.year, 4, 1) <= day < dt.date(day.year, 10, 1) else "winter"
    minute = local.hour * 60 + local.minute
    return [r for m, r in SWITCHES[kind] if m <= minute][-1]


def load_current_a(local: dt.datetime) -> float:
    """The scenario's load: a daily shape (A per phase)."""
    return 0.30 if 17 <= local.hour < 21 else 0.22 if 7 <= local.hour < 17 else 0.08


@dataclass
class Run:
    energy: dict[int, float] = field(default_factory=lambda: {1: 0.0, 2: 0.0, 3: 0.0})   # mWh, truth
    runs: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})
    max_window: float = 0.0
    billing_expected: list[str] = field(default_factory=list)
    state_sizes: list[int] = field(default_factory=list)


def open_meter(state_dir: Path) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat(), "current_a": 0.1, "power_factor": "0.94L"},
                    revenue={"calendar": calendar(), "max_cycle_gap_s": 2 * CYCLE}, display={"kind": "dummy"})


def one_cycle(sm: SimMeter, run: Run, last_rate: list[int], day: int) -> None:
    local = sm.meter.now_utc().astimezone(BERLIN)
    sm.world.grid.set_all_phases(voltage_v=230.0, current_a=load_current_a(local), phi_deg=20.0)
    before = sm.world.grid.truth(sm.clock.mono())["T"].active_import_wh
    sm.run(CYCLE, CYCLE)
    delta = (sm.world.grid.truth(sm.clock.mono())["T"].active_import_wh - before) * 1000.0
    rate = expected_rate(sm.meter.now_utc())
    run.energy[rate] += delta
    if rate != last_rate[0]:
        run.runs[rate] += 1
        last_rate[0] = rate
    if day not in (SHIFT_FWD[0], SHIFT_BACK[0]):
        run.max_window = max(run.max_window, delta * 3600 / CYCLE)


@pytest.fixture(scope="module")
def scenario():
    with ram_directory() as state_dir:
        yield from run_scenario(state_dir)


def run_scenario(state_dir: Path):
    sm = open_meter(state_dir)
    run, last_rate = Run(), [0]
    try:
        for day in range(DAYS):
            if day == RESTART_DAY:
                sm.close()
                sm = open_meter(state_dir)
            for i in range(96):
                if day == OUTAGE[0] and i == OUTAGE[1]:
                    sm.world.power_cut(True)
                    sm.meter.power_fail()
                if day == OUTAGE[0] and i == OUTAGE[2]:
                    sm.world.power_cut(False)
                    sm.meter.power_restored()
                one_cycle(sm, run, last_rate, day)
            if day == SHIFT_FWD[0]:
                sm.meter.set_clock(sm.meter.now_utc() + SHIFT_FWD[1], "test")
            if day == SHIFT_BACK[0]:
                sm.meter.set_clock(sm.meter.now_utc() + SHIFT_BACK[1], "test")
            if day == MD_RESET_DAY:
                status, body = sm.daemon.api.routes[("POST", "/billing/reset")]({})
                assert status == 200 and body["reason"] == "command"
            run.state_sizes.append(len(json.dumps(sm.service(RevenueService).state_dict(), separators=(",", ":"))))
        yield sm, run
    finally:
        sm.close()


def test_rate_registers_match_independent_energy(scenario):
    sm, run = scenario
    svc = sm.service(RevenueService)
    for rate in (1, 2, 3):
        measured = svc.tariff.get(Quantity.ACTIVE_IMPORT, T, rate)
        # each uninterrupted run of a rate can differ by less than one chip count (100 mWh) of residue
        assert abs(measured - run.energy[rate]) <= (run.runs[rate] + 1) * COUNT_MWH, (rate, measured,
                                                                                     run.energy[rate])
        assert run.energy[rate] > 1e6  # every rate carried real energy (> 1 kWh)


def test_rate_registers_sum_exactly_to_the_totals(scenario):
    sm, _ = scenario
    svc = sm.service(RevenueService)
    for q in Quantity:
        assert svc.tariff.total(q, T) == sm.meter.registers.get(q, T), q
    assert sm.meter.registers.get(Quantity.REACTIVE_Q1, T) > 0


def test_load_profile_rows_marks_and_energy(scenario):
    sm, _ = scenario
    lp = sm.service(RevenueService).load_profile
    rows = lp.rows_by_entry(1, 0)
    assert 5700 <= len(rows) <= DAYS * 96  # 60 days at 15 min fit; a forward set skips its rows
    times = [r.utc for r in rows]
    assert times == sorted(set(times))
    status = [ProfileStatus(r.values[0]) for r in rows]
    assert sum(1 for s in status if s & ProfileStatus.PDN) >= OUTAGE[2] - OUTAGE[1]
    assert sum(1 for s in status if s & ProfileStatus.CLOCK_FORWARD) == 1
    assert sum(1 for s in status if s & ProfileStatus.CLOCK_BACKWARD) == 1
    dst_rows = [r.utc for r, s in zip(rows, status, strict=True) if s & ProfileStatus.DST]
    assert dst_rows and min(dst_rows) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)  # 03:00 CEST
    # interval energies add up to the register as it stood at the last capture (the row base)
    assert sum(int(r.values[1]) for r in rows) == lp.state_dict()["base"][0]


def test_daily_profile_at_local_midnights(scenario):
    sm, _ = scenario
    rows = sm.service(RevenueService).profile(DAILY_PROFILE_OBIS).rows_by_entry(1, 0)
    assert DAYS - 2 <= len(rows) <= DAYS
    locals_ = [r.utc.astimezone(BERLIN) for r in rows]
    assert all((t.hour, t.minute) == (0, 0) for t in locals_)
    values = [r.values[1] for r in rows]
    assert values == sorted(values)


def test_billing_schedule_command_and_max_demand(scenario):
    sm, run = scenario
    svc = sm.service(RevenueService)
    snaps = list(svc.billing.snapshots)
    assert [s.reason for s in snaps] == ["schedule", "command", "schedule"]
    assert [s.utc.astimezone(BERLIN).date() for s in snaps if s.reason == "schedule"] == [
        dt.date(2026, 3, 1), dt.date(2026, 4, 1)]
    for snap in snaps:
        for q in Quantity:
            assert sum(snap.rate_registers[r].get((q, T), 0) for r in (1, 2, 3)) == snap.registers[(q, T)]
    # the largest window since the last billing is never above the independent largest window
    held = svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0)
    # 2 counts of residue per window, x4 per h
    assert 0 < held.value_milli <= run.max_window + 4 * 2 * COUNT_MWH
    assert held.capture_utc is not None and held.capture_utc > snaps[-1].utc


def test_state_is_compact_and_everything_survived_the_restart(scenario):
    sm, run = scenario
    assert max(run.state_sizes) < 1024
    svc = sm.service(RevenueService)
    assert svc.load_profile.entries_in_use() > (RESTART_DAY - 1) * 96
    assert sm.meter.profile(LOAD_PROFILE_OBIS) is svc.load_profile
    status, view = sm.daemon.api.routes[("GET", "/tariff")]({})
    assert status == 200 and view["billing"]["counter"] == 3 and view["calendar"]["special_days"] == 6

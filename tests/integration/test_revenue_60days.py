"""60 simulated days through RevenueService, checked against expectations computed from the scenario.

Scenario (CET, DLMS clock rules): DST begins on the last Sunday of March (01:00 UTC) and, by a
utility-specific rule, ends on the first Sunday of May (01:00 UTC), so both DST changes fall in
the 60 days. The weekend day profile has a switch at 02:30, inside the spring gap and inside the
repeated autumn hour. A winter workday profile has no midnight switch (the previous day's rate
carries over); the summer season starts on 15 April; a passive calendar becomes active on
20 April; 6 April (fixed) and 1 May (recurring) are holidays. Cycles are 60 s. Also: an MD reset
on command, a 2 h 11 min power cut, the clock set back 20 min, then forward 50 min 30 s (after
which cycles no longer fall on boundaries), and a restart from serialised state and SQLite stores.

The expected values below are computed by this file alone from the scenario: local time from
the two hard-coded DST instants, rates from plain switch tables, and the documented boundary
rules (see meterd.services.revenue).
"""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

import pytest

from meterd.core.calendar import (
    ActivityCalendar,
    CalendarSet,
    DayProfile,
    Season,
    SpecialDay,
    SpecialDaysTable,
    WeekProfile,
    YearDate,
    at,
)
from meterd.core.demand import DemandConfig, DemandQuantity
from meterd.core.energy import EnergyRegisters, Quantity
from meterd.core.legal_time import LAST_DAY, ClockSettings, DateTimePattern
from meterd.core.profile import DAILY_PROFILE_OBIS, LOAD_PROFILE_OBIS, ProfileStatus
from meterd.core.reading import Channel, PhaseValues, Reading
from meterd.services.revenue import RevenueConfig, RevenueService
from meterd.store.billing_store import SqliteBillingStore
from meterd.store.profile_store import SqliteProfileStore

U = dt.UTC
T = Channel.TOTAL
AI, AE = Quantity.ACTIVE_IMPORT, Quantity.ACTIVE_EXPORT
Q1, Q2, Q3, Q4 = Quantity.REACTIVE_Q1, Quantity.REACTIVE_Q2, Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4
SI, SE = Quantity.APPARENT_IMPORT, Quantity.APPARENT_EXPORT
H = dt.timedelta(hours=1)
CYCLE = dt.timedelta(seconds=60)

START = dt.datetime(2026, 3, 9, 23, tzinfo=U)           # 10 March 00:00 CET
END = START + dt.timedelta(days=60)
T_BEGIN = dt.datetime(2026, 3, 29, 1, tzinfo=U)
T_END = dt.datetime(2026, 5, 3, 1, tzinfo=U)
MDI_AT = dt.datetime(2026, 3, 20, 11, tzinfo=U)
DOWN_LAST, UP_FIRST = dt.datetime(2026, 4, 8, 8, 7, tzinfo=U), dt.datetime(2026, 4, 8, 10, 18, tzinfo=U)
BACK_AT, BACK_TO = dt.datetime(2026, 4, 17, 9, 7, tzinfo=U), dt.datetime(2026, 4, 17, 8, 47, tzinfo=U)
FWD_AT, FWD_TO = dt.datetime(2026, 4, 27, 13, 3, tzinfo=U), dt.datetime(2026, 4, 27, 13, 53, 30, tzinfo=U)
RESTART_AT = dt.datetime(2026, 4, 9, 2, 41, tzinfo=U)
HOLIDAYS = {dt.date(2026, 4, 6), dt.date(2026, 5, 1)}
ACTIVATION = dt.datetime(2026, 4, 20)                    # local
SUMMER = dt.date(2026, 4, 15)


# -- the scenario, as the meter is configured ---------------------------------------------------

def hms(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 3600 + int(m) * 60


TABLES = {
    "winter_work": [("06:00", 2), ("18:00", 4), ("22:00", 1)],
    "weekend": [("00:00", 1), ("02:30", 3), ("12:00", 4), ("18:00", 1)],
    "summer_work_old": [("07:00", 2), ("20:00", 4), ("23:00", 1)],
    "summer_work_new": [("00:00", 1), ("08:30", 2), ("13:00", 3), ("21:00", 4)],
}


def calendar_set(name: str, summer_table: str) -> CalendarSet:
    days = (DayProfile(1, tuple(at(s, r) for s, r in TABLES["winter_work"])),
            DayProfile(2, tuple(at(s, r) for s, r in TABLES["weekend"])),
            DayProfile(3, tuple(at(s, r) for s, r in TABLES[summer_table])))
    weeks = (WeekProfile("winter", (1, 1, 1, 1, 1, 2, 2)), WeekProfile("summer", (3, 3, 3, 3, 3, 2, 2)))
    seasons = (Season("winter", YearDate(10, 1), "winter"), Season("summer", YearDate(4, 15), "summer"))
    return CalendarSet(name, seasons, weeks, days)


def make_calendar() -> ActivityCalendar:
    specials = SpecialDaysTable((SpecialDay(1, YearDate(4, 6, 2026), 2), SpecialDay(2, YearDate(5, 1), 2)))
    cal = ActivityCalendar(calendar_set("2026a", "summer_work_old"), specials)
    cal.set_passive(calendar_set("2026b", "summer_work_new"), ACTIVATION)
    return cal


def make_config() -> RevenueConfig:
    clock = ClockSettings(-60, DateTimePattern(3, LAST_DAY, 7, 1, deviation_min=0),
                          DateTimePattern(5, 1, 7, 1, deviation_min=0), 60, True)
    return RevenueConfig(clock=clock, rates=4, demand=DemandConfig(300, 3, 4), max_cycle_gap_s=90)


def deltas_for(k: int) -> dict:
    a = 20_000 + (k * 7919) % 30_000                     # mWh per minute: 1.2 .. 3 kW
    if k % 37 == 0:
        return {(AE, T): 9_000 + k % 1000, (Q2, T): 1_000, (Q3, T): 500, (SE, T): 9_500}
    return {(AI, T): a, (AI, Channel.L1): a // 3, (AI, Channel.L2): a // 3, (AI, Channel.L3): a - 2 * (a // 3),
            (Q1, T): a // 4, (Q4, T): a // 50, (SI, T): a + a // 8}


READINGS = [Reading(mono_s=0.0, phases=(PhaseValues(voltage_v=229.0 + i * 0.37), PhaseValues(voltage_v=231.5 - i * 0.21),
                                        PhaseValues(voltage_v=230.0 + (i % 3) * 0.5)), energy={})
            for i in range(7)]


def events():
    """("cycle", meter_utc, k) / ("mdi", utc) / ("outage", down, up) / ("clock", old, new) / ("restart",)."""
    t, k, shifted = START, 0, set()
    while t <= END:
        if DOWN_LAST < t < UP_FIRST:
            t += CYCLE
            continue
        if t == UP_FIRST:
            yield ("outage", DOWN_LAST + dt.timedelta(seconds=20), UP_FIRST - dt.timedelta(seconds=20))
        yield ("cycle", t, k)
        k += 1
        if t == MDI_AT:
            yield ("mdi", t)
        if t == RESTART_AT:
            yield ("restart",)
        if t == BACK_AT and "back" not in shifted:
            shifted.add("back")
            yield ("clock", t, BACK_TO)
            t = BACK_TO
        elif t == FWD_AT:
            yield ("clock", t, FWD_TO)
            t = FWD_TO
        t += CYCLE


# -- independent expectations -----------------------------------------------------------------

def dst(u: dt.datetime) -> bool:
    return T_BEGIN <= u < T_END


def tariff_wall(t: dt.datetime) -> dt.datetime:
    """Wall time just before t; frozen at the end of the first pass in the repeated hour."""
    u = t - dt.timedelta(microseconds=1)
    if T_END <= u < T_END + H:
        return (T_END + 2 * H).replace(tzinfo=None) - dt.timedelta(microseconds=1)
    return (u + (2 * H if dst(u) else H)).replace(tzinfo=None)


TABLE_SECONDS = {name: [(hms(s), r) for s, r in switches] for name, switches in TABLES.items()}
""":data:`TABLES` with each switch time in seconds after midnight."""


def table_for(day: dt.date, new: bool) -> list[tuple[int, int]]:
    if day in HOLIDAYS or day.weekday() >= 5:
        name = "weekend"
    elif day >= SUMMER:
        name = "summer_work_new" if new else "summer_work_old"
    else:
        name = "winter_work"
    return TABLE_SECONDS[name]


def expected_rate(t: dt.datetime) -> int:
    wall = tariff_wall(t)
    new = wall > ACTIVATION
    tod = (wall - dt.datetime.combine(wall.date(), dt.time())).total_seconds()
    hits = [r for s, r in table_for(wall.date(), new) if s <= tod]
    return hits[-1] if hits else table_for(wall.date() - dt.timedelta(days=1), new)[-1][1]


def local_midnights() -> list[dt.datetime]:
    out = []
    day = dt.date(2026, 3, 10)
    while day <= dt.date(2026, 5, 10):
        naive = dt.datetime.combine(day, dt.time()).replace(tzinfo=U)
        u = naive - 2 * H
        out.append(u if dst(u) else naive - H)
        day += dt.timedelta(days=1)
    return out


MIDNIGHTS = local_midnights()
BILLINGS = [m for m in MIDNIGHTS if (m + 3 * H).day == 1]
LP_KEYS = [AI, AE, Q1, Q2, Q3, Q4]
# every demand quantity the scenario moves: import, export (every 37th minute), reactive by quadrant
DEMAND_KEYS = {DemandQuantity.ACTIVE_IMPORT: [AI], DemandQuantity.ACTIVE_EXPORT: [AE],
               DemandQuantity.REACTIVE_IMPORT: [Q1, Q2], DemandQuantity.REACTIVE_EXPORT: [Q3, Q4],
               DemandQuantity.APPARENT_IMPORT: [SI], DemandQuantity.APPARENT_EXPORT: [SE]}
ORDER = ["demand", "lp", "daily", "billing"]


class Expected:
    """Plain re-statement of the documented revenue rules, driven by the same events."""

    def __init__(self) -> None:
        self.totals: dict = {}
        self.rates = {r: {} for r in range(1, 5)}
        self.floor = dict.fromkeys(ORDER, START)
        self.prev: dict = {}
        self.outages: list = []
        self.lp_rows: list = []
        self.daily_rows: list = []
        self.snapshots: list = []
        self.pending = {"lp": 0, "daily": 0}
        self.lp_base: dict = {}
        self.vsum, self.vn = [0.0, 0.0, 0.0], 0
        self.window = {q: [0, 0, 0] for q in DEMAND_KEYS}
        self.sub_start = {q: 0 for q in DEMAND_KEYS}
        self.md: dict = {}
        self.disturbed = 0
        self.last_t: dt.datetime | None = None
        self.counter = 0

    def boundaries(self, kind: str, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
        if kind in ("daily", "billing"):
            return [b for b in (MIDNIGHTS if kind == "daily" else BILLINGS) if lo < b <= hi]
        period = 300 if kind == "demand" else 900
        first = (int(lo.timestamp()) // period + 1) * period
        return [dt.datetime.fromtimestamp(s, U) for s in range(first, int(hi.timestamp()) + 1, period)]

    def cycle(self, t: dt.datetime, k: int) -> None:
        if self.last_t is not None and t - self.last_t > dt.timedelta(seconds=90):
            self.outages.append((self.last_t, t))
        due = sorted((b, ORDER.index(kind), kind) for kind in ORDER
                     for b in self.boundaries(kind, self.floor[kind], t))
        for b, _, kind in (d for d in due if d[0] < t):
            self.execute(kind, b)
        d = deltas_for(k)
        rate = self.rates[expected_rate(t)]
        for key, v in d.items():
            self.totals[key] = self.totals.get(key, 0) + v
            rate[key] = rate.get(key, 0) + v
        volts = READINGS[k % 7].phases
        for i in range(3):
            self.vsum[i] += volts[i].voltage_v
        self.vn += 1
        for b, _, kind in (d for d in due if d[0] == t):
            self.execute(kind, b)
        self.last_t = t

    def flags(self, kind: str, b: dt.datetime, period: dt.timedelta) -> int:
        start = self.prev.get(kind, b - period)
        word = self.pending[kind] | (ProfileStatus.DST if dst(b) else 0)
        if any(a < b and z > start for a, z in self.outages):
            word |= ProfileStatus.PDN
        self.pending[kind] = 0
        return int(word)

    def execute(self, kind: str, b: dt.datetime) -> None:
        if kind == "demand":
            self.close_demand(b)
        elif kind == "lp":
            word = self.flags("lp", b, dt.timedelta(minutes=15))
            energies = tuple(self.totals.get((q, T), 0) - self.lp_base.get(q, 0) for q in LP_KEYS)
            volts = tuple(round(s * 100 / self.vn) if self.vn else 0 for s in self.vsum)
            self.lp_rows.append((b, word, energies, volts))
            self.lp_base = {q: self.totals.get((q, T), 0) for q in LP_KEYS}
            self.vsum, self.vn = [0.0, 0.0, 0.0], 0
        elif kind == "daily":
            word = self.flags("daily", b, dt.timedelta(days=1))
            self.daily_rows.append((b, word, tuple(self.totals.get((q, T), 0) for q in Quantity)))
        else:
            self.bill(b)
        self.prev[kind] = self.floor[kind] = b

    def close_demand(self, b: dt.datetime) -> None:
        rate = expected_rate(b)
        for q, keys in DEMAND_KEYS.items():
            now = sum(self.totals.get((key, T), 0) for key in keys)
            self.window[q] = self.window[q][1:] + [now - self.sub_start[q]]
            self.sub_start[q] = now
            value = Fraction(sum(self.window[q]) * 3600, 900)
            if self.disturbed == 0:
                for r in (0, rate):
                    if value > 0 and value > self.md.get((q, r), (Fraction(0), None))[0]:
                        self.md[(q, r)] = (value, b)
        self.disturbed = max(0, self.disturbed - 1)

    def bill(self, b: dt.datetime) -> None:
        self.counter += 1
        self.snapshots.append((self.counter, b, dict(self.totals),
                               {r: dict(v) for r, v in self.rates.items()}, dict(self.md)))
        self.md = {}

    def clock(self, old: dt.datetime, new: dt.datetime) -> None:
        direction = ProfileStatus.CLOCK_FORWARD if new > old else ProfileStatus.CLOCK_BACKWARD
        for kind in ("lp", "daily"):
            self.pending[kind] |= ProfileStatus.CAD | direction
        self.disturbed = 3
        if new > old:
            missed = self.boundaries("billing", self.floor["billing"], new)
            if missed:
                self.bill(missed[-1])
                self.prev["billing"] = missed[-1]
            for kind in ORDER:
                self.floor[kind] = max(self.floor[kind], new)
        self.last_t = new


# -- driving the service ----------------------------------------------------------------------

def open_stores(tmp_path):
    return (SqliteProfileStore(tmp_path / "profiles.db", depth={DAILY_PROFILE_OBIS: 400}, synchronous="NORMAL"),
            SqliteBillingStore(tmp_path / "billing.db", synchronous="NORMAL"))


def drive(tmp_path, restart: bool, expected: Expected | None = None):
    stores = open_stores(tmp_path)
    svc = RevenueService(make_config(), make_calendar(), *stores)
    registers = EnergyRegisters()
    restarted = False
    for ev in events():
        if expected is not None:
            if ev[0] == "cycle":
                expected.cycle(ev[1], ev[2])
            elif ev[0] == "clock":
                expected.clock(ev[1], ev[2])
            elif ev[0] == "outage":
                expected.outages.append((ev[1], ev[2]))
            elif ev[0] == "mdi":
                expected.bill(ev[1])
        if ev[0] == "cycle":
            d = deltas_for(ev[2])
            registers.add(d)
            svc.on_cycle(ev[1], d, registers, READINGS[ev[2] % 7])
        elif ev[0] == "clock":
            svc.on_clock_set(ev[1], ev[2], "test")
        elif ev[0] == "outage":
            svc.on_power_restore(ev[1], ev[2])
        elif ev[0] == "mdi":
            svc.mdi_reset(ev[1])
        elif ev[0] == "restart" and restart:
            state = json.loads(json.dumps(svc.state_dict()))
            checkpoint = registers.snapshot()
            for store in stores:
                store.close()
            stores = open_stores(tmp_path)
            svc = RevenueService(make_config(), make_calendar(), *stores)
            svc.restore(state)
            registers = EnergyRegisters(checkpoint)
            restarted = True
    assert restarted == restart
    return svc, registers, stores


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    expected = Expected()
    svc, registers, stores = drive(tmp_path_factory.mktemp("ref"), restart=False, expected=expected)
    yield svc, registers, stores, expected
    for store in stores:
        store.close()


def test_rate_registers_match_the_scenario_windows(reference):
    svc, registers, _, exp = reference
    totals = registers.snapshot()
    assert svc.tariff.totals() == {k: v for k, v in totals.items() if k[1] is T}  # rate registers: total channel
    for r in range(1, 5):
        for q in Quantity:
            assert svc.tariff.get(q, T, r) == exp.rates[r].get((q, T), 0), (r, q)
    assert all(exp.rates[r] for r in range(1, 5))            # every rate was used


def test_dst_gap_and_repeated_hour_rates():
    # the 02:30 weekend switch inside the spring gap takes effect at the end of the gap
    assert expected_rate(T_BEGIN) == 1 and expected_rate(T_BEGIN + CYCLE) == 3
    # in the repeated hour the 02:30 switch is not applied a second time
    assert expected_rate(T_END - dt.timedelta(minutes=29)) == 3
    assert all(expected_rate(T_END + dt.timedelta(minutes=m)) == 3 for m in range(1, 61))


def test_load_profile_rows(reference):
    svc, _, stores, exp = reference
    rows = svc.load_profile.rows_by_entry(1, 0)
    want = exp.lp_rows[-5760:]
    assert len(rows) == len(want) == svc.load_profile.entries_in_use()
    for row, (b, word, energies, volts) in zip(rows, want, strict=True):
        assert row.utc == b
        assert row.values == (word, *energies, *volts)
    times = [r.utc for r in rows]
    assert times == sorted(set(times))
    assert stores[0].load_rows(LOAD_PROFILE_OBIS, 10_000) == rows


def test_profile_status_marks_outage_and_clock_changes(reference):
    svc, _, _, _ = reference
    by_time = {r.utc: r.values for r in svc.load_profile.rows_by_entry(1, 0)}
    outage_rows = [t for t, v in by_time.items() if v[0] & ProfileStatus.PDN]
    assert outage_rows[0] == dt.datetime(2026, 4, 8, 8, 15, tzinfo=U)
    assert outage_rows[-1] == dt.datetime(2026, 4, 8, 10, 30, tzinfo=U)
    assert len(outage_rows) == 10
    assert all(by_time[t][1] == 0 for t in outage_rows[1:-1])
    back = by_time[dt.datetime(2026, 4, 17, 9, 15, tzinfo=U)]
    assert back[0] & ProfileStatus.CAD and back[0] & ProfileStatus.CLOCK_BACKWARD
    fwd = by_time[dt.datetime(2026, 4, 27, 14, 0, tzinfo=U)]
    assert fwd[0] & ProfileStatus.CAD and fwd[0] & ProfileStatus.CLOCK_FORWARD
    assert dt.datetime(2026, 4, 27, 13, 30, tzinfo=U) not in by_time       # skipped by the forward set
    assert by_time[dt.datetime(2026, 4, 1, tzinfo=U)][0] & ProfileStatus.DST
    assert not by_time[dt.datetime(2026, 5, 8, tzinfo=U)][0] & ProfileStatus.DST


def test_daily_profile(reference):
    svc, _, _, exp = reference
    rows = svc.daily_profile.rows_by_entry(1, 0)
    assert [(r.utc, r.values[0], r.values[1:]) for r in rows] == exp.daily_rows
    # 60 midnights in the scenario, but the clock set forward by 50 min 30 s moves the cycles to
    # hh:mm:30, so the last cycle (meter time 22:59:30 UTC) comes 30 s before the last midnight
    assert len(rows) == 59 and rows[-1].utc == dt.datetime(2026, 5, 7, 23, tzinfo=U)
    assert rows[19].utc == dt.datetime(2026, 3, 29, 22, tzinfo=U)          # first midnight in DST


def test_demand_maxima_and_times(reference):
    svc, _, _, exp = reference
    for (q, r), (value, when) in exp.md.items():
        md = svc.demand.max_demand(q, r)
        assert (md.value_milli, md.capture_utc) == (value, when), (q, r)
    held = {(q, r) for q in DEMAND_KEYS for r in range(5) if svc.demand.max_demand(q, r).capture_utc}
    assert held == set(exp.md)
    for q in (DemandQuantity.ACTIVE_EXPORT, DemandQuantity.REACTIVE_IMPORT, DemandQuantity.REACTIVE_EXPORT):
        assert exp.md[(q, 0)][0] > 0, q  # export and reactive maxima are really exercised


def test_billing_snapshots_equal_registers_at_period_end(reference):
    svc, _, stores, exp = reference
    snaps = list(svc.billing.snapshots)
    assert [s.reason for s in snaps] == ["command", "schedule", "schedule"]
    assert len(snaps) == len(exp.snapshots) == svc.billing.counter == 3
    for snap, (counter, when, totals, rates, md) in zip(snaps, exp.snapshots, strict=True):
        assert (snap.counter, snap.utc) == (counter, when)
        assert {k: v for k, v in snap.registers.items() if v} == totals
        for r in range(1, 5):
            assert dict(snap.rate_registers[r]) == {k: v for k, v in rates[r].items() if k[1] is T}
        for (q, r), (value, t) in md.items():
            assert (snap.max_demand[(q, r)].value_milli, snap.max_demand[(q, r)].capture_utc) == (value, t)
    assert stores[1].load_snapshots(12) == snaps


def test_restart_midway_changes_nothing(reference, tmp_path):
    ref, ref_registers, _, _ = reference
    svc, registers, stores = drive(tmp_path, restart=True)
    try:
        assert registers.snapshot() == ref_registers.snapshot()
        assert svc.state_dict() == ref.state_dict()
        for obis in (LOAD_PROFILE_OBIS, DAILY_PROFILE_OBIS, "0.0.98.1.0.255"):
            a, b = svc.profile(obis), ref.profile(obis)
            assert a is not None and b is not None
            assert a.rows_by_entry(1, 0) == b.rows_by_entry(1, 0)
        assert stores[0].load_rows(LOAD_PROFILE_OBIS, 10_000) == ref.load_profile.rows_by_entry(1, 0)
    finally:
        for store in stores:
            store.close()

"""Tariff, demand, billing and profiles over DLMS with gurux's client (a library we did not write),
on a whole simulated meter: the reader reads the activity calendar, special days, rate, demand and
maximum-demand registers; the management association writes a passive calendar with an
activation time and it takes over; special days are inserted by method; the end-of-billing script
closes a period; after a restart the load profile is read by range and equals the stored rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.objects import (
    GXDLMSActivityCalendar,
    GXDLMSData,
    GXDLMSDemandRegister,
    GXDLMSExtendedRegister,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
    GXDLMSRegisterActivation,
    GXDLMSScriptTable,
    GXDLMSSpecialDaysTable,
)

from meterd.core.demand import DemandQuantity
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.core.profile import LOAD_PROFILE_OBIS
from meterd.core.reading import Channel
from meterd.services.revenue import RevenueService
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError, GuruxSession
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday


def open_meter(state_dir: Path) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat(), "current_a": 0.2},
                    display={"kind": "dummy"}, revenue={"max_cycle_gap_s": 2000.0})


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    make_keys(tmp_path / "dlms-keys.toml").save()  # throwaway test keys the gurux client knows
    m = open_meter(tmp_path)
    m.run(86400, 900)
    yield m
    m.close()




def read_calendar(gs: GuruxSession) -> GXDLMSActivityCalendar:
    cal = GXDLMSActivityCalendar()
    for attribute in range(2, 11):
        gs.read(cal, attribute)
    return cal


def test_reader_reads_calendar_registers_and_demand(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    with Client(meter, 17) as gs:
        cal = read_calendar(gs)
        assert cal.calendarNameActive == "PMM3R"
        assert [bytes(s.name) for s in cal.seasonProfileActive] == [b"winter", b"summer"]
        assert [(w.monday, w.saturday) for w in cal.weekProfileTableActive] == [(1, 3), (2, 3)]
        weekday = cal.dayProfileTableActive[0]
        assert [(str(a.startTime)[:5], a.scriptSelector) for a in weekday.daySchedules] == [
            ("00:00", 1), ("07:00", 2), ("17:00", 3), ("20:00", 2), ("22:00", 1)]
        assert {a.scriptLogicalName for a in weekday.daySchedules} == {"0.0.10.0.100.255"}
        days = GXDLMSSpecialDaysTable()
        gs.read(days, 2)
        assert [(e.index, e.dayId) for e in days.entries] == [(1, 3), (2, 3), (3, 3), (4, 3)]
        for rate in (1, 2, 3):
            reg = GXDLMSRegister(f"1.0.1.8.{rate}.255")
            gs.read(reg, 3)
            assert gs.read(reg, 2) == pytest.approx(svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, rate) / 1000)
        current = GXDLMSData("0.0.96.14.0.255")
        assert gs.read(current, 2) == svc.current_rate
        activation = GXDLMSRegisterActivation("0.0.14.0.0.255")
        assert bytes(gs.read(activation, 4)) == f"RATE {svc.current_rate}".encode()
        demand = GXDLMSDemandRegister("1.0.1.4.0.255")
        gs.read(demand, 4)
        assert gs.read(demand, 8) == 900 and gs.read(demand, 9) == 1
        md = GXDLMSExtendedRegister("1.0.1.6.0.255")
        gs.read(md, 3)
        held = svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0)
        assert gs.read(md, 2) == pytest.approx(float(held.value_milli) / 1000, abs=0.001)
        assert gs.read(md, 5) is not None
        with pytest.raises(DlmsClientError):  # the reader may not write the calendar
            cal.calendarNamePassive = "X"
            gs.write(cal, 6)


def test_management_rewrites_the_calendar_and_it_takes_over(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    with Client(meter, 17) as gs:
        cal = read_calendar(gs)
    # passive: the active calendar with a flat rate 2 on weekdays, activated at local midnight
    cal.calendarNamePassive = "FLAT2"
    cal.seasonProfilePassive = cal.seasonProfileActive
    cal.weekProfileTablePassive = cal.weekProfileTableActive
    for day in cal.dayProfileTableActive[:2]:
        for action in day.daySchedules:
            action.scriptSelector = 2
    cal.dayProfileTablePassive = cal.dayProfileTableActive
    activate_local = dt.datetime(2026, 1, 7, 0, 0)
    cal.time = GXDateTime(activate_local)
    with Client(meter, 1) as gs:
        for attribute in (6, 7, 8, 9, 10):
            gs.write(cal, attribute)
        days = GXDLMSSpecialDaysTable()
        gs.method(days, 1, [7, bytearray(b"\x07\xea\x01\x08\xff"), 3], DataType.STRUCTURE)  # 8 Jan 2026
    assert svc.calendar.passive is not None and svc.calendar.passive.name == "FLAT2"
    assert svc.calendar.activate_passive_at == activate_local
    assert any(e.index == 7 and e.day_id == 3 for e in svc.calendar.special_days.entries)
    with Client(meter, 17) as gs:
        again = read_calendar(gs)
        assert again.calendarNamePassive == "FLAT2" and again.calendarNameActive == "PMM3R"
    meter.run(86400 - 3600, 900)  # 6 Jan (old calendar) up to 7 Jan 00:00 CET, the activation time
    assert svc.calendar.active.name == "PMM3R"
    before = {r: svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in (1, 2, 3)}
    meter.run(86400, 900)  # 7 Jan (a Wednesday): flat rate 2
    assert svc.calendar.active.name == "FLAT2" and svc.calendar.activate_passive_at is None
    after = {r: svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in (1, 2, 3)}
    assert after[1] == before[1] and after[3] == before[3] and after[2] > before[2]
    with Client(meter, 17) as gs:
        assert read_calendar(gs).calendarNameActive == "FLAT2"


def test_billing_script_and_load_profile_by_range_after_restart(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = open_meter(tmp_path)
    try:
        meter.run(2 * 86400, 900)
        with Client(meter, 1) as gs:
            gs.method(GXDLMSScriptTable("0.0.10.0.1.255"), 1, 1, DataType.UINT16)
            counter = GXDLMSData("0.0.0.1.0.255")
            assert gs.read(counter, 2) == 1
        meter.run(3600, 900)
    finally:
        meter.close()
    meter = open_meter(tmp_path)
    try:
        svc = meter.service(RevenueService)
        assert svc.billing.counter == 1
        start, end = START + dt.timedelta(hours=6), START + dt.timedelta(hours=30)
        expected = svc.load_profile.rows_between(start, end)
        assert len(expected) == 97
        with Client(meter, 17) as gs:
            pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
            gs.read(pg, 3)
            rows = gs.rows_by_range(pg, start, end)
            billing = GXDLMSProfileGeneric("0.0.98.1.0.255")
            gs.read(billing, 3)
            # raw: gurux's parser maps a column by object only, and the billing profile has two
            # columns (value, capture time) of each maximum-demand object
            billing_rows = gs.read_raw(billing, 2)
        assert len(rows) == len(expected)
        for got, want in zip(rows, expected, strict=True):
            assert list(got[1:]) == list(want.values)
        assert len(billing_rows) == 1 and billing_rows[0][1] == 1  # clock, then the billing counter
    finally:
        meter.close()


def _unset_time() -> bytes:
    from meterd.cosem.objects_revenue import encode_local_datetime

    return encode_local_datetime(None)


def test_passive_calendar_rewritten_twice_in_one_run(meter: SimMeter) -> None:
    """After the first passive calendar took over at its time, attribute 10 reads "not set" and
    rewriting only the passive set does not re-arm an activation with the past time; a second
    activation time then activates the second set."""
    svc = meter.service(RevenueService)
    with Client(meter, 17) as gs:
        cal = read_calendar(gs)

    def flat(name: str, rate: int) -> None:
        cal.calendarNamePassive = name
        cal.seasonProfilePassive = cal.seasonProfileActive
        cal.weekProfileTablePassive = cal.weekProfileTableActive
        for day in cal.dayProfileTableActive:
            for action in day.daySchedules:
                action.scriptSelector = rate
        cal.dayProfileTablePassive = cal.dayProfileTableActive

    flat("FLAT2", 2)
    cal.time = GXDateTime(dt.datetime(2026, 1, 7, 0, 0))
    with Client(meter, 1, ic=1000) as gs:
        for attribute in (6, 7, 8, 9, 10):
            gs.write(cal, attribute)
    meter.run(2 * 86400, 900)  # past 7 Jan 00:00: FLAT2 is active
    assert svc.calendar.active.name == "FLAT2" and svc.calendar.activate_passive_at is None
    with Client(meter, 17) as gs:
        assert bytes(gs.read_raw(GXDLMSActivityCalendar(), 10)) == _unset_time()
    flat("FLAT3", 3)
    with Client(meter, 1, ic=2000) as gs:
        for attribute in (6, 9):  # the calendar only, no activation time
            gs.write(cal, attribute)
    assert svc.calendar.passive is not None and svc.calendar.passive.name == "FLAT3"
    assert svc.calendar.activate_passive_at is None
    rate3 = svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, 3)
    meter.run(86400, 900)
    assert svc.calendar.active.name == "FLAT2"  # not re-armed by the old, past time
    assert svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, 3) == rate3
    second = dt.datetime(2026, 1, 9, 12, 0)  # the meter is at 9 Jan 01:00 local
    cal.time = GXDateTime(second)
    with Client(meter, 1, ic=3000) as gs:
        gs.write(cal, 10)
    assert svc.calendar.activate_passive_at == second
    with Client(meter, 17) as gs:
        assert read_calendar(gs).time.value.replace(tzinfo=None) == second
    meter.run(86400, 900)
    assert svc.calendar.active.name == "FLAT3" and svc.calendar.activate_passive_at is None
    assert svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, 3) > rate3
    from meterd.core import event_codes
    from meterd.core.event_codes import LogId

    log = meter.service(EventRecorder).log(LogId.STANDARD)
    activated = [e for e in log.entries() if e.code == event_codes.code("TOU_ACTIVATED")]
    assert [e.detail["calendar"] for e in activated] == ["FLAT2", "FLAT3"]
    assert activated[1].utc == dt.datetime(2026, 1, 9, 11, 0, tzinfo=dt.UTC)
    with Client(meter, 17) as gs:
        assert bytes(gs.read_raw(GXDLMSActivityCalendar(), 10)) == _unset_time()


def test_management_writes_demand_period_and_number_of_periods(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = open_meter(tmp_path)
    try:
        meter.run(86400, 900)
        svc = meter.service(RevenueService)
        held = svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0)
        demand = GXDLMSDemandRegister("1.0.1.4.0.255")
        with Client(meter, 1, ic=100) as gs:
            demand.period = 300
            gs.write(demand, 8)
            demand.numberOfPeriods = 3
            gs.write(demand, 9)
            demand.period = 7  # does not divide a day
            with pytest.raises(DlmsClientError):
                gs.write(demand, 8)
        assert (svc.demand.config.period_s, svc.demand.config.number_of_periods) == (300, 3)
        assert svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT, 0) == held  # maxima kept
        meter.run(3600, 60)
        with Client(meter, 17) as gs:
            export = GXDLMSDemandRegister("1.0.2.4.0.255")  # the setting is common to all
            assert gs.read(export, 8) == 300 and gs.read(export, 9) == 3
            gs.read(demand, 6)
            assert demand.captureTime.value.timestamp() % 300 == 0
            gs.read(demand, 4)
            last = gs.read(demand, 3)
        want = float(svc.demand.last_average(DemandQuantity.ACTIVE_IMPORT)) / 1000
        assert want > 0 and last == pytest.approx(want, abs=0.001)
        assert svc.demand.last_capture_utc == meter.clock.utc() - dt.timedelta(seconds=meter.clock.utc().timestamp() % 300)
    finally:
        meter.close()
    meter = open_meter(tmp_path)  # persisted with the revenue settings
    try:
        with Client(meter, 17) as gs:
            demand = GXDLMSDemandRegister("1.0.1.4.0.255")
            assert gs.read(demand, 8) == 300 and gs.read(demand, 9) == 3
    finally:
        meter.close()


def test_management_writes_load_profile_capture_objects(meter: SimMeter) -> None:
    """Writing attribute 3 of 1-0:99.1.0.255 clears the buffer; new rows carry the new columns,
    each of them an object the client reads on its own."""
    from gurux_dlms.objects import GXDLMSCaptureObject, GXDLMSClock

    svc = meter.service(RevenueService)
    assert svc.load_profile.entries_in_use() > 90  # a day of quarter hours
    pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
    pg.captureObjects = [(GXDLMSClock("0.0.1.0.0.255"), GXDLMSCaptureObject(2, 0)),
                         (GXDLMSData("0.0.96.10.1.255"), GXDLMSCaptureObject(2, 0)),
                         (GXDLMSRegister("1.0.1.8.0.255"), GXDLMSCaptureObject(2, 0)),
                         (GXDLMSRegister("1.0.21.29.0.255"), GXDLMSCaptureObject(2, 0)),
                         (GXDLMSRegister("1.0.32.27.0.255"), GXDLMSCaptureObject(2, 0))]
    with Client(meter, 1, ic=100) as gs:
        gs.write(pg, 3)
    assert svc.load_profile.entries_in_use() == 0
    with Client(meter, 17) as gs:
        pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
        gs.read(pg, 3)
        assert gs.read(pg, 7) == 0 and gs.read_raw(pg, 2) in ([], None)
    meter.run(3600, 900)
    with Client(meter, 17) as gs:
        pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
        gs.read(pg, 3)
        assert [co.logicalName for co, _ in pg.captureObjects] == [
            "0.0.1.0.0.255", "0.0.96.10.1.255", "1.0.1.8.0.255", "1.0.21.29.0.255", "1.0.32.27.0.255"]
        rows = gs.read_raw(pg, 2)
        l1_interval = gs.read_raw(GXDLMSRegister("1.0.21.29.0.255"), 2)
    stored = svc.load_profile.rows_by_entry(1, 0)
    assert len(rows) == len(stored) == 4
    assert [list(r[1:]) for r in rows] == [list(s.values) for s in stored]
    registers = meter.meter.registers.snapshot()
    assert stored[-1].values[1] == registers[(Quantity.ACTIVE_IMPORT, Channel.TOTAL)]  # cumulative +A
    assert l1_interval == stored[-1].values[2] > 0  # +A on L1 in the last quarter hour


def test_tariff_script_and_active_mask_force_a_rate_until_the_next_switch(meter: SimMeter) -> None:
    """It is 6 Jan 01:00 CET (a Tuesday, rate 1 until 07:00): script 3 puts rate 3 in force until
    07:00, then the calendar's rate 2; writing mask "RATE 1" at 08:00 holds rate 1 until 17:00."""
    svc = meter.service(RevenueService)

    def a_plus() -> list[int]:
        return [svc.tariff.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in (1, 2, 3)]

    assert svc.current_rate == 1
    with Client(meter, 17) as gs, pytest.raises(DlmsClientError):  # the reader may not execute it
        gs.method(GXDLMSScriptTable("0.0.10.0.100.255"), 1, 3, DataType.UINT16)
    with Client(meter, 1, ic=100) as gs:
        with pytest.raises(DlmsClientError):
            gs.method(GXDLMSScriptTable("0.0.10.0.100.255"), 1, 4, DataType.UINT16)  # no rate 4
        gs.method(GXDLMSScriptTable("0.0.10.0.100.255"), 1, 3, DataType.UINT16)
    with Client(meter, 17) as gs:
        assert gs.read(GXDLMSData("0.0.96.14.0.255"), 2) == 3
        assert bytes(gs.read(GXDLMSRegisterActivation("0.0.14.0.0.255"), 4)) == b"RATE 3"
    before = a_plus()
    meter.run(6 * 3600, 900)  # to 07:00 CET
    during = a_plus()
    assert during[0] == before[0] and during[1] == before[1] and during[2] > before[2]
    meter.run(3600, 900)  # 07:00-08:00: the calendar's rate 2
    after = a_plus()
    assert after[2] == during[2] and after[1] > during[1] and svc.current_rate == 2
    activation = GXDLMSRegisterActivation("0.0.14.0.0.255")
    activation.activeMask = b"RATE 1"
    with Client(meter, 1, ic=200) as gs:
        gs.write(activation, 4)
    assert svc.current_rate == 1
    meter.run(9 * 3600, 900)  # 08:00-17:00 in rate 1 instead of 2
    held = a_plus()
    assert held[1] == after[1] and held[0] > after[0]
    meter.run(3600, 900)  # 17:00-18:00: the calendar's peak
    assert a_plus()[2] > held[2] and svc.current_rate == 3

"""A whole simulated meter read the way a DLMS test house reads it, with gurux's client (a library we
did not write): the object list is walked against what every object answers (access rights of
attributes and methods, the class 4 reset included), the billing profile is read with rows whose
maximum demand was never captured, profile_entries is the capacity, and the passive day profile
table of the activity calendar is written in SET data blocks."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import AccessMode, DataType, MethodAccessMode, ObjectType
from gurux_dlms.objects import GXDLMSActivityCalendar, GXDLMSProfileGeneric, GXDLMSScriptTable

from meterd.app.features.dlms import DlmsSecurity
from meterd.core.billing import BILLING_PROFILE_OBIS
from meterd.core.profile import DAILY_PROFILE_OBIS
from meterd.services.revenue import RevenueService
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
# the object list itself (read once already) and the profile buffers (read by the profile tests)
SKIPPED_READS = {(ObjectType.ASSOCIATION_LOGICAL_NAME, 2), (ObjectType.PROFILE_GENERIC, 2)}


def _client(meter: SimMeter, sap: int) -> Client:
    """A gurux association; the management client continues its invocation counter."""
    store = meter.daemon.registry.need(DlmsSecurity, by="test").store
    return Client(meter, sap, ic=int(store.last_accepted("management/in")) + 1)


@pytest.fixture(scope="module")
def meter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimMeter]:
    state = Path(tmp_path_factory.mktemp("walk"))
    make_keys(state / "dlms-keys.toml").save()  # throwaway test keys the gurux client knows
    m = SimMeter(state, sim={"start_utc": START.isoformat(), "current_a": 0.2}, display={"kind": "dummy"},
                 revenue={"max_cycle_gap_s": 2000.0})
    m.run(6 * 3600, 900)
    with _client(m, 1) as gs:  # close a billing period: the billing profile gets a row
        gs.method(GXDLMSScriptTable("0.0.10.0.1.255"), 1, 1, DataType.UINT16)
    m.run(3600, 900)
    yield m
    m.close()


def _allowed_methods(obj: Any) -> list[int]:
    return [m for m in range(1, obj.getMethodCount() + 1) if obj.getMethodAccess(m) != MethodAccessMode.NO_ACCESS]


def test_the_object_list_tells_what_every_object_answers(meter: SimMeter) -> None:
    """The reader's list: every attribute it says readable is read (the reader is not ciphered:
    a fast walk); no method is open to it."""
    with _client(meter, 17) as gs:
        listed = gs.object_list()
        assert len(listed) > 100
        for obj in listed:
            for index in range(1, obj.getAttributeCount() + 1):
                if obj.getAccess(index) == AccessMode.NO_ACCESS or (obj.objectType, index) in SKIPPED_READS:
                    continue
                try:
                    gs.read_raw(obj, index)
                except DlmsClientError as exc:
                    if exc.code in (3, 4):  # read-write-denied, object-undefined: the list lied
                        pytest.fail(f"{obj.logicalName}/{index} advertised readable, answered {exc.code}")
            assert _allowed_methods(obj) == [], obj.logicalName


def test_the_management_object_list_advertises_every_method_the_objects_serve(meter: SimMeter) -> None:
    """The management client's list against the objects the server holds: the methods each
    object serves are advertised, class 4 maximum demand registers with method 1 (reset)."""
    maximum_demand = 0
    with _client(meter, 1) as gs:
        listed = {(obj.objectType, obj.logicalName): obj for obj in gs.object_list()}
        server = gs._send.__self__.session.server  # the in-memory transport's session
        served = {(int(e.obj.objectType), e.obj.logicalName): e for e in server._access.values()}
        for key, obj in listed.items():
            entry = served[key]
            expected = sorted(m for m in entry.access.methods if server.method_access(entry.obj, m))
            assert _allowed_methods(obj) == expected, obj.logicalName
            if obj.objectType == ObjectType.EXTENDED_REGISTER and obj.logicalName.split(".")[3] == "6":
                assert obj.getMethodCount() == 1 and expected == [1]  # maximum demand: method 1, reset
                maximum_demand += 1
    assert maximum_demand >= 9


def test_the_billing_profile_with_unset_md_times_reads_in_gurux(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    assert svc.billing.entries_in_use() == 1
    with Client(meter, 17) as gs:
        billing = GXDLMSProfileGeneric(BILLING_PROFILE_OBIS)
        gs.read(billing, 3)
        rows = gs.read(billing, 2)  # gurux maps every column by its capture object's type
        assert len(rows) == 1 and rows[0][1] == 1
        raw = gs.read_raw(billing, 2)[0]
        md_times = raw[-1::-2][:3]  # capture times of the last maximum-demand columns
        assert all(isinstance(t, bytes | bytearray) and len(t) == 12 for t in md_times)


def test_profile_entries_is_the_capacity_not_the_rows_held(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    with Client(meter, 17) as gs:
        for obis, capacity, held in (
                (DAILY_PROFILE_OBIS, svc.daily_profile.config.max_entries, svc.daily_profile.entries_in_use()),
                (BILLING_PROFILE_OBIS, svc.billing.max_periods, svc.billing.entries_in_use())):
            pg = GXDLMSProfileGeneric(obis)
            assert gs.read_raw(pg, 8) == capacity
            assert gs.read_raw(pg, 7) == held < capacity


def test_gurux_writes_a_passive_day_profile_table_in_data_blocks(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    with Client(meter, 17) as gs:
        cal = GXDLMSActivityCalendar()
        for attribute in range(2, 11):
            gs.read(cal, attribute)
    days = []
    for day_id in range(1, 61):  # sixty day profiles: about five times the PDU
        day = copy.deepcopy(cal.dayProfileTableActive[0])
        day.dayId = day_id
        days.append(day)
    cal.calendarNamePassive = "BLOCKS"
    cal.seasonProfilePassive = cal.seasonProfileActive
    cal.weekProfileTablePassive = cal.weekProfileTableActive
    cal.dayProfileTablePassive = days
    cal.time = GXDateTime(dt.datetime(2027, 1, 1))
    with _client(meter, 1) as gs:
        assert len(gs.client.write(cal, 9)) >= 5  # attribute 9 goes in (at least) five data blocks
        for attribute in (6, 7, 8, 9, 10):
            gs.write(cal, attribute)
    assert svc.calendar.passive is not None
    assert [d.day_id for d in svc.calendar.passive.day_profiles] == list(range(1, 61))

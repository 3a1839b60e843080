"""Single-action schedule (class 22) and method script table (class 9) through the gurux client
(an implementation we did not write), on an in-memory wrapper session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSScriptTable

from meterd.core.single_action import DatePattern, ExecutionTime, SingleActionSchedule, TimePattern
from meterd.cosem.config import ServerConfig
from meterd.cosem.objects import Access, CosemContext, CosemEntry, default_registry
from meterd.cosem.objects_schedule import (
    MethodScriptTable,
    ScriptAction,
    SingleActionScheduleObject,
    decode_date5,
    decode_time4,
    encode_date5,
    encode_time4,
)
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory

SCHED_LN, SCRIPTS_LN = "0.0.15.0.2.255", "0.0.10.0.107.255"


class Owner:
    def __init__(self) -> None:
        self.schedule = SingleActionSchedule(SCRIPTS_LN, 1)
        self.runs = 0
        self.answer = 0

    def put(self, schedule: SingleActionSchedule) -> bool:
        self.schedule = schedule
        return True

    def run(self) -> int:
        self.runs += 1
        return self.answer

    def factory(self, _ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(SingleActionScheduleObject(SCHED_LN, lambda: self.schedule, self.put, [(SCRIPTS_LN, 1)]),
                         Access(write=frozenset({2, 3, 4})))
        yield CosemEntry(MethodScriptTable(SCRIPTS_LN, {1: ScriptAction(18, "0.0.44.0.0.255", 4, self.run)}),
                         Access(methods=frozenset({1})))


@pytest.fixture
def owner_session():
    owner = Owner()
    registry = default_registry()
    registry.add(owner.factory)
    store = MemoryCounterStore()
    factory = build_session_factory(FakeMeter(), store, make_keyring(), ServerConfig(registry=registry))
    return owner, factory, store


def test_time_and_date_codecs_round_trip():
    t, d = TimePattern(10, None, 0, 0), DatePattern(None, 4, 0xFE, None)
    assert encode_time4(t) == bytes((10, 0xFF, 0, 0))
    assert encode_date5(d) == bytes((0xFF, 0xFF, 4, 0xFE, 0xFF))
    assert decode_time4(encode_time4(t)) == t and decode_date5(encode_date5(d)) == d


def test_management_writes_the_execution_time_and_runs_the_script(owner_session):
    owner, factory, store = owner_session
    gs, _ = connect_in_memory(factory(), 1, invocation_counter=store.last_accepted("management/in") + 1)
    sched = GXDLMSActionSchedule(SCHED_LN)
    script = gs.read_raw(sched, 2)
    assert bytes(script[0]) == bytes((0, 0, 10, 0, 107, 255)) and script[1] == 1
    assert int(gs.read(sched, 3)) == 1
    sched.type_ = 1
    sched.executionTime = [GXDateTime(dt.datetime(2026, 4, 1, 10, 0, 0))]
    gs.write(sched, 4)
    assert owner.schedule.times == (ExecutionTime(TimePattern(10, 0, 0, 0), DatePattern(2026, 4, 1, None)),)
    times = gs.read(sched, 4)
    assert len(times) == 1
    # type 2 refuses a wildcard date: write times with a wildcard year, then the type
    owner.schedule = SingleActionSchedule(SCRIPTS_LN, 1, 1, (ExecutionTime(TimePattern(1, 0, 0, 0),
                                                                           DatePattern(None, 1, 1, None)),))
    sched.type_ = 2
    with pytest.raises(DlmsClientError) as err:
        gs.write(sched, 3)
    assert err.value.code == 250  # other reason
    # the script table runs its method; its own answer comes back
    table = GXDLMSScriptTable(SCRIPTS_LN)
    gs.method(table, 1, 1, DataType.UINT16)
    assert owner.runs == 1
    owner.answer = 2
    with pytest.raises(DlmsClientError) as err:
        gs.method(table, 1, 1, DataType.UINT16)
    assert err.value.code == 2  # temporary failure
    with pytest.raises(DlmsClientError):
        gs.method(table, 1, 7, DataType.UINT16)  # no such script
    assert owner.runs == 2
    gs.close()


def test_reader_may_read_but_not_write_or_execute(owner_session):
    owner, factory, _store = owner_session
    gs, _ = connect_in_memory(factory(), 17)
    sched = GXDLMSActionSchedule(SCHED_LN)
    assert int(gs.read(sched, 3)) == 1
    sched.executionTime = [GXDateTime(dt.datetime(2026, 4, 1, 10, 0, 0))]
    with pytest.raises(DlmsClientError) as err:
        gs.write(sched, 4)
    assert err.value.code == 3  # read-write denied
    with pytest.raises(DlmsClientError):
        gs.method(GXDLMSScriptTable(SCRIPTS_LN), 1, 1, DataType.UINT16)
    assert owner.runs == 0 and not owner.schedule.times
    gs.close()

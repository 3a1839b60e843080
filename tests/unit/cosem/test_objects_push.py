"""The push setups over DLMS (class 40 v2, gurux's client): read by the reader, written and
invoked by the management association only, each write kept and recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSPushSetup, GXDLMSScriptTable

from meterd.app.features.dlms import registry_for
from meterd.core import event_codes as ec
from meterd.core.events import EventRecorder
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.services.push import (
    ALARM_OBIS,
    PUSH_SCHEDULE_OBIS,
    PUSH_SCRIPT_TABLE_OBIS,
    SCHEDULED_OBIS,
    PushEngine,
    PushSchedule,
    RepetitionDelay,
    Transport,
)
from tests.dlms_fakes import make_keyring
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory
from tests.simmeter import SimMeter


def _ln(raw: object) -> str:
    return ".".join(str(b) for b in bytes(raw))  # type: ignore[arg-type]


def test_push_setups_read_write_and_push_over_dlms(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, push={"destination": "127.0.0.1:4059"})
    try:
        engine = meter.service(PushEngine)
        store = MemoryCounterStore()
        factory = build_session_factory(meter.daemon.meter, store, make_keyring(),
                                        ServerConfig(registry=registry_for(meter.daemon.context())))
        reader, _ = connect_in_memory(factory(), 17)
        setup = GXDLMSPushSetup(ALARM_OBIS)
        objects = reader.read_raw(setup, 2)
        assert [(int(o[0]), _ln(o[1]), int(o[2])) for o in objects] == [
            (40, ALARM_OBIS, 1), (1, "0.0.96.1.0.255", 2), (8, "0.0.1.0.0.255", 2), (1, "0.0.97.98.0.255", 2),
            (1, "0.0.97.98.20.255", 2)]
        method = reader.read_raw(setup, 3)
        assert (int(method[0]), bytes(method[1]), int(method[2])) == (0, b"127.0.0.1:4059", 0)
        assert [int(v) for v in reader.read_raw(setup, 7)] == [10, 200, 600]
        assert int(reader.read_raw(setup, 6)) == 3 and int(reader.read_raw(setup, 11)) == 1
        assert _ln(reader.read_raw(setup, 8)) == "0.0.25.0.0.255"
        setup.numberOfRetries = 9
        with pytest.raises(DlmsClientError):
            reader.write(setup, 6)  # the reader may not write
        reader.close()

        manager, _ = connect_in_memory(factory(), 1)
        setup.service, setup.destination, setup.message = Transport.UDP, "198.51.100.7:4060", 0
        manager.write(setup, 3)
        setup.numberOfRetries = 9
        manager.write(setup, 6)
        setup.repetitionDelay2.min, setup.repetitionDelay2.exponent, setup.repetitionDelay2.max = 30, 150, 900
        manager.write(setup, 7)
        s = engine.settings(ALARM_OBIS)
        assert (s.transport, s.destination, s.retries, s.repetition) == (
            Transport.UDP, "198.51.100.7:4060", 9, RepetitionDelay(30, 150, 900))
        setup.destination = "no port"
        with pytest.raises(DlmsClientError):
            manager.write(setup, 3)
        assert engine.settings(ALARM_OBIS).destination == "198.51.100.7:4060"
        changed = [e for e in meter.service(EventRecorder).recent(10) if e.code == ec.code("PARAMETERS_CHANGED")]
        assert sorted(e.detail.get("attribute") for e in changed if e.detail.get("object") == ALARM_OBIS) == [3, 6, 7]
        before = engine.queued()
        manager.method(GXDLMSPushSetup(SCHEDULED_OBIS), 1, 0, DataType.INT8)
        assert engine.queued() == before + 1
        manager.method(GXDLMSScriptTable(PUSH_SCRIPT_TABLE_OBIS), 1, 2, DataType.UINT16)  # script 2: the alarm push
        assert engine.queued() == before + 2 and engine.status().setups[2].queued >= 1

        action = GXDLMSActionSchedule(PUSH_SCHEDULE_OBIS)
        times = manager.read_raw(action, 4)
        assert [(bytes(t[0]), bytes(t[1])) for t in times] == [(bytes((0, 5, 0, 0)), bytes((0xFF,) * 5))]
        target = manager.read_raw(action, 2)
        assert (_ln(target[0]), int(target[1])) == (PUSH_SCRIPT_TABLE_OBIS, 1)
        schedule = meter.service(PushSchedule)
        action.executionTime = [GXDateTime(dt.datetime(2026, 1, 2, 2, 30))]
        manager.write(action, 4)
        entry = schedule.get().times[0]
        assert (entry.time.hour, entry.time.minute, entry.date.year, entry.date.month, entry.date.day) == (
            2, 30, 2026, 1, 2)
        assert PUSH_SCHEDULE_OBIS in [e.detail.get("object") for e in meter.service(EventRecorder).recent(10)]
        manager.close()
    finally:
        meter.close()


def test_windows_and_object_lists_as_written_by_a_head_end() -> None:
    from meterd.cosem.objects_push import _window_datetime, _window_seconds, parse_object_list

    cet = bytes((0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 2, 30, 0, 0, 0xFF, 0xC4, 0x00))  # 02:30 local, deviation -60
    assert _window_seconds(cet) == 3600 + 1800  # 01:30 UTC
    assert _window_seconds(_window_datetime(7200)) == 7200
    with pytest.raises(ValueError):
        _window_seconds(bytes((0xFF,) * 12))  # no time of day
    listed = parse_object_list([[1, bytes((0, 0, 96, 1, 0, 255)), 2, 0],
                                [7, bytes((1, 0, 99, 1, 0, 255)), 2, 0, [0, None], []]])
    assert [(o.class_id, o.obis, o.attribute) for o in listed] == [(1, "0.0.96.1.0.255", 2), (7, "1.0.99.1.0.255", 2)]
    with pytest.raises(ValueError):
        parse_object_list([[1, bytes((0, 0, 96, 1, 0, 255)), 2, 3]])  # data index
    with pytest.raises(ValueError):
        parse_object_list([[7, bytes((1, 0, 99, 1, 0, 255)), 2, 0, [1, [b"", b""]], []]])  # restriction by date

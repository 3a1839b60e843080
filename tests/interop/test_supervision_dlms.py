"""Event logs, event codes, alarm register and filter over DLMS with gurux's client (a library we
did not write), on a whole simulated meter: tamper episodes injected by a scenario, the meter
restarted, then the reader reads the fraud log by range and by entry and the standard log; the
management association writes the alarm filter and clears the alarm register; the reader may not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSData, GXDLMSProfileGeneric

from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.event_codes import LogId
from meterd.services.supervision import Supervision
from tests.dlms_fakes import make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
SCENARIO = "".join(f'[[events]]\nat_s = {t}\nsignal = "{s}"\nvalue = {v}\n' for t, s, v in (
    (10, "cover_open", "true"), (40, "cover_open", "false"), (70, "magnetic_field", "true"),
    (80, "magnetic_field", "false"), (100, "cover_open", "true"), (130, "cover_open", "false")))


def open_meter(state_dir: Path) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"},
                    power_quality={"enabled": False})




def as_utc(value: object) -> dt.datetime:
    """gurux's GXDateTime → aware UTC datetime."""
    return value.value.astimezone(dt.UTC)  # type: ignore[attr-defined]


def test_event_logs_read_by_range_after_restart_and_alarm_objects(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = open_meter(tmp_path)
    try:
        meter.run(5)
        t0 = meter.clock.utc()
        meter.world.load_scenario(SCENARIO, "tamper")
        meter.run(150)
    finally:
        meter.close()
    meter = open_meter(tmp_path)
    try:
        sup = meter.service(Supervision)
        fraud = sup.recorder.log(LogId.FRAUD).entries()
        assert [e.code for e in fraud] == [40, 41, 42, 43, 40, 41]
        with Client(meter, 17) as gs:
            pg = GXDLMSProfileGeneric("0.0.99.98.1.255")
            gs.read(pg, 3)
            assert [c[0].logicalName for c in pg.captureObjects] == ["0.0.1.0.0.255", "0.0.96.11.1.255"]
            assert gs.read(pg, 7) == 6
            rows = gs.rows_by_range(pg, t0 + dt.timedelta(seconds=30), t0 + dt.timedelta(seconds=100))
            assert [(as_utc(r[0]), r[1]) for r in rows] == [
                (t0 + dt.timedelta(seconds=40), 41), (t0 + dt.timedelta(seconds=70), 42),
                (t0 + dt.timedelta(seconds=80), 43), (t0 + dt.timedelta(seconds=100), 40)]
            last_two = gs.rows_by_entry(pg, 5, 2)
            assert [r[1] for r in last_two] == [40, 41]
            assert gs.read(GXDLMSData("0.0.96.11.1.255"), 2) == 41
            std = GXDLMSProfileGeneric("0.0.99.98.0.255")
            gs.read(std, 3)
            assert gs.read(std, 7) == len(sup.recorder.log(LogId.STANDARD).entries())
            register = gs.read(GXDLMSData("0.0.97.98.0.255"), 2)
            assert register == sup.alarm_register()
            assert register & Alarm.TERMINAL_COVER.mask and register & Alarm.MAGNETIC_FIELD.mask
            with pytest.raises(Exception):  # noqa: B017  the reader may not clear alarms
                alarm = GXDLMSData("0.0.97.98.0.255")
                alarm.value = Alarm.TERMINAL_COVER.mask
                gs.write(alarm, 2)
        assert sup.alarm_register() == register
        with Client(meter, 1) as gs:
            alarm = GXDLMSData("0.0.97.98.0.255")
            alarm.value = Alarm.TERMINAL_COVER.mask
            alarm.setDataType(2, DataType.UINT32)
            gs.write(alarm, 2)
            filt = GXDLMSData("0.0.97.98.10.255")
            filt.value = 0xFFFF_FFFF & ~Alarm.MAGNETIC_FIELD.mask
            filt.setDataType(2, DataType.UINT32)
            gs.write(filt, 2)
            assert gs.read(GXDLMSData("0.0.97.98.10.255"), 2) == filt.value
        assert not sup.alarm_register() & Alarm.TERMINAL_COVER.mask
        assert sup.alarm_register() & Alarm.MAGNETIC_FIELD.mask
        names = [ec.lookup(e.code).name for e in sup.recorder.log(LogId.STANDARD).entries()[-2:]]
        assert names == ["ALARM_REGISTER_CLEARED", "PARAMETERS_CHANGED"]
    finally:
        meter.close()

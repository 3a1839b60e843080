"""The power-failure log 1-0:99.97.0.255 over DLMS with gurux's client (a library we did not
write), on a whole simulated meter: a short (60 s) and a long (300 s) power cut both appear with
their durations (0-0:96.7.19.255, s); the threshold 0-0:96.7.20.255 tells them apart; the
counters and the duration of the last long failure follow; all of it read after a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.services.supervision import Supervision
from tests.dlms_fakes import make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
CUTS = ((5, 65), (100, 400))  # (power-fail asserted, released) in s after the scenario start
SCENARIO = "".join(f'[[events]]\nat_s = {t}\nsignal = "power_fail"\nvalue = {v}\n'
                   for down, up in CUTS for t, v in ((down, "true"), (up, "false")))


def open_meter(state_dir: Path) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"},
                    power_quality={"enabled": False})


def as_utc(value: object) -> dt.datetime:
    """gurux's GXDateTime → aware UTC datetime."""
    return value.value.astimezone(dt.UTC)  # type: ignore[attr-defined]


def test_short_and_long_failures_with_durations_in_the_power_failure_log(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = open_meter(tmp_path)
    try:
        meter.run(5)
        t0 = meter.clock.utc()
        meter.world.load_scenario(SCENARIO, "cuts")
        meter.run(420)
    finally:
        meter.close()
    meter = open_meter(tmp_path)
    try:
        entries = meter.service(Supervision).recorder.log(LogId.POWER_FAILURE).entries()
        assert [ec.lookup(e.code).name for e in entries] == ["SHORT_POWER_FAILURE", "LONG_POWER_FAILURE"]
        std = [ec.lookup(e.code).name for e in meter.service(EventRecorder).log(LogId.STANDARD).entries()]
        assert "SHORT_POWER_FAILURE" in std and "LONG_POWER_FAILURE" not in std
        with Client(meter, 17) as gs:
            pg = GXDLMSProfileGeneric("1.0.99.97.0.255")
            gs.read(pg, 3)
            assert [c[0].logicalName for c in pg.captureObjects] == ["0.0.1.0.0.255", "0.0.96.7.19.255"]
            rows = gs.rows_by_range(pg, t0, t0 + dt.timedelta(seconds=500))
            assert len(rows) == 2
            threshold = gs.read(GXDLMSRegister("0.0.96.7.20.255"), 2)
            assert threshold == 180
            for (down, up), row in zip(CUTS, rows, strict=True):
                end_s = (as_utc(row[0]) - t0).total_seconds()
                assert up <= end_s <= up + 1  # restored at the first cycle after the release
                assert row[1] == pytest.approx(up - down, abs=1)
            assert [row[1] >= threshold for row in rows] == [False, True]
            assert gs.read(GXDLMSRegister("0.0.96.7.19.255"), 2) == rows[1][1]  # the last long one
            assert gs.read(GXDLMSData("0.0.96.7.21.255"), 2) == 2
            assert gs.read(GXDLMSData("0.0.96.7.9.255"), 2) == 1
    finally:
        meter.close()

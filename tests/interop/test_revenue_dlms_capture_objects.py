"""Every capture object of every profile the meter serves is itself an object of the association
(gurux's client, all features on, power quality included): a head end can resolve each column of
a buffer and read its value. The load profile's own columns (status, interval energies, average
voltages) read exactly what the newest row captured."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSProfileGeneric

from meterd.core.profile import LOAD_PROFILE_OBIS
from meterd.services.revenue import RevenueService
from tests.dlms_fakes import make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    make_keys(tmp_path / "dlms-keys.toml").save()
    m = SimMeter(tmp_path, sim={"start_utc": START.isoformat(), "current_a": 3.0},
                 display={"kind": "dummy"}, power_quality={"enabled": True})
    m.run(1800, 900)
    yield m
    m.close()


def _class_id(obj: object) -> int:
    return int(obj.objectType)  # type: ignore[attr-defined]


def test_every_capture_object_is_served_and_readable(meter: SimMeter) -> None:
    with Client(meter, 17) as gs:
        objects = gs.object_list()
        served = {(_class_id(o), o.logicalName): o for o in objects}
        profiles = [o for o in objects if isinstance(o, GXDLMSProfileGeneric)]
        names = {p.logicalName for p in profiles}
        # events, power quality, load, daily and billing profiles are all walked
        assert {LOAD_PROFILE_OBIS, "1.0.99.2.0.255", "0.0.98.1.0.255", "0.0.99.98.0.255",
                "1.0.99.14.0.255"} <= names
        checked = 0
        for profile in profiles:
            gs.read(profile, 3)
            assert profile.captureObjects, profile.logicalName
            for target, definition in profile.captureObjects:
                key = (_class_id(target), target.logicalName)
                assert key in served, f"{profile.logicalName}: capture object {key} is not served"
                value = gs.read_raw(served[key], definition.attributeIndex)
                assert value is not None, f"{profile.logicalName}: {key} attribute {definition.attributeIndex}"
                checked += 1
        assert checked > 60


def test_load_profile_columns_read_the_newest_row(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    row = svc.load_profile.last_row
    assert row is not None and row.utc == START + dt.timedelta(seconds=1800)
    with Client(meter, 17) as gs:
        served = {(_class_id(o), o.logicalName): o for o in gs.object_list()}
        pg = served[(7, LOAD_PROFILE_OBIS)]
        gs.read(pg, 3)
        got = [gs.read_raw(served[(_class_id(t), t.logicalName)], d.attributeIndex)
               for t, d in pg.captureObjects[1:]]
        scalers = {}
        for t, _d in pg.captureObjects[1:]:
            if _class_id(t) == 3:
                obj = served[(3, t.logicalName)]
                gs.read(obj, 3)
                scalers[t.logicalName] = (obj.scaler, obj.unit)
    assert got == list(row.values)
    assert got[1] > 0  # +A of the last quarter hour at 3 A
    assert all(2.2e4 < v < 2.4e4 for v in got[-3:])  # 0.01 V: about 230 V
    assert scalers["1.0.1.29.0.255"][0] == pytest.approx(0.001)
    assert scalers["1.0.32.27.0.255"][0] == pytest.approx(0.01)

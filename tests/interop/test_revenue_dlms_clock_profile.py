"""The load profile's capture period and the clock's time-zone/DST attributes written with gurux's
client, on a registry where the revenue factory serves these two objects itself (the daemon's
base registry serves read-only versions of them until it hands them over)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric

from meterd.app.features.dlms import DlmsSecurity
from meterd.core.profile import LOAD_PROFILE_OBIS
from meterd.cosem.config import ServerConfig
from meterd.cosem.objects import ObjectRegistry, association_objects, security_objects
from meterd.cosem.objects_revenue import revenue_factory
from meterd.cosem.server import build_session_factory
from meterd.services.revenue import RevenueService
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, InMemoryTransport, make_client
from tests.simmeter import SimMeter

pytestmark = pytest.mark.interop


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    make_keys(tmp_path / "dlms-keys.toml").save()
    m = SimMeter(tmp_path, sim={"current_a": 0.2}, display={"kind": "dummy"}, revenue={"max_cycle_gap_s": 2000.0})
    m.run(6 * 3600, 900)
    yield m
    m.close()


def session(meter: SimMeter, sap: int) -> GuruxSession:
    d = meter.daemon
    registry = ObjectRegistry()
    for factory in (association_objects, security_objects,
                    revenue_factory(meter.service(RevenueService), serve_load_profile=True, serve_clock=True)):
        registry.add(factory)
    dlms = meter.service(DlmsSecurity)
    make = build_session_factory(d.meter, dlms.store, dlms.keys, ServerConfig(registry=registry))
    transport = InMemoryTransport(make())
    gs = GuruxSession(make_client(sap), transport.send, transport.receive)
    gs.connect()
    return gs


def test_capture_period_write_clears_the_profile(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    assert svc.load_profile.entries_in_use() == 23  # the first period starts at the first cycle
    gs = session(meter, 1)
    try:
        pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
        gs.read(pg, 4)
        assert pg.capturePeriod == 900
        pg.capturePeriod = 1800
        gs.write(pg, 4)
        pg.capturePeriod = 7  # not a divisor of a day in 60..3600 s
        with pytest.raises(DlmsClientError):
            gs.write(pg, 4)
    finally:
        gs.close()
    assert svc.load_profile.capture_period_s == 1800 and svc.load_profile.entries_in_use() == 0
    meter.run(3 * 3600, 900)
    rows = svc.load_profile.rows_by_entry(1, 0)
    assert {r.utc.minute for r in rows} == {0, 30}
    assert len(rows) == 6


def test_clock_time_zone_and_dst_are_read_and_written(meter: SimMeter) -> None:
    svc = meter.service(RevenueService)
    gs = session(meter, 1)
    try:
        clock = GXDLMSClock()
        for attribute in (3, 5, 6, 7, 8):
            gs.read(clock, attribute)
        assert clock.timeZone == -60 and clock.deviation == 60 and clock.enabled
        clock.timeZone = -120
        gs.write(clock, 3)
        clock.enabled = False
        gs.write(clock, 8)
        gs.read(clock, 2)  # the time follows the new rules at once: UTC+2, no DST bit
        now = meter.clock.utc().replace(microsecond=0)
        assert clock.time.value.utcoffset() == dt.timedelta(hours=2)
        assert clock.time.value.replace(tzinfo=None) == (now + dt.timedelta(hours=2)).replace(tzinfo=None)
        assert clock.time.status & 0x80 == 0
    finally:
        gs.close()
    settings = svc.config.clock
    assert settings.time_zone_min == -120 and not settings.dst_enabled
    local = svc.local_time(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))
    assert local.wall == dt.datetime(2026, 7, 1, 14, 0) and not local.dst_active

"""PQ thresholds written at run time over DLMS by the gurux client (an implementation we did not
write) and over the local API, on the whole simulated meter: the management association's write
of the dip threshold 1-0:12.31.0.255 changes the detection of the next dip (no restart), a refused
value changes nothing, the reader association may read but not write; the API's POST likewise
(control role), each change evented (186)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

from meterd.api.tokens import Role
from meterd.app.features.dlms import registry_for
from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.services.power_quality import PowerQualityService
from tests.dlms_fakes import make_keyring
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, connect_in_memory
from tests.simmeter import SimMeter

DIP_LN = "1.0.12.31.0.255"


@pytest.fixture
def meter(tmp_path: Path):
    m = SimMeter(tmp_path, display={"kind": "dummy"}, power_quality={"enabled": True})
    yield m
    m.close()


def session(meter: SimMeter, sap: int) -> GuruxSession:
    factory = build_session_factory(meter.meter, MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="wrapper", registry=registry_for(meter.daemon.context()),
                                                 link_name="tcp"))
    gs, _ = connect_in_memory(factory(), sap)
    return gs


def dip_kinds(meter: SimMeter) -> list[str]:
    """Run a 1-s dip of L2 to 85 % of 230 V and 3 s after it; the PQ log names recorded meanwhile."""
    log = meter.service(EventRecorder).log(LogId.POWER_QUALITY)
    before = len(log.entries())
    meter.world.grid.set_phase("L2", voltage_v=195.5)
    meter.run(1)
    meter.world.grid.set_phase("L2", voltage_v=230.0)
    meter.run(3)
    return [ec.lookup(e.code).name for e in log.entries()[before:]]


def write_volts(gs: GuruxSession, ln: str, raw: int) -> None:
    reg = GXDLMSRegister(ln)
    reg.value = raw
    reg.setDataType(2, DataType.UINT32)
    gs.write(reg, 2)


def changes_186(meter: SimMeter) -> list[dict[str, object]]:
    log = meter.service(EventRecorder).log(LogId.POWER_QUALITY)
    return [dict(e.detail) for e in log.entries() if e.code == 186]


def test_dlms_write_changes_the_next_dip_and_the_reader_is_refused(meter: SimMeter) -> None:
    meter.world.grid.set_all_phases(voltage_v=230.0)
    meter.run(3)
    assert "VOLTAGE_DIP" in dip_kinds(meter)  # 85 % is below the 90 % threshold
    reader = session(meter, 17)
    try:
        reg = GXDLMSRegister(DIP_LN)
        reader.read(reg, 3)
        assert reader.read(reg, 2) == pytest.approx(207.0)  # 90 % of 230 V (scaler −2 applied)
        with pytest.raises(DlmsClientError):
            write_volts(reader, DIP_LN, 18400)
        assert reader.read(reg, 2) == pytest.approx(207.0)
    finally:
        reader.close()
    manager = session(meter, 1)
    try:
        with pytest.raises(DlmsClientError):  # 99 % + 2 % hysteresis reaches Udin: refused, nothing changes
            write_volts(manager, DIP_LN, 22770)
        assert meter.service(PowerQualityService).monitor.settings.dip_threshold_pct == 90.0  # type: ignore[union-attr]
        write_volts(manager, DIP_LN, 18400)  # 184.00 V = 80 % of Udin
        reg = GXDLMSRegister(DIP_LN)
        manager.read(reg, 3)
        assert manager.read(reg, 2) == pytest.approx(184.0)
        verdict = GXDLMSData("1.0.0.130.0.255")
        assert manager.read(verdict, 2) == 2  # no week closed yet: not measured
    finally:
        manager.close()
    assert "VOLTAGE_DIP" not in dip_kinds(meter)  # the same dip is above the new threshold
    assert changes_186(meter) == [{"source": "dlms", "changes": "dip_threshold_pct 90 -> 80"}]


def test_api_write_likewise(meter: SimMeter) -> None:
    api = meter.daemon.api
    assert api.specs[("POST", "/pq/thresholds")].role is Role.CONTROL and not Role.READ.allows(Role.CONTROL)
    meter.world.grid.set_all_phases(voltage_v=230.0)
    meter.run(3)
    status, body = asyncio.run(api.dispatch("POST", "/pq/thresholds", {"hysteresis_pct": 12.0}))
    assert status == 400 and "hysteresis" in body["error"]  # 90 % + 12 % reaches Udin: PqSettings refuses
    status, body = asyncio.run(api.dispatch("POST", "/pq/thresholds", {"dip_threshold_pct": 99.0}))
    assert status == 400 and "nothing changed" in body["error"]
    status, body = asyncio.run(api.dispatch("GET", "/pq/thresholds", {}))
    assert status == 200 and body["settings"]["dip_threshold_pct"] == 90.0
    status, body = asyncio.run(api.dispatch("POST", "/pq/thresholds", {"dip_threshold_pct": 80.0}))
    assert status == 200 and body["changed"] == [{"name": "dip_threshold_pct", "old": 90.0, "new": 80.0}]
    assert "VOLTAGE_DIP" not in dip_kinds(meter)
    assert changes_186(meter) == [{"source": "api", "changes": "dip_threshold_pct 90 -> 80"}]

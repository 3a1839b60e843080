"""The modem objects read by a gurux client: GPRS setup (PIN write-only), GSM diagnostic, LTE
monitoring, TCP-UDP and IPv4 setup, auto connect."""

from __future__ import annotations

import datetime as dt

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import (
    GXDLMSAutoConnect,
    GXDLMSGprsSetup,
    GXDLMSGSMDiagnostic,
    GXDLMSIp4Setup,
    GXDLMSLteMonitoring,
    GXDLMSTcpUdpSetup,
)

from meterd.core.clock import SimClock
from meterd.core.modem import (
    Bearer,
    Cell,
    ModemState,
    ModemStatus,
    RadioSignal,
    Registration,
    SimState,
    Technology,
)
from meterd.cosem.adapters import OK
from meterd.cosem.config import ServerConfig
from meterd.cosem.objects import default_registry
from meterd.cosem.objects_modem import ModemProvisioning, modem_factory
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.services.modem import ModemSettings, ModemSupervisor, Window
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory

CAPTURED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
STATUS = ModemStatus(state=ModemState.CONNECTED, model="EG25", sim=SimState.READY, registration=Registration.ROAMING,
                     operator_name="Op Roam", operator_code="26201", technology=Technology.LTE, quality_pct=70,
                     signal=RadioSignal(-71.0, -98.0, -11.0, 9.0),
                     bearer=Bearer(True, "wwan0", "10.64.1.2", 30, "10.64.1.1", ("10.0.0.53", "10.0.0.54")),
                     cells=(Cell(0x1A2B3C4, 0xC1, 262, 1, 21, True), Cell(0x1A2B3C5, 0xC1, 262, 1, 9)),
                     captured_utc=CAPTURED)


class Control:
    def __init__(self) -> None:
        self.connects = 0

    def connect(self, settings: ModemSettings) -> None:
        self.connects += 1

    def disconnect(self) -> None:
        pass


def session_factory():
    clock = SimClock(dt.datetime(2026, 1, 2, 3, 5, tzinfo=dt.UTC))
    control = Control()
    sup = ModemSupervisor(ModemSettings("iot.example", mode="windows", windows=(Window.parse("01:00-03:30"),),
                                        reconnect_min_s=30), control, clock, None, None)
    sup.observe(STATUS)
    pins: list[str] = []

    def set_apn(apn: str) -> int:
        sup.set_apn(apn)
        return OK

    def set_pin(pin: str) -> int:
        pins.append(pin)
        return OK
    registry = default_registry()
    registry.add(modem_factory(sup, ModemProvisioning(set_apn, set_pin, 4059, "127.0.0.1:4060")))
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="wrapper", registry=registry, link_name="tcp"))
    return factory, sup, pins, control


def test_a_reader_gets_the_diagnostics() -> None:
    factory, _sup, _pins, _control = session_factory()
    gs, _ = connect_in_memory(factory(), 17)
    gsm = GXDLMSGSMDiagnostic("0.0.25.6.0.255")
    gsm.version = 1
    assert gs.read_raw(gsm, 2) == "Op Roam"
    assert [gs.read_raw(gsm, i) for i in (3, 4, 5)] == [5, 2, 5]  # roaming, CS active, LTE
    cell = gs.read_raw(gsm, 6)
    assert list(cell) == [0x1A2B3C4, 0xC1, 21, 99, 262, 1, 0]
    assert [list(c) for c in gs.read_raw(gsm, 7)] == [[0x1A2B3C5, 9]]
    assert bytes(gs.read_raw(gsm, 8))[:7] == bytes((0x07, 0xEA, 1, 2, 5, 3, 4))
    lte = GXDLMSLteMonitoring("0.0.25.11.0.255")
    assert list(gs.read_raw(lte, 3)) == [9, 21, 9, 0]
    assert list(gs.read_raw(lte, 2)) == [0] * 9
    ip4 = GXDLMSIp4Setup("0.0.25.1.0.255")
    assert gs.read_raw(ip4, 3) == 0x0A400102 and gs.read_raw(ip4, 6) == 0xFFFFFFFC
    assert gs.read_raw(ip4, 7) == 0x0A400101 and gs.read_raw(ip4, 9) == 0x0A000035 and gs.read_raw(ip4, 10) == 0x0A000036
    tcp = GXDLMSTcpUdpSetup("0.0.25.0.0.255")
    assert gs.read_raw(tcp, 2) == 4059 and bytes(gs.read_raw(tcp, 3)) == bytes((0, 0, 25, 1, 0, 255))
    auto = GXDLMSAutoConnect("0.0.2.1.0.255")
    assert gs.read_raw(auto, 2) == 102 and gs.read_raw(auto, 4) == 30
    windows = gs.read_raw(auto, 5)
    assert [bytes(b)[5:8] for b in windows[0]] == [bytes((1, 0, 0)), bytes((3, 30, 0))]
    assert [bytes(d) for d in gs.read_raw(auto, 6)] == [b"127.0.0.1:4060"]
    gprs = GXDLMSGprsSetup("0.0.25.4.0.255")
    assert bytes(gs.read_raw(gprs, 2)) == b"iot.example"
    with pytest.raises(DlmsClientError):
        gs.read_raw(gprs, 3)  # the PIN is never read back
    gs.close()


def test_management_writes_apn_and_pin_and_connects_now() -> None:
    factory, sup, pins, control = session_factory()
    gs, _ = connect_in_memory(factory(), 1)
    gprs = GXDLMSGprsSetup("0.0.25.4.0.255")
    gprs.apn = "m2m.operator"
    gs.write(gprs, 2)
    assert sup.settings.apn == "m2m.operator"
    gprs.pinCode = 4321
    gs.write(gprs, 3)
    assert pins == ["4321"]
    with pytest.raises(DlmsClientError):
        gs.read_raw(gprs, 3)
    auto = GXDLMSAutoConnect("0.0.2.1.0.255")
    sup.observe(ModemStatus(state=ModemState.REGISTERED, sim=SimState.READY, registration=Registration.HOME))
    gs.method(auto, 1, 0, DataType.INT8)
    sup.tick()
    assert control.connects == 1
    gs.close()
    reader, _ = connect_in_memory(factory(), 17)
    gprs.apn = "evil"
    with pytest.raises(DlmsClientError):
        reader.write(gprs, 2)

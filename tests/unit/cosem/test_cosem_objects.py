"""The OBIS map and the object registry (meterd.cosem.objects)."""

from __future__ import annotations

import dataclasses

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

from meterd.core.energy import Derived, Quantity, obis_c
from meterd.core.reading import Channel, PhaseValues
from meterd.cosem import axdr
from meterd.cosem.adapters import ValueData
from meterd.cosem.objects import (
    DEFAULT_ASSOCIATIONS,
    Access,
    CosemEntry,
    ObjectRegistry,
    default_registry,
)
from tests.dlms_fakes import FakeMeter, sample_reading
from tests.dlms_gurux_client import connect_in_memory
from tests.unit.cosem.test_cosem_server import _factory


def _names(sap: int) -> dict[str, object]:
    session = _factory()()
    connect_in_memory(session, sap)
    return {obj.logicalName: obj for obj in session.server._settings.objects}


def test_every_energy_register_is_mapped_with_scaler_minus_3():
    names = _names(17)
    for channel in Channel:
        for q in (*Quantity, *Derived):
            reg = names[f"1.0.{obis_c(q, channel)}.8.0.255"]
            assert reg.scaler_exponent == -3


def test_energy_values_are_the_model_milli_units():
    meter = FakeMeter()
    gs, _ = connect_in_memory(_factory(meter)(), 17)
    for q, c in ((Quantity.REACTIVE_Q3, Channel.L2), (Derived.REACTIVE_IMPORT, Channel.TOTAL),
                 (Derived.ACTIVE_ABSOLUTE, Channel.L3)):
        reg = GXDLMSRegister(f"1.0.{obis_c(q, c)}.8.0.255")
        gs.read(reg, 3)
        gs.read(reg, 2)
        assert reg.value == pytest.approx(meter.snapshot().energy(q, c) / 1000)


def test_required_objects_exist():
    names = _names(1)
    for ln in ("0.0.42.0.0.255", "0.0.96.1.0.255", "1.0.0.2.0.255", "1.0.0.2.8.255", "0.0.1.0.0.255",
               "0.0.96.5.0.255", "0.0.40.0.0.255", "0.0.40.0.1.255", "0.0.40.0.2.255", "0.0.40.0.3.255",
               "0.0.43.0.3.255", "0.0.43.1.3.255", "0.0.41.0.0.255", "1.0.99.1.0.255",
               "1.0.32.7.0.255", "1.0.91.7.0.255", "1.0.14.7.0.255", "1.0.13.7.0.255",
               "1.0.81.7.1.255", "1.0.81.7.4.255", "1.0.81.7.15.255", "1.0.81.7.26.255"):
        assert ln in names, ln
    # the TCP wrapper is no HDLC link and no optical port
    assert "0.0.22.0.0.255" not in names and "0.0.20.0.0.255" not in names


def _angle_meter() -> FakeMeter:
    meter = FakeMeter()
    phases = tuple(PhaseValues(voltage_v=230.0, current_a=5.0, active_power_w=1000.0, power_factor=0.9,
                               angle_deg=phi, voltage_angle_deg=u)
                   for phi, u in ((25.8, 0.0), (-30.0, -121.5), (170.0, 119.0)))
    meter.reading = dataclasses.replace(sample_reading(), phases=phases)
    return meter


def test_phase_angles_are_served_in_tenths_of_a_degree():
    meter = _angle_meter()
    gs, _ = connect_in_memory(_factory(meter)(), 17)
    expected = {
        0: 0.0,          # U(L1) vs itself
        1: 121.5,        # U(L2) lags U(L1)
        2: -119.0,       # U(L3) leads U(L1) by 119 deg
        4: 25.8,         # I(L1) lags U(L1): the phase's voltage-to-current angle
        5: 91.5,         # I(L2) at -121.5 + 30 = -91.5 deg
        6: 51.0,         # I(L3) at 119 - 170 = -51 deg: lags U(L1) by 51
        15: -30.0,       # I(L2) leads U(L2)
        26: 170.0,       # I(L3) vs U(L3)
    }
    for e, angle in expected.items():
        reg = GXDLMSRegister(f"1.0.81.7.{e}.255")
        gs.read(reg, 3)
        assert reg.scaler == pytest.approx(0.1) and reg.unit == 8, e  # degrees
        gs.read(reg, 2)
        assert reg.value == pytest.approx(angle), e


def test_angles_fold_into_plus_minus_180():
    meter = _angle_meter()
    phases = list(meter.reading.phases)
    phases[2] = dataclasses.replace(phases[2], voltage_angle_deg=119.0, angle_deg=-100.0)  # I(L3) at 219 deg
    meter.reading = dataclasses.replace(meter.reading, phases=tuple(phases))
    gs, _ = connect_in_memory(_factory(meter)(), 17)
    reg = GXDLMSRegister("1.0.81.7.6.255")
    gs.read(reg, 3)
    gs.read(reg, 2)
    assert reg.value == pytest.approx(141.0)  # 0 - 219 = -219 -> +141


def test_hdlc_setup_shows_the_link_settings_and_local_port_setup_the_optical_port():
    from gurux_dlms.objects import GXDLMSHdlcSetup, GXDLMSIECLocalPortSetup

    from meterd.cosem.config import ServerConfig
    from meterd.cosem.objects import OpticalSetup
    from meterd.cosem.security import MemoryCounterStore
    from meterd.cosem.server import build_session_factory
    from meterd.proto.hdlc import HdlcParameters
    from tests.dlms_fakes import make_keyring

    params = HdlcParameters(max_info_tx=512, max_info_rx=256)
    config = ServerConfig(link="hdlc", hdlc_params=params, inactivity_timeout_s=90, baud=19200, link_name="optical",
                          optical=OpticalSetup(baud=4800, device_address="42"))
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(), config)
    gs, _ = connect_in_memory(factory(), 17)
    setup = GXDLMSHdlcSetup("0.0.22.0.0.255")
    for attr in range(2, 10):
        gs.read(setup, attr)
    assert int(setup.communicationSpeed) == 6  # 19200 Bd
    assert (setup.maximumInfoLengthTransmit, setup.maximumInfoLengthReceive) == (512, 256)
    assert (setup.windowSizeTransmit, setup.windowSizeReceive, setup.inactivityTimeout) == (1, 1, 90)
    port = GXDLMSIECLocalPortSetup("0.0.20.0.0.255")
    for attr in (2, 3, 4, 5):
        gs.read(port, attr)
    assert (int(port.defaultMode), int(port.defaultBaudrate), int(port.proposedBaudrate)) == (0, 0, 4)
    assert int(port.responseTime) == 1  # 200 ms: the minimum reaction time the port keeps
    from tests.dlms_gurux_client import DlmsClientError

    with pytest.raises(DlmsClientError):
        gs.read(port, 7)  # mode C password: never served
    rs485 = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                  ServerConfig(link="hdlc", baud=9600))()
    gs, _ = connect_in_memory(rs485, 17)
    names = {obj.logicalName for obj in rs485.server._settings.objects}
    assert "0.0.22.0.0.255" in names and "0.0.20.0.0.255" not in names


def test_registry_accepts_new_factories_and_refuses_duplicates():
    registry = default_registry()

    def prepayment(ctx):
        yield CosemEntry(ValueData("0.0.19.50.1.255", lambda: (axdr.UINT32, 5000)), Access(public=True))

    registry.add(prepayment)
    from meterd.cosem.config import ServerConfig
    from meterd.cosem.security import MemoryCounterStore
    from meterd.cosem.server import build_session_factory
    from tests.dlms_fakes import make_keyring

    session = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(registry=registry))()
    gs, _ = connect_in_memory(session, 16)
    limit = GXDLMSData("0.0.19.50.1.255")
    gs.read(limit, 2)
    assert limit.value == 5000
    bad = ObjectRegistry()
    bad.add(lambda ctx: [CosemEntry(GXDLMSData("0.0.1.2.3.255")), CosemEntry(GXDLMSData("0.0.1.2.3.255"))])
    with pytest.raises(ValueError, match="duplicate"):
        bad.build(None)  # type: ignore[arg-type]


def test_association_table():
    table = {(a.client_sap, a.mechanism, a.ciphered) for a in DEFAULT_ASSOCIATIONS}
    assert table == {(16, 0, False), (17, 1, False), (1, 5, True)}

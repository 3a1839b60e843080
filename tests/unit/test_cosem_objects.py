"""The OBIS map and the object registry (meterd.cosem.objects)."""

from __future__ import annotations

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

from meterd.core.energy import Derived, Quantity, obis_c
from meterd.core.reading import Channel
from meterd.cosem import axdr
from meterd.cosem.adapters import ValueData
from meterd.cosem.objects import (
    DEFAULT_ASSOCIATIONS,
    Access,
    CosemEntry,
    ObjectRegistry,
    default_registry,
)
from tests.dlms_fakes import FakeMeter
from tests.dlms_gurux_client import connect_in_memory
from tests.unit.test_cosem_server import _factory


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
               "0.0.43.0.3.255", "0.0.43.1.3.255", "0.0.41.0.0.255", "0.0.22.0.0.255", "1.0.99.1.0.255",
               "1.0.32.7.0.255", "1.0.91.7.0.255", "1.0.14.7.0.255", "1.0.13.7.0.255"):
        assert ln in names, ln


def test_registry_accepts_new_factories_and_refuses_duplicates():
    registry = default_registry()

    def prepayment(ctx):
        yield CosemEntry(ValueData("0.0.19.50.1.255", lambda: (axdr.UINT32, 5000)), Access(public=True))

    registry.add(prepayment)
    from meterd.cosem.security import MemoryCounterStore
    from meterd.cosem.server import build_session_factory
    from tests.dlms_fakes import make_keyring

    session = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(), registry=registry)()
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

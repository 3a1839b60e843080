"""The DLMS feature on the whole simulated meter with a suite-1 keys file (HLS-ECDSA): the links take
the key pairs and certificates from the :class:`~meterd.cosem.pki.Pki` another feature provides in
the registry; without one the meter says so once at start and refuses the management
association with one line, metering and the other associations going on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSRegister

from meterd.app.features import dlms
from meterd.cosem.pki import Pki
from tests.pki_fakes import SuiteRig, suite_keys
from tests.simmeter import SimMeter


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[SimMeter]:
    suite_keys(1, mechanism=7, path=tmp_path / "dlms-keys.toml").save()
    sim = SimMeter(tmp_path, display={"kind": "dummy"})
    yield sim
    sim.close()


def _served_by(rig: SuiteRig, meter: SimMeter) -> None:
    ctx = meter.daemon.context()
    rig.factories["wrapper"] = dlms.session_factory(ctx, "wrapper", "tcp")


def test_without_a_pki_the_suite_1_association_is_refused_with_clear_lines(
        meter: SimMeter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert dlms.find_pki(meter.daemon.context()) is None
    rig = SuiteRig(1, mechanism=7)
    _served_by(rig, meter)
    gs, _ = rig.gurux("wrapper", 1)
    with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
        gs.connect()
    refused = [r for r in caplog.records if "no PKI" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None
    reader, _ = rig.gurux("wrapper", 17)
    reader.connect()  # the LLS reader is served as before
    assert reader.read(GXDLMSRegister("1.0.1.8.0.255"), 2) is not None
    reader.close()


def test_with_a_pki_in_the_registry_hls_ecdsa_associates(meter: SimMeter) -> None:
    rig = SuiteRig(1, mechanism=7)
    assert rig.pki is not None
    meter.daemon.registry.provide(Pki, rig.pki, by="test")  # type: ignore[type-abstract]
    assert dlms.find_pki(meter.daemon.context()) is rig.pki
    _served_by(rig, meter)
    gs, transport = rig.gurux("wrapper", 1)
    gs.connect()
    assert gs.read(GXDLMSRegister("1.0.1.8.0.255"), 2) is not None
    gs.close()
    assert rig.pki.lookups >= 2  # the client's certificate looked up at the AARQ and at HLS pass 3
    assert transport.apdus[1][1][0][0] == 0xCF  # HLS pass 4 answered in a glo-action-response

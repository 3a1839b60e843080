"""The meter's PKI as the daemon wires it: the store under the state directory provided as the
meter's Pki, the v1 Security setup in the DLMS objects, ``GET /certificates`` and ``meterctl
certificates``."""

from __future__ import annotations

import os
import stat

from cryptography.hazmat.primitives.asymmetric import ec

from meterd.app.meterctl import certificates_table
from meterd.cosem.pki import KeyUse, Pki
from meterd.cosem.pki_store import PkiStore
from tests.pki_ca import TestCa, der
from tests.simmeter import SimMeter


def test_the_daemon_provides_the_store_and_lists_it(tmp_path):
    meter = SimMeter(tmp_path / "state")
    try:
        pki = meter.daemon.registry.find(Pki)  # type: ignore[type-abstract]
        assert isinstance(pki, PkiStore)
        assert pki.directory == tmp_path / "state" / "dlms_pki"
        assert stat.S_IMODE(os.stat(pki.directory).st_mode) == 0o700
        now = meter.clock.utc()
        ca = TestCa(not_before=now.replace(year=now.year - 1), not_after=now.replace(year=now.year + 5))
        pki.import_certificate(ca.der, now)
        pki.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 2)
        server = ca.sign_request(pki.certificate_request(KeyUse.DIGITAL_SIGNATURE, 2),
                                 not_before=now.replace(year=now.year - 1), not_after=now.replace(year=now.year + 1))
        pki.import_certificate(der(server), now)
        status, view = meter.daemon.api.routes[("GET", "/certificates")]({})
        assert status == 200
        assert [(c["entity"], c["use"]) for c in view["certificates"]] == [
            ("certification_authority", "other"), ("server", "digital_signature")]
        assert view["key_pairs"] == [{"use": "digital_signature", "suite": 2}]
        key = pki.own_key(KeyUse.DIGITAL_SIGNATURE, 2)
        assert isinstance(key.curve, ec.SECP384R1)
        assert f"{key.private_numbers().private_value:x}" not in str(view)
        text = certificates_table(view).splitlines()
        assert text[0].split() == ["entity", "use", "serial", "subject", "valid", "until", "(UTC)", "issuer"]
        assert text[2].startswith("server") and f"{server.serial_number:X}" in text[2]
        assert text[-1] == "server key pairs: digital_signature (suite 2)"
        factories = [f for f in meter.daemon.cosem_factories if hasattr(f, "replaces")]
        assert any("0.0.43.0.3.255" in f.replaces for f in factories)
    finally:
        meter.close()


def test_an_empty_store_says_so():
    assert certificates_table({"certificates": [], "key_pairs": []}).splitlines() == [
        "no certificates", "server key pairs: none"]


def test_meterctl_reads_the_listing_from_the_api(monkeypatch, capsys):
    from meterd.app import meterctl

    calls = []

    def answer(socket_path, method, path, body=None, timeout=10.0):
        calls.append((method, path))
        if path == "/certificates" and socket_path == "ok.sock":
            return 200, {"certificates": [], "key_pairs": [{"use": "key_agreement", "suite": 1}]}
        return 404, {"error": "no route"}

    monkeypatch.setattr(meterctl, "request", answer)
    assert meterctl.main(["certificates", "--socket", "ok.sock"]) == 0
    assert capsys.readouterr().out.splitlines() == ["no certificates", "server key pairs: key_agreement (suite 1)"]
    assert meterctl.main(["--socket", "off.sock", "certificates"]) == meterctl.EXIT_REFUSED
    assert "DLMS server is off" in capsys.readouterr().err
    assert calls == [("GET", "/certificates")] * 2

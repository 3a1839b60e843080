"""Security setup version 1 over DLMS (meterd.cosem.security_setup): key and certificate management
of suites 1 and 2 driven in-process by the gurux client (GXDLMSSecuritySetup) where it has the call,
the cryptography checked independently with ``cryptography``."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSSecuritySetup

from meterd.core import event_codes
from meterd.cosem.config import DEFAULT_ASSOCIATIONS, ServerConfig
from meterd.cosem.objects import default_registry
from meterd.cosem.pki import KeyUse
from meterd.cosem.pki_store import PkiStore
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.security_setup import security_setup_factory
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE, TEST_KEK, FakeMeter, ListSink, make_keyring
from tests.dlms_gurux_client import DlmsClientError, Encoded, GuruxSession, connect_in_memory
from tests.pki_ca import NOW, TestCa, client_key, der

SETUP = "0.0.43.0.3.255"
KEY_CHANGED, IMPORTED, REMOVED, GENERATED = (event_codes.code(n) for n in (
    "KEY_CHANGED", "CERTIFICATE_IMPORTED", "CERTIFICATE_REMOVED", "KEY_PAIR_GENERATED"))


class Rig:
    """A fake meter serving the v1 Security setup of ``suite`` from a store in ``directory``."""

    def __init__(self, directory, suite: int = 1) -> None:
        self.meter = FakeMeter()
        assert self.meter.now_utc() == NOW
        self.sink = ListSink()
        self.ring = make_keyring(directory / "keys.toml")
        self.pki = PkiStore(directory / "pki", SERVER_TITLE)
        self.suite = suite
        registry = default_registry()
        registry.add(security_setup_factory(self.pki, self.sink, lambda: self.ring.current.master_key,
                                            DEFAULT_ASSOCIATIONS, suite_of=lambda _cfg: self.suite,
                                            policy_of=lambda _cfg: self.ring.current.security_policy))
        config = ServerConfig(registry=registry, events=self.sink)
        self.factory = build_session_factory(self.meter, MemoryCounterStore(), self.ring, config)

    def manager(self, **kwargs) -> GuruxSession:
        return connect_in_memory(self.factory(), 1, **kwargs)[0]


def _provision(rig: Rig, gs: GuruxSession, ca: TestCa, client: ec.EllipticCurvePrivateKey):
    """CA, the server's signing key pair and certificate, the client's certificate, over DLMS."""
    setup = GXDLMSSecuritySetup(SETUP)
    gs.exchange(setup.importCertificate(gs.client, Encoded(ca.der)))
    gs.exchange(setup.generateKeyPair(gs.client, 0))
    csr = bytes(gs.exchange(setup.generateCertificate(gs.client, 0)))
    server_cert = ca.sign_request(csr)
    gs.exchange(setup.importCertificate(gs.client, Encoded(der(server_cert))))
    gs.exchange(setup.importCertificate(gs.client, Encoded(der(ca.issue(client.public_key(), CLIENT_TITLE)))))
    return setup, server_cert, csr


@pytest.mark.parametrize("suite", [1, 2])
def test_key_pair_request_import_export_remove_over_dlms(tmp_path, suite):
    rig = Rig(tmp_path, suite)
    gs = rig.manager()
    ca = TestCa(curve=ec.SECP384R1() if suite == 2 else None)
    setup, server_cert, csr = _provision(rig, gs, ca, client_key(ec.SECP384R1() if suite == 2 else None))
    request = x509.load_der_x509_csr(csr)
    assert request.is_signature_valid
    own = rig.pki.own_key(KeyUse.DIGITAL_SIGNATURE, suite)
    assert request.public_key().public_numbers() == own.public_key().public_numbers()
    assert isinstance(own.curve, ec.SECP256R1 if suite == 1 else ec.SECP384R1)
    assert gs.exchange(gs.client.read(setup, 3)) == suite
    certificates = gs.exchange(gs.client.read(setup, 6))
    assert [(c[0], c[1]) for c in certificates] == [(2, 3), (0, 0), (1, 0)]  # CA, server, client
    assert bytes(certificates[1][2]) == server_cert.serial_number.to_bytes(len(certificates[1][2]), "big")
    assert bytes(certificates[1][3]).decode() == ca.cert.subject.rfc4514_string()
    exported = gs.exchange(setup.exportCertificateByEntity(gs.client, 0, 0, bytearray(SERVER_TITLE)))
    assert bytes(exported) == der(server_cert)
    issuer = bytearray(ca.cert.subject.public_bytes())
    exported = gs.exchange(setup.exportCertificateBySerial(gs.client, server_cert.serial_number, issuer))
    assert bytes(exported) == der(server_cert)
    gs.exchange(setup.removeCertificateByEntity(gs.client, 1, 0, bytearray(CLIENT_TITLE)))
    assert [c.entity.name for c in rig.pki.certificates()] == ["CERTIFICATION_AUTHORITY", "SERVER"]
    with pytest.raises(DlmsClientError) as info:  # nothing left to remove
        gs.exchange(setup.removeCertificateByEntity(gs.client, 1, 0, bytearray(CLIENT_TITLE)))
    assert info.value.code == 11  # object-unavailable
    assert rig.sink.codes().count(IMPORTED) == 3 and rig.sink.codes().count(GENERATED) == 1
    removed = rig.sink.of(REMOVED)
    assert len(removed) == 1 and removed[0]["entity"] == "client" and removed[0]["serial"]
    assert rig.sink.of(GENERATED)[0]["use"] == "digital_signature"


def test_the_reader_and_the_public_client_may_not_manage(tmp_path):
    rig = Rig(tmp_path)
    setup = GXDLMSSecuritySetup(SETUP)
    for sap in (17, 16):
        gs = connect_in_memory(rig.factory(), sap)[0]
        for frames in (setup.generateKeyPair(gs.client, 0), setup.importCertificate(gs.client, Encoded(TestCa().der))):
            with pytest.raises(DlmsClientError):
                gs.exchange(frames)
    assert rig.pki.own_key(KeyUse.DIGITAL_SIGNATURE, 1) is None and rig.pki.certificates() == ()
    assert rig.sink.of(GENERATED) == [] and rig.sink.of(IMPORTED) == []


def test_bad_certificates_over_dlms_are_refused_once_each_without_traceback(tmp_path, caplog):
    from tests.unit.cosem.test_pki_store import _refusals

    rig = Rig(tmp_path)
    gs = rig.manager()
    ca = TestCa()
    setup = GXDLMSSecuritySetup(SETUP)
    gs.exchange(setup.importCertificate(gs.client, Encoded(ca.der)))
    caplog.clear()
    cases = _refusals(ca, rig.pki)
    del cases["oversized"]  # more than one PDU: refused by the store (test_pki_store), not sent here
    for name, (data, reason) in cases.items():
        with pytest.raises(DlmsClientError) as info:
            gs.method(setup, 6, bytearray(data), DataType.OCTET_STRING)
        assert info.value.code in (250, 12), name
        assert reason in caplog.records[-1].getMessage(), name
    assert len(rig.pki.certificates()) == 1
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == len(cases)
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert rig.sink.of(IMPORTED) == [{"serial": f"{ca.cert.serial_number:X}", "entity": "certification_authority",
                                      "use": "other", "client": 1}]
    gs.read(GXDLMSClock(), 2)  # the association goes on


def test_methods_need_their_parameter_types(tmp_path):
    rig = Rig(tmp_path)
    gs = rig.manager()
    setup = GXDLMSSecuritySetup(SETUP)
    for index, data, type_ in ((4, bytearray(b"x"), DataType.OCTET_STRING), (6, 5, DataType.UINT8),
                               (7, 3, DataType.ENUM), (4, 9, DataType.ENUM), (5, 0, DataType.ENUM)):
        with pytest.raises(DlmsClientError):
            gs.method(setup, index, data, type_)
    with pytest.raises(DlmsClientError) as info:  # suite 0 has no key pairs
        rig.suite = 0
        gs.method(setup, 4, 0, DataType.ENUM)
    assert info.value.code == 250


def test_security_activate_keeps_the_policy_and_key_transfer_still_works(tmp_path):
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    rig = Rig(tmp_path)
    gs = rig.manager()
    setup = GXDLMSSecuritySetup(SETUP)
    assert gs.exchange(gs.client.read(setup, 2)) == 0x6C
    gs.method(setup, 1, 0x6C, DataType.ENUM)
    for weaker_or_signed in (0x04, 0xFC):
        with pytest.raises(DlmsClientError):
            gs.method(setup, 1, weaker_or_signed, DataType.ENUM)
    new_gak = bytes(range(16, 32))
    payload = bytearray(b"\x01\x01\x02\x02\x16\x02\x09\x18") + aes_key_wrap(TEST_KEK, new_gak)
    gs.method(setup, 2, payload, DataType.ARRAY)
    assert rig.ring.current.authentication_key == new_gak
    assert rig.sink.of(KEY_CHANGED)


def _octets(data: bytes) -> bytes:
    n = len(data)
    return bytes((0x09, 0x81, n)) + data if n >= 0x80 else bytes((0x09, n)) + data


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes, n: int) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def test_key_agreement_derives_the_same_key_on_both_sides(tmp_path):
    """Client side done with ``cryptography`` alone: the meter's signature is checked against its
    certificate and the agreed key derived independently (concatenation KDF, SHA-256, suite 1)."""
    rig = Rig(tmp_path, 1)
    gs = rig.manager()
    ca, client = TestCa(), client_key()
    setup, server_cert, _ = _provision(rig, gs, ca, client)
    ephemeral = client_key()
    nums = ephemeral.public_key().public_numbers()
    q = nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
    data = q + _raw_sign(client, b"\x00" + q, 32)
    payload = bytearray(b"\x01\x01\x02\x02\x16\x00") + _octets(data)
    answer = gs.method(setup, 3, payload, DataType.ARRAY)
    key_id, server_data = answer[0][0], bytes(answer[0][1])
    assert key_id == 0 and len(server_data) == 128
    q_server, sig = server_data[:64], server_data[64:]
    server_pub = server_cert.public_key()
    server_pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                      b"\x00" + q_server, ec.ECDSA(hashes.SHA256()))
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + q_server)
    z = ephemeral.exchange(ec.ECDH(), peer)
    other = bytes.fromhex("60857405080300") + CLIENT_TITLE + SERVER_TITLE
    expected = ConcatKDFHash(hashes.SHA256(), 16, other).derive(z)
    assert rig.ring.current.global_unicast_key == expected
    assert [d["key"] for d in rig.sink.of(KEY_CHANGED)] == ["global_unicast_key"]
    fresh = rig.manager(guek=expected, invocation_counter=500)
    fresh.read(GXDLMSClock(), 2)  # the agreed key is the meter's from now on


def test_key_agreement_refuses_a_bad_signature_an_unknown_key_and_a_missing_certificate(tmp_path, caplog):
    rig = Rig(tmp_path, 1)
    gs = rig.manager()
    setup = GXDLMSSecuritySetup(SETUP)
    ephemeral, client = client_key(), client_key()
    nums = ephemeral.public_key().public_numbers()
    q = nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
    good = q + _raw_sign(client, b"\x00" + q, 32)
    before = rig.ring.current
    with pytest.raises(DlmsClientError):  # no client certificate held yet
        gs.method(setup, 3, bytearray(b"\x01\x01\x02\x02\x16\x00") + _octets(good), DataType.ARRAY)
    _provision(rig, gs, TestCa(), client)
    cases = {
        "signature of another key": q + _raw_sign(client_key(), b"\x00" + q, 32),
        "signed for another key id": q + _raw_sign(client, b"\x02" + q, 32),
        "truncated": good[:-1],
        "not a point": bytes(64) + good[64:],
    }
    for name, data in cases.items():
        with pytest.raises(DlmsClientError) as info:
            gs.method(setup, 3, bytearray(b"\x01\x01\x02\x02\x16\x00") + _octets(data), DataType.ARRAY)
        assert info.value.code == 250, name
    with pytest.raises(DlmsClientError) as info:  # broadcast key: the meter has none
        gs.method(setup, 3, bytearray(b"\x01\x01\x02\x02\x16\x01") + _octets(good), DataType.ARRAY)
    assert info.value.code == 3
    assert rig.ring.current == before and rig.sink.of(KEY_CHANGED) == []
    assert "Traceback" not in caplog.text


def _by_serial(serial: bytes, issuer: bytes) -> bytearray:
    """certificate_identification by serial: structure {enum 1, structure {octet-string, octet-string}}."""
    return bytearray(b"\x02\x02\x16\x01\x02\x02" + _octets(serial) + _octets(issuer))


def test_export_and_remove_by_serial_number_in_either_encoding(tmp_path):
    rig = Rig(tmp_path)
    gs = rig.manager()
    ca = TestCa()
    setup = GXDLMSSecuritySetup(SETUP)
    gs.exchange(setup.importCertificate(gs.client, Encoded(ca.der)))
    first = ca.issue(client_key().public_key(), CLIENT_TITLE, serial=0x0123456789)
    second = ca.issue(client_key().public_key(), bytes.fromhex("4758580000000002"), serial=0x80)
    for cert in (first, second):
        gs.exchange(setup.importCertificate(gs.client, Encoded(der(cert))))
    issuer_text = ca.cert.subject.rfc4514_string().encode()
    issuer_der = ca.cert.subject.public_bytes()
    exported = gs.method(setup, 7, _by_serial(bytes.fromhex("0123456789"), issuer_text), DataType.STRUCTURE)
    assert bytes(exported) == der(first)
    with pytest.raises(DlmsClientError) as info:  # the right serial from another issuer
        gs.method(setup, 8, _by_serial(bytes.fromhex("0123456789"), b"CN=Someone else"), DataType.STRUCTURE)
    assert info.value.code == 11
    gs.method(setup, 8, _by_serial(bytes.fromhex("02020080"), issuer_der), DataType.STRUCTURE)  # DER INTEGER 128
    gs.method(setup, 8, _by_serial(bytes.fromhex("0123456789"), issuer_der), DataType.STRUCTURE)
    assert [c.entity.name for c in rig.pki.certificates()] == ["CERTIFICATION_AUTHORITY"]
    assert [d["serial"] for d in rig.sink.of(REMOVED)] == ["80", "123456789"]
    with pytest.raises(DlmsClientError) as info:
        gs.method(setup, 8, bytearray(b"\x02\x02\x16\x05\x02\x00"), DataType.STRUCTURE)  # no such identification
    assert info.value.code == 12


def _random_data(rng, depth: int = 0) -> bytes:
    """A random A-XDR value: enum, unsigned, octet-string, or an array/structure of such."""
    kind = rng.randrange(5 if depth < 2 else 3)
    if kind == 0:
        return bytes((0x16, rng.randrange(256)))
    if kind == 1:
        return bytes((0x11, rng.randrange(256)))
    if kind == 2:
        return _octets(bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 8, 64, 128, 200)))))
    items = [_random_data(rng, depth + 1) for _ in range(rng.randrange(4))]
    return bytes((0x01 if kind == 3 else 0x02, len(items))) + b"".join(items)


def test_random_parameters_are_refused_and_the_association_goes_on(tmp_path, caplog):
    import random

    rig = Rig(tmp_path)
    gs = rig.manager()
    setup = GXDLMSSecuritySetup(SETUP)
    rng = random.Random(64)
    answered = 0
    for i in range(80):
        index = (1, 3, 4, 5, 6, 7, 8)[i % 7]
        try:
            gs.method(setup, index, bytearray(_random_data(rng)), DataType.ARRAY)
        except DlmsClientError as exc:
            assert exc.code in (3, 11, 12, 250)
        else:
            answered += 1
    assert answered == 0
    assert rig.pki.certificates() == () and rig.sink.of(KEY_CHANGED) == []
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text
    gs.read(GXDLMSClock(), 2)

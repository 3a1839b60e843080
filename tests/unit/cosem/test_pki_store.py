"""The key and certificate store of suites 1 and 2 (meterd.cosem.pki_store): file modes, atomic
writes that survive an interrupted write, reload after a restart, and the certificate checks."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hw import secret_file
from meterd.cosem.pki import CertificateEntity, KeyUse, Pki, PkiError
from meterd.cosem.pki_store import PkiStore
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.pki_ca import DAY, NOW, TestCa, client_key, der, rsa_certificate


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _provisioned(tmp_path, ca: TestCa | None = None) -> tuple[PkiStore, TestCa]:
    ca = ca or TestCa()
    store = PkiStore(tmp_path / "pki", SERVER_TITLE)
    store.import_certificate(ca.der, NOW)
    return store, ca


def test_the_store_is_a_pki_and_keeps_every_file_private(tmp_path):
    store, ca = _provisioned(tmp_path)
    assert isinstance(store, Pki)
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    store.import_certificate(der(ca.sign_request(store.certificate_request(KeyUse.DIGITAL_SIGNATURE, 1))), NOW)
    store.import_certificate(der(ca.issue(client_key().public_key(), CLIENT_TITLE)), NOW)
    root = tmp_path / "pki"
    dirs = [root, root / "keys", root / "certificates"]
    assert [_mode(d) for d in dirs] == [0o700] * 3
    files = [p for d in dirs[1:] for p in d.iterdir()]
    assert len(files) == 4 and all(_mode(p) == 0o600 for p in files)
    key = store.own_key(KeyUse.DIGITAL_SIGNATURE, 1)
    assert key is not None
    secret = hex(key.private_numbers().private_value)[2:]
    assert secret not in repr(store) and secret not in repr(store.held())


def test_a_restart_finds_keys_and_certificates_again(tmp_path):
    store, ca = _provisioned(tmp_path)
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 2)
    server = ca.sign_request(store.certificate_request(KeyUse.DIGITAL_SIGNATURE, 2))
    store.import_certificate(der(server), NOW)
    client = client_key()
    store.import_certificate(der(ca.issue(client.public_key(), CLIENT_TITLE)), NOW)
    again = PkiStore(tmp_path / "pki", SERVER_TITLE)
    assert again.problems == []
    assert again.certificates() == store.certificates()
    own = again.own_key(KeyUse.DIGITAL_SIGNATURE, 2)
    assert own is not None and isinstance(own.curve, ec.SECP384R1)
    assert own.public_key().public_numbers() == store.own_key(KeyUse.DIGITAL_SIGNATURE, 2).public_key().public_numbers()
    assert again.own_certificate(KeyUse.DIGITAL_SIGNATURE, 2) == server
    peer = again.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 1, NOW)
    assert peer is not None and peer.public_numbers() == client.public_key().public_numbers()
    assert again.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 1, NOW + 400 * DAY) is None  # expired by then
    assert again.peer_public_key(CLIENT_TITLE, KeyUse.KEY_AGREEMENT, 1, NOW) is None
    assert again.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 2, NOW) is None


def test_files_group_or_others_may_read_are_refused_at_load(tmp_path, caplog):
    store, ca = _provisioned(tmp_path)
    store.generate_key_pair(KeyUse.KEY_AGREEMENT, 1)
    key_file = next((tmp_path / "pki" / "keys").iterdir())
    key_file.chmod(0o644)
    (tmp_path / "pki").chmod(0o755)
    again = PkiStore(tmp_path / "pki", SERVER_TITLE)
    assert again.own_key(KeyUse.KEY_AGREEMENT, 1) is None
    assert len(again.problems) == 1 and "too open" in again.problems[0] and str(key_file) in again.problems[0]
    assert _mode(tmp_path / "pki") == 0o700
    assert "Traceback" not in caplog.text


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    store, ca = _provisioned(tmp_path)
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    before = store.own_key(KeyUse.DIGITAL_SIGNATURE, 1).public_key().public_numbers()

    def killed(src, dst):  # the process dies between the fsync of the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(secret_file.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    monkeypatch.undo()
    # what a kill -9 leaves: the temporary file beside the old one
    tmp = tmp_path / "pki" / "keys" / "digital_signature-suite1.p8.tmp"
    tmp.write_bytes(b"\x30\x82 torn")
    again = PkiStore(tmp_path / "pki", SERVER_TITLE)
    assert again.problems == []
    assert again.own_key(KeyUse.DIGITAL_SIGNATURE, 1).public_key().public_numbers() == before
    assert not tmp.exists()


def test_a_new_key_pair_drops_the_certificate_of_the_old_key(tmp_path):
    store, ca = _provisioned(tmp_path)
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    store.import_certificate(der(ca.sign_request(store.certificate_request(KeyUse.DIGITAL_SIGNATURE, 1))), NOW)
    assert store.own_certificate(KeyUse.DIGITAL_SIGNATURE, 1) is not None
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    assert store.own_certificate(KeyUse.DIGITAL_SIGNATURE, 1) is None
    assert len(list((tmp_path / "pki" / "certificates").iterdir())) == 1  # the CA only


def test_the_certificate_request_is_signed_with_the_servers_key(tmp_path):
    store = PkiStore(tmp_path / "pki", SERVER_TITLE)
    with pytest.raises(PkiError, match="generate it first"):
        store.certificate_request(KeyUse.KEY_AGREEMENT, 2)
    store.generate_key_pair(KeyUse.KEY_AGREEMENT, 2)
    csr = x509.load_der_x509_csr(store.certificate_request(KeyUse.KEY_AGREEMENT, 2))
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == store.own_key(KeyUse.KEY_AGREEMENT, 2).public_key().public_numbers()
    assert csr.subject.rfc4514_string() == f"CN={SERVER_TITLE.hex().upper()}"
    assert csr.extensions.get_extension_for_class(x509.KeyUsage).value.key_agreement
    assert csr.signature_hash_algorithm.name == "sha384"


def test_a_certificate_replaces_the_one_of_the_same_client_and_use(tmp_path):
    store, ca = _provisioned(tmp_path)
    store.import_certificate(der(ca.issue(client_key().public_key(), CLIENT_TITLE)), NOW)
    second = client_key()
    info = store.import_certificate(der(ca.issue(second.public_key(), CLIENT_TITLE, in_san=True)), NOW)
    assert info.entity is CertificateEntity.CLIENT and info.use is KeyUse.DIGITAL_SIGNATURE
    assert CLIENT_TITLE.hex().upper() in info.subject_alt_name
    assert [c.entity for c in store.certificates()] == [CertificateEntity.CERTIFICATION_AUTHORITY,
                                                        CertificateEntity.CLIENT]
    peer = store.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 1, NOW)
    assert peer.public_numbers() == second.public_key().public_numbers()


def test_export_and_remove_by_serial_and_issuer(tmp_path):
    store, ca = _provisioned(tmp_path)
    cert = ca.issue(client_key().public_key(), CLIENT_TITLE, KeyUse.KEY_AGREEMENT, serial=0x1234)
    store.import_certificate(der(cert), NOW)
    assert store.export_certificate(CertificateEntity.CLIENT, KeyUse.KEY_AGREEMENT, CLIENT_TITLE) == der(cert)
    assert store.export_certificate(CertificateEntity.OTHER, KeyUse.OTHER, None, 0x1234) == der(cert)
    with pytest.raises(PkiError):
        store.export_certificate(CertificateEntity.CLIENT, KeyUse.DIGITAL_SIGNATURE, CLIENT_TITLE)
    with pytest.raises(PkiError, match="no certificate"):
        store.remove_certificate(0x1234, "CN=Another CA")
    store.remove_certificate(0x1234, ca.cert.subject.rfc4514_string())
    assert [c.entity for c in store.certificates()] == [CertificateEntity.CERTIFICATION_AUTHORITY]
    assert len(list((tmp_path / "pki" / "certificates").iterdir())) == 1


def test_removing_the_ca_ends_the_trust_in_what_it_issued(tmp_path):
    store, ca = _provisioned(tmp_path)
    store.import_certificate(der(ca.issue(client_key().public_key(), CLIENT_TITLE)), NOW)
    store.remove_certificate(ca.cert.serial_number, ca.cert.subject.rfc4514_string())
    assert store.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 1, NOW) is None


def _refusals(ca: TestCa, store: PkiStore) -> dict[str, tuple[bytes, str]]:
    """Certificates the store must refuse, each with what the reason says."""
    title = CLIENT_TITLE
    good = ca.issue(client_key().public_key(), title)
    foreign = TestCa("Foreign CA")
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    stranger_key = client_key()
    sign_only = x509.KeyUsage(digital_signature=False, content_commitment=True, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
    both = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)
    return {
        "empty": (b"", "empty"),
        "garbage": (b"\x30\x03\x02\x01\x05", "not well-formed"),
        "truncated": (der(good)[:-20], "not well-formed"),
        "flipped length": (b"\x30\x84" + der(good)[2:], "not well-formed"),
        "oversized": (b"\x30" * 5000, "more than"),
        "P-521": (der(ca.issue(client_key(ec.SECP521R1()).public_key(), title)), "secp521r1"),
        "secp256k1": (der(ca.issue(client_key(ec.SECP256K1()).public_key(), title)), "secp256k1"),
        "RSA": (der(rsa_certificate(ca, title)), "not an elliptic-curve key"),
        "expired": (der(ca.issue(client_key().public_key(), title, not_before=NOW - 10 * DAY,
                                 not_after=NOW - DAY)), "expired"),
        "not yet valid": (der(ca.issue(client_key().public_key(), title, not_before=NOW + DAY)), "not valid yet"),
        "foreign CA": (der(foreign.issue(client_key().public_key(), title)), "not issued by a trusted CA"),
        "no key usage": (der(ca.issue(client_key().public_key(), title, use=None)), "no key usage"),
        "wrong key usage": (der(ca.issue(client_key().public_key(), title, key_usage=sign_only)), "neither"),
        "two uses": (der(ca.issue(client_key().public_key(), title, key_usage=both)), "both"),
        "no system title": (der(ca.issue(client_key().public_key(), None)), "no system title"),
        "server cert of another key": (der(ca.issue(stranger_key.public_key(), SERVER_TITLE)),
                                       "does not certify the meter's"),
    }


def test_each_bad_certificate_is_refused_with_its_reason_and_nothing_is_kept(tmp_path, caplog):
    store, ca = _provisioned(tmp_path)
    before = store.certificates()
    files = sorted((tmp_path / "pki" / "certificates").iterdir())
    for name, (data, reason) in _refusals(ca, store).items():
        with pytest.raises(PkiError) as info:
            store.import_certificate(data, NOW)
        assert reason in str(info.value), name
        assert store.certificates() == before, name
    assert sorted((tmp_path / "pki" / "certificates").iterdir()) == files
    assert "Traceback" not in caplog.text


def test_a_ca_must_be_valid_and_on_a_suite_curve(tmp_path):
    store = PkiStore(tmp_path / "pki", SERVER_TITLE)
    with pytest.raises(PkiError, match="expired"):
        store.import_certificate(TestCa(not_before=NOW - 20 * DAY, not_after=NOW - DAY).der, NOW)
    with pytest.raises(PkiError, match="secp521r1"):
        store.import_certificate(TestCa(curve=ec.SECP521R1()).der, NOW)
    store.import_certificate(TestCa(curve=ec.SECP384R1()).der, NOW)
    assert len(store.certificates()) == 1


def test_a_full_store_refuses_more(tmp_path, monkeypatch):
    from meterd.cosem import pki_store

    monkeypatch.setattr(pki_store, "MAX_CERTIFICATES", 2)
    store, ca = _provisioned(tmp_path)
    store.import_certificate(der(ca.issue(client_key().public_key(), CLIENT_TITLE)), NOW)
    other = bytes.fromhex("4758580000000002")
    with pytest.raises(PkiError, match="remove one first"):
        store.import_certificate(der(ca.issue(client_key().public_key(), other)), NOW)
    store.import_certificate(der(ca.issue(client_key().public_key(), CLIENT_TITLE)), NOW)  # a replacement fits


def test_a_restart_finishes_a_replacement_or_a_new_key_pair_cut_short(tmp_path, monkeypatch):
    from meterd.cosem import pki_store

    store, ca = _provisioned(tmp_path)
    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    store.import_certificate(der(ca.sign_request(store.certificate_request(KeyUse.DIGITAL_SIGNATURE, 1))), NOW)
    old = ca.issue(client_key().public_key(), CLIENT_TITLE, serial=7)
    new = ca.issue(client_key().public_key(), CLIENT_TITLE, serial=8)
    store.import_certificate(der(old), NOW)

    def killed(path):  # the process dies after the new file was written, before the old one goes
        raise KeyboardInterrupt

    monkeypatch.setattr(pki_store, "remove_secret_file", killed)
    with pytest.raises(KeyboardInterrupt):
        store.import_certificate(der(new), NOW)
    with pytest.raises(KeyboardInterrupt):
        store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
    monkeypatch.undo()
    assert len(list((tmp_path / "pki" / "certificates").iterdir())) == 4  # CA, server, both clients
    again = PkiStore(tmp_path / "pki", SERVER_TITLE)
    assert again.problems == []
    assert [(c.entity, c.serial_number) for c in again.certificates()] == [
        (CertificateEntity.CERTIFICATION_AUTHORITY, ca.cert.serial_number), (CertificateEntity.CLIENT, 8)]
    assert len(list((tmp_path / "pki" / "certificates").iterdir())) == 2


def test_mutated_certificates_are_refused_with_a_reason_or_kept_whole(tmp_path):
    """600 single-octet mutations, truncations and extensions of a good client certificate: each
    is a PkiError or (a mutation the signature does not cover cannot exist) never anything else."""
    import random

    store, ca = _provisioned(tmp_path)
    good = der(ca.issue(client_key().public_key(), CLIENT_TITLE))
    rng = random.Random(15)
    kept = 0
    for i in range(600):
        data = bytearray(good)
        if i % 3 == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif i % 3 == 1:
            data = data[:rng.randrange(len(data))]
        else:
            data[rng.randrange(len(data))] = rng.randrange(256)
            data += bytes(rng.randrange(4))
        try:
            store.import_certificate(bytes(data), NOW)
        except PkiError as exc:
            assert str(exc)
        else:
            kept += 1
            assert store.export_certificate(CertificateEntity.CLIENT, KeyUse.DIGITAL_SIGNATURE, CLIENT_TITLE) == \
                bytes(data)
    assert len(store.certificates()) <= 2

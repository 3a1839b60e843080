"""The DLMS feature on the whole simulated meter with suite-1/2 keys files: the links take the key
pairs and certificates from the meter's own :class:`~meterd.cosem.pki_store.PkiStore` (the
feature provides it, empty on a new meter). What HLS-ECDSA lacks (the whole store, the meter's
digital-signature key pair, the client's certificate) is said once at start and refuses the
management association with one clear line per reason, never counted toward the lockout, while
metering and the other associations go on. The Security setup 0-0:43.0.3.255 shows and applies
the suite and security policy of the keys file in force; key agreement on suite 2 agrees 32-octet
keys, checked with ``cryptography`` alone."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister, GXDLMSSecuritySetup

from meterd.app.features import dlms
from meterd.core import event_codes
from meterd.core.events import EventRecorder
from meterd.cosem.keys import load_keys
from meterd.cosem.pki import KeyUse, Pki
from meterd.cosem.pki_store import PkiStore
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, make_client
from tests.pki_ca import TestCa, der
from tests.pki_fakes import OctetTransport, suite_keys, use_hls_ecdsa
from tests.simmeter import SimMeter

SETUP = "0.0.43.0.3.255"
AUTHENTICATION_FAILURES, DECRYPTION_FAILURE, KEY_CHANGED = (
    event_codes.code(n) for n in ("AUTHENTICATION_FAILURES", "DECRYPTION_FAILURE", "KEY_CHANGED"))
YEAR = dt.timedelta(days=365)

MeterMaker = Callable[..., SimMeter]


@pytest.fixture
def make_meter(tmp_path: Path) -> Iterator[MeterMaker]:
    """A simulated meter whose keys file has ``suite`` and ``mechanism`` (5 HLS-GMAC, 7 HLS-ECDSA)."""
    made: list[SimMeter] = []

    def make(suite: int, mechanism: int, policy: int | None = None) -> SimMeter:
        suite_keys(suite, mechanism=mechanism, policy=policy, path=tmp_path / "dlms-keys.toml").save()
        made.append(SimMeter(tmp_path, display={"kind": "dummy"}))
        return made[-1]

    yield make
    for meter in made:
        meter.close()


class Management:
    """Management associations (client SAP 1) on fresh in-memory sessions of ``meter``'s TCP
    wrapper link, with the keys of its keys file; the invocation counter goes on above what the
    meter accepted."""

    def __init__(self, meter: SimMeter, suite: int) -> None:
        self.meter, self.suite = meter, suite
        self.sec = meter.service(dlms.DlmsSecurity)
        self.factory = dlms.session_factory(meter.daemon.context(), "wrapper", "tcp")

    def client(self, ecdsa: tuple[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey] | None = None,
               ) -> tuple[GuruxSession, OctetTransport]:
        """A gurux client on a new session (not associated yet); ``ecdsa``: (the meter's public key,
        the client's private key) to authenticate with HLS-ECDSA instead of HLS-GMAC."""
        keys = self.sec.keys.current
        client = make_client(1, guek=keys.global_unicast_key, gak=keys.authentication_key,
                             invocation_counter=self.sec.store.last_accepted("management/in") + 1)
        client.ciphering.securitySuite = self.suite
        if ecdsa is not None:
            use_hls_ecdsa(client, ecdsa[0], ecdsa[1], self.suite)
        transport = OctetTransport(self.factory())
        return GuruxSession(client, transport.send, transport.receive), transport

    def refused(self, ecdsa: tuple[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey]) -> None:
        gs, transport = self.client(ecdsa)
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            gs.connect()
        assert transport.apdus[-1][1][0][0] == 0x61  # answered with an AARE
        assert len(transport.apdus) == 1  # no HLS pass 3: the AARQ itself was refused

    def not_counted(self) -> None:
        """No authentication failure counted, none recorded: the lockout is not started."""
        lockout = self.sec.auth_lockout("tcp")
        assert lockout.failures(1, "") == 0 and lockout.remaining_s(1, "") == 0
        codes = [e.code for e in self.meter.service(EventRecorder).recent(500)]
        assert AUTHENTICATION_FAILURES not in codes and DECRYPTION_FAILURE not in codes


def _store(meter: SimMeter) -> PkiStore:
    pki = meter.daemon.registry.find(Pki)  # type: ignore[type-abstract]
    assert isinstance(pki, PkiStore)
    return pki


def _provision(meter: SimMeter, suite: int) -> tuple[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey]:
    """The meter's store given a CA, the meter's certified signature key and the client's
    certificate directly (over DLMS in tests/integration/test_dlms_suite2_provisioning.py);
    returns (the meter's public key, the client's private key)."""
    now, pki = meter.clock.utc(), _store(meter)
    curve = ec.SECP384R1() if suite == 2 else ec.SECP256R1()
    ca = TestCa(curve=curve, not_before=now - YEAR, not_after=now + 5 * YEAR)
    pki.import_certificate(ca.der, now)
    pki.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, suite)
    server = ca.sign_request(pki.certificate_request(KeyUse.DIGITAL_SIGNATURE, suite),
                             not_before=now - YEAR, not_after=now + YEAR)
    pki.import_certificate(der(server), now)
    client = ec.generate_private_key(curve)
    pki.import_certificate(der(ca.issue(client.public_key(), CLIENT_TITLE, not_before=now - YEAR,
                                        not_after=now + YEAR)), now)
    public = server.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public, client


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The records at INFO or above saying ``text``; none may carry a traceback."""
    found = [r for r in caplog.records if r.levelno >= logging.INFO and text in r.getMessage()]
    assert all(r.exc_info is None for r in found)
    return found


def _reader_still_served(meter: SimMeter) -> None:
    from tests.dlms_gurux_client import InMemoryTransport

    transport = InMemoryTransport(dlms.session_factory(meter.daemon.context(), "wrapper", "tcp")())
    reader = GuruxSession(make_client(17), transport.send, transport.receive)
    reader.connect()  # the LLS reader is served as before
    assert reader.read(GXDLMSRegister("1.0.1.8.0.255"), 2) is not None
    reader.close()


def test_without_a_pki_the_suite_1_association_is_refused_with_clear_lines(
        tmp_path: Path, make_meter: MeterMaker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / dlms.PKI_DIRECTORY).write_text("not a directory")  # the store cannot be made
    meter = make_meter(1, 7)
    assert dlms.find_pki(meter.daemon.context()) is None
    assert len(_lines(caplog, "DLMS keys and certificates (suites 1 and 2) off")) == 1
    assert len(_lines(caplog, "(PKI) are not available: ciphered associations are refused")) == 1
    management = Management(meter, 1)
    for _ in range(4):  # more than lockout_failures (3)
        management.refused((ec.generate_private_key(ec.SECP256R1()).public_key(),
                            ec.generate_private_key(ec.SECP256R1())))
    assert len(_lines(caplog, "no PKI")) == 1  # the next ones within the minute: debug lines only
    management.not_counted()
    _reader_still_served(meter)


def test_with_an_empty_pki_the_suite_1_association_is_refused_with_clear_lines(
        make_meter: MeterMaker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    meter = make_meter(1, 7)
    store = _store(meter)
    assert store.certificates() == () and store.own_key(KeyUse.DIGITAL_SIGNATURE, 1) is None
    at_start = _lines(caplog, "configured but the meter has no digital-signature key pair")
    assert len(at_start) == 1 and 'authentication = "hls-gmac"' in at_start[0].getMessage()
    management = Management(meter, 1)
    client = ec.generate_private_key(ec.SECP256R1())
    for _ in range(4):  # more than lockout_failures (3)
        management.refused((ec.generate_private_key(ec.SECP256R1()).public_key(), client))
    assert len(_lines(caplog, "no digital-signature key of the meter for suite 1")) == 1
    management.not_counted()

    store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)  # the meter's key, but no client certificate
    at_next_start = dlms.pki_missing(management.sec.keys.current, store)
    assert at_next_start is not None and "no client digital-signature certificate is held" in at_next_start
    meter.clock.advance(61)  # the next refused-AARQ event (and its warning) after the rate limit's window
    for _ in range(4):
        management.refused((ec.generate_private_key(ec.SECP256R1()).public_key(), client))
    refused = _lines(caplog, "no valid digital-signature certificate of client system title")
    assert len(refused) == 1 and CLIENT_TITLE.hex().upper() in refused[0].getMessage()
    management.not_counted()
    _reader_still_served(meter)


def test_with_the_meters_pki_provisioned_hls_ecdsa_associates(make_meter: MeterMaker,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_meter(1, 7)
    server_key, client = _provision(meter, 1)
    store = _store(meter)
    assert dlms.pki_missing(meter.service(dlms.DlmsSecurity).keys.current, store) is None  # nothing to say at start
    lookups: list[bytes] = []
    peer_public_key = store.peer_public_key

    def counted(title: bytes, *args: Any) -> ec.EllipticCurvePublicKey | None:
        lookups.append(title)
        return peer_public_key(title, *args)

    monkeypatch.setattr(store, "peer_public_key", counted)
    assert dlms.find_pki(meter.daemon.context()) is store
    gs, transport = Management(meter, 1).client((server_key, client))
    gs.connect()
    assert gs.read(GXDLMSRegister("1.0.1.8.0.255"), 2) is not None
    setup = GXDLMSSecuritySetup(SETUP)
    assert len(gs.read_raw(setup, 6)) == 3  # CA, the meter's, the client's
    exported = gs.method(setup, 7, bytearray(b"\x02\x02\x16\x00\x02\x03\x16\x00\x16\x00") + _octets(SERVER_TITLE),
                         DataType.STRUCTURE)  # export_certificate by entity: server, digital signature
    assert bytes(exported) == der(store.own_certificate(KeyUse.DIGITAL_SIGNATURE, 1))  # methods served under HLS-ECDSA
    gs.close()
    assert lookups[:2] == [CLIENT_TITLE] * 2  # the client's certificate looked up at the AARQ and at HLS pass 3
    assert transport.apdus[1][1][0][0] == 0xCF  # HLS pass 4 answered in a glo-action-response


def _octets(data: bytes) -> bytes:
    n = len(data)
    return bytes((0x09, 0x81, n)) + data if n >= 0x80 else bytes((0x09, n)) + data


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def test_the_security_setup_applies_the_suite_and_policy_of_the_keys_file(make_meter: MeterMaker) -> None:
    encrypted_only = 0x08 | 0x40  # encrypted requests and responses
    meter = make_meter(2, 5, policy=encrypted_only)
    management = Management(meter, 2)
    gs, _ = management.client()
    gs.connect()
    setup = GXDLMSSecuritySetup(SETUP)
    assert gs.read_raw(setup, 2) == encrypted_only and gs.read_raw(setup, 3) == 2
    gs.method(setup, 1, encrypted_only, DataType.ENUM)  # security_activate of the policy in force
    for other in (0x6C, 0x04 | encrypted_only, 0xFC):
        with pytest.raises(DlmsClientError) as info:
            gs.method(setup, 1, other, DataType.ENUM)
        assert info.value.code == 250
    gs.close()


def test_key_agreement_on_suite_2_agrees_a_32_octet_key(make_meter: MeterMaker) -> None:
    """The client's side with ``cryptography`` alone: its ephemeral P-384 key signed with SHA-384,
    the meter's answer checked against the meter's certificate, the key derived independently
    (concatenation KDF, SHA-384, AlgorithmID of AES-GCM-256)."""
    meter = make_meter(2, 5)
    server_key, client = _provision(meter, 2)
    management = Management(meter, 2)
    gs, _ = management.client()
    gs.connect()
    ephemeral = ec.generate_private_key(ec.SECP384R1())
    numbers = ephemeral.public_key().public_numbers()
    q = numbers.x.to_bytes(48, "big") + numbers.y.to_bytes(48, "big")
    payload = bytearray(b"\x01\x01\x02\x02\x16\x00") + _octets(q + _sign(client, b"\x00" + q))
    answer = gs.method(GXDLMSSecuritySetup(SETUP), 3, payload, DataType.ARRAY)
    key_id, server_data = answer[0][0], bytes(answer[0][1])
    assert key_id == 0 and len(server_data) == 192
    q_server, signature = server_data[:96], server_data[96:]
    server_key.verify(encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")),
                      b"\x00" + q_server, ec.ECDSA(hashes.SHA384()))
    z = ephemeral.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), b"\x04" + q_server))
    expected = ConcatKDFHash(hashes.SHA384(), 32, bytes.fromhex("60857405080301") + CLIENT_TITLE + SERVER_TITLE).derive(z)
    keys = management.sec.keys.current
    assert keys.global_unicast_key == expected and keys.security_suite == 2
    saved = load_keys(keys.path or Path())
    assert saved.global_unicast_key == expected and saved.security_suite == 2
    assert [e.detail.get("key") for e in meter.service(EventRecorder).recent(50) if e.code == KEY_CHANGED] == [
        "global_unicast_key"]
    fresh, _ = management.client()
    fresh.connect()  # the agreed key is the meter's from now on
    assert fresh.read(GXDLMSClock(), 2) is not None
    fresh.close()

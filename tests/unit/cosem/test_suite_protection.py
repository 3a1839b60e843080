"""Suites 1 and 2 beyond glo-ciphering (meterd.cosem.protection, .general_protection, .ecdsa_auth,
.keys): general-signing, general-ciphering with identified, wrapped and agreed keys, and the
security policy of version 1. The client side of every APDU here is built with ``cryptography``
alone (AES-GCM, AES key wrap, ECDH, the concatenation KDF, ECDSA), so the meter's code is checked
against an independent construction; the association itself is opened by the gurux client."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meterd.cosem import ecdsa_auth
from meterd.cosem.errors import KeyFileError
from meterd.cosem.keys import load_keys
from meterd.cosem.pki import KeyUse
from meterd.cosem.security import SecurityError, key_length, protect, unprotect
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.pki_fakes import SuiteRig, sign_low_s, suite_keys, verify_raw

ENERGY_GET = bytes.fromhex("C001C100030100010800FF0200")  # GET-request-normal 1-0:1.8.0.255 attribute 2
DECIPHERING_ERROR = b"\xd8\x01\x05"
POLICY_AE = 0x04 | 0x08 | 0x20 | 0x40
POLICY_SIGNED = POLICY_AE | 0x10 | 0x80


def _octets(value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes((len(value),)) + value


def _header(tid: bytes, originator: bytes = CLIENT_TITLE, recipient: bytes = SERVER_TITLE) -> bytes:
    return _octets(tid) + _octets(originator) + _octets(recipient) + b"\x00\x00"


def _gcm_seal(key: bytes, ak: bytes, title: bytes, sc: int, ic: int, plain: bytes, header: bytes = b"") -> bytes:
    enc = Cipher(algorithms.AES(key), modes.GCM(title + struct.pack(">I", ic))).encryptor()
    enc.authenticate_additional_data(bytes((sc,)) + ak + header)
    body = enc.update(plain) + enc.finalize()
    return bytes((sc,)) + struct.pack(">I", ic) + body + enc.tag[:12]


def _gcm_open(key: bytes, ak: bytes, title: bytes, payload: bytes, header: bytes = b"") -> bytes:
    dec = Cipher(algorithms.AES(key), modes.GCM(title + payload[1:5], payload[-12:], min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(payload[:1] + ak + header)
    return dec.update(payload[5:-12]) + dec.finalize()


def _glo_get(rig: SuiteRig, sc: int | None = None) -> bytes:
    payload = _gcm_seal(rig.ek, rig.ak, CLIENT_TITLE, 0x30 | rig.suite if sc is None else sc, rig.next_ic(),
                        ENERGY_GET)
    return b"\xc8" + _octets(payload) if len(payload) < 0x80 else b"\xc8\x81" + bytes((len(payload),)) + payload


def _signed(rig: SuiteRig, content: bytes, tid: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08") -> bytes:
    signed = b"\xdf" + _header(tid) + _octets(content)
    key = rig.client_keys[KeyUse.DIGITAL_SIGNATURE]
    return signed + _octets(sign_low_s(key, signed, rig.suite))


def _associated(suite: int, policy: int | None = None) -> tuple[SuiteRig, Any]:
    rig = SuiteRig(suite, mechanism=7 if suite else 5, policy=policy)
    gs, transport = rig.gurux("wrapper", 1)
    gs.connect()
    return rig, transport.session.server


def _energy_in(plain: bytes, rig: SuiteRig) -> None:
    value = rig.meter.registers[next(iter(rig.meter.registers))]
    assert plain[:2] == b"\xc4\x01" and plain[3] == 0 and value.to_bytes(8, "big")[-4:] in plain


# --- primitives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [0, 1, 2])
def test_protect_matches_aes_gcm_of_the_suite_key_length(suite: int) -> None:
    key, ak = os.urandom(key_length(suite)), os.urandom(key_length(suite))
    sealed = protect(0x30 | suite, key, ak, SERVER_TITLE, 9, ENERGY_GET)
    assert _gcm_open(key, ak, SERVER_TITLE, sealed) == ENERGY_GET
    assert unprotect(key, ak, SERVER_TITLE, sealed, suite)[2] == ENERGY_GET
    with pytest.raises(SecurityError, match="suite"):
        unprotect(key, ak, SERVER_TITLE, sealed, (suite + 1) % 3)  # another suite than the association's
    with pytest.raises(SecurityError, match="octets"):
        protect(0x30 | suite, os.urandom(24), ak, SERVER_TITLE, 9, ENERGY_GET)


@pytest.mark.parametrize("suite", [1, 2])
def test_meter_signatures_are_low_s_and_verify_with_cryptography(suite: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1() if suite == 1 else ec.SECP384R1())
    for i in range(8):
        signature = ecdsa_auth.sign(key, b"data %d" % i, suite)
        assert len(signature) == (64 if suite == 1 else 96)
        s = int.from_bytes(signature[len(signature) // 2:], "big")
        assert s <= ecdsa_auth.CURVE_ORDERS[suite] // 2
        verify_raw(key.public_key(), signature, b"data %d" % i, suite)
        ecdsa_auth.verify(key.public_key(), signature, b"data %d" % i, suite)


def test_keys_file_gains_suite_mechanism_and_policy_with_clear_length_errors(tmp_path: Any) -> None:
    path = tmp_path / "keys.toml"
    keys = suite_keys(2, mechanism=7, policy=POLICY_SIGNED, path=path)
    keys.save()
    loaded = load_keys(path)
    assert (loaded.security_suite, loaded.mechanism, loaded.security_policy) == (2, 7, POLICY_SIGNED)
    assert loaded.global_unicast_key == keys.global_unicast_key and len(loaded.master_key) == 32
    text = path.read_text().replace("security_suite = 2", "security_suite = 1")
    path.write_text(text)
    with pytest.raises(KeyFileError) as wrong:
        load_keys(path)
    message = str(wrong.value)
    assert str(path) in message and "32 octets" in message and "suite 1 (AES-128) needs 16" in message
    assert keys.global_unicast_key.hex().upper() not in message
    path.write_text(text.replace("security_suite = 1", "security_suite = 3"))
    with pytest.raises(KeyFileError, match="0, 1 or 2"):
        load_keys(path)
    with pytest.raises(KeyFileError, match="requests must be at least"):
        suite_keys(1, policy=0x20)


# --- general-signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [1, 2])
def test_a_signed_request_gets_a_signed_response(suite: int) -> None:
    rig, server = _associated(suite)
    answer = server.handle_apdu(1, _signed(rig, _glo_get(rig)))
    assert answer[0] == 0xDF
    pos = 1
    fields = []
    for _ in range(7):
        fields.append(answer[pos + 1:pos + 1 + answer[pos]])
        pos += 1 + answer[pos]
    tid, originator, recipient, _, _, content, signature = fields
    assert (tid, originator, recipient) == (b"\x01\x02\x03\x04\x05\x06\x07\x08", SERVER_TITLE, CLIENT_TITLE)
    signed = answer[:pos - 1 - len(signature)]
    assert rig.pki is not None
    verify_raw(rig.pki.server_public_key(KeyUse.DIGITAL_SIGNATURE, suite), signature, signed, suite)
    assert content[0] == 0xCC  # glo-get-response inside
    _energy_in(_gcm_open(rig.ek, rig.ak, SERVER_TITLE, content[2:]), rig)


def test_a_policy_demanding_signatures_refuses_unsigned_requests_and_signs_every_response() -> None:
    rig, server = _associated(1, POLICY_SIGNED)
    before = rig.store.last_accepted(f"management/in/{CLIENT_TITLE.hex().upper()}")
    assert server.handle_apdu(1, _glo_get(rig)) == DECIPHERING_ERROR
    assert rig.store.last_accepted(f"management/in/{CLIENT_TITLE.hex().upper()}") == before  # nothing used
    assert server.handle_apdu(1, _signed(rig, _glo_get(rig)))[0] == 0xDF
    assert server.associated


@pytest.mark.parametrize("sc", [0x11, 0x21])  # authenticated only, encrypted only (suite 1)
def test_a_request_below_the_policy_is_refused_without_using_its_counter(sc: int) -> None:
    rig, server = _associated(1)
    before = rig.next_ic()
    assert server.handle_apdu(1, _glo_get(rig, sc)) == DECIPHERING_ERROR
    assert rig.next_ic() == before
    answer = server.handle_apdu(1, _glo_get(rig))
    _energy_in(_gcm_open(rig.ek, rig.ak, SERVER_TITLE, answer[2:]), rig)


def test_general_signing_is_refused_in_suite_0() -> None:
    rig, server = _associated(0)
    rig.client_keys[KeyUse.DIGITAL_SIGNATURE] = ec.generate_private_key(ec.SECP256R1())
    rig.suite = 1  # signed as suite 1 would, the association being suite 0
    assert server.handle_apdu(1, _signed(rig, ENERGY_GET)) == DECIPHERING_ERROR
    assert server.associated


# --- general-ciphering ----------------------------------------------------------------------------


def _general_ciphering(rig: SuiteRig, key: bytes, key_info: bytes, tid: bytes) -> bytes:
    header = _header(tid)
    payload = _gcm_seal(key, rig.ak, CLIENT_TITLE, 0x30 | rig.suite, rig.next_ic(), ENERGY_GET, header)
    return b"\xdd" + header + key_info + _octets(payload)


def _open_general_ciphering(rig: SuiteRig, key: bytes, answer: bytes, tid: bytes) -> bytes:
    header = _header(tid, SERVER_TITLE, CLIENT_TITLE)
    assert answer[0] == 0xDD and answer[1:1 + len(header)] == header
    assert answer[1 + len(header)] == 0  # no key-info: the request's key
    payload = answer[3 + len(header):]
    assert answer[2 + len(header)] == len(payload)
    return _gcm_open(key, rig.ak, SERVER_TITLE, payload, header)


def _kdf(z: bytes, suite: int, tid: bytes) -> bytes:
    algorithm = bytes.fromhex("60857405080300" if suite == 1 else "60857405080301")
    other = algorithm + CLIENT_TITLE + _octets(tid) + SERVER_TITLE
    hash_ = hashes.SHA256() if suite == 1 else hashes.SHA384()
    return ConcatKDFHash(hash_, key_length(suite), other).derive(z)


@pytest.mark.parametrize("suite", [0, 1, 2])
def test_general_ciphering_with_identified_and_wrapped_keys(suite: int) -> None:
    rig, server = _associated(suite)
    tid = os.urandom(8)
    answer = server.handle_apdu(1, _general_ciphering(rig, rig.ek, b"\x01\x00\x00", tid))  # identified: unicast
    _energy_in(_open_general_ciphering(rig, rig.ek, answer, tid), rig)
    content_key = os.urandom(key_length(suite))
    wrapped = aes_key_wrap(rig.keys.current.master_key, content_key)
    answer = server.handle_apdu(1, _general_ciphering(rig, content_key, b"\x01\x01\x00" + _octets(wrapped), tid))
    _energy_in(_open_general_ciphering(rig, content_key, answer, tid), rig)
    assert server.handle_apdu(1, _general_ciphering(rig, rig.ek, b"\x01\x00\x01", tid)) == DECIPHERING_ERROR


@pytest.mark.parametrize("suite", [1, 2])
def test_general_ciphering_with_agreed_keys(suite: int) -> None:
    rig, server = _associated(suite)
    assert rig.pki is not None
    meter_ka = rig.pki.server_public_key(KeyUse.KEY_AGREEMENT, suite)
    tid = os.urandom(8)
    ephemeral = ec.generate_private_key(meter_ka.curve)  # one-pass Diffie-Hellman C(1e,1s)
    key = _kdf(ephemeral.exchange(ec.ECDH(), meter_ka), suite, tid)
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
    answer = server.handle_apdu(1, _general_ciphering(rig, key, b"\x01\x02\x01\x01" + _octets(point), tid))
    _energy_in(_open_general_ciphering(rig, key, answer, tid), rig)
    static = rig.client_keys[KeyUse.KEY_AGREEMENT]  # static unified model C(0e,2s)
    key = _kdf(static.exchange(ec.ECDH(), meter_ka), suite, tid)
    answer = server.handle_apdu(1, _general_ciphering(rig, key, b"\x01\x02\x01\x02\x00", tid))
    _energy_in(_open_general_ciphering(rig, key, answer, tid), rig)
    other_curve = ec.generate_private_key(ec.SECP384R1() if suite == 1 else ec.SECP256R1()).public_key()
    bad = other_curve.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
    assert server.handle_apdu(1, _general_ciphering(rig, key, b"\x01\x02\x01\x01" + _octets(bad), tid)) \
        == DECIPHERING_ERROR
    assert server.associated


# --- keys of the suite's length -----------------------------------------------------------------


def test_key_transfer_takes_keys_of_the_suite_length() -> None:
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap as wrap
    from gurux_dlms.enums import ErrorCode

    from meterd.cosem.key_transfer import KeyTransfer
    from meterd.cosem.keys import KeyRing

    ring = KeyRing(suite_keys(2), persist=False)
    transfer = KeyTransfer(ring)
    new = os.urandom(32)
    assert transfer.stage([(0, wrap(ring.current.master_key, os.urandom(16)))]) == int(ErrorCode.OTHER_REASON)
    assert transfer.stage([(0, wrap(ring.current.master_key, new))]) == int(ErrorCode.OK)
    assert list(transfer.apply()) == ["global_unicast_key"] and ring.current.global_unicast_key == new


@pytest.mark.parametrize("length, accepted", [(32, True), (16, False)])
def test_a_dedicated_key_of_suite_2_has_32_octets(length: int, accepted: bool) -> None:
    rig = SuiteRig(2, mechanism=5)
    dedicated = os.urandom(length)
    gs, transport = rig.gurux("wrapper", 1)
    gs.client.ciphering.dedicatedKey = bytearray(dedicated)
    if not accepted:
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            gs.connect()
        assert b"\xa2\x03\x02\x01\x01" in transport.apdus[0][1][0]
        return
    gs.connect()
    server = transport.session.server
    payload = _gcm_seal(dedicated, rig.ak, CLIENT_TITLE, 0x32, rig.next_ic(), ENERGY_GET)
    answer = server.handle_apdu(1, b"\xd0" + _octets(payload))  # ded-get-request
    assert answer[0] == 0xD4  # ded-get-response, under the dedicated key
    _energy_in(_gcm_open(dedicated, rig.ak, SERVER_TITLE, answer[2:]), rig)

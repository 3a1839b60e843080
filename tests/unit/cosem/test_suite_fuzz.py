"""Fuzzing the paths of security suites 1 and 2: HLS-ECDSA signatures that are malformed, short,
long, high-s, bit-flipped, made by another key or on another curve; client certificates that are
foreign, expired, not yet valid, on the wrong curve or of the wrong use (through the fake PKI);
general-signing and general-ciphering APDUs truncated at every length and with a bit flipped at
every octet. Each must be a clear refusal, never a crash: one log line without a traceback, the
association as it was (a refused HLS reply ends the association it was meant to complete, as
the Green Book asks, and counts as one authentication failure; its event 46 is rate-limited), no client invocation counter
used, and the next good request served."""

from __future__ import annotations

import datetime as dt
import logging
import os
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gurux_dlms import GXReplyData

from meterd.cosem.ecdsa_auth import CURVE_ORDERS
from meterd.cosem.pki import KeyUse
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.pki_fakes import SuiteRig, sign_low_s

UTC = dt.UTC
ENERGY_GET = bytes.fromhex("C001C100030100010800FF0200")
HLS_ACTION = bytes.fromhex("C301C1000F0000280000FF0101")  # action-request: 0-0:40.0.0.255 method 1, data


def _octets(value: bytes) -> bytes:
    return (bytes((len(value),)) if len(value) < 0x80 else bytes((0x81, len(value)))) + value


def _seal(rig: SuiteRig, plain: bytes, header: bytes = b"") -> bytes:
    ic = rig.next_ic()
    sc = 0x30 | rig.suite
    enc = Cipher(algorithms.AES(rig.ek), modes.GCM(CLIENT_TITLE + struct.pack(">I", ic))).encryptor()
    enc.authenticate_additional_data(bytes((sc,)) + rig.ak + header)
    body = enc.update(plain) + enc.finalize()
    return bytes((sc,)) + struct.pack(">I", ic) + body + enc.tag[:12]


def _open(rig: SuiteRig, apdu: bytes) -> bytes:
    payload = apdu[2:] if apdu[1] < 0x80 else apdu[3:]
    dec = Cipher(algorithms.AES(rig.ek), modes.GCM(SERVER_TITLE + payload[1:5], payload[-12:],
                                                   min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(payload[:1] + rig.ak)
    return dec.update(payload[5:-12]) + dec.finalize()


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("meterd.cosem") and r.levelno >= logging.INFO]


def _assert_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    records = _records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and "request failed" not in records[0].getMessage()
    caplog.clear()


# --- HLS-ECDSA signatures -----------------------------------------------------------------------


def _pending_hls(rig: SuiteRig) -> tuple[Any, bytes, bytes]:
    """A session whose AARQ (HLS-ECDSA) was accepted; (server, StoC, CtoS)."""
    gs, transport = rig.gurux("wrapper", 1)
    reply = GXReplyData()
    gs._block(gs.client.aarqRequest(), reply)
    gs.client.parseAareResponse(reply.data)
    return transport.session.server, bytes(gs.client.settings.stoCChallenge), bytes(gs.client.settings.ctoSChallenge)


def _variants(rig: SuiteRig, data: bytes) -> dict[str, bytes]:
    suite = rig.suite
    key = rig.client_keys[KeyUse.DIGITAL_SIGNATURE]
    good = sign_low_s(key, data, suite)
    half = len(good) // 2
    r, s = good[:half], int.from_bytes(good[half:], "big")
    flipped = bytearray(good)
    flipped[5] ^= 0x10
    other_curve = ec.generate_private_key(ec.SECP384R1() if suite == 1 else ec.SECP256R1())
    return {
        "empty": b"",
        "short": good[:-1],
        "long": good + b"\x00",
        "high-s": r + (CURVE_ORDERS[suite] - s).to_bytes(half, "big"),
        "zero": bytes(len(good)),
        "order": CURVE_ORDERS[suite].to_bytes(half, "big") * 2,
        "bit-flipped": bytes(flipped),
        "other key": sign_low_s(ec.generate_private_key(key.curve), data, suite),
        "other curve": sign_low_s(other_curve, data, 3 - suite),
        "other data": sign_low_s(key, data + b"x", suite),
    }


@pytest.mark.parametrize("suite", [1, 2])
def test_bad_hls_ecdsa_signatures_are_refused_counted_and_logged_once(suite: int,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meterd.cosem")
    rig = SuiteRig(suite, mechanism=7, lockout_failures=100)
    data = CLIENT_TITLE + SERVER_TITLE
    names = list(_variants(rig, data))
    for count, name in enumerate(names, 1):
        server, stoc, ctos = _pending_hls(rig)
        signature = _variants(rig, CLIENT_TITLE + SERVER_TITLE + stoc + ctos)[name]
        caplog.clear()
        request = _seal(rig, HLS_ACTION + b"\x09" + _octets(signature))
        answer = server.handle_apdu(1, b"\xcb" + _octets(request))
        plain = _open(rig, answer)
        assert plain[:2] == b"\xc7\x01" and plain[3] != 0, name  # action-response: refused
        assert not server.associated, name
        records = [r for r in _records(caplog) if r.levelno >= logging.WARNING]
        assert len(records) == 1 and "HLS-ECDSA" in records[0].getMessage(), (name, [r.getMessage() for r in records])
        assert records[0].exc_info is None
        assert server.lockout.failures(1, server.source) == count, name  # each one an authentication failure
    server, stoc, ctos = _pending_hls(rig)  # the good signature still passes
    good = sign_low_s(rig.client_keys[KeyUse.DIGITAL_SIGNATURE], CLIENT_TITLE + SERVER_TITLE + stoc + ctos, suite)
    answer = server.handle_apdu(1, b"\xcb" + _octets(_seal(rig, HLS_ACTION + b"\x09" + _octets(good))))
    assert _open(rig, answer)[3] == 0 and server.associated


# --- client certificates ------------------------------------------------------------------------


CERTIFICATES = {
    "none": {},
    "foreign CA": {"issuer_key": "foreign"},
    "expired": {"not_before": dt.datetime(2020, 1, 1, tzinfo=UTC), "not_after": dt.datetime(2026, 2, 1, tzinfo=UTC)},
    "not yet valid": {"not_before": dt.datetime(2027, 1, 1, tzinfo=UTC)},
    "wrong curve": {"curve_suite": "other"},
    "key agreement only": {"use": KeyUse.KEY_AGREEMENT},
}


@pytest.mark.parametrize("suite", [1, 2])
def test_unusable_client_certificates_refuse_the_aarq_without_counting(suite: int,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meterd.cosem")
    for name, options in CERTIFICATES.items():
        rig = SuiteRig(suite, mechanism=7, client_certificates=False)
        assert rig.pki is not None
        if options:
            kwargs: dict[str, Any] = dict(options)
            if kwargs.get("issuer_key") == "foreign":
                kwargs["issuer_key"] = ec.generate_private_key(ec.SECP256R1() if suite == 1 else ec.SECP384R1())
            if kwargs.get("curve_suite") == "other":
                kwargs["curve_suite"] = 3 - suite
            rig.pki.enrol_client(CLIENT_TITLE, suite, **kwargs)
        caplog.clear()
        gs, transport = rig.gurux("wrapper", 1)
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            gs.connect()
        aare = transport.apdus[0][1][0]
        assert b"\xa2\x03\x02\x01\x01" in aare and b"\xa1\x03\x02\x01\x03" in aare, name  # calling-AP-title
        assert 46 not in rig.sink.codes(), name
        _assert_one_clear_line(caplog)


def test_suites_1_and_2_without_a_pki_are_refused_with_a_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meterd.cosem")
    rig = SuiteRig(2, mechanism=7, pki=False)
    gs, transport = rig.gurux("wrapper", 1)
    with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
        gs.connect()
    assert b"\xa2\x03\x02\x01\x01" in transport.apdus[0][1][0]
    records = _records(caplog)
    assert len(records) == 1 and "no PKI" in records[0].getMessage() and records[0].exc_info is None
    assert 46 not in rig.sink.codes()


# --- truncated and bit-flipped general APDUs ----------------------------------------------------


def _header(tid: bytes) -> bytes:
    return _octets(tid) + _octets(CLIENT_TITLE) + _octets(SERVER_TITLE) + b"\x00\x00"


def _general_ciphering(rig: SuiteRig) -> bytes:
    header = _header(os.urandom(8))
    return b"\xdd" + header + b"\x01\x00\x00" + _octets(_seal(rig, ENERGY_GET, header))


def _general_signing(rig: SuiteRig, content: bytes) -> bytes:
    signed = b"\xdf" + _header(os.urandom(8)) + _octets(content)
    return signed + _octets(sign_low_s(rig.client_keys[KeyUse.DIGITAL_SIGNATURE], signed, rig.suite))


def _mutants(apdu: bytes) -> list[bytes]:
    truncated = [apdu[:n] for n in range(1, len(apdu))]
    flipped = [apdu[:i] + bytes((apdu[i] ^ (1 << (i % 8)),)) + apdu[i + 1:] for i in range(len(apdu))]
    return truncated + flipped


@pytest.mark.parametrize("kind", ["general-ciphering", "general-signing"])
@pytest.mark.parametrize("suite", [1, 2])
def test_truncated_and_bit_flipped_general_apdus_are_refused_without_state_change(
        suite: int, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    rig = SuiteRig(suite, mechanism=7)
    gs, transport = rig.gurux("wrapper", 1)
    gs.connect()
    server = transport.session.server
    caplog.set_level(logging.INFO, logger="meterd.cosem")
    caplog.clear()
    counter = f"management/in/{CLIENT_TITLE.hex().upper()}"
    good = _general_ciphering(rig)
    if kind == "general-signing":
        good = _general_signing(rig, good)
    before = rig.store.last_accepted(counter)
    for mutant in _mutants(good):
        answer = server.handle_apdu(1, mutant)
        assert answer is not None and answer[0] == 0xD8, mutant.hex()  # exception-response
        assert server.associated and rig.store.last_accepted(counter) == before, mutant.hex()
        _assert_one_clear_line(caplog)
    answer = server.handle_apdu(1, good)  # the intact APDU is still served: nothing moved
    assert answer[0] == (0xDF if kind == "general-signing" else 0xDD)
    assert rig.store.last_accepted(counter) == before + 1

"""Security suites 1 and 2 with the gurux client (HLS-ECDSA, AES-GCM-128 / AES-GCM-256), checked
a second time with ``cryptography`` alone, independently of both gurux and the meter's code.

The gurux client associates with HLS mechanism 7 and reads the clock, the active energy and the
load profile by range through the TCP wrapper (in process, octet by octet). Then every APDU it
exchanged is re-checked from the captured octets: the meter's f(CtoS) signature over
ST_S || ST_C || CtoS || StoC verifies with the meter's public key (and the client's f(StoC) with
the client's), and every ciphered response decrypts with AES-GCM under the suite's key length to
the plain xDLMS response of its request. gurux's ECDSA needs the client-side patches of
:mod:`tests.gurux_ecdsa_patches` (P-384 hash, low-s signatures, no key dump)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.cosem.pki import KeyUse
from tests import gurux_ecdsa_patches
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.dlms_gurux_client import ber_element
from tests.pki_fakes import SuiteRig, verify_raw

pytestmark = pytest.mark.interop
UTC = dt.UTC
AUTH_VALUE, STOC_TAG = 0xAC, 0xAA


def _gcm_open(rig: SuiteRig, title: bytes, apdu: bytes) -> tuple[int, bytes]:
    """(SC, plain) of a glo-ciphered APDU (``tag, length, SC, IC, ciphertext, 12-octet tag``) or a
    general-glo-ciphering one (``0xDB, 8, system title, length, SC, ...``) from ``title``."""
    pos = 1
    if apdu[0] == 0xDB:
        assert apdu[1:10] == b"\x08" + title
        pos = 10
    first = apdu[pos]
    start = pos + 1 if first < 0x80 else pos + 1 + (first & 0x7F)
    length = first if first < 0x80 else int.from_bytes(apdu[pos + 1:start], "big")
    payload = apdu[start:]
    assert len(payload) == length
    sc, ic, body = payload[0], payload[1:5], payload[5:]
    decryptor = Cipher(algorithms.AES(rig.ek), modes.GCM(title + ic, body[-12:], min_tag_length=12)).decryptor()
    decryptor.authenticate_additional_data(bytes((sc,)) + rig.ak)
    return sc, decryptor.update(body[:-12]) + decryptor.finalize()


@pytest.mark.parametrize("suite", [1, 2])
def test_gurux_reads_through_hls_ecdsa_and_the_cryptography_checks_out(suite: int) -> None:
    gurux_ecdsa_patches.apply()
    rig = SuiteRig(suite, mechanism=7)
    assert len(rig.ek) == (32 if suite == 2 else 16)
    gs, transport = rig.gurux("wrapper", 1)
    gs.connect()
    assert gs.read(GXDLMSClock(), 2).value.astimezone(UTC) == rig.meter.now_utc()
    assert gs.read(GXDLMSRegister("1.0.1.8.0.255"), 2) == rig.meter.registers[next(iter(rig.meter.registers))]
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    start, end = dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert len(gs.rows_by_range(pg, start, end)) == 49
    gs.close()

    (aarq, (aare,)), (hls_request, (hls_response,)) = transport.apdus[0], transport.apdus[1]
    ctos, stoc = ber_element(aarq, AUTH_VALUE), ber_element(aare, STOC_TAG)
    assert bytes.fromhex("8907608574050802") + b"\x07" in aare  # mechanism 7 named in the AARE
    # pass 3: the client's signature, checked with the client's certificate key
    sc, plain = _gcm_open(rig, CLIENT_TITLE, hls_request)
    assert sc == 0x30 | suite and plain[0] == 0xC3  # action-request, method 1 of 0-0:40.0.0.255
    size = 64 if suite == 1 else 96
    f_stoc = plain[-size:]
    verify_raw(rig.client_keys[KeyUse.DIGITAL_SIGNATURE].public_key(), f_stoc,
               CLIENT_TITLE + SERVER_TITLE + stoc + ctos, suite)
    # pass 4: the meter's signature, checked with the meter's public key
    sc, plain = _gcm_open(rig, SERVER_TITLE, hls_response)
    assert sc == 0x30 | suite and plain[:2] == b"\xc7\x01" and plain[3] == 0  # action-response, success
    assert plain[-size - 2:-size] == bytes((0x09, size))  # return data: octet-string f(CtoS)
    f_ctos = plain[-size:]
    assert rig.pki is not None
    verify_raw(rig.pki.server_public_key(KeyUse.DIGITAL_SIGNATURE, suite), f_ctos,
               SERVER_TITLE + CLIENT_TITLE + ctos + stoc, suite)
    # every later request and response opens with the suite's key, independently of gurux
    for request, answers in transport.apdus[2:-1]:
        _, asked = _gcm_open(rig, CLIENT_TITLE, request)
        sc, answered = _gcm_open(rig, SERVER_TITLE, answers[0])
        assert sc == 0x30 | suite
        assert asked[0] == 0xC0 and answered[0] == 0xC4 and answered[2] == asked[2]  # GET, same invoke-id


def test_the_gurux_client_patches_still_fix_stock_defects() -> None:
    gurux_ecdsa_patches.apply()
    assert gurux_ecdsa_patches.DEFECTS_IN_STOCK == {"p384_hash": True, "prints_private_key": True}

"""A suite-2 meter provisioned over DLMS and serving HLS-ECDSA, end to end on the real daemon
(:class:`tests.simmeter.SimMeter`, the DLMS feature's own wrapper sessions in memory) with the
gurux client (a client this project did not write).

The meter starts with a keys file of security suite 2 (32-octet keys, HLS-GMAC) and an empty PKI.
The operator, in a management association with HLS-GMAC on suite 2, imports a throwaway CA
(P-384), has the meter generate its digital-signature key pair, fetches its PKCS #10 request, has
the CA sign it, imports the meter's certificate and the head end's. Then the keys file is switched
to ``authentication = "hls-ecdsa"`` and the meter restarted (the keys file is read at start); the
head end associates with HLS-ECDSA (P-384, SHA-384) and reads the clock, the active energy and
the load profile by range. After another restart the keys and certificates are still there (files
of mode 0600 in a directory of mode 0700) and HLS-ECDSA still works. The head end then removes its
own certificate, and its next association is refused with one clear line, not counted toward the
lockout. The meter's signatures (its certificate request, HLS pass 4 before and after the restart)
are verified with ``cryptography`` alone, from the octets exchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from gurux_dlms.objects import (
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
    GXDLMSSecuritySetup,
)

from meterd.app.features import dlms
from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.cosem.acse import MECH_HLS_ECDSA, MECH_HLS_GMAC
from meterd.cosem.keys import load_keys
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.dlms_gurux_client import Encoded, GuruxSession, InMemoryTransport, ber_element, make_client
from tests.pki_ca import TestCa, der
from tests.pki_fakes import OctetTransport, suite_keys, use_hls_ecdsa
from tests.simmeter import SimMeter

pytestmark = pytest.mark.interop
UTC = dt.UTC
YEAR = dt.timedelta(days=365)
SETUP = "0.0.43.0.3.255"
PROFILE_PERIOD_S = 60
AUTH_VALUE, STOC_TAG = 0xAC, 0xAA


def start_meter(state_dir: Path) -> SimMeter:
    """The meter on ``state_dir`` (a restart when it ran there before), load profile every minute."""
    return SimMeter(state_dir, display={"kind": "dummy"}, revenue={"profile_period_s": PROFILE_PERIOD_S})


class HeadEnd:
    """The head end: a public association reads the frame counter 0-0:43.1.3.255 first (after a
    restart the meter has moved it on), then the management association (client SAP 1) on suite 2
    goes on above it, with HLS-GMAC or, given the keys, HLS-ECDSA. Every association runs on a
    fresh session of the meter's TCP wrapper link; ``transport.apdus`` keeps what it exchanged."""

    def __init__(self, keys_path: Path) -> None:
        self.keys_path = keys_path
        self.client_key: ec.EllipticCurvePrivateKey | None = None
        self.meter_key: ec.EllipticCurvePublicKey | None = None

    def _session(self, meter: SimMeter) -> Any:
        return dlms.session_factory(meter.daemon.context(), "wrapper", "tcp")()

    def frame_counter(self, meter: SimMeter) -> int:
        transport = InMemoryTransport(self._session(meter))
        public = GuruxSession(make_client(16), transport.send, transport.receive)
        public.connect()
        value = int(public.read_raw(GXDLMSData("0.0.43.1.3.255"), 2))
        public.close()
        return value

    def client(self, meter: SimMeter, ecdsa: bool) -> tuple[GuruxSession, OctetTransport]:
        """A management client on a new session, not associated yet."""
        keys = load_keys(self.keys_path)  # what the operator provisioned the head end with
        client = make_client(1, guek=keys.global_unicast_key, gak=keys.authentication_key,
                             invocation_counter=self.frame_counter(meter) + 1)
        client.ciphering.securitySuite = 2
        if ecdsa:
            assert self.meter_key is not None and self.client_key is not None
            use_hls_ecdsa(client, self.meter_key, self.client_key, 2)
        transport = OctetTransport(self._session(meter))
        return GuruxSession(client, transport.send, transport.receive), transport

    def associate(self, meter: SimMeter, ecdsa: bool) -> tuple[GuruxSession, OctetTransport]:
        gs, transport = self.client(meter, ecdsa)
        gs.connect()
        return gs, transport


def _meters_hls_signature(transport: OctetTransport, ek: bytes, ak: bytes) -> tuple[bytes, bytes]:
    """(the data the meter signed at HLS pass 4, its signature r || s) from the octets exchanged:
    ST_S || ST_C || CtoS || StoC, and f(CtoS) out of the glo-action-response opened with
    AES-GCM-256 (the suite's 32-octet key, IV = ST_S || IC, additional data SC || AK, 12-octet tag)."""
    (aarq, (aare,)), (_, (pass4,)) = transport.apdus[0], transport.apdus[1]
    ctos, stoc = ber_element(aarq, AUTH_VALUE), ber_element(aare, STOC_TAG)
    assert pass4[0] == 0xCF and pass4[1] < 0x80 and len(pass4) == 2 + pass4[1]
    sc, ic, body = pass4[2], pass4[3:7], pass4[7:]
    assert sc == 0x30 | 2  # authenticated and encrypted, suite 2
    decryptor = Cipher(algorithms.AES(ek), modes.GCM(SERVER_TITLE + ic, body[-12:], min_tag_length=12)).decryptor()
    decryptor.authenticate_additional_data(bytes((sc,)) + ak)
    plain = decryptor.update(body[:-12]) + decryptor.finalize()  # a 12-octet tag
    assert plain[:2] == b"\xc7\x01" and plain[3] == 0 and plain[-98:-96] == b"\x09\x60"  # success, 96 octets
    assert len(stoc) == 32  # HLS-ECDSA challenge
    return SERVER_TITLE + CLIENT_TITLE + ctos + stoc, plain[-96:]


def _verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """The meter's signature r || s (P-384, SHA-384) checked with ``cryptography`` alone."""
    der_signature = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    key.verify(der_signature, data, ec.ECDSA(hashes.SHA384()))


def _provision(meter: SimMeter, head_end: HeadEnd) -> x509.Certificate:
    """Everything over DLMS in one HLS-GMAC association; returns the meter's certificate."""
    now = meter.clock.utc()
    gs, _ = head_end.associate(meter, ecdsa=False)
    setup = GXDLMSSecuritySetup(SETUP)
    assert gs.exchange(gs.client.read(setup, 3)) == 2 and not gs.exchange(gs.client.read(setup, 6))  # suite 2, none held
    ca = TestCa("Throwaway head-end CA", curve=ec.SECP384R1(), not_before=now - YEAR, not_after=now + 5 * YEAR)
    gs.exchange(setup.importCertificate(gs.client, Encoded(ca.der)))
    gs.exchange(setup.generateKeyPair(gs.client, 0))
    csr_der = bytes(gs.exchange(setup.generateCertificate(gs.client, 0)))
    csr = x509.load_der_x509_csr(csr_der)
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP384R1)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SERVER_TITLE.hex().upper()
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA384)
    public.verify(csr.signature, csr.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA384()))  # signed with the new key
    server = ca.sign_request(csr_der, not_before=now - YEAR, not_after=now + YEAR)
    gs.exchange(setup.importCertificate(gs.client, Encoded(der(server))))
    head_end.client_key = ec.generate_private_key(ec.SECP384R1())
    client_cert = ca.issue(head_end.client_key.public_key(), CLIENT_TITLE, not_before=now - YEAR, not_after=now + YEAR)
    gs.exchange(setup.importCertificate(gs.client, Encoded(der(client_cert))))
    held = gs.exchange(gs.client.read(setup, 6))
    assert [(c[0], c[1]) for c in held] == [(2, 3), (0, 0), (1, 0)]  # CA, the meter's, the head end's
    gs.close()
    key = server.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.public_numbers() == public.public_numbers()
    head_end.meter_key = key
    return server


def _modes(directory: Path) -> set[tuple[str, int]]:
    """(kind, mode) of everything under ``directory``."""
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(os.stat(p).st_mode)) for p in directory.rglob("*")}


def test_a_suite_2_meter_provisioned_over_dlms_serves_hls_ecdsa_across_restarts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys_path = tmp_path / "dlms-keys.toml"
    suite_keys(2, mechanism=MECH_HLS_GMAC, path=keys_path).save()
    head_end = HeadEnd(keys_path)
    meter = start_meter(tmp_path)
    try:
        assert meter.daemon.api.routes[("GET", "/certificates")]({}) == (200, {"certificates": [], "key_pairs": []})
        meter.run(600, cycle_s=20)  # ten load profile rows
        _provision(meter, head_end)
        status, view = meter.daemon.api.routes[("GET", "/certificates")]({})
        assert status == 200 and view["key_pairs"] == [{"use": "digital_signature", "suite": 2}]
    finally:
        meter.close()

    # the operator switches the management association to HLS-ECDSA; the keys file is read at start
    dataclasses.replace(load_keys(keys_path), mechanism=MECH_HLS_ECDSA).save()
    meter = start_meter(tmp_path)
    try:
        gs, transport = head_end.associate(meter, ecdsa=True)
        assert gs.read(GXDLMSClock(), 2).value.astimezone(UTC) == meter.clock.utc()
        register = GXDLMSRegister("1.0.1.8.0.255")
        gs.read(register, 3)
        gs.read(register, 2)
        assert register.value == pytest.approx(meter.meter.registers.snapshot()[(Quantity.ACTIVE_IMPORT,
                                                                                   Channel.TOTAL)] / 1000)
        assert register.value > 0
        profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
        gs.read(profile, 3)
        start = dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
        rows = gs.rows_by_range(profile, start, start + dt.timedelta(minutes=9))
        assert [row[0].value.astimezone(UTC) for row in rows] == [
            start + dt.timedelta(minutes=n) for n in range(10)]
        gs.close()
        keys = load_keys(keys_path)
        assert len(keys.global_unicast_key) == 32
        assert head_end.meter_key is not None
        _verify(head_end.meter_key, *reversed(_meters_hls_signature(transport, keys.global_unicast_key,
                                                                     keys.authentication_key)))
    finally:
        meter.close()

    meter = start_meter(tmp_path)  # restarted: the keys and certificates are read back from the data partition
    try:
        assert _modes(tmp_path / dlms.PKI_DIRECTORY) == {("dir", 0o700), ("file", 0o600)}
        assert len(list((tmp_path / dlms.PKI_DIRECTORY).rglob("*.der"))) == 3
        gs, transport = head_end.associate(meter, ecdsa=True)
        assert gs.read(GXDLMSClock(), 2).value.astimezone(UTC) == meter.clock.utc()
        keys = load_keys(keys_path)
        _verify(head_end.meter_key, *reversed(_meters_hls_signature(transport, keys.global_unicast_key,
                                                                     keys.authentication_key)))
        setup = GXDLMSSecuritySetup(SETUP)
        gs.exchange(setup.removeCertificateByEntity(gs.client, 1, 0, bytearray(CLIENT_TITLE)))  # its own certificate
        gs.close()

        caplog.clear()
        caplog.set_level(logging.INFO)
        refused, transport = head_end.client(meter, ecdsa=True)
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            refused.connect()
        assert len(transport.apdus) == 1  # the AARQ refused, no HLS pass 3
        aare = transport.apdus[0][1][0]
        assert aare[0] == 0x61 and bytes.fromhex("A203020101") in aare  # result: rejected-permanent
        lines = [r for r in caplog.records if r.levelno >= logging.INFO and "association refused" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert (f"no valid digital-signature certificate of client system title {CLIENT_TITLE.hex().upper()} "
                "for suite 2") in lines[0].getMessage()
        lockout = meter.service(dlms.DlmsSecurity).auth_lockout("tcp")
        assert lockout.failures(1, "") == 0  # not an authentication failure
    finally:
        meter.close()

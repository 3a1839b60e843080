"""An in-memory :class:`meterd.cosem.pki.Pki` for the tests of security suites 1 and 2.

Every key is made with ``cryptography`` when a test runs (throwaway, never stored): a
certification authority per suite, the meter's key pairs, and clients whose certificates carry
their system title as the subject common name (hex), issued by that CA or, for the refusal
tests, by a foreign one, expired, not yet valid or on the other suite's curve. ``peer_public_key``
applies the port's rules: valid at the given time, the right use and curve, issued by a trusted
CA (the signature checked).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meterd.cosem.pki import (
    CertificateEntity,
    CertificateInfo,
    KeyUse,
    PkiError,
    curve_of_suite,
    hash_of_suite,
    suite_of_curve,
)
from meterd.cosem.pki_store import parse_certificate, title_text

VALID_FROM = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
VALID_UNTIL = dt.datetime(2035, 1, 1, tzinfo=dt.UTC)
_USAGE = {KeyUse.DIGITAL_SIGNATURE: "digital_signature", KeyUse.KEY_AGREEMENT: "key_agreement"}


@dataclass
class _Held:
    entity: CertificateEntity
    use: KeyUse
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(subject: str, public_key: ec.EllipticCurvePublicKey, use: KeyUse | None,
                     issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
                     not_before: dt.datetime = VALID_FROM, not_after: dt.datetime = VALID_UNTIL) -> x509.Certificate:
    """An X.509 certificate of ``public_key`` for ``use`` signed by ``issuer_key``."""
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    if ca:
        flags["key_cert_sign"] = flags["digital_signature"] = True
    elif use is not None:
        flags[_USAGE[use]] = True
    suite = suite_of_curve(issuer_key.curve) or 1
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**flags), critical=True)
            .sign(issuer_key, hash_of_suite(suite)))


class FakePki:
    """The meter's key pairs and the certificates it trusts, in memory (one CA per suite)."""

    def __init__(self, server_title: bytes) -> None:
        """A PKI of the meter with system title ``server_title``: one CA per suite, no keys yet."""
        self.server_title = server_title
        self.ca_keys = {suite: ec.generate_private_key(curve_of_suite(suite)) for suite in (1, 2)}
        self._own: dict[tuple[KeyUse, int], ec.EllipticCurvePrivateKey] = {}
        self._held: list[_Held] = []
        for suite, key in self.ca_keys.items():
            cert = make_certificate(f"PMM test CA suite {suite}", key.public_key(), None,
                                    f"PMM test CA suite {suite}", key, ca=True)
            self._held.append(_Held(CertificateEntity.CERTIFICATION_AUTHORITY, KeyUse.DIGITAL_SIGNATURE, cert))
        self.lookups = 0

    # --- helpers of the tests -------------------------------------------------------------------

    def give_server_keys(self, *suites: int) -> None:
        """Make the meter's digital-signature and key-agreement key pairs of ``suites``."""
        for suite in suites:
            for use in (KeyUse.DIGITAL_SIGNATURE, KeyUse.KEY_AGREEMENT):
                self.generate_key_pair(use, suite)

    def enrol_client(self, title: bytes, suite: int, use: KeyUse = KeyUse.DIGITAL_SIGNATURE, *,
                     issuer_key: ec.EllipticCurvePrivateKey | None = None,
                     curve_suite: int | None = None, not_before: dt.datetime = VALID_FROM,
                     not_after: dt.datetime = VALID_UNTIL) -> ec.EllipticCurvePrivateKey:
        """A new client key pair for ``use`` whose certificate (CN = title in hex) the meter holds;
        ``issuer_key`` another CA's key (a foreign certificate), ``curve_suite`` the curve of
        another suite, ``not_before``/``not_after`` its validity. Returns the client's private key."""
        key = ec.generate_private_key(curve_of_suite(curve_suite or suite))
        issuer = issuer_key or self.ca_keys[suite]
        issuer_name = f"PMM test CA suite {suite}" if issuer_key is None else "Foreign CA"
        cert = make_certificate(title_text(title), key.public_key(), use, issuer_name, issuer,
                                not_before=not_before, not_after=not_after)
        self._held.append(_Held(CertificateEntity.CLIENT, use, cert))
        return key

    def server_public_key(self, use: KeyUse, suite: int) -> ec.EllipticCurvePublicKey:
        """The public half of the meter's key of ``use`` (as a client reads it from its certificate)."""
        key = self._own[(use, suite)]
        return key.public_key()

    # --- the port -------------------------------------------------------------------------------

    def own_key(self, use: KeyUse, suite: int) -> ec.EllipticCurvePrivateKey | None:
        return self._own.get((use, suite))

    def own_certificate(self, use: KeyUse, suite: int) -> x509.Certificate | None:
        key = self._own.get((use, suite))
        if key is None:
            return None
        return make_certificate(title_text(self.server_title), key.public_key(), use,
                                f"PMM test CA suite {suite}", self.ca_keys[suite])

    def peer_public_key(self, system_title: bytes, use: KeyUse, suite: int,
                        now_utc: dt.datetime) -> ec.EllipticCurvePublicKey | None:
        self.lookups += 1
        ca_cert = next(h.cert for h in self._held if h.entity is CertificateEntity.CERTIFICATION_AUTHORITY
                       and h.cert.subject == _name(f"PMM test CA suite {suite}"))
        for held in reversed(self._held):
            cert = held.cert
            if held.entity is not CertificateEntity.CLIENT or held.use is not use:
                continue
            if cert.subject != _name(title_text(system_title)):
                continue
            if not cert.not_valid_before_utc <= now_utc <= cert.not_valid_after_utc:
                continue
            public = cert.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey) or suite_of_curve(public.curve) != suite:
                continue
            if cert.issuer != ca_cert.subject:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return public
        return None

    def certificates(self) -> tuple[CertificateInfo, ...]:
        return tuple(CertificateInfo(h.entity, h.use, h.cert.serial_number, h.cert.issuer.rfc4514_string(),
                                     h.cert.subject.rfc4514_string(), "", h.cert.not_valid_after_utc)
                     for h in self._held)

    def generate_key_pair(self, use: KeyUse, suite: int) -> None:
        self._own[(use, suite)] = ec.generate_private_key(curve_of_suite(suite))

    def certificate_request(self, use: KeyUse, suite: int) -> bytes:
        key = self._own.get((use, suite))
        if key is None:
            raise PkiError(f"no {use.name} key pair for suite {suite}")
        csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(title_text(self.server_title)))
               .sign(key, hash_of_suite(suite)))
        return csr.public_bytes(serialization.Encoding.DER)

    def import_certificate(self, der: bytes, now_utc: dt.datetime) -> CertificateInfo:
        cert = parse_certificate(der)
        if not cert.not_valid_before_utc <= now_utc <= cert.not_valid_after_utc:
            raise PkiError("certificate not valid now")
        self._held.append(_Held(CertificateEntity.CLIENT, KeyUse.DIGITAL_SIGNATURE, cert))
        return self.certificates()[-1]

    def export_certificate(self, entity: CertificateEntity, use: KeyUse, system_title: bytes | None,
                           serial_number: int | None = None) -> bytes:
        for held in self._held:
            if serial_number is not None and held.cert.serial_number != serial_number:
                continue
            if serial_number is None and (held.entity is not entity or held.use is not use):
                continue
            return held.cert.public_bytes(serialization.Encoding.DER)
        raise PkiError("no such certificate")

    def remove_certificate(self, serial_number: int, issuer: str) -> None:
        before = len(self._held)
        self._held = [h for h in self._held
                      if not (h.cert.serial_number == serial_number and h.cert.issuer.rfc4514_string() == issuer)]
        if len(self._held) == before:
            raise PkiError("no such certificate")


def sign_low_s(key: ec.EllipticCurvePrivateKey, data: bytes, suite: int) -> bytes:
    """A client's DLMS signature ``r || s`` made with ``cryptography`` alone (low s), independently
    of the meter's code."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    size = 32 if suite == 1 else 48
    hash_ = hashes.SHA256() if suite == 1 else hashes.SHA384()
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_)))
    order = {1: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             2: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973}[suite]
    s = min(s, order - s)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify_raw(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, suite: int) -> None:
    """Verify a DLMS signature ``r || s`` with ``cryptography`` alone (raises InvalidSignature)."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    size = len(signature) // 2
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256() if suite == 1 else hashes.SHA384()))


# --- a meter with suite 0/1/2 keys, and gurux clients for it ------------------------------------

SUITE_KEYS = {n: (bytes(range(0x10, 0x10 + n)), bytes(range(0x40, 0x40 + n)), bytes(range(0x80, 0x80 + n)))
              for n in (16, 32)}
"""Throwaway (global unicast, authentication, master) keys of each length (test constants)."""


def suite_keys(suite: int, mechanism: int = 5, policy: int | None = None, path: Any = None) -> Any:
    """Test keys of ``suite`` (16-octet keys for suites 0 and 1, 32 for suite 2) with the HLS
    ``mechanism`` of the ciphered association (5 GMAC, 7 ECDSA) and its security ``policy``."""
    from meterd.cosem.keys import POLICY_AUTH_ENC, DlmsKeys
    from tests.dlms_fakes import SERVER_TITLE, TEST_PASSWORD

    ek, ak, kek = SUITE_KEYS[32 if suite == 2 else 16]
    return DlmsKeys(SERVER_TITLE, TEST_PASSWORD, ek, ak, kek, path, security_suite=suite, mechanism=mechanism,
                    security_policy=POLICY_AUTH_ENC if policy is None else policy)


class SuiteRig:
    """A fake meter whose ciphered association uses ``suite`` and ``mechanism``, with a
    :class:`FakePki` (the meter's key pairs of suites 1 and 2, the client's certificates) and
    session factories of the three links: "wrapper", "hdlc" (RS-485) and "optical"."""

    def __init__(self, suite: int = 0, mechanism: int = 5, policy: int | None = None, *,
                 pki: bool = True, client_certificates: bool = True, profile_rows: int = 96,
                 lockout_failures: int = 3) -> None:
        from meterd.cosem.config import ServerConfig
        from meterd.cosem.keys import KeyRing
        from meterd.cosem.objects import OpticalSetup
        from meterd.cosem.security import LockoutPolicy, MemoryCounterStore
        from meterd.cosem.server import build_session_factory
        from meterd.proto.hdlc import HdlcParameters
        from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE, FakeMeter, ListSink

        self.suite, self.mechanism = suite, mechanism
        self.meter = FakeMeter(profile_rows)
        self.sink = ListSink()
        self.store = MemoryCounterStore()
        self.keys = KeyRing(suite_keys(suite, mechanism, policy), persist=False)
        self.pki = FakePki(SERVER_TITLE) if pki else None
        self.client_keys: dict[KeyUse, ec.EllipticCurvePrivateKey] = {}
        if self.pki is not None:
            self.pki.give_server_keys(1, 2)
            if suite and client_certificates:
                for use in (KeyUse.DIGITAL_SIGNATURE, KeyUse.KEY_AGREEMENT):
                    self.client_keys[use] = self.pki.enrol_client(CLIENT_TITLE, suite, use)
        lockout = LockoutPolicy(failures=lockout_failures)
        configs = {
            "wrapper": ServerConfig(events=self.sink, link_name="tcp", lockout=lockout),
            "hdlc": ServerConfig(link="hdlc", link_name="rs485", events=self.sink, lockout=lockout,
                                 hdlc_params=HdlcParameters(max_info_tx=512, max_info_rx=512)),
            "optical": ServerConfig(link="hdlc", link_name="optical", events=self.sink, lockout=lockout,
                                    hdlc_params=HdlcParameters(max_info_tx=128, max_info_rx=128),
                                    optical=OpticalSetup(baud=9600, device_address=self.meter.identity.serial)),
        }
        self.factories = {name: build_session_factory(self.meter, self.store, self.keys, cfg, pki=self.pki)
                          for name, cfg in configs.items()}

    @property
    def ek(self) -> bytes:
        return bytes(self.keys.current.global_unicast_key)

    @property
    def ak(self) -> bytes:
        return bytes(self.keys.current.authentication_key)

    def next_ic(self) -> int:
        return self.store.last_accepted("management/in") + 1

    def gurux(self, link: str, sap: int, *, ecdsa: bool | None = None, suite: int | None = None) -> tuple[Any, Any]:
        """A connected-ready (not yet associated) gurux client on a fresh session of ``link``,
        through an octet-by-octet in-memory transport (the optical port signed on in mode E
        first); returns (GuruxSession, transport)."""
        from tests import gurux_ecdsa_patches
        from tests.dlms_gurux_client import GuruxSession, make_client

        gurux_ecdsa_patches.apply()
        session = self.factories[link]()
        transport = OctetTransport(session, optical=link == "optical")
        client = make_client(sap, hdlc=link != "wrapper", guek=self.ek, gak=self.ak, invocation_counter=self.next_ic())
        if sap == 1:
            client.ciphering.securitySuite = self.suite if suite is None else suite
            if ecdsa if ecdsa is not None else self.mechanism == 7:
                use_suite = suite or self.suite or 1
                own = self.client_keys.get(KeyUse.DIGITAL_SIGNATURE) or ec.generate_private_key(
                    curve_of_suite(use_suite))
                server = (self.pki.server_public_key(KeyUse.DIGITAL_SIGNATURE, use_suite) if self.pki
                          else ec.generate_private_key(curve_of_suite(use_suite)).public_key())
                use_hls_ecdsa(client, server, own, use_suite)
        return GuruxSession(client, transport.send, transport.receive), transport


def use_hls_ecdsa(client: Any, server_key: ec.EllipticCurvePublicKey, client_key: ec.EllipticCurvePrivateKey,
                  suite: int) -> None:
    """Make a gurux management client authenticate with HLS-ECDSA (mechanism 7) on ``suite``: it
    signs with ``client_key`` (given to gurux as the suite's 32 or 48 octets) and checks the
    meter's signature with ``server_key`` (the public key of the meter's digital-signature
    certificate)."""
    from gurux_dlms.ecdsa import GXPrivateKey, GXPublicKey
    from gurux_dlms.enums import Authentication

    from tests import gurux_ecdsa_patches

    gurux_ecdsa_patches.apply()
    size = 32 if suite == 1 else 48
    client.authentication = Authentication.HIGH_ECDSA
    client.ciphering.signingKeyPair = (
        GXPublicKey.fromRawBytes(server_key.public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint)),
        GXPrivateKey.fromRawBytes(client_key.private_numbers().private_value.to_bytes(size, "big")))


class OctetTransport:
    """Feeds a session one octet at a time and keeps what it answers; on the optical port it
    first runs the IEC 62056-21 mode E sign-on (``/?!``, identification, ACK 2 5 2) through the
    meter's :class:`~meterd.proto.iec62056_21.ModeESignOn`, as the serial link does."""

    def __init__(self, session: Any, optical: bool = False) -> None:
        self.session = session
        self._pending = bytearray()
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.apdus: list[tuple[bytes, list[bytes]]] = []
        """Every (request APDU, response APDUs) the COSEM server served, whatever the framing."""
        serve = session.server.handle_apdus

        def spy(client_sap: int, apdu: bytes) -> list[bytes]:
            answers: list[bytes] = serve(client_sap, apdu)
            self.apdus.append((bytes(apdu), list(answers)))
            return answers

        session.server.handle_apdus = spy
        if optical:
            self._sign_on()

    def _sign_on(self) -> None:
        from meterd.proto.iec62056_21 import EnterHdlc, ModeESignOn, Send

        sign_on = ModeESignOn("PMM", "PMM1221", max_baud=9600, device_address="PMM1221000042")
        answers = [e for octet in b"/?PMM1221000042!\r\n" for e in sign_on.receive(bytes((octet,)))]
        assert any(isinstance(e, Send) and e.data.startswith(b"/PMM5") for e in answers), answers
        events = [e for octet in b"\x06252\r\n" for e in sign_on.receive(bytes((octet,)))]
        assert any(isinstance(e, EnterHdlc) for e in events) and sign_on.signed_on

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))
        got = bytearray()
        for octet in bytes(data):
            for chunk in self.session.receive(bytes((octet,))):
                got += chunk
        self._pending += got
        self.received.append(bytes(got))

    def receive(self) -> bytes:
        if not self._pending:
            raise TimeoutError("no answer from the meter")
        data, self._pending = bytes(self._pending), bytearray()
        return data

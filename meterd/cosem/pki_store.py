"""Keys and certificates of DLMS security suites 1 and 2 on the data partition: :class:`PkiStore`.

The :class:`~meterd.cosem.pki.Pki` of the meter. One directory (mode 0700) under the state
directory holds::

    keys/<use>-suite<N>.p8       the server's private key for that use and suite (PKCS #8, DER)
    certificates/<sha256>.der    every certificate held (X.509, DER), named by its fingerprint

Every file has mode 0600 and is written atomically (temporary file, fsync, rename, fsync of the
directory: :func:`hw.secret_file.write_secret_bytes`), so a kill -9 or a power cut in the middle
of a write leaves the old file or the new one, never a torn one. A file that group or others
may read is refused at load (logged, not used), as is one that does not parse; a left-over
temporary file is removed.

What :meth:`PkiStore.import_certificate` accepts (anything else is a :class:`PkiError` naming the
reason, and nothing is kept):

* DER that parses as an X.509 certificate of at most :data:`MAX_CERTIFICATE_OCTETS`;
* an elliptic-curve key on a suite's curve (P-256: suite 1, P-384: suite 2), signed with ECDSA;
* valid at the meter's clock (``not_valid_before`` <= now <= ``not_valid_after``);
* a CA certificate (basic constraints ``cA``, key usage keyCertSign) self-signed, or issued by
  a CA held; it becomes a trust anchor (the management association is the one that may import);
* any other: key usage digitalSignature (use 0), keyAgreement (use 1) or an extended key usage
  serverAuth/clientAuth (use 2, TLS), exactly one use; issued by a CA held (signature checked);
  its subject common name or a subject alternative name carries a system title as 16 hex
  digits; a certificate of the meter's own system title is the server's and must certify the
  meter's own key of that use on its curve.

A certificate replaces a held one of the same entity, use and system title (or, for a CA, the
same subject). A new server key pair makes the server certificate of that use and suite stale:
it is removed. Keys never go into ``repr`` or logs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hw.secret_file import (
    SecretFileError,
    SecretFileTooOpen,
    read_secret_bytes,
    remove_secret_file,
    write_secret_bytes,
)
from meterd.cosem.pki import (
    CertificateEntity,
    CertificateInfo,
    KeyUse,
    PkiError,
    curve_of_suite,
    hash_of_suite,
    suite_of_curve,
)

_log = logging.getLogger("meterd.cosem")

DIRECTORY_MODE = 0o700
MAX_CERTIFICATE_OCTETS = 4096
"""The largest certificate accepted (octets); a DLMS certificate of P-384 is about 600."""
MAX_CERTIFICATES = 32
"""Certificates held at most (server, clients, CAs), so that imports cannot fill the partition."""
KEY_SUFFIX, CERT_SUFFIX = ".p8", ".der"
_MALFORMED = (ValueError, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
"""What ``cryptography`` raises for DER it cannot take as a certificate or its extensions."""


def parse_certificate(der: bytes) -> x509.Certificate:
    """``der`` as a certificate whose every field the store reads has been decoded once
    (``cryptography`` decodes lazily); :class:`PkiError` for DER that is not one."""
    try:
        with warnings.catch_warnings():  # what it says of hostile input is in the refusal, not on stderr
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            _ = (cert.serial_number, cert.issuer.rfc4514_string(), cert.subject.rfc4514_string(), cert.extensions,
                 cert.not_valid_before_utc, cert.not_valid_after_utc, cert.tbs_certificate_bytes, cert.signature)
    except _MALFORMED:
        raise PkiError("certificate is not well-formed DER X.509") from None
    if cert.serial_number <= 0:
        raise PkiError("certificate serial number is not positive (RFC 5280)")
    try:
        _ = (cert.signature_hash_algorithm, cert.public_key())
    except UnsupportedAlgorithm:
        raise PkiError("certificate uses a signature or key algorithm the meter does not know") from None
    except _MALFORMED:
        raise PkiError("certificate is not well-formed DER X.509") from None
    return cert


def title_text(system_title: bytes) -> str:
    """A system title as the 16 upper-case hex digits certificates carry it as."""
    return system_title.hex().upper()


def titles_of(cert: x509.Certificate) -> tuple[bytes, ...]:
    """The 8-octet system titles the subject common name and the subject alternative names
    (DNS name, URI, directory name's CN) carry as 16 hex digits, in that order."""
    texts = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        texts += [str(v) for v in san.get_values_for_type(x509.DNSName)]
        texts += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        for name in san.get_values_for_type(x509.DirectoryName):
            texts += [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    found: list[bytes] = []
    for text in texts:
        if len(text) == 16:
            try:
                title = bytes.fromhex(text)
            except ValueError:
                continue
            if title not in found:
                found.append(title)
    return tuple(found)


def subject_alt_name_text(cert: x509.Certificate) -> str:
    """The subject alternative names as ``type:value`` separated by commas ("" without)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    return ", ".join(f"{type(n).__name__}:{n.value}" for n in san)


def is_ca(cert: x509.Certificate) -> bool:
    """True for a certificate with basic constraints ``cA``."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def use_of(cert: x509.Certificate) -> KeyUse:
    """The one use an end-entity certificate's key usage names (see the module docstring);
    :class:`PkiError` when it names none or several."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise PkiError("certificate has no key usage extension") from None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} & set(eku):
        return KeyUse.TLS
    if usage.digital_signature and usage.key_agreement:
        raise PkiError("key usage names both digitalSignature and keyAgreement: one use per certificate")
    if usage.digital_signature:
        return KeyUse.DIGITAL_SIGNATURE
    if usage.key_agreement:
        return KeyUse.KEY_AGREEMENT
    raise PkiError("key usage names neither digitalSignature nor keyAgreement")


@dataclass(frozen=True)
class HeldCertificate:
    """A certificate held and what the store derived from it (``title``: the system title of
    an end-entity certificate, None for a CA; ``suite``: of its key's curve)."""

    cert: x509.Certificate = field(repr=False)
    entity: CertificateEntity
    use: KeyUse
    title: bytes | None
    suite: int
    fingerprint: str

    @property
    def info(self) -> CertificateInfo:
        """The ``certificate_info`` of this certificate."""
        c = self.cert
        return CertificateInfo(self.entity, self.use, c.serial_number, c.issuer.rfc4514_string(),
                               c.subject.rfc4514_string(), subject_alt_name_text(c), c.not_valid_after_utc)

    @property
    def der(self) -> bytes:
        """The certificate as DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)


class PkiStore:
    """The meter's key pairs and certificates in ``directory`` (see the module docstring).

    ``server_title``: the meter's 8-octet system title (a certificate carrying it is the
    server's). Loads what is there at construction; :attr:`problems` lists the files refused
    then (each also logged once).
    """

    def __init__(self, directory: Path, server_title: bytes) -> None:
        if len(server_title) != 8:
            raise PkiError("the server system title must be 8 octets")
        self.directory = Path(directory)
        self.server_title = server_title
        self._keys: dict[tuple[KeyUse, int], ec.EllipticCurvePrivateKey] = {}
        self._certs: dict[str, HeldCertificate] = {}
        self.problems: list[str] = []
        self._open()

    def __repr__(self) -> str:
        return f"PkiStore({str(self.directory)!r}, {len(self._keys)} key pairs, {len(self._certs)} certificates)"

    # --- files ---------------------------------------------------------------------------------

    @property
    def _key_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def _cert_dir(self) -> Path:
        return self.directory / "certificates"

    def _key_path(self, use: KeyUse, suite: int) -> Path:
        return self._key_dir / f"{use.name.lower()}-suite{suite}{KEY_SUFFIX}"

    def _private_dir(self, path: Path) -> None:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777
        if mode != DIRECTORY_MODE:
            _log.warning("PKI directory %s had mode %o; set to %o", path, mode, DIRECTORY_MODE)
            path.chmod(DIRECTORY_MODE)

    def _refuse_file(self, path: Path, reason: str) -> None:
        message = f"{path}: {reason}; not used"
        self.problems.append(message)
        _log.error("PKI file refused: %s", message)

    def _open(self) -> None:
        for path in (self.directory, self._key_dir, self._cert_dir):
            self._private_dir(path)
        for tmp in [*self._key_dir.glob("*.tmp"), *self._cert_dir.glob("*.tmp")]:
            tmp.unlink(missing_ok=True)  # a write that a kill or power cut interrupted
        for use in KeyUse:
            for suite in (1, 2):
                self._load_key(use, suite)
        for path in sorted(self._cert_dir.glob(f"*{CERT_SUFFIX}")):
            self._load_certificate(path)
        for held in list(self._certs.values()):
            if held.entity is not CertificateEntity.SERVER or self._certifies_own_key(held):
                continue
            if self._keys.get((held.use, held.suite)) is None:  # its key refused or missing: keep the file
                self._refuse_file(self._cert_dir / f"{held.fingerprint}{CERT_SUFFIX}",
                                  "server certificate without the meter's key")
                del self._certs[held.fingerprint]
            else:  # a new key pair whose write was not followed by the removal of the old certificate
                _log.info("server certificate %X of a replaced key pair removed", held.cert.serial_number)
                try:
                    self._remove(held)
                except PkiError as exc:
                    self._refuse_file(self._cert_dir / f"{held.fingerprint}{CERT_SUFFIX}", str(exc))
                    self._certs.pop(held.fingerprint, None)

    def _read(self, path: Path) -> bytes | None:
        try:
            return read_secret_bytes(path)
        except SecretFileTooOpen as exc:
            self._refuse_file(path, f"mode {exc.mode:o} is too open (group or others have access)")
        except SecretFileError as exc:
            self._refuse_file(path, str(exc))
        return None

    def _load_key(self, use: KeyUse, suite: int) -> None:
        path = self._key_path(use, suite)
        if not path.exists():
            return
        data = self._read(path)
        if data is None:
            return
        try:
            key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError):
            self._refuse_file(path, "not a PKCS #8 private key")
            return
        if not isinstance(key, ec.EllipticCurvePrivateKey) or suite_of_curve(key.curve) != suite:
            self._refuse_file(path, f"not a key on the curve of suite {suite}")
            return
        self._keys[(use, suite)] = key

    def _load_certificate(self, path: Path) -> None:
        data = self._read(path)
        if data is None:
            return
        try:
            held = self._classify(parse_certificate(data))
        except _MALFORMED:
            self._refuse_file(path, "not an X.509 certificate the meter can use")
            return
        except PkiError as exc:
            self._refuse_file(path, str(exc))
            return
        if path.stem != held.fingerprint:
            self._refuse_file(path, "name is not the certificate's fingerprint")
            return
        rival = self._same_slot(held)
        if rival is not None:  # a replacement interrupted before the old one was removed: keep the newer
            older = rival if (rival.cert.not_valid_before_utc, rival.cert.serial_number) < (
                held.cert.not_valid_before_utc, held.cert.serial_number) else held
            _log.info("certificate %X replaced by a newer one of the same %s; removed",
                      older.cert.serial_number, "subject" if older.title is None else "system title and use")
            try:
                remove_secret_file(self._cert_dir / f"{older.fingerprint}{CERT_SUFFIX}")
            except SecretFileError as exc:
                _log.error("PKI file not removed: %s", exc)
            if older is held:
                return
            del self._certs[rival.fingerprint]
        self._certs[held.fingerprint] = held

    # --- checks --------------------------------------------------------------------------------

    def _classify(self, cert: x509.Certificate) -> HeldCertificate:
        """Entity, use, title and suite of ``cert``, from its content alone."""
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise PkiError(f"certificate key is {type(key).__name__.removeprefix('_')}, not an elliptic-curve key")
        suite = suite_of_curve(key.curve)
        if suite is None:
            raise PkiError(f"certificate key is on curve {key.curve.name}, which no security suite uses "
                           "(P-256: suite 1, P-384: suite 2)")
        fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        if is_ca(cert):
            try:
                usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            except x509.ExtensionNotFound:
                usage = None
            if usage is not None and not usage.key_cert_sign:
                raise PkiError("CA certificate whose key usage lacks keyCertSign")
            return HeldCertificate(cert, CertificateEntity.CERTIFICATION_AUTHORITY, KeyUse.OTHER, None, suite,
                                   fingerprint)
        use = use_of(cert)
        titles = titles_of(cert)
        if not titles:
            raise PkiError("certificate subject (CN or subjectAltName) carries no system title of 16 hex digits")
        title = self.server_title if self.server_title in titles else titles[0]
        entity = CertificateEntity.SERVER if title == self.server_title else CertificateEntity.CLIENT
        return HeldCertificate(cert, entity, use, title, suite, fingerprint)

    def _certifies_own_key(self, held: HeldCertificate) -> bool:
        own = self._keys.get((held.use, held.suite))
        pub = held.cert.public_key()
        return own is not None and isinstance(pub, ec.EllipticCurvePublicKey) and \
            own.public_key().public_numbers() == pub.public_numbers()

    def _issuer_of(self, cert: x509.Certificate, now_utc: _dt.datetime,
                   exclude: str | None = None) -> HeldCertificate | None:
        """The held CA, valid at ``now_utc``, whose key signed ``cert`` (None: none)."""
        for held in self._certs.values():
            if held.entity is not CertificateEntity.CERTIFICATION_AUTHORITY or held.fingerprint == exclude:
                continue
            if not _valid_at(held.cert, now_utc):
                continue
            try:
                cert.verify_directly_issued_by(held.cert)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return held
        return None

    def _same_slot(self, held: HeldCertificate) -> HeldCertificate | None:
        for other in self._certs.values():
            if other.fingerprint == held.fingerprint or other.entity is not held.entity:
                continue
            if held.entity is CertificateEntity.CERTIFICATION_AUTHORITY:
                if other.cert.subject == held.cert.subject:
                    return other
            elif (other.use, other.title, other.suite) == (held.use, held.title, held.suite):
                return other
        return None

    def check(self, der: bytes, now_utc: _dt.datetime) -> HeldCertificate:
        """What importing ``der`` at ``now_utc`` would keep; :class:`PkiError` with the reason
        it would be refused (nothing changes either way)."""
        if not isinstance(der, bytes | bytearray) or not der:
            raise PkiError("certificate is empty")
        if len(der) > MAX_CERTIFICATE_OCTETS:
            raise PkiError(f"certificate is {len(der)} octets, more than {MAX_CERTIFICATE_OCTETS}")
        cert = parse_certificate(bytes(der))
        try:
            held = self._classify(cert)
        except _MALFORMED:
            raise PkiError("certificate is not well-formed DER X.509") from None
        if cert.signature_hash_algorithm is None:
            raise PkiError("certificate is not signed with ECDSA")
        if now_utc < cert.not_valid_before_utc:
            raise PkiError(f"certificate is not valid yet (from {cert.not_valid_before_utc.isoformat()})")
        if now_utc > cert.not_valid_after_utc:
            raise PkiError(f"certificate has expired (on {cert.not_valid_after_utc.isoformat()})")
        self_signed = cert.issuer == cert.subject
        if held.entity is CertificateEntity.CERTIFICATION_AUTHORITY and self_signed:
            try:
                cert.verify_directly_issued_by(cert)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                raise PkiError("self-signed CA certificate whose signature does not verify") from None
        elif self._issuer_of(cert, now_utc, exclude=held.fingerprint) is None:
            raise PkiError(f"certificate is not issued by a trusted CA held by the meter (issuer "
                           f"{cert.issuer.rfc4514_string()})")
        if held.entity is CertificateEntity.SERVER and not self._certifies_own_key(held):
            raise PkiError(f"server certificate does not certify the meter's {held.use.name.lower()} key of "
                           f"suite {held.suite}")
        return held

    # --- the Pki port ----------------------------------------------------------------------------

    def own_key(self, use: KeyUse, suite: int) -> ec.EllipticCurvePrivateKey | None:
        """The server's private key for ``use`` on the curve of ``suite`` (None: not generated yet)."""
        return self._keys.get((use, suite))

    def own_certificate(self, use: KeyUse, suite: int) -> x509.Certificate | None:
        """The server's certificate for that key, if one was imported."""
        for held in self._certs.values():
            if held.entity is CertificateEntity.SERVER and (held.use, held.suite) == (use, suite):
                return held.cert
        return None

    def peer_public_key(self, system_title: bytes, use: KeyUse, suite: int,
                        now_utc: _dt.datetime) -> ec.EllipticCurvePublicKey | None:
        """The public key of the peer ``system_title`` from a certificate of ``use`` on the
        suite's curve, valid at ``now_utc`` and issued by a CA held and valid then (None: none)."""
        for held in self._certs.values():
            if held.entity is CertificateEntity.CERTIFICATION_AUTHORITY or held.title != system_title:
                continue
            if (held.use, held.suite) != (use, suite) or not _valid_at(held.cert, now_utc):
                continue
            if self._issuer_of(held.cert, now_utc) is None:
                continue
            key = held.cert.public_key()
            if isinstance(key, ec.EllipticCurvePublicKey):
                return key
        return None

    def certificates(self) -> tuple[CertificateInfo, ...]:
        """The certificates held: CAs, then the server's, then clients', each by use and serial."""
        order = {CertificateEntity.CERTIFICATION_AUTHORITY: 0, CertificateEntity.SERVER: 1,
                 CertificateEntity.CLIENT: 2, CertificateEntity.OTHER: 3}
        held = sorted(self._certs.values(), key=lambda h: (order[h.entity], h.use, h.cert.serial_number,
                                                           h.fingerprint))
        return tuple(h.info for h in held)

    def held(self) -> Iterable[HeldCertificate]:
        """Every certificate held with what the store derived from it."""
        return tuple(self._certs.values())

    def generate_key_pair(self, use: KeyUse, suite: int) -> None:
        """Make a new server key pair for ``use`` on the suite's curve, write it (replacing the
        old one atomically) and forget the server certificate of the old key."""
        if use is KeyUse.OTHER:
            raise PkiError("no key pair is kept for use 'other'")
        key = ec.generate_private_key(curve_of_suite(suite))
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            write_secret_bytes(self._key_path(use, suite), der)
        except SecretFileError as exc:
            raise PkiError(f"key pair not stored: {exc}") from None
        self._keys[(use, suite)] = key
        for held in list(self._certs.values()):
            if held.entity is CertificateEntity.SERVER and (held.use, held.suite) == (use, suite):
                self._remove(held)

    def certificate_request(self, use: KeyUse, suite: int) -> bytes:
        """A PKCS #10 request (DER) for the server's key of ``use``: subject CN the system title
        (16 hex digits), the key usage of that use, signed with that key."""
        key = self._keys.get((use, suite))
        if key is None:
            raise PkiError(f"no server key pair for {use.name.lower()} on suite {suite}: generate it first")
        usage = {KeyUse.DIGITAL_SIGNATURE: dict(digital_signature=True, key_agreement=False),
                 KeyUse.KEY_AGREEMENT: dict(digital_signature=False, key_agreement=True),
                 KeyUse.TLS: dict(digital_signature=True, key_agreement=True)}[use]
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, title_text(self.server_title))]))
        builder = builder.add_extension(x509.KeyUsage(content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_cert_sign=False, crl_sign=False,
                                                      encipher_only=False, decipher_only=False, **usage),
                                        critical=True)
        if use is KeyUse.TLS:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        digest = hash_of_suite(suite)
        assert isinstance(digest, hashes.SHA256 | hashes.SHA384)
        csr = builder.sign(key, digest)
        return csr.public_bytes(serialization.Encoding.DER)

    def import_certificate(self, der: bytes, now_utc: _dt.datetime) -> CertificateInfo:
        """Check ``der`` (:meth:`check`) and keep it, replacing the held certificate of the same
        entity, use and system title; :class:`PkiError` when refused (nothing kept)."""
        held = self.check(der, now_utc)
        if held.fingerprint in self._certs:
            return held.info
        rival = self._same_slot(held)
        if rival is None and len(self._certs) >= MAX_CERTIFICATES:
            raise PkiError(f"the meter holds {MAX_CERTIFICATES} certificates already: remove one first")
        try:
            write_secret_bytes(self._cert_dir / f"{held.fingerprint}{CERT_SUFFIX}", held.der)
        except SecretFileError as exc:
            raise PkiError(f"certificate not stored: {exc}") from None
        self._certs[held.fingerprint] = held
        if rival is not None:
            self._remove(rival)
        return held.info

    def find(self, entity: CertificateEntity, use: KeyUse, system_title: bytes | None) -> HeldCertificate | None:
        """The held certificate of ``entity`` and ``use`` carrying ``system_title`` (for a CA
        or with None, the first of that entity and use)."""
        for held in self._certs.values():
            if held.entity is not entity or held.use is not use:
                continue
            if system_title is None or held.title is None or held.title == system_title:
                return held
        return None

    def export_certificate(self, entity: CertificateEntity, use: KeyUse, system_title: bytes | None,
                           serial_number: int | None = None) -> bytes:
        """The DER of a held certificate, by serial number when given, else by entity, use and
        system title; :class:`PkiError` when none is held."""
        if serial_number is not None:
            for held in self._certs.values():
                if held.cert.serial_number == serial_number:
                    return held.der
            raise PkiError(f"no certificate with serial number {serial_number:X} held")
        found = self.find(entity, use, system_title)
        if found is None:
            raise PkiError(f"no {entity.name.lower()} certificate for {use.name.lower()} held")
        return found.der

    def remove_certificate(self, serial_number: int, issuer: str) -> None:
        """Forget the certificate of ``serial_number`` issued by ``issuer`` (RFC 4514 text)."""
        for held in self._certs.values():
            if held.cert.serial_number == serial_number and held.cert.issuer.rfc4514_string() == issuer:
                self._remove(held)
                return
        raise PkiError(f"no certificate with serial number {serial_number:X} from {issuer!r} held")

    def _remove(self, held: HeldCertificate) -> None:
        try:
            remove_secret_file(self._cert_dir / f"{held.fingerprint}{CERT_SUFFIX}")
        except SecretFileError as exc:
            raise PkiError(f"certificate not removed: {exc}") from None
        self._certs.pop(held.fingerprint, None)


def _valid_at(cert: x509.Certificate, now_utc: _dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now_utc <= cert.not_valid_after_utc

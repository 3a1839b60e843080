"""The meter's public-key infrastructure as DLMS security suites 1 and 2 use it: :class:`Pki`.

Suite 1 is ECDSA/ECDH on P-256 with SHA-256 and AES-GCM-128; suite 2 is P-384 with SHA-384 and
AES-GCM-256 (IEC 62056-5-3, DLMS UA Green Book §9.2.3). The server holds one key pair per use
(digital signature, key agreement, TLS) and suite; its peers are known by X.509 certificates
whose subject common name (or subject alternative name) carries their system title. The Security
setup object of version 1 (class 64, 0-0:43.0.x.255) manages both through the methods of this
port; the association (HLS mechanism 7, general-signing, general-ciphering with agreed keys)
only reads from it.

This module is the port only. The meter's implementation is
:class:`meterd.cosem.pki_store.PkiStore` (keys and certificates in ``dlms_pki/`` under the state
directory on the data partition, files of mode 0600 written atomically), which the DLMS feature
(:mod:`meterd.app.features.dlms`) opens at start and provides in the registry as the meter's
:class:`Pki`, empty on a new meter until it is provisioned over DLMS; the association takes it
from there. Tests may use an in-memory one (``tests/pki_fakes.py``).
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from meterd.cosem.errors import CosemError


class PkiError(CosemError):
    """A key or certificate operation refused; ``str()`` says why (never holds key material)."""


class KeyUse(enum.IntEnum):
    """What a key pair or certificate is for: ``key_id`` / ``certificate_type`` of class 64 v1."""

    DIGITAL_SIGNATURE = 0
    KEY_AGREEMENT = 1
    TLS = 2
    OTHER = 3


class CertificateEntity(enum.IntEnum):
    """Whose certificate it is: ``certificate_entity`` of class 64 v1."""

    SERVER = 0
    CLIENT = 1
    CERTIFICATION_AUTHORITY = 2
    OTHER = 3


SUITE_CURVES: dict[int, type[ec.EllipticCurve]] = {1: ec.SECP256R1, 2: ec.SECP384R1}
"""The elliptic curve of each suite with public-key cryptography."""


def curve_of_suite(suite: int) -> ec.EllipticCurve:
    """P-256 for suite 1, P-384 for suite 2; :class:`PkiError` for a suite without ECC (0)."""
    try:
        return SUITE_CURVES[suite]()
    except KeyError:
        raise PkiError(f"security suite {suite} has no public-key cryptography") from None


def hash_of_suite(suite: int) -> hashes.HashAlgorithm:
    """SHA-256 for suite 1, SHA-384 for suite 2."""
    if suite == 1:
        return hashes.SHA256()
    if suite == 2:
        return hashes.SHA384()
    raise PkiError(f"security suite {suite} has no public-key cryptography")


def suite_of_curve(curve: ec.EllipticCurve) -> int | None:
    """The suite whose curve ``curve`` is (None: a curve no suite uses)."""
    for suite, kind in SUITE_CURVES.items():
        if isinstance(curve, kind):
            return suite
    return None


@dataclass(frozen=True)
class CertificateInfo:
    """One element of the ``certificates`` attribute of class 64 v1.

    ``serial_number`` as the certificate's integer; ``issuer`` / ``subject`` as RFC 4514 strings;
    ``subject_alt_name`` as text (empty when absent); ``not_after`` in UTC.
    """

    entity: CertificateEntity
    use: KeyUse
    serial_number: int
    issuer: str
    subject: str
    subject_alt_name: str
    not_after: _dt.datetime


@runtime_checkable
class Pki(Protocol):
    """The server's key pairs and the certificates it trusts, for suites 1 and 2."""

    def own_key(self, use: KeyUse, suite: int) -> ec.EllipticCurvePrivateKey | None:
        """The server's private key for ``use`` on the curve of ``suite`` (None: not generated yet)."""
        ...

    def own_certificate(self, use: KeyUse, suite: int) -> x509.Certificate | None:
        """The server's certificate for that key, if one was imported."""
        ...

    def peer_public_key(self, system_title: bytes, use: KeyUse, suite: int,
                        now_utc: _dt.datetime) -> ec.EllipticCurvePublicKey | None:
        """The public key of the peer with that 8-octet system title, from a certificate that is
        valid at ``now_utc``, of the given use, on the suite's curve and issued by a trusted CA
        (None: no such certificate, so the peer cannot be authenticated)."""
        ...

    def certificates(self) -> tuple[CertificateInfo, ...]:
        """The certificates held (server's, clients', CAs'), in a stable order."""
        ...

    def generate_key_pair(self, use: KeyUse, suite: int) -> None:
        """Make a new server key pair for ``use`` (replaces the old one, durably)."""
        ...

    def certificate_request(self, use: KeyUse, suite: int) -> bytes:
        """A PKCS #10 request (DER) for the server's key of ``use``, signed with that key;
        :class:`PkiError` when the key pair does not exist."""
        ...

    def import_certificate(self, der: bytes, now_utc: _dt.datetime) -> CertificateInfo:
        """Check and keep a certificate (DER); :class:`PkiError` with the reason for a malformed,
        expired, not-yet-valid, foreign-curve or untrusted one (nothing is kept then)."""
        ...

    def export_certificate(self, entity: CertificateEntity, use: KeyUse, system_title: bytes | None,
                           serial_number: int | None = None) -> bytes:
        """The DER of a held certificate, by entity/use/system title or by serial number."""
        ...

    def remove_certificate(self, serial_number: int, issuer: str) -> None:
        """Forget a held certificate (:class:`PkiError` when none matches)."""
        ...

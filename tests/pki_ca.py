"""A throwaway certification authority for the PKI tests, built with ``cryptography`` at test time.

Nothing here is committed key material: every key is generated when a test runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meterd.cosem.pki import KeyUse

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def der(cert: x509.Certificate) -> bytes:
    """A certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def _usage(use: KeyUse | None) -> x509.KeyUsage:
    sign = use in (KeyUse.DIGITAL_SIGNATURE, KeyUse.TLS)
    agree = use in (KeyUse.KEY_AGREEMENT,)
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=agree, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


class TestCa:
    """A self-signed root CA on ``curve`` (P-256 by default) issuing end-entity certificates."""

    __test__ = False

    def __init__(self, name: str = "Test Root CA", curve: ec.EllipticCurve | None = None,
                 not_before: dt.datetime = NOW - 30 * DAY, not_after: dt.datetime = NOW + 3650 * DAY) -> None:
        self.key = ec.generate_private_key(curve or ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(not_before).not_valid_after(not_after)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(usage, critical=True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def der(self) -> bytes:
        return der(self.cert)

    def issue(self, public_key: Any, title: bytes | None, use: KeyUse | None = KeyUse.DIGITAL_SIGNATURE, *,
              not_before: dt.datetime = NOW - DAY, not_after: dt.datetime = NOW + 365 * DAY,
              in_san: bool = False, serial: int | None = None, key_usage: x509.KeyUsage | None = None) -> x509.Certificate:
        """A certificate for ``public_key`` whose subject CN (or, ``in_san``, subjectAltName DNS
        name) is ``title`` as 16 hex digits, with the key usage of ``use`` (None: no key usage)."""
        cn = title.hex().upper() if title is not None and not in_san else "a device"
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(self.name).public_key(public_key)
                   .serial_number(serial if serial is not None else x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after))
        if in_san and title is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(title.hex().upper())]),
                                            critical=False)
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        elif use is not None:
            builder = builder.add_extension(_usage(use), critical=True)
        if use is KeyUse.TLS:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign_request(self, csr_der: bytes, **kwargs: Any) -> x509.Certificate:
        """A certificate for the key and the subject of a PKCS #10 request (checked first)."""
        csr = x509.load_der_x509_csr(csr_der)
        assert csr.is_signature_valid
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
        use = KeyUse.KEY_AGREEMENT if usage.key_agreement and not usage.digital_signature else KeyUse.DIGITAL_SIGNATURE
        return self.issue(csr.public_key(), bytes.fromhex(str(cn)), use, **kwargs)


def client_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A throwaway key pair of a client (P-256 by default)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_certificate(ca: TestCa, title: bytes) -> x509.Certificate:
    """A certificate with an RSA key (2048 bits), otherwise well-formed, from ``ca``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ca.issue(key.public_key(), title)

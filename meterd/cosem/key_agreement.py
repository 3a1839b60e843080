"""ECDH key agreement of Security setup version 1 (method 3), security suites 1 and 2.

The Ephemeral Unified Model C(2e, 0s, ECC CDH) of NIST SP 800-56A as the DLMS UA Green Book
uses it to agree a new global key: for each key, the client sends ``key_agreement_data`` =
its ephemeral public key Q (x || y, 64 octets on P-256, 96 on P-384) followed by its ECDSA
signature (r || s, same length) over ``key_id || Q``, made with the key of its digital-signature
certificate; the server checks the signature, makes its own ephemeral key pair, answers the same
structure signed with its own digital-signature key, and both derive the key from the shared
secret Z (the x coordinate of the ECDH point) with the concatenation KDF (SP 800-56A §5.8.1,
SHA-256 on suite 1, SHA-384 on suite 2)::

    OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo
              = OID of the AES-GCM of the suite (2.16.756.5.8.3.0 / .1, BER without tag and length)
                || client system title || server system title

The key is 16 octets on suite 1 (AES-GCM-128) and 32 on suite 2 (AES-GCM-256). No key material
goes into logs or exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from meterd.cosem.pki import PkiError, curve_of_suite, hash_of_suite

ALGORITHM_IDS = {1: bytes.fromhex("60857405080300"), 2: bytes.fromhex("60857405080301")}
"""AlgorithmID of the KDF: the DLMS object identifiers of AES-GCM-128 (suite 1) and AES-GCM-256 (suite 2)."""
KEY_LENGTHS = {1: 16, 2: 32}
"""Length of an agreed key (octets) per suite."""


def coordinate_length(suite: int) -> int:
    """Octets of one coordinate (and of r or s) on the suite's curve: 32 (P-256), 48 (P-384)."""
    return (curve_of_suite(suite).key_size + 7) // 8


def raw_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """x || y of a public key (the uncompressed point without its 0x04 octet)."""
    n = (key.curve.key_size + 7) // 8
    numbers = key.public_numbers()
    return numbers.x.to_bytes(n, "big") + numbers.y.to_bytes(n, "big")


def public_key_from_raw(raw: bytes, suite: int) -> ec.EllipticCurvePublicKey:
    """The public key x || y on the suite's curve; :class:`PkiError` when it is not a point on it."""
    if len(raw) != 2 * coordinate_length(suite):
        raise PkiError(f"ephemeral public key is {len(raw)} octets, suite {suite} needs {2 * coordinate_length(suite)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve_of_suite(suite), b"\x04" + raw)
    except ValueError:
        raise PkiError("ephemeral public key is not a point of the suite's curve") from None


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes, suite: int) -> bytes:
    """ECDSA signature r || s of ``data`` with the suite's hash."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_of_suite(suite))))
    n = coordinate_length(suite)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def verify_raw(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, suite: int) -> bool:
    """True when ``signature`` (r || s) is the ECDSA signature of ``data`` by ``key``."""
    n = coordinate_length(suite)
    if len(signature) != 2 * n:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(hash_of_suite(suite)))
    except InvalidSignature:
        return False
    return True


def derive_key(shared_secret: bytes, suite: int, client_title: bytes, server_title: bytes) -> bytes:
    """The agreed key from Z with the concatenation KDF and the OtherInfo of the module docstring."""
    digest = hash_of_suite(suite)
    other_info = ALGORITHM_IDS[suite] + client_title + server_title
    return ConcatKDFHash(algorithm=digest, length=KEY_LENGTHS[suite], otherinfo=other_info).derive(shared_secret)


@dataclass(frozen=True)
class Agreement:
    """The outcome of one key's agreement: the server's ``key_agreement_data`` (its ephemeral
    public key and signature) and the agreed ``key`` (hidden from ``repr``)."""

    key_id: int
    answer: bytes
    key: bytes

    def __repr__(self) -> str:
        return f"Agreement(key_id={self.key_id})"


def agree(key_id: int, data: bytes, suite: int, client_signing_key: ec.EllipticCurvePublicKey,
          server_signing_key: ec.EllipticCurvePrivateKey, client_title: bytes, server_title: bytes) -> Agreement:
    """Check the client's ``key_agreement_data`` for ``key_id`` and agree a key; :class:`PkiError`
    with the reason when the data are malformed or the signature does not verify."""
    n = coordinate_length(suite)
    if len(data) != 4 * n:
        raise PkiError(f"key_agreement_data is {len(data)} octets, suite {suite} needs {4 * n}")
    q_client, signature = data[:2 * n], data[2 * n:]
    peer = public_key_from_raw(q_client, suite)
    if not verify_raw(client_signing_key, signature, bytes((key_id,)) + q_client, suite):
        raise PkiError("the client's signature over its ephemeral public key does not verify")
    ephemeral = ec.generate_private_key(curve_of_suite(suite))
    shared = ephemeral.exchange(ec.ECDH(), peer)
    q_server = raw_public_key(ephemeral.public_key())
    answer = q_server + sign_raw(server_signing_key, bytes((key_id,)) + q_server, suite)
    return Agreement(key_id, answer, derive_key(shared, suite, client_title, server_title))


__all__ = ["ALGORITHM_IDS", "KEY_LENGTHS", "Agreement", "agree", "coordinate_length", "derive_key",
           "public_key_from_raw", "raw_public_key", "sign_raw", "verify_raw"]

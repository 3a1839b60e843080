"""ECDSA as DLMS security suites 1 and 2 use it (Green Book §9.2.3.4.5, IEC 62056-5-3 §9.2.7.4):
HLS mechanism 7 and the signatures of general-signing.

A DLMS signature is the fixed-length concatenation ``r || s`` (64 octets for P-256/SHA-256,
suite 1; 96 for P-384/SHA-384, suite 2), not the DER of X.509. The meter signs with ``s`` in the
lower half of the group order and refuses a signature whose ``s`` is in the upper half (the
malleable twin of a valid one), of another length, with ``r`` or ``s`` out of range, or made on
another curve than the suite's.

HLS mechanism 7 (passes 3 and 4 of the association):

* the client proves itself with f(StoC) = sign_C(ST_C || ST_S || StoC || CtoS);
* the meter answers f(CtoS) = sign_S(ST_S || ST_C || CtoS || StoC);

``ST`` are the 8-octet system titles, StoC the meter's challenge, CtoS the client's.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from meterd.cosem.errors import SecurityError
from meterd.cosem.pki import curve_of_suite, hash_of_suite

CURVE_ORDERS = {
    1: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    2: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
}
"""The order n of the group of each suite's curve (P-256, P-384)."""
SCALAR_LEN = {1: 32, 2: 48}
"""Octets of r and of s on each suite's curve."""


class SignatureError(SecurityError):
    """A signature that does not verify, or is malformed; ``str()`` says why."""


def signature_length(suite: int) -> int:
    """Octets of a DLMS signature (``r || s``) of ``suite``: 64 (suite 1) or 96 (suite 2)."""
    if suite not in SCALAR_LEN:
        raise SignatureError(f"security suite {suite} has no digital signature")
    return 2 * SCALAR_LEN[suite]


def sign(key: ec.EllipticCurvePrivateKey, data: bytes, suite: int) -> bytes:
    """The DLMS signature ``r || s`` of ``data`` by ``key`` (the suite's curve and hash; low s)."""
    if not isinstance(key.curve, type(curve_of_suite(suite))):
        raise SignatureError(f"the signing key is on {key.curve.name}, not on the curve of suite {suite}")
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_of_suite(suite))))
    n = CURVE_ORDERS[suite]
    if s > n // 2:
        s = n - s
    size = SCALAR_LEN[suite]
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, suite: int) -> None:
    """Check the DLMS signature ``r || s`` of ``data`` with ``key``; :class:`SignatureError` with
    the reason when it is malformed, high-s, on the wrong curve or does not verify."""
    size = signature_length(suite) // 2
    if not isinstance(key.curve, type(curve_of_suite(suite))):
        raise SignatureError(f"the peer's key is on {key.curve.name}, not on the curve of suite {suite}")
    if len(signature) != 2 * size:
        raise SignatureError(f"signature of {len(signature)} octets, suite {suite} needs {2 * size}")
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    n = CURVE_ORDERS[suite]
    if not (0 < r < n and 0 < s < n):
        raise SignatureError("signature values out of range")
    if s > n // 2:
        raise SignatureError("signature with a high s value")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_of_suite(suite)))
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None


def client_proof_data(client_title: bytes, server_title: bytes, stoc: bytes, ctos: bytes) -> bytes:
    """What the client signs in HLS pass 3: ST_C || ST_S || StoC || CtoS."""
    return client_title + server_title + stoc + ctos


def server_proof_data(server_title: bytes, client_title: bytes, ctos: bytes, stoc: bytes) -> bytes:
    """What the meter signs in HLS pass 4: ST_S || ST_C || CtoS || StoC."""
    return server_title + client_title + ctos + stoc

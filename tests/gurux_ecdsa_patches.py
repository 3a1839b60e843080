"""Patches of the gurux *client*'s ECDSA (gurux-dlms 1.0.203) for the suite-1/2 interop tests.

Defects found driving HLS-ECDSA against the meter:

1. ``GXEcdsa.sign`` and ``GXEcdsa.verify`` pick the hash with ``scheme == Ecc.P256`` twice, so a
   P-384 key (suite 2) raises "Invalid private key scheme" instead of using SHA-384;
2. ``GXEcdsa.sign`` draws the nonce k with ``random.randbytes`` (not a CSPRNG, not reduced below
   the group order) and returns either of the two valid s values; the meter accepts only the low
   one (s ≤ n/2), so half of gurux's signatures would be refused;
3. ``GXSecure.secure`` prints the client's private signing key on stdout at every HLS-ECDSA
   authentication.

The patched ``sign``/``verify`` keep gurux's own curve arithmetic (``_GXShamirs``), so the test
still exercises gurux's ECDSA; only the hash choice, the nonce and the s normalisation change.
Each patch records whether the stock code still had the defect (:data:`DEFECTS_IN_STOCK`).
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
from typing import Any

from gurux_dlms.ecdsa import GXEcdsa
from gurux_dlms.ecdsa._GXShamirs import _GXShamirs
from gurux_dlms.ecdsa.enums.Ecc import Ecc
from gurux_dlms.ecdsa.GXEccPoint import GXEccPoint

DEFECTS_IN_STOCK: dict[str, bool] = {}
_applied = False


def _digest(scheme: Any, data: bytes) -> int:
    algorithm = hashlib.sha256 if scheme == Ecc.P256 else hashlib.sha384
    return int.from_bytes(algorithm(bytes(data)).digest(), "big")


def _size(scheme: Any) -> int:
    return 32 if scheme == Ecc.P256 else 48


def _sign(self: Any, data: bytes) -> bytes:
    key = self._GXEcdsa__privateKey
    curve = self._GXEcdsa__curve
    n = int(curve.n)
    e = _digest(key.scheme, data)
    d = int.from_bytes(bytes(key.rawValue), "big")
    while True:
        k = secrets.randbelow(n - 1) + 1
        point = GXEccPoint(0, 0)
        _GXShamirs.pointMulti(curve, point, curve.g, k)
        r = int(point.x) % n
        s = pow(k, -1, n) * (e + d * r) % n
        if r and s:
            s = min(s, n - s)
            size = _size(key.scheme)
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _verify(self: Any, signature: bytes, data: bytes) -> bool:
    if self._GXEcdsa__publicKey is None:
        self._GXEcdsa__publicKey = self._GXEcdsa__privateKey.getPublicKey()
    public = self._GXEcdsa__publicKey
    curve = self._GXEcdsa__curve
    n = int(curve.n)
    size = _size(public.scheme)
    if len(signature) != 2 * size:
        return False
    r, s = int.from_bytes(bytes(signature[:size]), "big"), int.from_bytes(bytes(signature[size:]), "big")
    if not (0 < r < n and 0 < s < n):
        return False
    w = pow(s, -1, n)
    point = GXEccPoint()
    _GXShamirs.trick(curve, public, point, _digest(public.scheme, data) * w % n, r * w % n)
    return int(point.x) % n == r


def _stock_p384_broken() -> bool:
    """True while stock ``sign`` refuses a P-384 key."""
    from gurux_dlms.ecdsa import GXPrivateKey

    try:
        GXEcdsa(GXPrivateKey.fromRawBytes(b"\x01" * 48)).sign(b"probe")
    except ValueError:
        return True
    return False


def apply() -> None:
    """Patch the gurux client's ECDSA (idempotent)."""
    global _applied
    if _applied:
        return
    DEFECTS_IN_STOCK["p384_hash"] = _stock_p384_broken()
    secure_module = importlib.import_module("gurux_dlms.GXSecure")
    with open(secure_module.__file__ or "") as source:
        DEFECTS_IN_STOCK["prints_private_key"] = "Private signed key" in source.read()
    GXEcdsa.sign = _sign
    GXEcdsa.verify = _verify
    secure_module.print = lambda *args, **kwargs: None  # type: ignore[attr-defined]  # silence the key dump
    _applied = True

"""The DLMS keys file: LLS password, the ciphered associations' keys, security suite, HLS
mechanism and security policy, and the server system title.

TOML, mode 0600 (anything readable by group or others is refused)::

    [server]
    system_title = "504D4D0000000001"          # 8 octets, hex

    [reader]                                   # client SAP 17, LLS
    lls_password = "12345678"

    [management]                               # client SAP 1, the ciphered association(s)
    security_suite = 0                         # optional: 0 (default), 1 or 2
    authentication = "hls-gmac"                # optional: "hls-gmac" (default) or "hls-ecdsa" (suites 1, 2)
    security_policy = ["authenticated-request", "encrypted-request",
                       "authenticated-response", "encrypted-response"]   # optional (this default)
    global_unicast_key = "000102...0F"         # 16 octets (suites 0, 1: AES-128; suite 2: 32), hex
    authentication_key = "D0D1...DF"
    master_key = "0001...0F"                   # KEK for key_transfer (RFC 3394 wrap)
    client_system_titles = ["4758580000000001"]  # optional: only these clients may associate

The security suite, HLS mechanism and policy apply to every ciphered association (they share the
``[management]`` keys); the keys must have the suite's length (:data:`SUITE_KEY_LEN`). Suites 1
and 2 take the server's key pairs and the clients' certificates from the
:class:`~meterd.cosem.pki.Pki`, never from this file.

Keys never appear in ``repr`` or logs. :meth:`DlmsKeys.save` writes the file atomically with
mode 0600 (used after a key_transfer through Security setup).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hw.secret_file import SecretFileError, read_secret_text, write_secret_text
from meterd.cosem.acse import MECH_HLS_ECDSA, MECH_HLS_GMAC
from meterd.cosem.errors import KeyFileError

_KEY_NAMES = ("global_unicast_key", "authentication_key", "master_key")
SUITE0_KEY_LEN = 16  # security suite 0: AES-GCM-128 and AES-128 key wrap (octets)
SUITE_KEY_LEN = {0: 16, 1: 16, 2: 32}
"""Octets of every symmetric key of a suite: AES-128 (suites 0, 1), AES-256 (suite 2)."""
KEY_IDS = {0: "global_unicast_key", 2: "authentication_key", 3: "master_key"}
AUTHENTICATIONS = {"hls-gmac": MECH_HLS_GMAC, "hls-ecdsa": MECH_HLS_ECDSA}
"""The HLS mechanisms a ciphered association may use, by their name in the keys file."""
POLICY_BITS = {"authenticated-request": 0x04, "encrypted-request": 0x08, "digitally-signed-request": 0x10,
               "authenticated-response": 0x20, "encrypted-response": 0x40, "digitally-signed-response": 0x80}
"""Security policy version 1 (class 64 v1 attribute 2): the bit of each protection."""
POLICY_AUTH_ENC = 0x04 | 0x08 | 0x20 | 0x40
"""The default policy: every request and response authenticated and encrypted."""


@dataclass(frozen=True)
class DlmsKeys:
    """Secrets of the DLMS server (hidden from ``repr``)."""

    server_system_title: bytes
    lls_password: bytes = field(repr=False)
    global_unicast_key: bytes = field(repr=False)
    authentication_key: bytes = field(repr=False)
    master_key: bytes = field(repr=False)
    path: Path | None = None
    client_system_titles: frozenset[bytes] = frozenset()
    """The system titles (8 octets) of the clients allowed to open a ciphered association;
    empty: any client holding the keys."""
    security_suite: int = 0
    """The security suite of the ciphered associations: 0, 1 or 2."""
    mechanism: int = MECH_HLS_GMAC
    """Their HLS mechanism: 5 (HLS-GMAC) or 7 (HLS-ECDSA, suites 1 and 2 only)."""
    security_policy: int = POLICY_AUTH_ENC
    """Their security policy (version 1 bits, :data:`POLICY_BITS`)."""

    def __post_init__(self) -> None:
        if len(self.server_system_title) != 8:
            raise KeyFileError("server system_title must be 8 octets")
        where = f"{self.path}: " if self.path is not None else ""
        if any(len(title) != 8 for title in self.client_system_titles):
            raise KeyFileError(f"{where}[management] client_system_titles: every title must be 8 octets")
        if self.security_suite not in SUITE_KEY_LEN:
            raise KeyFileError(f"{where}[management] security_suite {self.security_suite}: 0, 1 or 2 expected")
        if self.mechanism not in AUTHENTICATIONS.values():
            raise KeyFileError(f"{where}[management] authentication: mechanism {self.mechanism} not offered")
        if self.mechanism == MECH_HLS_ECDSA and self.security_suite == 0:
            raise KeyFileError(f"{where}[management] authentication hls-ecdsa needs security_suite 1 or 2")
        if self.security_policy & ~0xFC or self.security_policy & 0x0C == 0:
            raise KeyFileError(f"{where}[management] security_policy: requests must be at least "
                               "authenticated or encrypted")
        need = self.key_length
        aes = "AES-256" if need == 32 else "AES-128"
        for name in _KEY_NAMES:
            length = len(getattr(self, name))
            if length != need:
                raise KeyFileError(f"{where}[management] {name} is {length} octets; security suite "
                                   f"{self.security_suite} ({aes}) needs {need}")

    @property
    def key_length(self) -> int:
        """Octets of every symmetric key of the configured suite."""
        return SUITE_KEY_LEN[self.security_suite]

    def with_key(self, name: str, value: bytes) -> DlmsKeys:
        """A copy with one management key replaced."""
        if name not in _KEY_NAMES:
            raise KeyFileError(f"unknown key {name}")
        changes: dict[str, Any] = {name: value}
        return replace(self, **changes)

    def save(self, path: Path | None = None) -> None:
        """Write the keys file atomically with mode 0600."""
        target = path or self.path
        if target is None:
            raise KeyFileError("no keys file path to save to")
        text = (
            "[server]\n"
            f'system_title = "{self.server_system_title.hex().upper()}"\n\n'
            "[reader]\n"
            f'lls_password = "{self.lls_password.decode("latin-1")}"\n\n'
            "[management]\n"
            + "".join(f'{n} = "{getattr(self, n).hex().upper()}"\n' for n in _KEY_NAMES)
        )
        if self.security_suite:
            text += f"security_suite = {self.security_suite}\n"
        if self.mechanism != MECH_HLS_GMAC:
            name = next(k for k, v in AUTHENTICATIONS.items() if v == self.mechanism)
            text += f'authentication = "{name}"\n'
        if self.security_policy != POLICY_AUTH_ENC:
            bits = ", ".join(f'"{k}"' for k, v in POLICY_BITS.items() if self.security_policy & v)
            text += f"security_policy = [{bits}]\n"
        if self.client_system_titles:
            titles = ", ".join(f'"{t.hex().upper()}"' for t in sorted(self.client_system_titles))
            text += f"client_system_titles = [{titles}]\n"
        write_secret_text(target, text)


def _hex(table: dict[str, Any], section: str, key: str) -> bytes:
    raw = table.get(key)
    if not isinstance(raw, str):
        raise KeyFileError(f"[{section}] {key}: missing or not a string")
    try:
        return bytes.fromhex(raw)
    except ValueError as exc:
        raise KeyFileError(f"[{section}] {key}: not hexadecimal") from exc


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    table = doc.get(name)
    if not isinstance(table, dict):
        raise KeyFileError(f"section [{name}] missing")
    return table


def parse_keys(doc: dict[str, Any], path: Path | None = None) -> DlmsKeys:
    """Validate a parsed keys document."""
    unknown = set(doc) - {"server", "reader", "management"}
    if unknown:
        raise KeyFileError(f"unknown sections {sorted(unknown)}")
    server, reader, mgmt = (_section(doc, n) for n in ("server", "reader", "management"))
    password = reader.get("lls_password")
    if not isinstance(password, str) or not password:
        raise KeyFileError("[reader] lls_password: missing or empty")
    return DlmsKeys(
        server_system_title=_hex(server, "server", "system_title"),
        lls_password=password.encode("latin-1"),
        global_unicast_key=_hex(mgmt, "management", "global_unicast_key"),
        authentication_key=_hex(mgmt, "management", "authentication_key"),
        master_key=_hex(mgmt, "management", "master_key"),
        path=path,
        client_system_titles=_titles(mgmt),
        security_suite=_suite(mgmt),
        mechanism=_mechanism(mgmt),
        security_policy=_policy(mgmt),
    )


def _suite(mgmt: dict[str, Any]) -> int:
    raw = mgmt.get("security_suite", 0)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw not in SUITE_KEY_LEN:
        raise KeyFileError(f"[management] security_suite: 0, 1 or 2 expected, not {raw!r}")
    return raw


def _mechanism(mgmt: dict[str, Any]) -> int:
    raw = mgmt.get("authentication", "hls-gmac")
    if raw not in AUTHENTICATIONS:
        raise KeyFileError(f"[management] authentication: one of {sorted(AUTHENTICATIONS)} expected")
    return AUTHENTICATIONS[raw]


def _policy(mgmt: dict[str, Any]) -> int:
    raw = mgmt.get("security_policy")
    if raw is None:
        return POLICY_AUTH_ENC
    if not isinstance(raw, list) or not all(isinstance(b, str) and b in POLICY_BITS for b in raw):
        raise KeyFileError(f"[management] security_policy: a list of {sorted(POLICY_BITS)} expected")
    policy = 0
    for name in raw:
        policy |= POLICY_BITS[name]
    return policy


def _titles(mgmt: dict[str, Any]) -> frozenset[bytes]:
    raw = mgmt.get("client_system_titles", [])
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise KeyFileError("[management] client_system_titles: a list of hexadecimal strings expected")
    try:
        return frozenset(bytes.fromhex(t) for t in raw)
    except ValueError as exc:
        raise KeyFileError("[management] client_system_titles: not hexadecimal") from exc


def load_keys(path: Path) -> DlmsKeys:
    """Read and validate the keys file; refuse it unless its mode is 0600 (or stricter)."""
    try:
        text = read_secret_text(path)
    except SecretFileError as exc:
        raise KeyFileError(str(exc)) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"{path}: unreadable ({type(exc).__name__})") from exc
    return parse_keys(doc, path)


class KeyRing:
    """The current keys, shared by every session; key_transfer replaces them and saves the file."""

    def __init__(self, keys: DlmsKeys, persist: bool = True) -> None:
        self.current = keys
        self._persist = persist and keys.path is not None

    def replace(self, name: str, value: bytes) -> None:
        """Install a new management key (and write the keys file when it came from one)."""
        self.current = self.current.with_key(name, value)
        if self._persist:
            self.current.save()

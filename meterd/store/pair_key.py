"""The CIU pair key file on the meter: 32 bytes as 64 hex digits, mode 0600, replaced atomically.

A missing, unreadable or wrong-length file means "not paired" (None); an unreadable one is
logged, since the CIU must then be paired again.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from meterd.proto.ciu_link import KEY_LEN

log = logging.getLogger("meterd.ciu")


def read_key(path: Path) -> bytes | None:
    """The pair key (64 hex digits) or None when there is no usable file."""
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        log.error("CIU pair key file %s is unreadable; the CIU must be paired again", path)
        return None
    return key if len(key) == KEY_LEN else None


def write_key(path: Path, key: bytes) -> None:
    """Store a pair key, mode 0600, atomically (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def sim_prepair(meter_key: Path, ciu_key: Path) -> bytes:
    """Simulator only: one throwaway pair key in both state dirs (kept when already there)."""
    key = read_key(meter_key)
    if key is None:
        key = secrets.token_bytes(KEY_LEN)
        write_key(meter_key, key)
        log.info("simulated CIU pre-paired with a throwaway key")
    if read_key(ciu_key) != key:
        write_key(ciu_key, key)
    return key


class PairKeyFile:
    """The meter's pair key at ``path`` (the CIU service's key store)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes | None:
        """The stored key, None when not paired."""
        return read_key(self.path)

    def save(self, key: bytes) -> None:
        """Store a new pair key (after pairing)."""
        write_key(self.path, key)

"""The CIU pair key file on the meter: 32 bytes as 64 hex digits, mode 0600, replaced atomically.

A missing, unreadable, wrong-length or group/other-readable file means "not paired" (None); all
but a missing one are logged, since the CIU must then be paired again. Read and written through
:mod:`hw.secret_file`, the one secret-file reader and writer of both Pis.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from hw.secret_file import SecretFileError, SecretFileMissing, read_secret_text, write_secret_text
from meterd.proto.ciu_link import KEY_LEN

log = logging.getLogger("meterd.ciu")


def read_key(path: Path) -> bytes | None:
    """The pair key (64 hex digits) or None when there is no usable file."""
    try:
        key = bytes.fromhex(read_secret_text(path, encoding="ascii").strip())
    except SecretFileMissing:
        return None
    except SecretFileError as exc:
        log.error("CIU pair key refused (%s); the CIU must be paired again", exc)
        return None
    except ValueError:
        log.error("CIU pair key file %s is unreadable; the CIU must be paired again", path)
        return None
    return key if len(key) == KEY_LEN else None


def write_key(path: Path, key: bytes) -> None:
    """Store a pair key, mode 0600, atomically (write, fsync, rename, directory fsync)."""
    write_secret_text(path, key.hex() + "\n", encoding="ascii")


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

"""The pending-energy record: the metering loop's cumulative totals, kept in a memory-mapped
file next to the energy journal (tmpfs), so they survive kill -9 (see :mod:`meterd.core.pending`).

File: two slots of :data:`SLOT_SIZE` bytes, written alternately (a write torn at any byte leaves
the other slot whole), each (big-endian)::

    magic "PMMP" | version u16 | register count u16 | seq u64 | identity sha256 (32 bytes) |
    boot sha256 (32 bytes) | token (16 bytes) | totals i64 × register count (ALL_KEYS order, milli-units) | CRC-32 u32

A write is a copy into the page cache (no system call): cheap enough for every tick. The boot
token is the journal's (:func:`meterd.store.energy_copies.boot_token`): a record is loaded only
in the life of the RAM file system that wrote it, like the journal beside it.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

from meterd.core.energy import ALL_KEYS, RegisterKey
from meterd.core.pending import RecordState
from meterd.store.energy_journal import JournalError, identity_digest

MAGIC = b"PMMP"
VERSION = 1
_HEAD = struct.Struct(">4sHHQ32s32s16s")
_TOTALS = struct.Struct(">" + "q" * len(ALL_KEYS))
_CRC = struct.Struct(">I")
SLOT_SIZE = 512
PENDING_SUFFIX = ".pending"


def pending_path(journal_path: Path) -> Path:
    """The record's file beside the energy journal."""
    return journal_path.with_name(journal_path.name + PENDING_SUFFIX)


class PendingSlot:
    """The two-slot record file (implements :class:`~meterd.core.pending.PendingRecord`).
    ``identity``: the meter's serial (a record of another meter is never loaded); ``boot``: the
    boot token of the RAM file system (a record of another boot is never loaded)."""

    def __init__(self, path: Path | str, identity: str, boot: str) -> None:
        self.path = Path(path)
        self.identity = identity_digest(identity)
        self.boot = identity_digest(boot)
        self.writes = 0
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot open pending-energy record: {exc.strerror}") from None
        try:
            if os.fstat(fd).st_size != 2 * SLOT_SIZE:
                os.ftruncate(fd, 0)
                os.pwrite(fd, bytes(2 * SLOT_SIZE), 0)
            self._map = mmap.mmap(fd, 2 * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot map pending-energy record: {exc.strerror}") from None
        finally:
            os.close(fd)
        self._seq, self._newest, self._loaded = self._scan()

    def _decode(self, index: int) -> tuple[int, RecordState] | None:
        raw = self._map[index * SLOT_SIZE:(index + 1) * SLOT_SIZE]
        end = _HEAD.size + _TOTALS.size
        magic, version, count, seq, ident, boot, token = _HEAD.unpack_from(raw, 0)
        if magic != MAGIC or version != VERSION or count != len(ALL_KEYS) or ident != self.identity \
                or boot != self.boot:
            return None
        (crc,) = _CRC.unpack_from(raw, end)
        if zlib.crc32(raw[:end]) != crc:
            return None
        values = _TOTALS.unpack_from(raw, _HEAD.size)
        totals = {key: int(v) for key, v in zip(ALL_KEYS, values, strict=True) if v}
        return int(seq), RecordState(bytes(token).hex(), totals)

    def _scan(self) -> tuple[int, int | None, RecordState | None]:
        best: tuple[int, int | None, RecordState | None] = (0, None, None)
        for index in (0, 1):
            found = self._decode(index)
            if found is not None and (best[1] is None or found[0] > best[0]):
                best = (found[0], index, found[1])
        return best

    def load(self) -> RecordState | None:
        """The newest whole record found when the file was opened."""
        return self._loaded

    def write(self, token: str, totals: Mapping[RegisterKey, int]) -> None:
        """Write the cumulative ``totals`` of ``token`` (32 hex digits) into the older slot."""
        self._seq += 1
        body = _HEAD.pack(MAGIC, VERSION, len(ALL_KEYS), self._seq, self.identity, self.boot,
                          bytes.fromhex(token)) \
            + _TOTALS.pack(*(int(totals.get(key, 0)) for key in ALL_KEYS))
        data = body + _CRC.pack(zlib.crc32(body))
        index = 0 if self._newest is None else 1 - self._newest
        self._map[index * SLOT_SIZE:index * SLOT_SIZE + len(data)] = data
        self._newest = index
        self.writes += 1

    def close(self, discard: bool = False) -> None:
        """Unmap; with ``discard`` remove the file (after a clean stop everything was consumed)."""
        self._map.close()
        if discard:
            self.path.unlink(missing_ok=True)

"""The energy journal: the meter's RAM record of its registers, kept in a memory-mapped file on
tmpfs, so it survives the death of meterd (kill -9, a crash, a service restart) at no cost in
storage writes. Real meters keep the same record in battery-backed RAM or FRAM.

File: a small fixed file (two slots of ``slot_size`` bytes, 32 KiB by default) in a RAM file
system: ``/run/meterd/energy.journal`` on a Pi (systemd ``RuntimeDirectory=meterd`` with
``RuntimeDirectoryPreserve=yes``, so it survives restarts of the service but not a reboot), a
file per state directory under ``/dev/shm`` in simulation. It is mapped ``MAP_SHARED``: a write is
a copy into the page cache, no system call, and what was copied before a kill -9 stays there.

Slots A and B are written alternately, and a write never touches the newest valid slot, so a
write torn at any byte leaves the other slot whole. Each slot (big-endian)::

    magic "PMMJ" | version u16 | register count u16 | seq u64 | utc µs i64 |
    identity sha256 (32 bytes) | payload length u32 | payload | CRC-32 u32

The payload is what the SQLite checkpoint stores: the packed registers (int64 milli-units, in
:data:`meterd.core.energy.ALL_KEYS` order) followed by the zlib-compressed JSON of the state
saved with them, in which the key ``_commissioning`` carries the meter's commissioning id. The
CRC covers everything from the magic to the end of the payload. The identity (the digest of the
meter's serial) keeps a journal from ever being applied to another meter; the commissioning id
keeps it from being applied after the meter was commissioned anew. Neither depends on the
database, so a journal outlives a lost or damaged database (:mod:`meterd.store.energy_copies`).

Watched while running: :meth:`EnergyJournal.check` (each cycle, before the write) notices a file
that was removed, replaced, truncated or overwritten (a stat and the CRC of the newest slot) and
:meth:`EnergyJournal.recreate` makes a new one holding the last record. The same slot format,
with the magic ``PMMR``, is the register file on the SD card (:mod:`meterd.store.register_file`).

Not in the journal's power: a power cut or a reboot empties tmpfs. The energy database on the
SD card then decides (see :mod:`meterd.core.checkpoint`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import mmap
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meterd.core.checkpoint import Checkpoint
from meterd.core.energy import ALL_KEYS, RegisterKey
from meterd.core.errors import StateError
from meterd.store.energy_store import (
    REGISTERS_SIZE,
    decode_extra,
    encode_extra,
    pack_registers,
    unpack_registers,
)

MAGIC = b"PMMJ"
COMMISSIONING_KEY = "_commissioning"
VERSION = 1
_HEADER = struct.Struct(">4sHHQq32sI")
_CRC = struct.Struct(">I")
MIN_SLOT_SIZE = 4096
DEFAULT_SLOT_SIZE = 16384
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
JOURNAL_NAME = "energy.journal"


class JournalError(StateError):
    """The journal file cannot be created, mapped or written."""


def identity_digest(identity: str) -> bytes:
    """The 32-byte identity stored in each slot (SHA-256 of the identity text)."""
    return hashlib.sha256(identity.encode()).digest()


def shared_journal_path(directory: Path | str, state_dir: Path | str) -> Path:
    """A journal file in a directory several meters may share (``/dev/shm`` in simulation):
    named after the resolved state directory, so each meter has its own."""
    tag = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(directory) / f"meterd-{tag}-{JOURNAL_NAME}"


def _to_us(utc: _dt.datetime) -> int:
    delta = utc - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_slot(seq: int, utc: _dt.datetime, identity: bytes, registers: Mapping[RegisterKey, int],
                extra: Mapping[str, Any], commissioning: str = "", magic: bytes = MAGIC) -> bytes:
    """One slot's bytes: header, payload, CRC-32."""
    if commissioning:
        extra = {**extra, COMMISSIONING_KEY: commissioning}
    payload = pack_registers(registers) + encode_extra(extra, level=1)
    body = _HEADER.pack(magic, VERSION, len(ALL_KEYS), seq, _to_us(utc), identity, len(payload)) + payload
    return body + _CRC.pack(zlib.crc32(body))


def slot_seq(raw: bytes | memoryview, identity: bytes, magic: bytes = MAGIC) -> int | None:
    """The sequence number of a whole slot of this meter (magic, length, CRC, identity), None
    otherwise; the payload is not decoded (cheap enough for every cycle)."""
    if len(raw) < _HEADER.size + _CRC.size:
        return None
    found, version, count, seq, _utc_us, ident, length = _HEADER.unpack_from(raw, 0)
    end = _HEADER.size + length
    if found != magic or ident != identity or end + _CRC.size > len(raw):
        return None
    (crc,) = _CRC.unpack_from(raw, end)
    return int(seq) if zlib.crc32(raw[:end]) == crc else None


def decode_slot(raw: bytes | memoryview, identity: bytes, magic: bytes = MAGIC) -> tuple[Checkpoint | None, str]:
    """The checkpoint in one slot, or None and why it is refused."""
    if len(raw) < _HEADER.size + _CRC.size:
        return None, "slot too small"
    found, version, count, seq, utc_us, ident, length = _HEADER.unpack_from(raw, 0)
    if found != magic:
        return None, "empty" if not any(bytes(raw[:_HEADER.size])) else "bad magic"
    if version != VERSION or count != len(ALL_KEYS):
        return None, f"format {version}/{count} registers not supported"
    end = _HEADER.size + length
    if length < REGISTERS_SIZE or end + _CRC.size > len(raw):
        return None, "bad length"
    (crc,) = _CRC.unpack_from(raw, end)
    if zlib.crc32(raw[:end]) != crc:
        return None, "CRC mismatch"
    if ident != identity:
        return None, "written for another meter"
    payload = bytes(raw[_HEADER.size:end])
    try:
        registers = unpack_registers(payload[:REGISTERS_SIZE])
        extra = decode_extra(payload[REGISTERS_SIZE:])
    except (StateError, ValueError, zlib.error) as exc:
        return None, f"bad payload: {exc}"
    utc = _EPOCH + _dt.timedelta(microseconds=utc_us)
    commissioning = str(extra.pop(COMMISSIONING_KEY, ""))
    return Checkpoint(seq=seq, utc=utc, registers=registers, extra=extra, commissioning=commissioning), "valid"


class EnergyJournal:
    """The two-slot journal file, memory-mapped (see the module docstring). ``identity``: the
    meter's serial; ``commissioning``: the id written into every record (see :meth:`adopt`).
    ``found``: what was at ``path`` when it was opened ("intact", "missing", or why the file was
    made anew); ``rejected``: slots refused, with the reason."""

    def __init__(self, path: Path | str, identity: str, slot_size: int = DEFAULT_SLOT_SIZE,
                 commissioning: str = "") -> None:
        if slot_size < MIN_SLOT_SIZE or slot_size % mmap.PAGESIZE:
            raise ValueError("slot_size must be a multiple of the page size, at least 4096")
        self.path = Path(path)
        self.identity = identity_digest(identity)
        self.commissioning = commissioning
        self.writes = 0
        self.recreated = 0
        self.rejected: list[str] = []
        self.found = "intact"
        self._inode = 0
        self._map = self._open(slot_size)
        self._slot_size = len(self._map) // 2
        self._newest, self._loaded = self._scan()
        self._next = 0 if self._newest is None else 1 - self._newest

    # -- file ---------------------------------------------------------------------------------

    def _open(self, slot_size: int) -> mmap.mmap:
        """Map the file, creating it (pages really allocated, so a full tmpfs fails here and not
        with SIGBUS at a later write) when it is missing or not a journal's size."""
        existed = self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot open energy journal: {exc.strerror}") from None
        try:
            stat = os.fstat(fd)
            size = stat.st_size
            if not existed:
                self.found = "missing"
            if size < 2 * MIN_SLOT_SIZE or size % (2 * mmap.PAGESIZE):
                if existed:
                    self.found = f"truncated or resized ({size} bytes)"
                os.ftruncate(fd, 0)
                _fill(fd, 2 * slot_size)
                size = 2 * slot_size
            self._inode = stat.st_ino
            return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot map energy journal: {exc.strerror}") from None
        finally:
            os.close(fd)

    def _slot(self, index: int) -> memoryview:
        return memoryview(self._map)[index * self._slot_size:(index + 1) * self._slot_size]

    def _scan(self) -> tuple[int | None, Checkpoint | None]:
        best: tuple[int | None, Checkpoint | None] = (None, None)
        self.rejected = []
        for index in (0, 1):
            with self._slot(index) as view:
                checkpoint, why = decode_slot(view, self.identity)
            if checkpoint is None:
                if why != "empty":
                    self.rejected.append(f"slot {'AB'[index]}: {why}")
                continue
            if best[1] is None or checkpoint.seq > best[1].seq:
                best = (index, checkpoint)
        return best

    # -- port ---------------------------------------------------------------------------------

    def load(self) -> Checkpoint | None:
        """The newest valid checkpoint of this meter in the journal, or None."""
        return self._loaded

    def adopt(self, commissioning: str) -> None:
        """Write ``commissioning`` from now on, and forget a loaded record of another one (it
        belongs to the meter as it was before it was commissioned anew)."""
        self.commissioning = commissioning
        if self._loaded is not None and self._loaded.commissioning != commissioning:
            self.rejected.append(f"record {self._loaded.seq}: of another commissioning")
            self._loaded = None
            self._newest = None  # no record of ours yet: the next write is the newest

    def write(self, checkpoint: Checkpoint) -> None:
        """Copy a checkpoint into the slot that does not hold the newest valid one."""
        data = encode_slot(checkpoint.seq, checkpoint.utc, self.identity, checkpoint.registers,
                           checkpoint.extra, self.commissioning)
        if len(data) > self._slot_size:
            self._grow(len(data))
        self._map[self._next * self._slot_size:self._next * self._slot_size + len(data)] = data
        self._newest, self._next = self._next, 1 - self._next
        self._loaded = checkpoint
        self.writes += 1

    def check(self) -> str | None:
        """None while the file at ``path`` is the mapped one, of its size, and the newest slot
        holds what was last written (a stat and one CRC: cheap enough for every cycle); else
        what is wrong."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "file removed"
        except OSError as exc:
            return f"cannot stat: {exc.strerror}"
        if stat.st_ino != self._inode:
            return "file replaced"
        if stat.st_size != len(self._map):
            return f"file resized to {stat.st_size} bytes"
        if self._newest is None:
            return None
        with self._slot(self._newest) as view:
            seq = slot_seq(view, self.identity)
        if seq is None or self._loaded is None or seq != self._loaded.seq:
            return "newest record damaged"
        return None

    def recreate(self) -> None:
        """A new file in place of a removed or damaged one, holding the last written record."""
        last = self._loaded if self._newest is not None else None
        self._map.close()
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot replace energy journal: {exc.strerror}") from None
        found = self.found
        self._map = self._open(self._slot_size)
        self.found = found
        self._slot_size = len(self._map) // 2
        self._newest, self._next = None, 0
        self.recreated += 1
        if last is not None:
            self.write(last)

    def _grow(self, needed: int) -> None:
        """Replace the file by one with larger slots; the swap is an atomic rename, and the new
        file already holds the newest record, so a kill at any point leaves a valid journal."""
        slot_size = self._slot_size
        while slot_size < needed:
            slot_size *= 2
        tmp = self.path.with_name(self.path.name + ".new")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _fill(fd, 2 * slot_size)
                if self._newest is not None:
                    with self._slot(self._newest) as view:
                        os.pwrite(fd, bytes(view), 0)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot grow energy journal: {exc.strerror}") from None
        self._map.close()
        self._map = self._open(slot_size)
        self._slot_size = slot_size
        self._newest, self._next = (0, 1) if self._newest is not None else (None, 0)

    def close(self, discard: bool = False) -> None:
        """Unmap; with ``discard`` also remove the file (after a clean, synced shutdown it holds
        nothing the database does not)."""
        self._map.close()
        if discard:
            self.path.unlink(missing_ok=True)

    @property
    def slot_size(self) -> int:
        """Bytes per slot."""
        return self._slot_size


def _fill(fd: int, size: int) -> None:
    """Write ``size`` zero bytes at the start of ``fd`` (really allocated, unlike a hole)."""
    chunk = bytes(65536)
    done = 0
    while done < size:
        done += os.pwrite(fd, chunk[:min(len(chunk), size - done)], done)

"""The register file: a second durable copy of the energy checkpoint on the SD card, independent
of the SQLite database (``<state_dir>/energy.registers``).

Same slot format as the energy journal (:mod:`meterd.store.energy_journal`), magic ``PMMR``: two
slots A and B of equal size, written alternately with ``pwrite`` and ``fdatasync`` (the file
never changes size once made: data only, no metadata), so a write torn by a power cut at any
byte leaves the other slot whole; each slot carries its sequence number,
the UTC of the state, the digest of the meter's serial, the commissioning id, the registers
(int64 milli-units) and the state saved with them, under a CRC-32. Written at the moments the
database is saved synced (every ``sync_period_s``, on the power-fail input, at shutdown): the
record's bytes only (about 1 KiB), so one or two 4 KiB blocks per save.

A slot that is too large for the file makes a new file with larger slots (written and synced
under a temporary name, then renamed over the old one and the directory synced).

The file's pages are dropped from the page cache after it is read at start and after a new file
is written whole (:func:`drop_cached`): the kernel may cache a file read or written in one piece
as one large folio spanning both slots (ext4 does, from Linux 6.16), and a slot write would then
dirty, and write back, both slots' blocks (8 KiB instead of 4 per save). Cached again page by
page at the next write, a slot write dirties its own 4 KiB block only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from meterd.core.checkpoint import Checkpoint, CheckpointWriteError
from meterd.core.errors import StateError
from meterd.store.energy_journal import decode_slot, encode_slot, identity_digest

MAGIC = b"PMMR"
MIN_SLOT_SIZE = 4096
REGISTER_FILE_NAME = "energy.registers"


class RegisterFile:
    """Two checksummed slots, fsynced at each write. ``identity``: the meter's serial;
    ``commissioning``: the id written into each record. ``found``: "intact", "missing" or what
    is wrong with the file as a whole; ``rejected``: slots refused, with the reason."""

    def __init__(self, path: Path | str, identity: str, commissioning: str = "") -> None:
        self.path = Path(path)
        self.identity = identity_digest(identity)
        self.commissioning = commissioning
        self.writes = 0
        self.rejected: list[str] = []
        self.found = "intact"
        self._slot_size = 0
        self._newest: int | None = None
        self._loaded: Checkpoint | None = None
        self._scan()

    def _scan(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                raw = os.read(fd, os.fstat(fd).st_size)
                drop_cached(fd)
            finally:
                os.close(fd)
        except FileNotFoundError:
            self.found = "missing"
            return
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read register file: {exc.strerror}") from None
        if len(raw) < 2 * MIN_SLOT_SIZE or len(raw) % (2 * MIN_SLOT_SIZE):
            self.found = f"truncated or resized ({len(raw)} bytes)"
            return
        self._slot_size = len(raw) // 2
        for index in (0, 1):
            checkpoint, why = decode_slot(raw[index * self._slot_size:(index + 1) * self._slot_size],
                                          self.identity, MAGIC)
            if checkpoint is None:
                self.rejected.append(f"slot {'AB'[index]}: {why}")
                continue
            if self._loaded is None or checkpoint.seq > self._loaded.seq:
                self._newest, self._loaded = index, checkpoint

    def load(self) -> Checkpoint | None:
        """The newest valid checkpoint of this meter in the file, or None."""
        return self._loaded

    def adopt(self, commissioning: str) -> None:
        """Write ``commissioning`` from now on; forget a record of another commissioning."""
        self.commissioning = commissioning
        if self._loaded is not None and self._loaded.commissioning != commissioning:
            self.rejected.append(f"record {self._loaded.seq}: of another commissioning")
            self._loaded, self._newest = None, None

    def write(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` into the slot that does not hold the newest one and fsync it;
        :class:`CheckpointWriteError` when the disk refuses (the other slot stays valid)."""
        data = encode_slot(checkpoint.seq, checkpoint.utc, self.identity, checkpoint.registers,
                           checkpoint.extra, self.commissioning, MAGIC)
        try:
            if self._slot_size < len(data) or not self.path.exists():
                self._make(len(data))
            index = 0 if self._newest is None else 1 - self._newest
            fd = os.open(self.path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, index * self._slot_size)  # past the length: ignored
                os.fdatasync(fd)  # the size never changes here: data only, no journal commit
            finally:
                os.close(fd)
        except OSError as exc:
            raise CheckpointWriteError(f"{self.path}: {exc.strerror or exc}") from None
        self._newest, self._loaded = index, checkpoint
        self.writes += 1

    def _make(self, needed: int) -> None:
        """A new file with slots of at least ``needed`` bytes, holding the newest record."""
        slot_size = max(MIN_SLOT_SIZE, self._slot_size)
        while slot_size < needed:
            slot_size *= 2
        image = bytearray(2 * slot_size)
        if self._loaded is not None and self._newest is not None:
            keep = encode_slot(self._loaded.seq, self._loaded.utc, self.identity, self._loaded.registers,
                               self._loaded.extra, self._loaded.commissioning, MAGIC)
            image[:len(keep)] = keep
            self._newest = 0
        tmp = self.path.with_name(self.path.name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, bytes(image))
            os.fsync(fd)
            drop_cached(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        sync_directory(self.path.parent)
        self._slot_size = slot_size


def drop_cached(fd: int) -> None:
    """Drop the file's clean pages from the page cache (a hint: nothing is lost, nothing fails)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

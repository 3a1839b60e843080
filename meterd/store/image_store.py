"""The firmware image being transferred over DLMS, on the data partition, crash-safe.

Three files in one directory (``<state_dir>/image/`` by default):

* ``image.json``: the transfer's identifier (hex), size (octets), block size (octets) and the
  transfer state the service keeps with it (status, verdict, activation schedule); replaced
  atomically (:func:`~meterd.store.json_file.write_json_atomic`);
* ``image.bin``: the image, ``size`` octets, reserved in full at :meth:`ImageStore.begin` (so a
  transfer that would not fit is refused at once, never half way), each block written at
  ``number × block_size`` as it comes, in any order;
* ``image.crc``: four octets per block, the complement of the CRC-32 of the block as written.

A block counts as transferred when its stored CRC matches the data in ``image.bin``. So no write
order has to be kept: a crash or power cut that tears a block or its CRC, or loses the unsynced
tail, costs those blocks only, which read as missing and are sent again; ``image.crc`` of zeros
(a fresh file) never matches. Data and CRC are synced every ``sync_blocks`` blocks and when the
last block arrives. The size is limited (``max_size``) so that no client can fill the partition.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterd.services.image_transfer import TransferError
from meterd.store.json_file import read_json, write_json_atomic

HEADER, IMAGE, CRCS = "image.json", "image.bin", "image.crc"
_CRC = struct.Struct(">I")


class ImageStoreError(TransferError):
    """A transfer the store cannot take: too large, no space, a block out of range or of the
    wrong length. The message says which, in one line."""


@dataclass(frozen=True)
class ImageHeader:
    """What identifies a transfer: ``identifier`` (octets, as the client sent it), ``size`` and
    ``block_size`` (octets)."""

    identifier: bytes
    size: int
    block_size: int

    @property
    def blocks(self) -> int:
        """Number of blocks (the last may be short)."""
        return -(-self.size // self.block_size)

    def block_length(self, number: int) -> int:
        """Octets of block ``number``."""
        return min(self.block_size, self.size - number * self.block_size)


class ImageStore:
    """The image files in ``directory`` (see module docstring); at most ``max_size`` octets."""

    def __init__(self, directory: Path, max_size: int, sync_blocks: int = 16) -> None:
        self.directory = directory
        self.max_size = max_size
        self.sync_blocks = max(1, sync_blocks)
        self._header: ImageHeader | None = None
        self._state: dict[str, Any] = {}
        self._done: bytearray = bytearray()
        self._count = 0  # blocks in the store (the set bytes of ``_done``)
        self._unsynced = 0
        self._data_fd: int | None = None
        self._crc_fd: int | None = None
        self._load()

    # -- reading ---------------------------------------------------------------------------

    @property
    def header(self) -> ImageHeader | None:
        """The transfer in the store, or None."""
        return self._header

    @property
    def image_path(self) -> Path:
        """The image file (complete when :attr:`complete`)."""
        return self.directory / IMAGE

    @property
    def state(self) -> dict[str, Any]:
        """The service's state saved with the transfer (a copy)."""
        return dict(self._state)

    def transferred(self, number: int) -> bool:
        """Whether block ``number`` is in the store."""
        return 0 <= number < len(self._done) and bool(self._done[number])

    def count(self) -> int:
        """Blocks in the store."""
        return self._count

    def first_missing(self) -> int:
        """The lowest block number not in the store (= the number of blocks when complete; 0
        without a transfer)."""
        try:
            return self._done.index(0)
        except ValueError:
            return len(self._done)

    @property
    def complete(self) -> bool:
        """Every block of the transfer is in the store."""
        return self._header is not None and self._count == len(self._done)

    def bitmap(self) -> tuple[int, bytes]:
        """(number of bits, octets) of image_transferred_blocks_status: bit n (most significant
        bit first) set when block n is in the store."""
        out = bytearray(-(-len(self._done) // 8))
        for n, done in enumerate(self._done):
            if done:
                out[n // 8] |= 0x80 >> (n % 8)
        return len(self._done), bytes(out)

    def current(self) -> tuple[bytes, int, int] | None:
        """(identifier, size, block size) of the transfer in the store, or None."""
        h = self._header
        return None if h is None else (h.identifier, h.size, h.block_size)

    # -- writing ---------------------------------------------------------------------------

    def start(self, identifier: bytes, size: int, block_size: int, state: dict[str, Any]) -> None:
        """:meth:`begin` a transfer of ``identifier`` (``size``, ``block_size`` octets)."""
        self.begin(ImageHeader(identifier, size, block_size), state)

    def begin(self, header: ImageHeader, state: dict[str, Any] | None = None) -> None:
        """Start a new transfer: the previous one is dropped, ``size`` octets reserved; raises
        :class:`ImageStoreError` when it is larger than allowed or does not fit."""
        if header.size <= 0 or header.block_size <= 0:
            raise ImageStoreError("image size and block size must be positive")
        if header.size > self.max_size:
            raise ImageStoreError(f"image of {header.size} octets exceeds the limit of {self.max_size}")
        self.clear()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for name, length in ((IMAGE, header.size), (CRCS, header.blocks * _CRC.size)):
                fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
                try:
                    os.posix_fallocate(fd, 0, length)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.clear()
            raise ImageStoreError(f"cannot reserve {header.size} octets for the image: {exc.strerror or exc}") from exc
        self._header = header
        self._done = bytearray(header.blocks)
        self._count = 0
        self._state = dict(state or {})
        self._save_header()

    def put(self, number: int, data: bytes) -> None:
        """Write block ``number``; raises :class:`ImageStoreError` when there is no transfer, the
        number is out of range or the length is not the block's."""
        h = self._header
        if h is None:
            raise ImageStoreError("no image transfer initiated")
        if not 0 <= number < h.blocks:
            raise ImageStoreError(f"block {number} out of range 0..{h.blocks - 1}")
        if len(data) != h.block_length(number):
            raise ImageStoreError(f"block {number} has {len(data)} octets, {h.block_length(number)} expected")
        data_fd, crc_fd = self._fds()
        os.pwrite(data_fd, data, number * h.block_size)
        os.pwrite(crc_fd, _CRC.pack(zlib.crc32(data) ^ 0xFFFFFFFF), number * _CRC.size)
        if not self._done[number]:
            self._done[number] = 1
            self._count += 1
        self._unsynced += 1
        if self._unsynced >= self.sync_blocks or self.complete:
            self.sync()

    def sync(self) -> None:
        """Make the blocks written so far durable."""
        for fd in (self._data_fd, self._crc_fd):
            if fd is not None:
                os.fsync(fd)
        self._unsynced = 0

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace the service's state kept with the transfer (atomically)."""
        self._state = dict(state)
        if self._header is not None:
            self._save_header()

    def clear(self) -> None:
        """Drop the transfer and its files."""
        self.close()
        self._header = None
        self._done = bytearray()
        self._count = 0
        self._state = {}
        if self.directory.exists():
            for name in (HEADER, IMAGE, CRCS):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()

    def close(self) -> None:
        """Sync and close the files (the store opens them again when needed)."""
        with contextlib.suppress(OSError):
            self.sync()
        for fd in (self._data_fd, self._crc_fd):
            if fd is not None:
                os.close(fd)
        self._data_fd = self._crc_fd = None

    def free_octets(self) -> int:
        """Free space on the store's file system (octets)."""
        return shutil.disk_usage(self.directory if self.directory.exists() else self.directory.parent).free

    # -- internals -------------------------------------------------------------------------

    def _fds(self) -> tuple[int, int]:
        if self._data_fd is None or self._crc_fd is None:
            self._data_fd = os.open(self.directory / IMAGE, os.O_RDWR)
            self._crc_fd = os.open(self.directory / CRCS, os.O_RDWR)
        return self._data_fd, self._crc_fd

    def _save_header(self) -> None:
        h = self._header
        assert h is not None
        write_json_atomic(self.directory / HEADER, {"identifier": h.identifier.hex(), "size": h.size,
                                                    "block_size": h.block_size, "state": self._state})

    def _load(self) -> None:
        raw = read_json(self.directory / HEADER)
        try:
            header = ImageHeader(bytes.fromhex(str(raw["identifier"])), int(raw["size"]), int(raw["block_size"]))
        except (KeyError, ValueError, TypeError):
            return
        image, crcs = self.directory / IMAGE, self.directory / CRCS
        if (header.size <= 0 or header.block_size <= 0 or not image.exists() or not crcs.exists()
                or image.stat().st_size != header.size):
            return
        self._header = header
        state = raw.get("state")
        self._state = dict(state) if isinstance(state, dict) else {}
        self._done = bytearray(header.blocks)
        stored = crcs.read_bytes()
        with open(image, "rb") as fh:
            for n in range(header.blocks):
                block = fh.read(header.block_length(n))
                entry = stored[n * _CRC.size:(n + 1) * _CRC.size]
                if len(entry) == _CRC.size and _CRC.unpack(entry)[0] == zlib.crc32(block) ^ 0xFFFFFFFF:
                    self._done[n] = 1
                    self._count += 1

"""The image store: blocks in any order, the bitmap, resumption after a restart, torn blocks,
size limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meterd.store.image_store import IMAGE, ImageHeader, ImageStore, ImageStoreError

IMAGE_BYTES = bytes(range(256)) * 9 + b"tail"  # 2308 octets: 10 blocks of 240, the last of 148


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_blocks_any_order_bitmap_and_restart(tmp_path: Path):
    store = ImageStore(tmp_path / "image", max_size=10_000, sync_blocks=3)
    header = ImageHeader(b"PMM-1.2.0", len(IMAGE_BYTES), 240)
    store.begin(header, {"status": 1})
    parts = blocks(IMAGE_BYTES, 240)
    assert header.blocks == len(parts) == 10 and header.block_length(9) == 148
    for n in (0, 1, 2, 5):
        store.put(n, parts[n])
    assert store.first_missing() == 3 and store.count() == 4
    store.put(5, parts[5])  # a block sent again (a lost answer) counts once
    assert store.count() == 4
    assert store.bitmap() == (10, bytes((0b11100100, 0)))
    store.close()
    again = ImageStore(tmp_path / "image", max_size=10_000)
    assert again.header == header and again.state == {"status": 1}
    assert again.first_missing() == 3 and again.transferred(5) and not again.transferred(4)
    for n in (3, 4, 6, 7, 8, 9):
        again.put(n, parts[n])
    assert again.complete and again.first_missing() == 10
    assert again.image_path.read_bytes() == IMAGE_BYTES
    again.close()


def test_a_torn_block_reads_as_missing(tmp_path: Path):
    store = ImageStore(tmp_path, max_size=10_000)
    store.begin(ImageHeader(b"x", len(IMAGE_BYTES), 240))
    for n, part in enumerate(blocks(IMAGE_BYTES, 240)):
        store.put(n, part)
    store.close()
    with open(tmp_path / IMAGE, "r+b") as fh:  # a block half written when the power went
        fh.seek(4 * 240 + 100)
        fh.write(b"\0" * 50)
    again = ImageStore(tmp_path, max_size=10_000)
    assert again.first_missing() == 4 and again.count() == 9 and not again.complete
    again.close()


def test_limits_and_bad_blocks(tmp_path: Path):
    store = ImageStore(tmp_path, max_size=1000)
    with pytest.raises(ImageStoreError, match="exceeds the limit of 1000"):
        store.begin(ImageHeader(b"x", 1001, 100))
    with pytest.raises(ImageStoreError, match="no image transfer"):
        store.put(0, b"a")
    store.begin(ImageHeader(b"x", 250, 100))
    with pytest.raises(ImageStoreError, match="out of range"):
        store.put(3, b"a" * 50)
    with pytest.raises(ImageStoreError, match="50 expected"):
        store.put(2, b"a" * 100)
    store.put(2, b"a" * 50)
    # a new transfer drops the old one
    store.begin(ImageHeader(b"y", 100, 100))
    assert store.count() == 0 and store.header is not None and store.header.identifier == b"y"
    store.clear()
    assert store.header is None and not os.listdir(tmp_path)
    assert ImageStore(tmp_path, max_size=1000).header is None


def test_space_that_is_not_there_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    store = ImageStore(tmp_path, max_size=10_000)
    with pytest.raises(ImageStoreError, match="No space left"):
        store.begin(ImageHeader(b"x", 5000, 100))
    assert store.header is None and not (tmp_path / IMAGE).exists()

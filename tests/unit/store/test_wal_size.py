"""Every meterd database's WAL reaches a fixed size and stays there: SQLite checkpoints it after
:data:`WAL_PAGES` pages and then writes it again from its start. A commit that leaves the
file's size alone costs the card its data blocks only; one that grows the file also costs a
journal commit of ext4's metadata (size, extents, bitmaps), which was most of what the meter
wrote at the block layer while its WAL files grew towards SQLite's default of 1000 pages."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from meterd.core.checkpoint import Checkpoint
from meterd.core.energy import ALL_KEYS
from meterd.store.energy_store import WAL_PAGES as ENERGY_WAL_PAGES
from meterd.store.energy_store import EnergyStore
from meterd.store.register_file import RegisterFile
from meterd.store.sqlite import PAGE_SIZE, WAL_PAGES, open_database

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FRAME = 24 + PAGE_SIZE  # a WAL frame: its header and one page
WAL_HEADER = 32


def test_the_wal_stops_growing_after_its_page_limit(tmp_path: Path) -> None:
    db = open_database(tmp_path / "x.db")
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_PAGES
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
    db.execute("INSERT INTO t VALUES (1, 0)")
    wal = tmp_path / "x.db-wal"
    sizes = []
    for v in range(4 * WAL_PAGES):
        db.execute("UPDATE t SET v = ? WHERE k = 1", (v,))  # one page, one commit
        sizes.append(wal.stat().st_size)
    db.close()
    assert max(sizes) <= WAL_HEADER + (WAL_PAGES + 1) * FRAME
    assert len(set(sizes[-2 * WAL_PAGES:])) == 1  # a fixed size from the first checkpoint on


def test_energy_saves_stop_growing_the_energy_wal(tmp_path: Path) -> None:
    store = EnergyStore(tmp_path / "energy.db")
    wal = tmp_path / "energy.db-wal"
    sizes = []
    for n in range(4 * ENERGY_WAL_PAGES):
        store.save(T0 + dt.timedelta(minutes=5 * n), {ALL_KEYS[0]: n}, sync=n % 2 == 0)
        sizes.append(wal.stat().st_size)
    assert max(sizes) <= WAL_HEADER + (ENERGY_WAL_PAGES + 1) * FRAME
    assert len(set(sizes[-2 * ENERGY_WAL_PAGES:])) == 1
    last = store.load()
    assert last is not None and last.registers[ALL_KEYS[0]] == 4 * ENERGY_WAL_PAGES - 1
    store.close()


def test_a_register_slot_write_syncs_its_data_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The register file never changes size once made: its slot writes are flushed with
    fdatasync, which leaves the timestamps to ``lazytime`` instead of committing ext4's journal."""
    registers = RegisterFile(tmp_path / "energy.registers", identity="PMM1221000001")
    registers.write(Checkpoint(1, T0, {ALL_KEYS[0]: 1}))  # makes the file
    calls: list[str] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append("fdatasync"))
    for seq in range(2, 6):
        registers.write(Checkpoint(seq, T0, {ALL_KEYS[0]: seq}))
    assert calls == ["fdatasync"] * 4

"""Every meterd database is held in exclusive locking mode: the WAL index lives in meterd's
memory (no ``-shm`` file, whose pages every commit dirtied), and a second connection to a held
database gets "locked" at once, an error of its own that never moves or rewrites the file."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from meterd.core.energy import ALL_KEYS
from meterd.store.energy_copies import EnergyCopies, StorageUnavailable, commission
from meterd.store.energy_store import EnergyStore
from meterd.store.event_store import EventStoreError, SqliteEventStore
from meterd.store.pq_store import SqlitePqWeekStore
from meterd.store.profile_store import SqliteProfileStore
from meterd.store.sqlite import CACHE_KIB, DatabaseLocked, locked, open_database

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
KEY = ALL_KEYS[0]


def test_a_database_is_held_exclusively_with_no_wal_index_file(tmp_path: Path) -> None:
    db = open_database(tmp_path / "x.db")
    db.execute("CREATE TABLE t (v)")
    for v in range(20):
        db.execute("INSERT INTO t VALUES (?)", (v,))
    assert db.execute("PRAGMA locking_mode").fetchone()[0] == "exclusive"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    assert (tmp_path / "x.db-wal").exists() and not (tmp_path / "x.db-shm").exists()
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # the WAL folded back at close


def test_the_stores_leave_no_wal_index_beside_their_files(tmp_path: Path) -> None:
    energy = EnergyStore(tmp_path / "energy.db")
    energy.save(T0, {KEY: 5})
    events = SqliteEventStore(tmp_path / "events.db")
    events.save_state("power", {"clean_stop": False})
    profiles = SqliteProfileStore(tmp_path / "profiles.db")
    pq = SqlitePqWeekStore(tmp_path / "pq.db")
    try:
        assert not list(tmp_path.glob("*-shm"))
    finally:
        for store in (energy, events, profiles, pq):
            store.close()


def test_a_second_connection_is_told_locked_at_once_and_the_file_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as store:
        store.save_state("relay", {"closed": True})
        before = path.read_bytes()
        with pytest.raises(DatabaseLocked, match="in use by another connection"):
            SqliteEventStore(path)  # not EventStoreError's "cannot open": in use, not damaged
        with pytest.raises(sqlite3.OperationalError) as raw:
            sqlite3.connect(path, timeout=0).execute("SELECT * FROM state").fetchall()
        assert locked(raw.value)
        assert path.read_bytes() == before
        assert store.load_state("relay") == {"closed": True}  # the holder goes on
    with SqliteEventStore(path) as store:  # released at close
        assert store.load_state("relay") == {"closed": True}


def test_locked_is_not_a_store_error_of_damage() -> None:
    assert not issubclass(DatabaseLocked, EventStoreError)
    assert not locked(sqlite3.OperationalError("disk I/O error"))
    assert not locked(ValueError("database is locked"))


def test_energy_copies_on_a_held_database_refuse_to_start_and_move_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    commission(state, "SN1", None, "test")
    copies = EnergyCopies(state, "SN1", None)
    copies.save(T0, {KEY: 5_000_000}, seq=1)
    copies.close()
    held = sqlite3.connect(state / "energy.db", isolation_level=None)
    held.execute("PRAGMA locking_mode=EXCLUSIVE")
    held.execute("BEGIN EXCLUSIVE")  # another process holding the file
    names = sorted(p.name for p in state.iterdir())
    before = (state / "energy.db").read_bytes()
    with pytest.raises(StorageUnavailable, match="in use by another connection"):
        EnergyCopies(state, "SN1", None)
    assert sorted(p.name for p in state.iterdir()) == names  # nothing set aside as damaged
    assert (state / "energy.db").read_bytes() == before
    held.execute("ROLLBACK")
    held.close()
    copies = EnergyCopies(state, "SN1", None)
    try:
        assert copies.restored is not None and copies.restored.registers[KEY] == 5_000_000
        assert copies.damaged == {}
    finally:
        copies.close()


def test_a_damaged_database_is_still_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    commission(state, "SN1", None, "test")
    copies = EnergyCopies(state, "SN1", None)
    copies.save(T0, {KEY: 5_000_000}, seq=1)
    copies.close()
    (state / "energy.db").write_bytes(b"not a database" * 100)
    copies = EnergyCopies(state, "SN1", None)
    try:
        assert "database" in copies.damaged
        assert len(list(state.glob("energy.db.damaged-*"))) == 1
        assert copies.restored is not None and copies.restored.registers[KEY] == 5_000_000  # the register file
    finally:
        copies.close()


def test_synced_saves_date_the_last_alive_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    commission(state, "SN1", None, "test")
    copies = EnergyCopies(state, "SN1", None)
    try:
        assert copies.synced_utc is None
        copies.save(T0, {KEY: 1}, seq=1, sync=True)
        copies.save(T0 + dt.timedelta(seconds=60), {KEY: 2}, seq=2, sync=False)
        assert copies.synced_utc == T0
        copies.save(T0 + dt.timedelta(seconds=300), {KEY: 3}, seq=3, sync=True)
        assert copies.synced_utc == T0 + dt.timedelta(seconds=300)
    finally:
        copies.close()

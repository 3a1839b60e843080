"""Store schemas across a rollback: a file migrated by the next version, opened by today's code.

The "next version" is a test double: the schema declaration a later release would ship, applied
to a file this release wrote (its up-migration and :func:`meterd.store.schema.stamp`). Today's
stores must then read an additive change as it is (event 168), run a down-migration the newer
version left in the file (event 169), and refuse a breaking change without one, leaving the file
untouched; the energy registers are never lost.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.energy import ALL_KEYS
from meterd.core.errors import StateError
from meterd.core.event_codes import LogId
from meterd.core.events import EventEntry
from meterd.store import energy_store, event_store, relay_store, sts_store
from meterd.store.energy_copies import EnergyCopies, StorageUnavailable, commission
from meterd.store.energy_store import EnergyStore
from meterd.store.event_store import EventStoreError, SqliteEventStore
from meterd.store.profile_store import ProfileStoreError, SqliteProfileStore
from meterd.store.schema import (
    DOWN_TABLE,
    DownStep,
    SchemaRefused,
    StoreSchema,
    additive,
    stamp,
    take_notices,
)
from meterd.store.sts_store import SqliteStsStore

T0 = _dt.datetime(2026, 3, 1, 12, 0, tzinfo=_dt.UTC)
KEY = ALL_KEYS[0]


@pytest.fixture(autouse=True)
def _no_notices_left() -> None:
    take_notices()


def next_version(path: Path, current: StoreSchema, readable_by: int, statements: tuple[str, ...],
                 down: tuple[str, ...] = ()) -> StoreSchema:
    """What the next release does to ``path``: its up-migration and its stamp."""
    version = current.version + 1
    newer = StoreSchema(current.name, {**current.readable_by, version: readable_by},
                        (DownStep(version, down),) if down else ())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for statement in statements:
        db.execute(statement)
    stamp(db, newer)
    db.execute("COMMIT")
    db.close()
    return newer


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """The file opened as any SQLite client would (the store closed: meterd holds its databases
    exclusively), committed and closed at the end."""
    db = sqlite3.connect(path)
    try:
        with db:
            yield db
    finally:
        db.close()


def user_version(path: Path) -> int:
    with raw(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def save(store: EnergyStore, wh: int, seq: int) -> None:
    store.save(T0 + _dt.timedelta(minutes=seq), {KEY: wh * 1000}, seq=seq)


def test_declarations_run_one_to_n_with_readers_at_or_below() -> None:
    with pytest.raises(ValueError, match="1…N"):
        StoreSchema("x", {2: 1})
    with pytest.raises(ValueError, match="out of range"):
        StoreSchema("x", {1: 1, 2: 3})
    with pytest.raises(ValueError, match="unknown version"):
        StoreSchema("x", {1: 1}, (DownStep(2, ("SELECT 1",)),))
    assert additive("x", 3, breaking=(3,)).readable_by == {1: 1, 2: 1, 3: 3}
    for schema in (energy_store.SCHEMA, event_store.SCHEMA, relay_store.SCHEMA, sts_store.SCHEMA):
        assert schema.version == max(schema.readable_by)


def test_new_files_carry_their_stamp(tmp_path: Path) -> None:
    EnergyStore(tmp_path / "energy.db").close()
    with raw(tmp_path / "energy.db") as db:
        assert db.execute("SELECT store, version, readable_by FROM meterd_schema").fetchone() == \
            ("energy", energy_store.SCHEMA_VERSION, 1)


def test_an_additive_change_of_the_next_version_is_read_and_written_on(tmp_path: Path) -> None:
    path = tmp_path / "energy.db"
    store = EnergyStore(path)
    save(store, 100, 1)
    store.close()
    next_version(path, energy_store.SCHEMA, readable_by=energy_store.SCHEMA_VERSION,
                 statements=("CREATE TABLE tariff_notes (id INTEGER PRIMARY KEY, note TEXT)",
                             "ALTER TABLE checkpoint ADD COLUMN origin TEXT NOT NULL DEFAULT 'slot'",
                             "INSERT INTO tariff_notes (note) VALUES ('kept')"))
    store = EnergyStore(path)  # today's code, after a rollback
    assert store.load() is not None and store.load().registers[KEY] == 100_000  # type: ignore[union-attr]
    save(store, 101, 2)  # metering goes on
    store.close()
    notices = take_notices(tmp_path)
    assert [(n.code, n.store, n.found, n.readable_by, n.supported) for n in notices] == \
        [(ec.code("STORE_SCHEMA_NEWER"), "energy", 3, 2, 2)]
    assert user_version(path) == 3  # the newer slot's stamp and tables stay
    with raw(path) as db:
        assert db.execute("SELECT note FROM tariff_notes").fetchall() == [("kept",)]
        assert db.execute("SELECT origin FROM checkpoint").fetchone() == ("slot",)
    reopened = EnergyStore(path)
    assert reopened.load().registers[KEY] == 101_000  # type: ignore[union-attr]
    reopened.close()
    assert take_notices() == []  # noticed once per version, not at every start


def test_a_breaking_change_with_a_down_migration_is_taken_back(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as store:
        store.save_state("relay", {"closed": True})
    # the next version moves the state records into a new table and drops the old one
    next_version(path, event_store.SCHEMA, readable_by=2,
                 statements=("CREATE TABLE state_v2 (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
                             "INSERT INTO state_v2 SELECT key, value FROM state",
                             "DROP TABLE state"),
                 down=("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                       "INSERT INTO state SELECT name, doc FROM state_v2",
                       "DROP TABLE state_v2"))
    with SqliteEventStore(path) as store:
        assert store.load_state("relay") == {"closed": True}
        entry = EventEntry(seq=0, utc=T0, code=1, detail={})
        store.append_event(entry, {LogId.STANDARD: 10})
    notices = take_notices(tmp_path)
    assert [(n.code, n.found, n.migrated_to) for n in notices] == [(ec.code("STORE_SCHEMA_MIGRATED_BACK"), 2, 1)]
    assert user_version(path) == 1
    with raw(path) as db:
        assert db.execute(f"SELECT COUNT(*) FROM {DOWN_TABLE}").fetchone() == (0,)
        assert db.execute("SELECT version, readable_by FROM meterd_schema").fetchone() == (1, 1)


def test_a_breaking_change_without_a_way_back_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    SqliteProfileStore(path).close()
    from meterd.store import profile_store

    next_version(path, profile_store.SCHEMA, readable_by=2,
                 statements=("ALTER TABLE profile_rows RENAME TO profile_rows_v2",))
    before = path.read_bytes()
    with pytest.raises(ProfileStoreError, match=r"needs software of schema 2 or newer.*refused"):
        SqliteProfileStore(path)
    assert path.read_bytes() == before
    assert take_notices() == []


def test_a_failing_down_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SqliteEventStore(path).close()
    next_version(path, event_store.SCHEMA, readable_by=2, statements=("CREATE TABLE extra (x)",),
                 down=("DROP TABLE extra", "DROP TABLE no_such_table"))
    with pytest.raises(EventStoreError, match="down-migration to 1 failed"):
        SqliteEventStore(path)
    assert user_version(path) == 2
    with raw(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() == ("extra",)


def test_a_file_older_than_the_stamp_is_readable_only_by_its_own_version(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    relay_store.RelayStore(path).close()
    with raw(path) as db:
        db.execute("DROP TABLE meterd_schema")
        db.execute("PRAGMA user_version=4")
    with pytest.raises(StateError, match="schema 4 needs software of schema 4"):
        relay_store.RelayStore(path)


def test_the_sts_store_keeps_its_version_in_its_meta_table(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    SqliteStsStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE sts_meta SET value = '3' WHERE name = 'schema'")
    db.execute("UPDATE meterd_schema SET version = 3, readable_by = 2")
    db.close()
    SqliteStsStore(path).close()
    assert [(n.store, n.found) for n in take_notices()] == [("sts", 3)]
    with raw(path) as db:
        db.execute("UPDATE meterd_schema SET readable_by = 3")
    with pytest.raises(StateError, match="sts schema 3"):
        SqliteStsStore(path)


def test_energy_is_never_lost_and_a_refused_database_is_never_reset(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record = commission(state, "SN1", None, "test")
    copies = EnergyCopies(state, "SN1", None)
    copies.save(T0, {KEY: 5_000_000}, seq=1)
    copies.close()
    db_path = state / "energy.db"
    next_version(db_path, energy_store.SCHEMA, readable_by=3, statements=("CREATE TABLE v3 (x)",))
    before = db_path.read_bytes()
    with pytest.raises(StorageUnavailable, match="energy schema 3 needs software of schema 3"):
        EnergyCopies(state, "SN1", None)
    assert db_path.read_bytes() == before
    assert not list(state.glob("energy.db.damaged-*"))  # never moved aside as damage
    # the additive form of the same release: read, registers restored whole, the event handed on
    with raw(db_path) as db:
        db.execute("UPDATE meterd_schema SET readable_by = 2")
    copies = EnergyCopies(state, "SN1", None)
    assert copies.restored is not None and copies.restored.registers[KEY] == 5_000_000
    assert record.id
    events = copies.take_events()
    assert [(e.code, e.detail["store"], e.detail["found"]) for e in events
            if e.code == ec.code("STORE_SCHEMA_NEWER")] == [(ec.code("STORE_SCHEMA_NEWER"), "energy", 3)]
    copies.close()


def test_notices_are_taken_per_state_directory(tmp_path: Path) -> None:
    for name in ("a", "b"):
        path = tmp_path / name / "relay.db"
        relay_store.RelayStore(path).close()
        next_version(path, relay_store.SCHEMA, readable_by=3, statements=())
        relay_store.RelayStore(path).close()
    assert [n.path.parent.name for n in take_notices(tmp_path / "a")] == ["a"]
    assert [n.path.parent.name for n in take_notices()] == ["b"]


def test_schema_refused_is_a_state_error() -> None:
    assert issubclass(SchemaRefused, StateError)


def test_a_running_meter_records_what_its_stores_met_in_the_firmware_log(tmp_path: Path) -> None:
    """The whole path on the simulated meter: a store of the state directory migrated by the next
    version (additively), the meter started again: event 168 in the firmware log, metering on."""
    from meterd.core.events import EventRecorder
    from tests.simmeter import SimMeter

    meter = SimMeter(tmp_path / "state")
    meter.run(2)
    before = meter.meter.registers.snapshot()
    meter.close()
    events_db = tmp_path / "state" / "events.db"
    assert events_db.exists(), sorted(p.name for p in (tmp_path / "state").iterdir())
    next_version(events_db, event_store.SCHEMA, readable_by=1,
                 statements=("ALTER TABLE event_rows ADD COLUMN origin TEXT NOT NULL DEFAULT 'meter'",))
    meter = SimMeter(tmp_path / "state")
    try:
        meter.run(2)
        firmware = meter.service(EventRecorder).log(LogId.FIRMWARE).entries()
        met = [e for e in firmware if e.code == ec.code("STORE_SCHEMA_NEWER")]
        assert len(met) == 1 and met[0].detail["store"] == "events" and met[0].detail["found"] == 2
        assert met[0].detail["supported"] == event_store.SCHEMA_VERSION
        for key, value in before.items():  # metering went on from where it was
            assert meter.meter.registers.snapshot()[key] >= value, key
    finally:
        meter.close()

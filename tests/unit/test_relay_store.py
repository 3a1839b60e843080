"""Relay-state database: schema 1 files are migrated in place, limiter state round-trips, newer
schemas are refused."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from meterd.core.errors import StateError
from meterd.services.load_control import RelayRecord
from meterd.store.relay_store import SCHEMA_VERSION, RelayStore

V1 = """CREATE TABLE relay_state (id INTEGER PRIMARY KEY CHECK (id = 1), control_state INTEGER NOT NULL,
control_mode INTEGER NOT NULL, relay_closed INTEGER NOT NULL, operation_count INTEGER NOT NULL,
last_change_utc TEXT, pending INTEGER NOT NULL)"""


def test_schema_1_is_migrated_and_keeps_its_row(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    db = sqlite3.connect(path)
    db.execute(V1)
    db.execute("INSERT INTO relay_state VALUES (1, 0, 1, 0, 7, '2026-01-01T00:00:00+00:00', 0)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with RelayStore(path) as store:
        record = store.load()
        assert record is not None and record.operation_count == 7 and record.control_state == 0
        assert record.limiter_state == "armed" and record.limiter_attempts == 0 and record.local_causes == ()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_limiter_state_and_causes_round_trip(tmp_path: Path) -> None:
    rec = RelayRecord(2, 5, False, 3, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), False, "locked_out", 2,
                      "overcurrent", ("credit", "limiter"))
    with RelayStore(tmp_path / "r.db") as store:
        store.save(rec)
    with RelayStore(tmp_path / "r.db") as store:
        assert store.load() == rec
        with pytest.raises(sqlite3.IntegrityError):
            store.save(RelayRecord(2, 5, False, 3, limiter_state="confused"))
        with pytest.raises(StateError):
            store.save(RelayRecord(2, 5, False, 2))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=9")
    db.close()
    with pytest.raises(StateError):
        RelayStore(path)

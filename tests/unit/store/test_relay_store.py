"""Relay-state database: schema 1 and 2 files are migrated in place, limiter state, STS limits,
DLMS-written limiter settings and the supply source round-trip, newer schemas are refused."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from meterd.core.errors import StateError
from meterd.core.limiter import EmergencyProfile, LimiterConfig, Monitored
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
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


V2_COLUMNS = ("limiter_state TEXT NOT NULL DEFAULT 'armed'", "limiter_attempts INTEGER NOT NULL DEFAULT 0",
              "limiter_cause TEXT", "local_causes TEXT NOT NULL DEFAULT ''")


def test_schema_2_is_migrated_and_keeps_its_row(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    db = sqlite3.connect(path)
    db.execute(V1)
    for column in V2_COLUMNS:
        db.execute(f"ALTER TABLE relay_state ADD COLUMN {column}")
    db.execute("INSERT INTO relay_state VALUES (1, 2, 5, 0, 9, NULL, 0, 'locked_out', 2, 'overload', 'limiter')")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    with RelayStore(path) as store:
        record = store.load()
        assert record is not None and record.operation_count == 9 and record.limiter_state == "locked_out"
        assert record.limiter_cause == "overload" and record.local_causes == ("limiter",)
        assert record.max_power_w is None and record.max_phase_unbalance_w is None
        assert record.limiter_config is None and record.supply_source is None
        store.save(RelayRecord(2, 5, False, 9, max_power_w=4_000.0, supply_source="solar"))
    with RelayStore(path) as store:
        again = store.load()
        assert again is not None and again.max_power_w == 4_000.0 and again.supply_source == "solar"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_sts_limits_settings_and_source_round_trip(tmp_path: Path) -> None:
    profile = EmergencyProfile(7, dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), 3600.0)
    config = LimiterConfig(monitored=Monitored.CURRENT, threshold_normal=40.0, threshold_emergency=20.0,
                           min_over_threshold_duration_s=15.0, max_reconnect_attempts=5,
                           emergency_profile=profile, emergency_group_ids=frozenset({7, 9}))
    rec = RelayRecord(1, 5, True, 0, max_power_w=3_500.0, max_phase_unbalance_w=1_200.0,
                      limiter_config=config, supply_source="grid")
    with RelayStore(tmp_path / "r.db") as store:
        store.save(rec)
    with RelayStore(tmp_path / "r.db") as store:
        assert store.load() == rec
        with pytest.raises(sqlite3.IntegrityError):
            store.save(RelayRecord(1, 5, True, 0, supply_source="wind"))
        with pytest.raises(sqlite3.IntegrityError):
            store.save(RelayRecord(1, 5, True, 0, max_phase_unbalance_w=-1.0))


def test_unusable_saved_limiter_settings_fall_back_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with RelayStore(path) as store:
        store.save(RelayRecord(1, 5, True, 0, limiter_config=LimiterConfig()))
    db = sqlite3.connect(path)
    db.execute("""UPDATE relay_state SET limiter_config = '{"threshold_normal": -5}'""")
    db.commit()
    db.close()
    with RelayStore(path) as store:
        record = store.load()
        assert record is not None and record.limiter_config is None and record.control_mode == 5


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

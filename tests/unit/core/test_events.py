"""Event codes, bounded event logs (ProfileBuffer), the recorder and the SQLite event store."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from meterd.core import event_codes as ec
from meterd.core.event_codes import LOG_OBIS, LogId
from meterd.core.events import EventError, EventLog, EventRecorder
from meterd.core.model import ProfileBuffer
from meterd.store.event_store import EventStoreError, SqliteEventStore

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_code_table_is_consistent_and_uses_idis_numbers() -> None:
    ec.check_table()
    assert ec.code("POWER_DOWN") == 1 and ec.code("POWER_UP") == 2
    assert ec.code("TERMINAL_COVER_REMOVED") == 40 and ec.code("TERMINAL_COVER_CLOSED") == 41
    assert ec.code("STRONG_DC_FIELD") == 42 and ec.code("REMOTE_DISCONNECTION") == 62
    assert ec.code("UNDER_VOLTAGE_L1") == 76 and ec.code("VOLTAGE_NORMAL_L3") == 87
    assert all(e.source in ("IDIS", "project") for e in ec.EVENT_CODES.values())
    assert all(195 <= e.code <= 255 or 160 <= e.code <= 194 for e in ec.EVENT_CODES.values() if e.source == "project")
    for log in LogId:
        if log is not LogId.POWER_FAILURE:
            assert ec.codes_of(log), log


def test_every_log_has_obis_and_event_code_object() -> None:
    assert LOG_OBIS[LogId.STANDARD].profile == "0.0.99.98.0.255"
    assert LOG_OBIS[LogId.FRAUD].event_code == "0.0.96.11.1.255"
    assert LOG_OBIS[LogId.POWER_FAILURE].profile == "1.0.99.97.0.255"
    profiles = [o.profile for o in LOG_OBIS.values()]
    assert len(set(profiles)) == len(profiles)


def test_recorder_routes_code_to_all_its_logs() -> None:
    rec = EventRecorder()
    entry = rec.record(ec.code("FIRMWARE_ACTIVATED"), at(0))
    assert [e.seq for e in rec.log(LogId.STANDARD).entries()] == [entry.seq]
    assert [e.seq for e in rec.log(LogId.FIRMWARE).entries()] == [entry.seq]
    assert rec.log(LogId.FRAUD).entries_in_use() == 0
    cover = rec.record(40, at(1))
    assert rec.log(LogId.FRAUD).entries() == [cover]
    assert rec.log(LogId.STANDARD).entries_in_use() == 1


def test_recorder_rejects_unknown_code_naive_time_and_bad_detail() -> None:
    rec = EventRecorder()
    with pytest.raises(EventError):
        rec.record(194, at(0))  # a code the meter does not know
    with pytest.raises(EventError):
        rec.record(1, dt.datetime(2026, 1, 1))
    with pytest.raises(EventError):
        rec.record(1, at(0), {"bad": [1, 2]})
    with pytest.raises(EventError):
        EventRecorder({LogId.FRAUD: 0})


def test_log_is_a_bounded_ring_and_a_profile_buffer() -> None:
    rec = EventRecorder({LogId.FRAUD: 3})
    log = rec.log(LogId.FRAUD)
    buffer: ProfileBuffer = log
    for i in range(5):
        rec.record(40 + (i % 2), at(i * 10))
    assert buffer.entries_in_use() == 3
    assert buffer.capture_period_s == 0
    assert [(c.obis, c.class_id) for c in buffer.columns] == [("0.0.1.0.0.255", 8), ("0.0.96.11.1.255", 1)]
    rows = buffer.rows_by_entry(1, 0)
    assert [r.utc for r in rows] == [at(20), at(30), at(40)]
    assert [r.values for r in rows] == [(40,), (41,), (40,)]  # the clock is the row's utc
    assert [r.utc for r in buffer.rows_by_entry(2, 2)] == [at(30)]
    assert [r.utc for r in buffer.rows_by_entry(2, 99)] == [at(30), at(40)]
    assert [r.utc for r in buffer.rows_between(at(25), at(40))] == [at(30), at(40)]
    assert buffer.rows_between(at(41), at(99)) == []


def test_power_failure_log_has_duration_column() -> None:
    rec = EventRecorder()
    rec.record(ec.code("LONG_POWER_FAILURE"), at(600), {"duration_s": 600})
    log = rec.profile("1.0.99.97.0.255")
    assert isinstance(log, EventLog)
    assert [c.obis for c in log.columns] == ["0.0.1.0.0.255", "0.0.96.7.19.255"]
    assert log.rows_by_entry(1, 0)[0].values == (600,)


def test_recent_events_across_logs_newest_first_without_duplicates() -> None:
    rec = EventRecorder()
    rec.record(1, at(0))
    rec.record(ec.code("FIRMWARE_ACTIVATED"), at(1))
    rec.record(40, at(2), {"tamper": "terminal_cover_open"})
    recent = [e.as_dict() for e in rec.recent(10)]
    assert [r["code"] for r in recent] == [40, 18, 1]
    assert recent[0]["name"] == "TERMINAL_COVER_REMOVED"
    assert recent[0]["detail"] == {"tamper": "terminal_cover_open"}
    assert recent[1]["logs"] == ["standard", "firmware"]
    assert len(rec.recent(2)) == 2


def test_store_persists_across_restart_and_stays_bounded(tmp_path) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as store:
        rec = EventRecorder({LogId.FRAUD: 4}, store)
        for i in range(10):
            rec.record(40 + (i % 2), at(i), {"i": i, "ratio": 0.5, "ok": True, "who": "x"})
        rec.record(1, at(20))
        assert store.count(LogId.FRAUD) == 4
    with SqliteEventStore(path) as store:
        rec = EventRecorder({LogId.FRAUD: 4}, store)
        fraud = rec.log(LogId.FRAUD).entries()
        assert [e.detail["i"] for e in fraud] == [6, 7, 8, 9]
        assert fraud[-1].detail == {"i": 9, "ratio": 0.5, "ok": True, "who": "x"}
        assert fraud[0].utc == at(6)
        assert [e.code for e in rec.log(LogId.STANDARD).entries()] == [1]
        nxt = rec.record(2, at(30))
        assert nxt.seq == 12
    with SqliteEventStore(path) as store:
        rec = EventRecorder({LogId.FRAUD: 2}, store)
        assert [e.detail["i"] for e in rec.log(LogId.FRAUD).entries()] == [8, 9]


def test_store_keeps_microseconds_and_timezone(tmp_path) -> None:
    t = dt.datetime(2026, 7, 1, 23, 59, 59, 123456, tzinfo=dt.UTC)
    with SqliteEventStore(tmp_path / "e.db") as store:
        EventRecorder(store=store).record(6, t)
    with SqliteEventStore(tmp_path / "e.db") as store:
        assert EventRecorder(store=store).log(LogId.STANDARD).entries()[0].utc == t


def test_event_is_not_visible_when_the_store_fails(tmp_path) -> None:
    store = SqliteEventStore(tmp_path / "e.db")
    rec = EventRecorder(store=store)
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        rec.record(1, at(0))
    assert rec.log(LogId.STANDARD).entries_in_use() == 0


def test_reset_log_clears_memory_and_store(tmp_path) -> None:
    with SqliteEventStore(tmp_path / "e.db") as store:
        rec = EventRecorder(store=store)
        rec.record(40, at(0))
        rec.record(1, at(1))
        rec.reset_log(LogId.FRAUD)
        assert rec.log(LogId.FRAUD).entries_in_use() == 0
    with SqliteEventStore(tmp_path / "e.db") as store:
        rec = EventRecorder(store=store)
        assert rec.log(LogId.FRAUD).entries_in_use() == 0
        assert rec.log(LogId.STANDARD).entries_in_use() == 1


def test_store_state_records_and_schema_guard(tmp_path) -> None:
    path = tmp_path / "e.db"
    with SqliteEventStore(path) as store:
        assert store.load_state("x") is None
        store.save_state("x", {"a": 1})
        store.save_state("x", {"a": 2, "b": None})
    with SqliteEventStore(path) as store:
        assert store.load_state("x") == {"a": 2, "b": None}
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(EventStoreError):
        SqliteEventStore(path)


def test_store_uses_wal(tmp_path) -> None:
    with SqliteEventStore(tmp_path / "e.db") as store:
        store.save_state("k", {})
    db = sqlite3.connect(tmp_path / "e.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()

"""SQLite store of the event logs and of small supervision state (alarms, power, tampers).

Durability rules:
  * one database file (``events.db``), WAL journal, ``synchronous=FULL``: a recorded event is on
    disk when :meth:`SqliteEventStore.append_event` returns, and survives kill -9 and power loss;
  * one transaction per event: the event's rows in all its logs and the trimming of each log to
    its depth commit together, so a log never holds more than its depth;
  * state records (JSON) are replaced in place, one transaction each;
  * on a full or failing disk events and state records wait in memory, in order, and are
    written when the disk takes writes again (:class:`~meterd.store.sqlite.WriteBacklog`);
  * ``PRAGMA user_version`` carries the schema version; a newer, unknown version is refused.
Implements :class:`meterd.core.events.EventStore` and :class:`meterd.core.events.StateStore`.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from meterd.core.errors import StateError
from meterd.core.event_codes import LogId
from meterd.core.events import DetailValue, EventEntry
from meterd.store.schema import StoreSchema, admit, stamp
from meterd.store.sqlite import WriteBacklog, closed_on_failure, end_transaction, open_database

SCHEMA = StoreSchema("events", {1: 1})
SCHEMA_VERSION = SCHEMA.version
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS event_rows ("
    " log TEXT NOT NULL, seq INTEGER NOT NULL, utc_us INTEGER NOT NULL, code INTEGER NOT NULL,"
    " detail TEXT NOT NULL, PRIMARY KEY (log, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS event_seq (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class EventStoreError(StateError):
    """The event database is unreadable or from a newer schema."""


def _to_us(utc: _dt.datetime) -> int:
    delta = utc - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(utc_us: int) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(microseconds=utc_us)


def _detail(text: str) -> Mapping[str, DetailValue]:
    raw = json.loads(text)
    return {str(k): v for k, v in raw.items()}


class SqliteEventStore:
    """Event logs and state records in one SQLite database (WAL)."""

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_database(self.path, synchronous, error=EventStoreError)
        self._backlog = WriteBacklog(f"event store {self.path}")
        with closed_on_failure(self._db):
            self._migrate()

    def _migrate(self) -> None:
        version = admit(self._db, self.path, SCHEMA, error=EventStoreError)
        if version >= SCHEMA_VERSION:
            return  # nothing to write (a start on a full disk goes on), or a newer slot's readable file
        with self._transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO event_seq (id, last_seq) VALUES (1, 0)")
            stamp(self._db, SCHEMA)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def append_event(self, entry: EventEntry, logs: Mapping[LogId, int]) -> None:
        """Store ``entry`` in each log of ``logs`` (log → depth), trimming each log, in one transaction."""
        detail = json.dumps(dict(entry.detail), separators=(",", ":"), sort_keys=True)
        targets = dict(logs)

        def write() -> None:
            with self._transaction():
                for log, depth in targets.items():
                    self._db.execute("INSERT INTO event_rows (log, seq, utc_us, code, detail) VALUES (?, ?, ?, ?, ?)",
                                     (log.value, entry.seq, _to_us(entry.utc), entry.code, detail))
                    self._trim(log, depth)
                self._db.execute("UPDATE event_seq SET last_seq = MAX(last_seq, ?) WHERE id = 1", (entry.seq,))

        self._backlog.run(write)

    def _trim(self, log: LogId, depth: int) -> None:
        self._db.execute(
            "DELETE FROM event_rows WHERE log = ? AND seq <= ("
            " SELECT seq FROM event_rows WHERE log = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (log.value, log.value, depth))

    def load_events(self, log: LogId, limit: int) -> list[EventEntry]:
        """The newest ``limit`` entries of ``log``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, utc_us, code, detail FROM event_rows WHERE log = ? ORDER BY seq DESC LIMIT ?",
                (log.value, limit)).fetchall()
        return [EventEntry(seq, _from_us(utc_us), code, _detail(detail))
                for seq, utc_us, code, detail in reversed(rows)]

    def count(self, log: LogId) -> int:
        """Rows held for ``log``."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM event_rows WHERE log = ?", (log.value,)).fetchone()[0])

    def last_event_seq(self) -> int:
        """Highest sequence number ever stored (0 when none)."""
        with self._lock:
            return int(self._db.execute("SELECT last_seq FROM event_seq WHERE id = 1").fetchone()[0])

    def clear_log(self, log: LogId) -> None:
        """Remove every entry of ``log`` (the sequence number keeps growing)."""
        with self._transaction():
            self._db.execute("DELETE FROM event_rows WHERE log = ?", (log.value,))

    def load_state(self, key: str) -> Mapping[str, object] | None:
        """The state record saved under ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        if not isinstance(value, dict):
            raise EventStoreError(f"{self.path}: state {key!r} is not a record")
        return value

    def save_state(self, key: str, value: Mapping[str, object]) -> None:
        """Replace the state record ``key`` (one transaction)."""
        text = json.dumps(dict(value), separators=(",", ":"), sort_keys=True)

        def write() -> None:
            with self._transaction():
                self._db.execute("INSERT INTO state (key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, text))

        self._backlog.run(write)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) under the store lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            end_transaction(self._db, exc_type is not None)
        finally:
            self._lock.release()

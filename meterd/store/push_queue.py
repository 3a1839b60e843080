"""SQLite store of the push queue (``<state_dir>/push.db``): undelivered DataNotifications,
the marks of what was pushed (profile rows, the daily schedule, the installation push) and the
push setups' settings written over DLMS.

Every change is one transaction (WAL, ``synchronous=FULL``): a message is on disk, with the
profile marks its capture advanced, before it is queued in memory, and it leaves the table only
when its send succeeded. So a restart neither loses a message nor pushes a profile row twice.
Message ids grow for the life of the database (``AUTOINCREMENT``): an id is never reused, even
after the newest message was delivered. Implements :class:`meterd.services.push.PushStore`.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path

from meterd.services.push import StoredPush
from meterd.store.profile_store import from_us, open_db, to_us
from meterd.store.schema import StoreSchema

SCHEMA = StoreSchema("push_queue", {1: 1})
SCHEMA_VERSION = SCHEMA.version
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, setup TEXT NOT NULL,"
    " priority INTEGER NOT NULL, created_us INTEGER NOT NULL, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS settings (obis TEXT PRIMARY KEY, data TEXT NOT NULL)",
)


class SqlitePushQueue:
    """The push queue, marks and settings of one meter."""

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, synchronous, _SCHEMA, SCHEMA)

    def pending(self) -> list[StoredPush]:
        """Every undelivered message, oldest first."""
        rows = self._conn.execute("SELECT id, setup, priority, created_us, body FROM messages ORDER BY id").fetchall()
        return [StoredPush(int(i), str(s), bool(p), from_us(int(c)), bytes(b)) for i, s, p, c, b in rows]

    def enqueue(self, setup: str, priority: bool, created_utc: _dt.datetime, body: bytes,
                marks: Mapping[str, str], evict: int | None) -> int:
        """Store a message with the marks its capture advanced, deleting ``evict`` (the message
        the queue bound drops), in one transaction; the new message's id."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if evict is not None:
                self._conn.execute("DELETE FROM messages WHERE id = ?", (evict,))
            cur = self._conn.execute("INSERT INTO messages(setup, priority, created_us, body) VALUES (?, ?, ?, ?)",
                                     (setup, int(priority), to_us(created_utc), body))
            for name, value in marks.items():
                self._conn.execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", (name, value))
            push_id = cur.lastrowid
        assert push_id is not None
        return int(push_id)

    def delivered(self, push_id: int) -> None:
        """Remove a delivered message."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM messages WHERE id = ?", (push_id,))

    def marks(self) -> dict[str, str]:
        """Every mark, by name."""
        return {str(n): str(v) for n, v in self._conn.execute("SELECT name, value FROM marks").fetchall()}

    def set_mark(self, name: str, value: str) -> None:
        """Set one mark."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", (name, value))

    def load_settings(self) -> dict[str, dict[str, object]]:
        """The settings written over DLMS, by push setup OBIS."""
        rows = self._conn.execute("SELECT obis, data FROM settings").fetchall()
        return {str(o): dict(json.loads(d)) for o, d in rows}

    def save_settings(self, obis: str, value: Mapping[str, object]) -> None:
        """Replace one push setup's settings."""
        data = json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (obis, data))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

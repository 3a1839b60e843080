"""SQLite store of billing snapshots (end of billing period): one transaction per snapshot.

Durability rules: WAL journal, ``synchronous=FULL`` by default; a snapshot is on disk when
:meth:`SqliteBillingStore.save_snapshot` returns. The billing counter is the primary key, so a
snapshot is never stored twice. It also keeps the revenue settings document (calendar, clock
rules, profile configuration), replaced in one transaction when a setting changes. Implements
:class:`meterd.services.revenue.BillingStore` and :class:`meterd.services.revenue.SettingsStore`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from meterd.core.billing import BillingSnapshot
from meterd.store.profile_store import ProfileStoreError, open_db, to_us
from meterd.store.schema import StoreSchema

SCHEMA = StoreSchema("billing", {1: 1, 2: 1})  # 2: table settings (additive)
SCHEMA_VERSION = SCHEMA.version
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS billing_snapshots (counter INTEGER PRIMARY KEY, utc_us INTEGER NOT NULL,"
    " reason TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
)


class BillingStoreError(ProfileStoreError):
    """The billing database is unreadable, from a newer schema, or a snapshot repeats."""


class SqliteBillingStore:
    """Billing snapshots, keeping the newest ``keep`` periods."""

    def __init__(self, path: Path | str, keep: int = 24, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.keep = keep
        self._conn = open_db(self.path, synchronous, _SCHEMA, SCHEMA)

    def save_snapshot(self, snapshot: BillingSnapshot) -> None:
        """Insert one snapshot and trim to ``keep``, in one transaction."""
        data = json.dumps(snapshot.to_dict(), separators=(",", ":"))
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if self._conn.execute("SELECT 1 FROM billing_snapshots WHERE counter = ?",
                                  (snapshot.counter,)).fetchone():
                raise BillingStoreError(f"billing period {snapshot.counter} is already stored")
            self._conn.execute("INSERT INTO billing_snapshots VALUES (?, ?, ?, ?)",
                               (snapshot.counter, to_us(snapshot.utc), snapshot.reason, data))
            self._conn.execute("DELETE FROM billing_snapshots WHERE counter <= ?", (snapshot.counter - self.keep,))

    def load_snapshots(self, limit: int) -> list[BillingSnapshot]:
        """The newest ``limit`` snapshots, oldest first."""
        cur = self._conn.execute("SELECT data FROM billing_snapshots ORDER BY counter DESC LIMIT ?", (limit,))
        snaps = [BillingSnapshot.from_dict(json.loads(d)) for (d,) in cur.fetchall()]
        snaps.reverse()
        return snaps

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace the revenue settings document."""
        data = json.dumps(settings, separators=(",", ":"), sort_keys=True)
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT OR REPLACE INTO settings VALUES ('revenue', ?)", (data,))

    def load_settings(self) -> dict[str, Any] | None:
        """The revenue settings document, or None."""
        row = self._conn.execute("SELECT data FROM settings WHERE name = 'revenue'").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> SqliteBillingStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class FingerprintedSettings:
    """The settings document of a billing store, tagged with the config fingerprint: settings
    stored under another version of the ``[revenue]`` section are not loaded (the file wins
    after an edit)."""

    def __init__(self, store: SqliteBillingStore, fingerprint: str) -> None:
        self._store = store
        self._fingerprint = fingerprint

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        """Save ``settings`` tagged with the fingerprint."""
        self._store.save_settings({**settings, "config": self._fingerprint})

    def load_settings(self) -> dict[str, Any] | None:
        """The saved settings, or None when absent or saved under another fingerprint."""
        saved = self._store.load_settings()
        if saved is None or saved.pop("config", None) != self._fingerprint:
            return None
        return saved

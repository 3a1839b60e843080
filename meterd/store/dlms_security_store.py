"""SQLite store of the DLMS invocation counters (implements ``meterd.cosem.security.CounterStore``).

Durability rules:
  * one database (``dlms_security.db``), WAL journal, ``synchronous=FULL``: a counter reserved or
    accepted is on disk before the call returns, so it survives kill -9 and power loss;
  * outgoing (server) counters are reserved in blocks: the stored value is the next unreserved
    one; a restart continues from it, skipping any unused rest of a block (a GCM nonce is never
    reused);
  * incoming (client) counters: ``accept`` stores a value only if it is greater than the stored
    one, in one transaction (the replay check and the write cannot be separated);
  * ``PRAGMA user_version`` carries the schema version; newer unknown versions are refused.
"""

from __future__ import annotations

from pathlib import Path

from meterd.store.sqlite import open_database, schema_version

SCHEMA_VERSION = 1


class DlmsSecurityStore:
    """Durable outgoing and incoming invocation counters, keyed by name."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_database(self.path, "FULL")
        self._migrate()

    def _migrate(self) -> None:
        version = schema_version(self._db, self.path, SCHEMA_VERSION)
        if version == 0:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("CREATE TABLE IF NOT EXISTS outgoing (name TEXT PRIMARY KEY, next INTEGER NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS incoming (name TEXT PRIMARY KEY, last INTEGER NOT NULL)")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")

    def reserve(self, name: str, count: int) -> int:
        """Durably reserve ``count`` outgoing counter values; return the first (values start at 1)."""
        if count < 1:
            raise ValueError("count must be positive")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT next FROM outgoing WHERE name=?", (name,)).fetchone()
            first = int(row[0]) if row else 1
            self._db.execute("INSERT INTO outgoing(name, next) VALUES(?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET next=excluded.next", (name, first + count))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return first

    def last_accepted(self, name: str) -> int:
        """The last accepted incoming counter (0 when none)."""
        row = self._db.execute("SELECT last FROM incoming WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def accept(self, name: str, value: int) -> bool:
        """Store ``value`` if it is greater than the last accepted one; False for a replay."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "INSERT INTO incoming(name, last) VALUES(?, ?) "
                "ON CONFLICT(name) DO UPDATE SET last=excluded.last WHERE excluded.last > incoming.last",
                (name, value))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return cur.rowcount == 1

    def close(self) -> None:
        """Close the database."""
        self._db.close()

"""SQLite store of the DLMS invocation counters (implements ``meterd.cosem.security.CounterStore``).

Durability rules:
  * one database (``dlms_security.db``), WAL journal, ``synchronous=FULL``: a reserved block or a
    raised high-water mark is on disk before the call returns, so it survives kill -9 and power
    loss;
  * outgoing (server) counters are reserved in blocks: the stored value is the next unreserved
    one; a restart continues from it, skipping any unused rest of a block (a GCM nonce is never
    reused);
  * incoming (client) counters: ``accept`` takes a value only if it is greater than the last
    accepted one (kept in memory). What is stored is a high-water mark: when a value crosses the
    stored mark, the mark moves to value + ``in_block`` in one transaction *before* the value is
    accepted, so every accepted value is at or below the stored mark. After a restart the last
    accepted value is taken to be the stored mark, so any value at or below it (a replay of a
    request of the previous run, or an unused rest of the block) is refused. That is one commit
    per ``in_block`` requests instead of one per request (an fsync costs milliseconds, far more
    on an SD card); the price is that after a restart a client continues above the mark (it reads
    it as the frame counter 0-0:43.1.E.255, as it does after any doubt);
  * authentication lockouts (``auth_lockout``, schema 3): per link, client SAP and source (the TCP
    peer's address, or the serial link itself) the consecutive failures, the end of the running
    lockout (UTC), the attempts refused during it and when the state last changed (UTC; the
    oldest is evicted first, the cap is kept by ``meterd.cosem.security.AuthLockout``); each
    change is one transaction, on disk before the call returns (implements
    ``meterd.cosem.security.LockoutStore``). A schema 1 file gets the table in place; a schema 2
    file (lockouts per link and client SAP) has its records moved to the source named after the
    link, which is the source of a serial link's clients (a stored TCP lockout so no longer
    refuses any peer);
  * ``PRAGMA user_version`` carries the schema version; newer unknown versions are refused.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from meterd.store.schema import StoreSchema, admit, stamp
from meterd.store.sqlite import closed_on_failure, open_database

SCHEMA = StoreSchema("dlms_security", {1: 1, 2: 1, 3: 3})  # 3: auth_lockout rebuilt with a new key
SCHEMA_VERSION = SCHEMA.version
IN_BLOCK = 64
MAX_COUNTER = 0xFFFFFFFF


class DlmsSecurityStore:
    """Durable outgoing and incoming invocation counters, keyed by name."""

    def __init__(self, path: Path | str, in_block: int = IN_BLOCK) -> None:
        if in_block < 1:
            raise ValueError("in_block must be positive")
        self.path = Path(path)
        self._db = open_database(self.path, "FULL")
        self._in_block = in_block
        self._last: dict[str, int] = {}  # last accepted incoming value, per name
        self._mark: dict[str, int] = {}  # stored high-water mark, per name
        with closed_on_failure(self._db):
            self._migrate()

    def _migrate(self) -> None:
        version = admit(self._db, self.path, SCHEMA)
        if version >= SCHEMA_VERSION:
            return  # ours, or a newer slot's that this code reads
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS outgoing (name TEXT PRIMARY KEY, next INTEGER NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS incoming (name TEXT PRIMARY KEY, last INTEGER NOT NULL)")
            has_v2 = version == 2 and self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='auth_lockout'").fetchone() is not None
            if has_v2:
                self._db.execute("ALTER TABLE auth_lockout RENAME TO auth_lockout_v2")
            self._db.execute("CREATE TABLE auth_lockout (link TEXT NOT NULL, client_sap INTEGER NOT NULL, "
                             "source TEXT NOT NULL, failures INTEGER NOT NULL, until_utc TEXT, "
                             "refused INTEGER NOT NULL, changed_utc TEXT NOT NULL, "
                             "PRIMARY KEY (link, client_sap, source))")
            if has_v2:
                self._db.execute("INSERT INTO auth_lockout SELECT link, client_sap, link, failures, until_utc, "
                                 "refused, COALESCE(until_utc, ?) FROM auth_lockout_v2",
                                 (_dt.datetime.now(_dt.UTC).isoformat(),))
                self._db.execute("DROP TABLE auth_lockout_v2")
            stamp(self._db, SCHEMA)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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

    def _stored_mark(self, name: str) -> int:
        if name not in self._mark:
            row = self._db.execute("SELECT last FROM incoming WHERE name=?", (name,)).fetchone()
            self._mark[name] = int(row[0]) if row else 0
            self._last[name] = self._mark[name]  # after a restart: everything up to the mark is used
        return self._mark[name]

    def last_accepted(self, name: str) -> int:
        """The last accepted incoming counter (the stored mark after a restart; 0 when none)."""
        self._stored_mark(name)
        return self._last[name]

    def accept(self, name: str, value: int) -> bool:
        """Accept ``value`` if it is greater than the last accepted one (False: a replay or a
        stale counter); the stored mark is raised first when ``value`` crosses it."""
        mark = self._stored_mark(name)
        if value <= self._last[name]:
            return False
        if value > mark:
            new_mark = min(value + self._in_block, MAX_COUNTER)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO incoming(name, last) VALUES(?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET last=excluded.last WHERE excluded.last > incoming.last",
                    (name, new_mark))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._mark[name] = new_mark
        self._last[name] = value
        return True

    def load_lockouts(self, link: str) -> dict[tuple[int, str], tuple[int, _dt.datetime | None, int, _dt.datetime]]:
        """The stored authentication lockout states of ``link`` by (client SAP, source), the
        oldest change first: (consecutive failures, end of the running or last lockout in UTC or
        None, refused attempts not yet reported, when the state last changed in UTC)."""
        rows = self._db.execute("SELECT client_sap, source, failures, until_utc, refused, changed_utc "
                                "FROM auth_lockout WHERE link=? ORDER BY changed_utc", (link,)).fetchall()
        return {(int(sap), str(source)): (int(failures), _utc(until) if until else None, int(refused), _utc(changed))
                for sap, source, failures, until, refused, changed in rows}

    def save_lockout(self, link: str, client_sap: int, source: str,
                     state: tuple[int, _dt.datetime | None, int, _dt.datetime] | None) -> None:
        """Store one lockout state durably, the fields as :meth:`load_lockouts` gives them (None
        deletes the record)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if state is None:
                self._db.execute("DELETE FROM auth_lockout WHERE link=? AND client_sap=? AND source=?",
                                 (link, client_sap, source))
            else:
                failures, until_utc, refused, changed_utc = state
                until = until_utc.isoformat() if until_utc else None
                self._db.execute(
                    "INSERT INTO auth_lockout(link, client_sap, source, failures, until_utc, refused, changed_utc) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(link, client_sap, source) DO UPDATE SET "
                    "failures=excluded.failures, until_utc=excluded.until_utc, refused=excluded.refused, "
                    "changed_utc=excluded.changed_utc",
                    (link, client_sap, source, failures, until, refused, changed_utc.isoformat()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _utc(text: str) -> _dt.datetime:
    """A stored ISO date-time, read as UTC when it carries no offset."""
    value = _dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.UTC)

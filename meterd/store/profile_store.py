"""SQLite store of profile rows (load profile, daily profile): one transaction per row.

Durability rules: WAL journal, ``synchronous=FULL`` by default, so a row is on disk when
:meth:`SqliteProfileStore.append_row` returns; the insert and the trim of that profile to its
depth commit together. :meth:`SqliteProfileStore.one_transaction` commits several writes
(rows, Pst, EN 50160 intervals of one analysed block) as one transaction, one sync instead of
one each, durable when its ``with`` block ends. Each profile's capture definition (capture objects and period) is kept
beside its rows, so rows made under another definition are recognised and cleared with it
in one transaction (the table was added without a version change: older databases gain it
empty). ``PRAGMA user_version`` carries the schema version; a newer one is refused.
Implements :class:`meterd.services.revenue.ProfileStore`.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from meterd.core.errors import StateError
from meterd.core.model import ProfileRow
from meterd.store.schema import StoreSchema, admit, stamp
from meterd.store.sqlite import WriteBacklog, closed_on_failure, end_transaction, open_database

SCHEMA = StoreSchema("profiles", {1: 1})
SCHEMA_VERSION = SCHEMA.version
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS profile_rows (obis TEXT NOT NULL, seq INTEGER NOT NULL,"
    " utc_us INTEGER NOT NULL, vals TEXT NOT NULL, PRIMARY KEY (obis, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS profile_definition (obis TEXT PRIMARY KEY, definition TEXT NOT NULL) WITHOUT ROWID",
)


class ProfileStoreError(StateError):
    """The profile database is unreadable or from a newer schema."""


def to_us(utc: _dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = utc - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(utc_us: int) -> _dt.datetime:
    """Inverse of :func:`to_us`."""
    return _EPOCH + _dt.timedelta(microseconds=utc_us)


def _has_tables(conn: sqlite3.Connection, schema: tuple[str, ...]) -> bool:
    """True when every ``CREATE TABLE IF NOT EXISTS name`` of ``schema`` already exists."""
    names = [statement.split("EXISTS", 1)[1].split("(", 1)[0].strip() for statement in schema
             if "IF NOT EXISTS" in statement]
    have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return len(names) == len(schema) and all(name in have for name in names)


def open_db(path: Path | str, synchronous: str, schema: tuple[str, ...], declared: StoreSchema,
            error: type[ProfileStoreError] = ProfileStoreError) -> sqlite3.Connection:
    """Open (and create) a WAL database with ``schema`` at ``declared.version``; a newer file is
    read when its stamp allows it (:mod:`meterd.store.schema`), else ``error``."""
    conn = open_database(path, synchronous, error=error)
    with closed_on_failure(conn):
        found = admit(conn, path, declared, error=error)
        if found > declared.version or (found == declared.version and _has_tables(conn, schema)):
            return conn  # nothing to write: a start on a full disk goes on
        with conn:
            conn.execute("BEGIN")
            for statement in schema:
                conn.execute(statement)
            stamp(conn, declared)
    return conn


def _run_all(bodies: Sequence[Callable[[], None]]) -> None:
    for body in bodies:
        body()


class SqliteProfileStore:
    """Profile rows keyed by profile OBIS, trimmed to a depth per profile."""

    def __init__(self, path: Path | str, depth: Mapping[str, int] | None = None,
                 default_depth: int = 5760, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.depth = dict(depth or {})
        self.default_depth = default_depth
        self._conn = open_db(self.path, synchronous, _SCHEMA, SCHEMA)
        self._backlog = WriteBacklog(f"profile store {self.path}")
        self._scope: list[Callable[[], None]] | None = None

    def _write(self, body: Callable[[], None]) -> None:
        """Run ``body`` (statements, no transaction control) in a transaction of its own, or add it
        to the open :meth:`one_transaction`; on a full or failing disk it waits in memory
        (:class:`~meterd.store.sqlite.WriteBacklog`)."""
        if self._scope is not None:
            self._scope.append(body)
            return

        def write() -> None:
            self._conn.execute("BEGIN IMMEDIATE")
            failed = True
            try:
                body()
                failed = False
            finally:
                end_transaction(self._conn, failed)

        self._backlog.run(write)

    @contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every write made inside the ``with`` block is committed together, in one transaction at
        its end (one WAL commit and one sync instead of one each). The writes are durable when the
        block ends, not before: a caller opens it around writes it makes in one go, with nothing
        between them that could see or lose them (no wait, no await). Writes made before an
        exception in the block are still committed, as they would have been one by one. Nested
        scopes join the outer one."""
        if self._scope is not None:
            yield
            return
        bodies: list[Callable[[], None]] = []
        self._scope = bodies
        try:
            yield
        finally:
            self._scope = None
            if bodies:
                self._write(lambda: _run_all(bodies))

    def append_row(self, obis: str, row: ProfileRow) -> None:
        """Insert one row and trim the profile, in one transaction (or the open
        :meth:`one_transaction`); on a full or failing disk the row waits in memory
        (:class:`~meterd.store.sqlite.WriteBacklog`)."""
        depth = self.depth.get(obis, self.default_depth)
        vals = json.dumps(list(row.values), separators=(",", ":"))

        def body() -> None:
            last = self._conn.execute("SELECT MAX(seq) FROM profile_rows WHERE obis = ?", (obis,)).fetchone()[0]
            seq = 1 if last is None else last + 1
            self._conn.execute("INSERT INTO profile_rows VALUES (?, ?, ?, ?)", (obis, seq, to_us(row.utc), vals))
            self._conn.execute("DELETE FROM profile_rows WHERE obis = ? AND seq <= ?", (obis, seq - depth))

        self._write(body)

    def load_rows(self, obis: str, limit: int) -> list[ProfileRow]:
        """The newest ``limit`` rows of ``obis``, oldest first."""
        cur = self._conn.execute(
            "SELECT utc_us, vals FROM profile_rows WHERE obis = ? ORDER BY seq DESC LIMIT ?", (obis, limit))
        rows = [ProfileRow(from_us(u), tuple(json.loads(v))) for u, v in cur.fetchall()]
        rows.reverse()
        return rows

    def count(self, obis: str) -> int:
        """Rows held for ``obis``."""
        return int(self._conn.execute("SELECT COUNT(*) FROM profile_rows WHERE obis = ?", (obis,)).fetchone()[0])

    def clear(self, obis: str) -> None:
        """Delete every row of ``obis``."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM profile_rows WHERE obis = ?", (obis,))

    def load_definition(self, obis: str) -> str | None:
        """The capture definition the rows of ``obis`` were made under (None: not recorded)."""
        row = self._conn.execute("SELECT definition FROM profile_definition WHERE obis = ?", (obis,)).fetchone()
        return None if row is None else str(row[0])

    def redefine(self, obis: str, definition: str, clear: bool) -> None:
        """Record the capture definition of ``obis``, deleting its rows when ``clear``, in one
        transaction."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if clear:
                self._conn.execute("DELETE FROM profile_rows WHERE obis = ?", (obis,))
            self._conn.execute("INSERT OR REPLACE INTO profile_definition VALUES (?, ?)", (obis, definition))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> SqliteProfileStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_PST_TABLE = ("CREATE TABLE IF NOT EXISTS pq_pst (end_us INTEGER NOT NULL, phase INTEGER NOT NULL,"
              " pst REAL NOT NULL, flagged INTEGER NOT NULL, PRIMARY KEY (end_us, phase)) WITHOUT ROWID")
PST_KEEP_S = 7200


class SqlitePqStore(SqliteProfileStore):
    """The power-quality database ``pq.db``: the PQ profile rows plus the Pst of the running Plt.

    Beside the profile rows, table ``pq_pst`` holds the Pst of each phase (exact value, not the
    profile's rounded one) with the end of its 10-min interval (UTC) and its flag, for the last
    2 h only, so that the Plt of the running 2-h interval survives a restart. One transaction per
    10-min interval: its Pst of every phase are inserted and the rows older than 2 h before it
    deleted together. The table was added without a version change: older files gain it empty.
    Implements :class:`meterd.services.power_quality.PstStore`.
    """

    def __init__(self, path: Path | str, depth: Mapping[str, int] | None = None,
                 default_depth: int = 5760, synchronous: str = "FULL") -> None:
        super().__init__(path, depth, default_depth, synchronous)
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(_PST_TABLE)

    def save_pst(self, end_utc: _dt.datetime, values: Sequence[tuple[int, float, bool]]) -> None:
        """Store the (phase, Pst, flagged) of the 10-min interval ending at ``end_utc``, in one
        transaction that also drops the values ending 2 h or more before it (on a full or failing
        disk it waits in memory, as profile rows do)."""
        end_us = to_us(end_utc)
        rows = [(end_us, int(p), float(v), int(bool(f))) for p, v, f in values]

        def body() -> None:
            self._conn.executemany("INSERT OR REPLACE INTO pq_pst VALUES (?, ?, ?, ?)", rows)
            self._conn.execute("DELETE FROM pq_pst WHERE end_us <= ?", (end_us - PST_KEEP_S * 1_000_000,))

        self._write(body)

    def load_pst(self) -> list[tuple[_dt.datetime, int, float, bool]]:
        """Every stored (interval end UTC, phase, Pst, flagged), oldest first."""
        cur = self._conn.execute("SELECT end_us, phase, pst, flagged FROM pq_pst ORDER BY end_us, phase")
        return [(from_us(e), int(p), float(v), bool(f)) for e, p, v, f in cur.fetchall()]

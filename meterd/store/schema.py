"""Schema versions of the SQLite stores, readable across a firmware rollback.

Both firmware slots open the same files on the data partition, so a file the newer slot migrated
must still open in the older slot after a rollback. Each store declares its schema
(:class:`StoreSchema`): its version (``PRAGMA user_version``) and, for each version, the oldest
schema version whose code can still read *and write* a file at that version (``readable_by``):

* an **additive** change (a new table, a new column with a default) keeps older code working:
  its version's ``readable_by`` stays at the version before;
* a **breaking** change raises ``readable_by`` to itself; it must either keep what the older
  code reads (a forward migration that leaves the old tables and columns as they were) or ship a
  **down-migration** (:class:`DownStep`): SQL that takes a file at that version back to the one
  before. The newer code stores its down-migrations in the file itself (table
  ``meterd_schema_down``) when it migrates, so the older slot, which cannot know them, runs them
  on its rollback path before it opens the file.

Each file carries its stamp in ``meterd_schema`` (one row: store name, version, ``readable_by``).
On open (:func:`admit`) a store finds:

* a version at or below its own: it migrates up as before and stamps the file (:func:`stamp`,
  in the migration's transaction);
* a newer version it can read (``readable_by`` at or below its own version): it leaves the file
  as it is (no re-stamp, no migration: the newer slot's tables stay) and goes on; the notice is
  kept for the firmware log (event 168, once per store and version met);
* a newer version it cannot read with down-migrations down to one it can: they run in one
  transaction, the file is stamped with the version they reach (event 169);
* otherwise :class:`SchemaRefused` (or the store's own error type), naming the file, both
  versions and the oldest reader: never a silent reset of the file.

A file without the stamp row (written before this module) is readable only by its own version.
Notices wait in this module (:func:`take_notices`) until the energy storage hands them to the
event log with its own events (:meth:`meterd.store.energy_copies.EnergyCopies.take_events`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from meterd.core import event_codes as ec
from meterd.core.errors import StateError

log = logging.getLogger("meterd.storage")

STAMP_TABLE = "meterd_schema"
DOWN_TABLE = "meterd_schema_down"
_STAMP_DDL = (f"CREATE TABLE IF NOT EXISTS {STAMP_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1),"
              " store TEXT NOT NULL, version INTEGER NOT NULL, readable_by INTEGER NOT NULL, seen_by INTEGER)")
_DOWN_DDL = (f"CREATE TABLE IF NOT EXISTS {DOWN_TABLE} (from_version INTEGER PRIMARY KEY,"
             " readable_by INTEGER NOT NULL, statements TEXT NOT NULL)")


class SchemaRefused(StateError):
    """A store file written by a newer schema that this code cannot read and cannot take back."""


@dataclass(frozen=True)
class DownStep:
    """SQL that takes a file at ``from_version`` back to ``from_version - 1``, keeping what the
    older code reads (written by the newer code into the file, run by the older)."""

    from_version: int
    statements: tuple[str, ...]


@dataclass(frozen=True)
class StoreSchema:
    """One store's schema history: ``readable_by[v]`` is the oldest schema version whose code
    reads and writes a file at version ``v``; versions run from 1 to :attr:`version`."""

    name: str
    readable_by: Mapping[int, int]
    down: tuple[DownStep, ...] = ()

    def __post_init__(self) -> None:
        versions = sorted(self.readable_by)
        if not versions or versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.name}: versions must run 1…N, found {versions}")
        for version, reader in self.readable_by.items():
            if not 1 <= reader <= version:
                raise ValueError(f"{self.name}: version {version} readable_by {reader} is out of range")
        for step in self.down:
            if step.from_version not in self.readable_by or step.from_version < 2:
                raise ValueError(f"{self.name}: down-migration from unknown version {step.from_version}")
        object.__setattr__(self, "readable_by", MappingProxyType(dict(self.readable_by)))

    @property
    def version(self) -> int:
        """The newest version: what this code writes."""
        return max(self.readable_by)


def additive(name: str, version: int, breaking: tuple[int, ...] = ()) -> StoreSchema:
    """A schema of ``version`` versions each readable by the one before, except the ``breaking``
    ones (and version 1), readable only by themselves."""
    return StoreSchema(name, {v: v if v == 1 or v in breaking else v - 1 for v in range(1, version + 1)})


@dataclass(frozen=True)
class SchemaNotice:
    """What a store met at open: a newer file read as it is (``migrated_to`` None) or migrated
    back to ``migrated_to``."""

    path: Path
    store: str
    found: int
    readable_by: int
    supported: int
    migrated_to: int | None = None

    @property
    def code(self) -> int:
        """Event 168 (newer, read) or 169 (migrated back) of the firmware log."""
        return ec.code("STORE_SCHEMA_NEWER" if self.migrated_to is None else "STORE_SCHEMA_MIGRATED_BACK")

    @property
    def detail(self) -> dict[str, str | int]:
        """The event's detail: file, store, versions."""
        out: dict[str, str | int] = {"store": self.store, "file": self.path.name, "found": self.found,
                                     "readable_by": self.readable_by, "supported": self.supported}
        if self.migrated_to is not None:
            out["migrated_to"] = self.migrated_to
        return out


@dataclass
class _Notices:
    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[SchemaNotice] = field(default_factory=list)


_NOTICES = _Notices()


def take_notices(under: Path | None = None) -> list[SchemaNotice]:
    """The notices kept so far (of files under ``under`` only, when given), removed."""
    with _NOTICES.lock:
        root = None if under is None else under.resolve()
        taken = [n for n in _NOTICES.items if root is None or n.path.resolve().is_relative_to(root)]
        _NOTICES.items = [n for n in _NOTICES.items if n not in taken]
    return taken


def _notice(notice: SchemaNotice) -> None:
    with _NOTICES.lock:
        _NOTICES.items.append(notice)


def file_version(db: sqlite3.Connection) -> int:
    """``PRAGMA user_version``."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def file_readable_by(db: sqlite3.Connection, found: int) -> tuple[int, int | None]:
    """The oldest reader of a file at version ``found`` (``found`` itself without a stamp, or
    with one that names another version) and the version that last noticed it."""
    if not _table(db, STAMP_TABLE):
        return found, None
    row = db.execute(f"SELECT version, readable_by, seen_by FROM {STAMP_TABLE} WHERE id = 1").fetchone()
    if row is None or int(row[0]) != found:
        return found, None
    return int(row[1]), None if row[2] is None else int(row[2])


def admit(db: sqlite3.Connection, path: Path | str, schema: StoreSchema,
          error: type[Exception] = SchemaRefused, found: int | None = None) -> int:
    """The file's schema version after the rules above: at or below ``schema.version`` the
    caller migrates up (and calls :func:`stamp`); above it the caller leaves the file's schema
    alone. ``found`` is the version when the store keeps it elsewhere than ``user_version``.
    Raises ``error`` (a :class:`SchemaRefused` unless the store names its own) for a file this
    code cannot read."""
    path = Path(path)
    try:
        version = file_version(db) if found is None else found
        if version <= schema.version:
            return version
        reader, seen = file_readable_by(db, version)
        if reader <= schema.version:
            if seen != schema.version:
                log.warning("%s: %s schema %d written by newer software (readable by %d): read as it is",
                            path, schema.name, version, reader)
                _notice(SchemaNotice(path, schema.name, version, reader, schema.version))
                _mark_seen(db, path, schema.version)
            return version
        return _migrate_back(db, path, schema, version, reader, error)
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: not a readable database: {exc}") from None


def _mark_seen(db: sqlite3.Connection, path: Path, supported: int) -> None:
    """Remember that this version noticed the file (one event, not one per start); a disk that
    refuses the write only costs a repeated notice."""
    try:
        db.execute(f"UPDATE {STAMP_TABLE} SET seen_by = ? WHERE id = 1", (supported,))
    except sqlite3.OperationalError as exc:
        log.info("%s: cannot note the schema notice (%s)", path, exc)


def _migrate_back(db: sqlite3.Connection, path: Path, schema: StoreSchema, found: int, reader: int,
                  error: type[Exception]) -> int:
    steps: dict[int, tuple[int, list[str]]] = {}
    if _table(db, DOWN_TABLE):
        for from_version, readable_by, statements in db.execute(
                f"SELECT from_version, readable_by, statements FROM {DOWN_TABLE}"):
            steps[int(from_version)] = (int(readable_by), [str(s) for s in json.loads(statements)])
    version, readable = found, reader
    chain: list[list[str]] = []
    while readable > schema.version:
        step = steps.get(version)
        if step is None:
            raise error(
                f"{path}: {schema.name} schema {found} needs software of schema {reader} or newer to read "
                f"it and this meterd knows {schema.version}; no down-migration from {version} is stored: "
                "refused (the file is left as it is; install a release that reads it)")
        readable, statements = step
        chain.append(statements)
        version -= 1
    db.execute("BEGIN IMMEDIATE")
    try:
        for statements in chain:
            for statement in statements:
                db.execute(statement)
        db.execute(f"DELETE FROM {DOWN_TABLE} WHERE from_version > ?", (version,))
        db.execute(f"UPDATE {STAMP_TABLE} SET version = ?, readable_by = ?, seen_by = NULL WHERE id = 1",
                   (version, readable))
        db.execute(f"PRAGMA user_version={int(version)}")
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        db.execute("ROLLBACK")
        raise error(f"{path}: {schema.name} schema {found}: down-migration to {version} failed ({exc}): "
                    "refused, the file is left as it was") from None
    log.warning("%s: %s schema %d migrated back to %d (readable by %d) for this meterd (%d)",
                path, schema.name, found, version, readable, schema.version)
    _notice(SchemaNotice(path, schema.name, found, reader, schema.version, migrated_to=version))
    return version


def stamp(db: sqlite3.Connection, schema: StoreSchema, user_version: bool = True) -> None:
    """Stamp the file with this code's version, its oldest reader and its down-migrations (to run
    inside the caller's migration transaction)."""
    version = schema.version
    db.execute(_STAMP_DDL)
    db.execute(f"INSERT INTO {STAMP_TABLE} (id, store, version, readable_by, seen_by) VALUES (1, ?, ?, ?, NULL)"
               " ON CONFLICT(id) DO UPDATE SET store = excluded.store, version = excluded.version,"
               " readable_by = excluded.readable_by, seen_by = NULL",
               (schema.name, version, schema.readable_by[version]))
    if schema.down or _table(db, DOWN_TABLE):
        db.execute(_DOWN_DDL)
        db.execute(f"DELETE FROM {DOWN_TABLE}")
        for step in schema.down:
            db.execute(f"INSERT INTO {DOWN_TABLE} (from_version, readable_by, statements) VALUES (?, ?, ?)",
                       (step.from_version, schema.readable_by[step.from_version - 1], json.dumps(step.statements)))
    if user_version:
        db.execute(f"PRAGMA user_version={int(version)}")

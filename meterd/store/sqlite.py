"""How every meterd database is opened: one place for the durability and SD-card rules.

* WAL journal: readers never block the writer, and a commit appends to the WAL instead of
  rewriting pages in place;
* ``synchronous``: ``FULL`` (every commit fsyncs the WAL: survives power loss) for records that
  must never be lost or replayed (tokens, invocation counters, events, relay state), ``NORMAL``
  (a commit survives a crash of meterd, the WAL is synced at checkpoints) where the caller syncs
  on its own schedule (the energy checkpoint, see :mod:`meterd.core.checkpoint`);
* 1 KiB pages for new files: small records, so a commit writes about 1 KiB of WAL, not 4;
* ``PRAGMA user_version`` is the schema version: :func:`schema_version` refuses a file written by a
  newer meterd rather than guess at it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from meterd.core.errors import StateError

PAGE_SIZE = 1024


def open_database(path: Path | str, synchronous: str = "FULL", page_size: int = PAGE_SIZE,
                  error: type[Exception] = StateError) -> sqlite3.Connection:
    """Open (creating it and its directory if needed) a WAL database in autocommit mode; errors
    become ``error`` naming the file."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError("synchronous must be FULL or NORMAL")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA page_size={int(page_size)}")  # takes effect only on a new file
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
    except (OSError, sqlite3.DatabaseError) as exc:
        raise error(f"{path}: cannot open database: {exc}") from None
    return db


def schema_version(db: sqlite3.Connection, path: Path | str, supported: int,
                   error: type[Exception] = StateError) -> int:
    """The file's schema version; ``error`` if it is newer than ``supported``."""
    try:
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: not a readable database: {exc}") from None
    if found > supported:
        raise error(f"{path}: schema version {found} is newer than this meterd ({supported})")
    return found

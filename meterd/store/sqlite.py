"""How every meterd database is opened: one place for the durability and SD-card rules.

* WAL journal: readers never block the writer, and a commit appends to the WAL instead of
  rewriting pages in place;
* ``synchronous``: ``FULL`` (every commit fsyncs the WAL: survives power loss) for records that
  must never be lost or replayed (tokens, invocation counters, events, relay state), ``NORMAL``
  (a commit survives a crash of meterd, the WAL is synced at checkpoints) where the caller syncs
  on its own schedule (the energy checkpoint, see :mod:`meterd.core.checkpoint`);
* 1 KiB pages for new files: small records, so a commit writes about 1 KiB of WAL, not 4;
* ``locking_mode=EXCLUSIVE``, set before the first WAL access: the WAL index lives in meterd's
  memory instead of a memory-mapped ``-shm`` file beside the database, whose pages every commit
  dirtied (about 12 KiB of block writes per commit in real time, most of what the meter wrote).
  The connection holds the database's lock from its opening to its closing: meterd opens each of
  its databases once (one connection, shared under a lock by the threads that use it), and no
  other connection or process (``sqlite3`` on the command line included) can read a database
  while meterd holds it. One that tries gets :class:`DatabaseLocked` at once (no busy wait): "in
  use", never "damaged", so nothing is moved aside or made anew for it. Tools read the meter
  through its API (``meterctl``), or the files once meterd has stopped;
* a WAL of a fixed size: SQLite checkpoints it after ``wal_pages`` pages (:data:`WAL_PAGES`, 64
  KiB of 1-KiB pages, instead of its default 1000; 16 for the energy checkpoint, one page a save)
  and then writes it again from its start, so after the first checkpoint a commit no longer
  grows the file. On ext4 a commit that grows a file costs a journal commit of its metadata
  (size, extents, bitmaps: about three 4-KiB blocks, and their write-back later) on top of its
  data; with the WAL growing towards 1000 pages (3.5 days of energy checkpoints at one page
  each) that was more than the data itself. A checkpoint adds the pages it copies (the newest
  version of each page, rewritten in place) and a sync of the database: a larger WAL copies a
  page changed by several commits once, a smaller one stops growing sooner after a start. The
  ``/data`` partition is mounted ``lazytime`` (image fstab), so the timestamps of a write that
  leaves the size alone cost no journal commit either;
* a page cache of at most :data:`CACHE_KIB` per connection, stated here so that it is one
  constant: SQLite's default (2000 KiB). A 256-KiB cache was measured against it on the stepped
  meter and kept nothing: the same RSS over 30 min of meter time (the databases are small),
  about 3 % more CPU per simulated second (3.23 against 3.13 ms, PQ off: the pages it evicts are
  read back) and no fewer block writes (6.3 against 5.9 MB/day, PQ on, 30 min, within the
  storage bench's spread);
* ``PRAGMA user_version`` is the schema version; :mod:`meterd.store.schema` decides whether a
  file written by a newer meterd is read, migrated back or refused, never guessed at;
* a full, failing or read-only disk (:func:`storage_failure`) must not stop the meter: records
  that can wait (events, profile rows) go through a :class:`WriteBacklog`, which keeps them in
  order in memory and writes them when the disk takes writes again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meterd.core.errors import StateError

PAGE_SIZE = 1024
WAL_PAGES = 64  # pages in a WAL before SQLite checkpoints it and writes it again from its start
CACHE_KIB = 2000  # page cache per connection (KiB): SQLite's default, see above
_DISK_ERRORS = {8, 10, 13, 14}  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
_LOCK_ERRORS = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED

log = logging.getLogger("meterd.storage")


class DatabaseLocked(StateError):
    """The database is held by another connection (another process, or a second connection of
    this one): it is in use, not damaged. Never a reason to move, reset or rewrite the file."""


def locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" (SQLITE_BUSY or SQLITE_LOCKED)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _LOCK_ERRORS
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def storage_failure(exc: BaseException) -> bool:
    """True for the error of a full, failing or read-only disk (not a bug or a damaged file)."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return (code & 0xFF) in _DISK_ERRORS
        return any(text in str(exc) for text in ("disk is full", "disk I/O error", "readonly database"))
    return isinstance(exc, OSError)


class WriteBacklog:
    """Writes that a full or failing disk refused, kept in order (at most ``limit``; beyond it
    the oldest are dropped and counted) and tried again before each new one. One ERROR line when
    writes start failing, one WARNING when they resume; never an exception for a disk error."""

    def __init__(self, name: str, limit: int = 10_000) -> None:
        self.name = name
        self.limit = limit
        self.dropped = 0
        self._pending: list[Callable[[], None]] = []
        self._failing = False

    @property
    def pending(self) -> int:
        """Writes waiting."""
        return len(self._pending)

    def run(self, write: Callable[[], None]) -> None:
        """Do ``write`` after the ones waiting; keep it when the disk refuses."""
        self._pending.append(write)
        if len(self._pending) > self.limit:
            self._pending.pop(0)
            self.dropped += 1
        self.flush()

    def flush(self) -> bool:
        """Try the waiting writes in order; True when none is left."""
        while self._pending:
            try:
                self._pending[0]()
            except (sqlite3.OperationalError, OSError) as exc:
                if not storage_failure(exc):
                    raise
                if not self._failing:
                    log.error("%s: cannot write (%s): kept in memory until the disk takes writes again",
                              self.name, exc)
                    self._failing = True
                return False
            self._pending.pop(0)
        if self._failing:
            log.warning("%s: writes resumed%s", self.name,
                        f" ({self.dropped} of the oldest were dropped)" if self.dropped else "")
            self._failing = False
        return True


def end_transaction(db: sqlite3.Connection, failed: bool) -> None:
    """COMMIT (ROLLBACK when ``failed``); a COMMIT the disk refuses is rolled back, then raised."""
    if failed:
        db.execute("ROLLBACK")
        return
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def closed_on_failure(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Close ``db`` when the block raises (then re-raise): a store whose set-up fails after the
    database opened must not leave its connection holding the file's exclusive lock."""
    try:
        yield db
    except BaseException:
        db.close()
        raise


def open_database(path: Path | str, synchronous: str = "FULL", page_size: int = PAGE_SIZE,
                  error: type[Exception] = StateError, wal_pages: int = WAL_PAGES) -> sqlite3.Connection:
    """Open (creating it and its directory if needed) a WAL database in exclusive locking mode and
    autocommit mode; a database held by another connection raises :class:`DatabaseLocked`, other
    errors become ``error`` naming the file."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError("synchronous must be FULL or NORMAL")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _connect(path, synchronous, page_size, wal_pages)
    except sqlite3.OperationalError as exc:
        if locked(exc):
            raise DatabaseLocked(f"{path}: in use by another connection or process ({exc}); "
                                 "meterd holds each of its databases while it runs") from None
        raise error(f"{path}: cannot open database: {exc}") from None
    except (OSError, sqlite3.DatabaseError) as exc:
        raise error(f"{path}: cannot open database: {exc}") from None


def _connect(path: Path, synchronous: str, page_size: int, wal_pages: int) -> sqlite3.Connection:
    # timeout 0: a database held elsewhere is reported at once, not after a busy wait
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=0)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first WAL access: no -shm file
        db.execute(f"PRAGMA page_size={int(page_size)}")  # takes effect only on a new file
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.execute("PRAGMA journal_mode=WAL")  # reads the file: takes and keeps its lock
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")
    except BaseException:
        db.close()  # a half-open connection would hold a lock on the file
        raise
    return db

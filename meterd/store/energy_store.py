"""SQLite checkpoint of the energy registers (and of state saved with them).

Durability rules:
  * one small database file (``energy.db``) with page_size 1024 and a WAL journal; a save is
    committed with ``synchronous=NORMAL`` (survives kill -9 and any crash of meterd: the
    transaction is in the kernel's page cache) or, with ``sync=True``, with ``synchronous=FULL``
    (the WAL is fsynced: survives power loss) — the policy decides which, see
    :mod:`meterd.core.checkpoint`;
  * one row, updated in place, holding every base register as a packed big-endian int64 array
    (milli-units, in :data:`meterd.core.energy.ALL_KEYS` order) plus a compressed JSON blob for
    state that must move in step with the registers (rate registers, demand, credit);
  * a checkpoint whose registers are below the stored ones is refused (registers never go
    backwards); the sequence number grows by one per save;
  * the sequence number is the caller's when it gives one (it must grow): the meter numbers its
    states once for this database and the energy journal (:mod:`meterd.store.energy_journal`);
  * a random instance id, made with the database (table ``meta``), names this database; the
    meter's commissioning id (``meta`` key ``commissioning``, see
    :mod:`meterd.store.energy_copies`) is stored with it and returned with every checkpoint;
  * a file held by another connection raises :class:`~meterd.store.sqlite.DatabaseLocked` at
    open (in use, not damaged);
  * an unreadable file (not a database, a damaged page) raises :class:`StateError` at open; a
    failed write (disk full, I/O error, read-only) raises
    :class:`~meterd.core.checkpoint.CheckpointWriteError` and leaves the last checkpoint as it was;
  * ``PRAGMA user_version`` carries the schema version (2; version 1 files gain the ``meta``
    table); a newer version is read when its stamp says this code can, else refused
    (:class:`~meterd.store.schema.SchemaRefused`, never reset: :mod:`meterd.store.schema`).
A checkpoint is one or two pages of WAL per save: with the energy journal a save every
``sync_period_s`` (5 min) writes well under 1 MB a day.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meterd.core.checkpoint import Checkpoint, CheckpointWriteError
from meterd.core.energy import ALL_KEYS, RegisterKey
from meterd.core.errors import StateError
from meterd.store.schema import SchemaRefused, StoreSchema, admit, stamp
from meterd.store.sqlite import DatabaseLocked, closed_on_failure, locked, open_database

SCHEMA = StoreSchema("energy", {1: 1, 2: 1})  # 2: table meta (additive)
SCHEMA_VERSION = SCHEMA.version
_PACK = struct.Struct(">" + "q" * len(ALL_KEYS))
REGISTERS_SIZE = _PACK.size
WAL_PAGES = 16
"""The energy database's WAL size (pages): a save commits one page, so its WAL stops growing
16 saves (80 min) after a start, where the stores' 64 pages would take 5 h, each save before
that growing the file and so costing a journal commit (:mod:`meterd.store.sqlite`); a
checkpoint copies that one page back every 16 saves."""


def pack_registers(registers: Mapping[RegisterKey, int]) -> bytes:
    """Registers (milli-units) as big-endian int64 in :data:`ALL_KEYS` order."""
    return _PACK.pack(*(int(registers.get(k, 0)) for k in ALL_KEYS))


def unpack_registers(blob: bytes) -> dict[RegisterKey, int]:
    """The inverse of :func:`pack_registers`."""
    if len(blob) != _PACK.size:
        raise StateError(f"energy checkpoint has {len(blob)} bytes, expected {_PACK.size}")
    return dict(zip(ALL_KEYS, _PACK.unpack(blob), strict=True))


def encode_extra(extra: Mapping[str, Any] | None, level: int = 6) -> bytes:
    """State saved with the registers: compact JSON, zlib-compressed."""
    return zlib.compress(json.dumps(extra or {}, separators=(",", ":"), sort_keys=True).encode(), level)


def decode_extra(blob: bytes) -> dict[str, Any]:
    """The inverse of :func:`encode_extra`."""
    value = json.loads(zlib.decompress(blob))
    if not isinstance(value, dict):
        raise StateError("energy checkpoint extra state is not an object")
    return value


class EnergyStore:
    """The energy checkpoint database."""

    def __init__(self, path: Path | str, commissioning: str | None = None) -> None:
        self.path = Path(path)
        self._db = open_database(self.path, "FULL", wal_pages=WAL_PAGES)
        with closed_on_failure(self._db):
            try:
                self._migrate()
                self.instance = self._instance()
                self.commissioning = self._commissioning(commissioning)
                self._last: Checkpoint | None = self._read()
            except (sqlite3.DatabaseError, zlib.error, ValueError) as exc:
                if locked(exc):
                    raise DatabaseLocked(f"{self.path}: in use by another connection or process ({exc})") from None
                raise StateError(f"{self.path}: damaged energy database: {exc}") from None
        self._sync = True
        self.saves = 0
        self.synced_saves = 0

    def _migrate(self) -> None:
        version = admit(self._db, self.path, SCHEMA, error=SchemaRefused)
        if version >= SCHEMA_VERSION:
            return  # ours, or a newer slot's that this code reads (meterd.store.schema)
        self._db.execute("BEGIN")
        if version == 0:
            self._db.execute(
                "CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
                " utc TEXT NOT NULL, registers BLOB NOT NULL, extra BLOB NOT NULL)"
            )
        self._db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")  # version 2
        self._db.execute("INSERT INTO meta (key, value) VALUES ('instance', ?)", (uuid.uuid4().hex,))
        stamp(self._db, SCHEMA)
        self._db.execute("COMMIT")

    def _instance(self) -> str:
        """This database's random instance id (made with it, or when it was upgraded)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        if row is None:
            raise StateError(f"{self.path}: no instance id")
        return str(row[0])

    def _commissioning(self, wanted: str | None) -> str:
        """The commissioning id kept in ``meta`` ("" for a file written before there was one);
        ``wanted`` is stored when the file has none yet."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'commissioning'").fetchone()
        if row is not None:
            return str(row[0])
        if wanted:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('commissioning', ?)", (wanted,))
            return wanted
        return ""

    def adopt(self, commissioning: str) -> None:
        """Store ``commissioning`` as this database's when it has none (a file from before
        commissioning ids); a database of another commissioning must be set aside instead."""
        if self.commissioning == commissioning:
            return
        if self.commissioning:
            raise StateError(f"{self.path}: of commissioning {self.commissioning}, not {commissioning}")
        try:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('commissioning', ?)", (commissioning,))
        except sqlite3.Error as exc:
            raise CheckpointWriteError(f"{self.path}: {exc}") from None
        self.commissioning = commissioning
        if self._last is not None:
            self._last = dataclasses.replace(self._last, commissioning=commissioning)

    def _read(self) -> Checkpoint | None:
        row = self._db.execute("SELECT seq, utc, registers, extra FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        seq, utc, blob, extra = row
        return Checkpoint(seq=seq, utc=_dt.datetime.fromisoformat(utc), registers=unpack_registers(blob),
                          extra=decode_extra(extra), commissioning=self.commissioning)

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None for a new meter."""
        return self._last

    def save(self, utc: _dt.datetime, registers: Mapping[RegisterKey, int],
             extra: Mapping[str, Any] | None = None, sync: bool = True, seq: int | None = None) -> Checkpoint:
        """Commit a checkpoint (fsynced with ``sync``) as number ``seq`` (default: the next);
        refuses registers that went backwards and a sequence number that does not grow."""
        if self._last is not None:
            for key, old in self._last.registers.items():
                if registers.get(key, 0) < old:
                    raise StateError(f"register {key[0].name}/{key[1].value} would go backwards")
        last_seq = 0 if self._last is None else self._last.seq
        if seq is None:
            seq = last_seq + 1
        elif seq <= last_seq:
            raise StateError(f"checkpoint {seq} is not newer than the stored {last_seq}")
        extra_blob = encode_extra(extra)
        try:
            if sync != self._sync:
                self._db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
                self._sync = sync
            self._db.execute(
                "INSERT INTO checkpoint (id, seq, utc, registers, extra) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, utc = excluded.utc,"
                " registers = excluded.registers, extra = excluded.extra",
                (seq, utc.isoformat(), pack_registers(registers), extra_blob),
            )
        except sqlite3.Error as exc:
            raise CheckpointWriteError(f"{self.path}: {exc}") from None
        self._last = Checkpoint(seq=seq, utc=utc, registers=dict(registers), extra=dict(extra or {}),
                                commissioning=self.commissioning)
        self.saves += 1
        self.synced_saves += int(sync)
        return self._last

    def close(self) -> None:
        """Close the database (a clean shutdown also folds the WAL back; on a full disk it stays)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    @property
    def page_size(self) -> int:
        """SQLite page size (bytes): the WAL grows by one such frame per save."""
        return int(self._db.execute("PRAGMA page_size").fetchone()[0])

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
  * ``PRAGMA user_version`` carries the schema version; unknown newer versions are refused.
A checkpoint is one page of WAL per save, so a day at one save a minute writes about 1.5 MB.
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meterd.core.checkpoint import Checkpoint
from meterd.core.energy import ALL_KEYS, RegisterKey
from meterd.core.errors import StateError
from meterd.store.sqlite import open_database, schema_version

SCHEMA_VERSION = 1
_PACK = struct.Struct(">" + "q" * len(ALL_KEYS))


def _pack(registers: Mapping[RegisterKey, int]) -> bytes:
    return _PACK.pack(*(int(registers.get(k, 0)) for k in ALL_KEYS))


def _unpack(blob: bytes) -> dict[RegisterKey, int]:
    if len(blob) != _PACK.size:
        raise StateError(f"energy checkpoint has {len(blob)} bytes, expected {_PACK.size}")
    return dict(zip(ALL_KEYS, _PACK.unpack(blob), strict=True))


class EnergyStore:
    """The energy checkpoint database."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_database(self.path, "FULL")
        self._migrate()
        self._sync = True
        self._last: Checkpoint | None = self._read()
        self.saves = 0
        self.synced_saves = 0

    def _migrate(self) -> None:
        version = schema_version(self._db, self.path, SCHEMA_VERSION)
        if version == 0:
            self._db.execute("BEGIN")
            self._db.execute(
                "CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
                " utc TEXT NOT NULL, registers BLOB NOT NULL, extra BLOB NOT NULL)"
            )
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")

    def _read(self) -> Checkpoint | None:
        row = self._db.execute("SELECT seq, utc, registers, extra FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        seq, utc, blob, extra = row
        return Checkpoint(seq=seq, utc=_dt.datetime.fromisoformat(utc), registers=_unpack(blob),
                          extra=json.loads(zlib.decompress(extra)))

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None for a new meter."""
        return self._last

    def save(self, utc: _dt.datetime, registers: Mapping[RegisterKey, int],
             extra: Mapping[str, Any] | None = None, sync: bool = True) -> Checkpoint:
        """Commit a checkpoint (fsynced with ``sync``); refuses registers that went backwards."""
        if self._last is not None:
            for key, old in self._last.registers.items():
                if registers.get(key, 0) < old:
                    raise StateError(f"register {key[0].name}/{key[1].value} would go backwards")
        seq = 1 if self._last is None else self._last.seq + 1
        if sync != self._sync:
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
            self._sync = sync
        extra_blob = zlib.compress(json.dumps(extra or {}, separators=(",", ":"), sort_keys=True).encode(), 6)
        self._db.execute(
            "INSERT INTO checkpoint (id, seq, utc, registers, extra) VALUES (1, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, utc = excluded.utc,"
            " registers = excluded.registers, extra = excluded.extra",
            (seq, utc.isoformat(), _pack(registers), extra_blob),
        )
        self._last = Checkpoint(seq=seq, utc=utc, registers=dict(registers), extra=dict(extra or {}))
        self.saves += 1
        self.synced_saves += int(sync)
        return self._last

    def close(self) -> None:
        """Close the database (a clean shutdown also folds the WAL back)."""
        self._db.close()

    @property
    def page_size(self) -> int:
        """SQLite page size (bytes): the WAL grows by one such frame per save."""
        return int(self._db.execute("PRAGMA page_size").fetchone()[0])

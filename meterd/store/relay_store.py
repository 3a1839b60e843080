"""SQLite persistence of the disconnector state (relay position, class 70 state, counters).

Durability rules: one small database (``relay.db``), WAL journal, ``synchronous=FULL``; one row
updated in place per save, each save its own transaction, so a save that returned survives
kill -9 and power loss. The load-control service saves *before* each coil pulse (marked pending)
and again after the feedback check. ``PRAGMA user_version`` carries the schema version; newer
unknown versions are refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sqlite3
from pathlib import Path

from meterd.core.errors import StateError
from meterd.core.limiter import LimiterConfig, LimiterConfigError
from meterd.services.load_control import RelayRecord
from meterd.store.schema import StoreSchema, admit, stamp
from meterd.store.sqlite import closed_on_failure, open_database

log = logging.getLogger("meterd.relay_store")

SCHEMA = StoreSchema("relay", {1: 1, 2: 1, 3: 1})  # 2, 3: new columns with defaults
SCHEMA_VERSION = SCHEMA.version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    control_state INTEGER NOT NULL CHECK (control_state IN (0, 1, 2)),
    control_mode INTEGER NOT NULL CHECK (control_mode BETWEEN 0 AND 6),
    relay_closed INTEGER NOT NULL CHECK (relay_closed IN (0, 1)),
    operation_count INTEGER NOT NULL CHECK (operation_count >= 0),
    last_change_utc TEXT,
    pending INTEGER NOT NULL CHECK (pending IN (0, 1))
)
"""

_V2_COLUMNS = (
    "limiter_state TEXT NOT NULL DEFAULT 'armed' CHECK (limiter_state IN ('armed', 'tripped', 'locked_out'))",
    "limiter_attempts INTEGER NOT NULL DEFAULT 0 CHECK (limiter_attempts >= 0)",
    "limiter_cause TEXT",
    "local_causes TEXT NOT NULL DEFAULT ''",
)
"""Version 2: the limiter's trip/lockout, its reconnection attempts and the local causes."""

_V3_COLUMNS = (
    "max_power_w REAL CHECK (max_power_w IS NULL OR max_power_w > 0)",
    "max_phase_unbalance_w REAL CHECK (max_phase_unbalance_w IS NULL OR max_phase_unbalance_w > 0)",
    "limiter_config TEXT",
    "supply_source TEXT CHECK (supply_source IS NULL OR supply_source IN ('grid', 'solar'))",
)
"""Version 3: the STS power and phase-unbalance limits (W), the class 71 settings written over
DLMS (JSON, see ``LimiterConfig.to_dict``) and the changeover's selected source."""

_COLUMNS = ("control_state", "control_mode", "relay_closed", "operation_count", "last_change_utc", "pending",
            "limiter_state", "limiter_attempts", "limiter_cause", "local_causes", "max_power_w",
            "max_phase_unbalance_w", "limiter_config", "supply_source")


class RelayStore:
    """The disconnector state database; implements the service's ``RelayStateStore`` port."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_database(self.path, "FULL")
        with closed_on_failure(self._db):
            self._migrate()
        self.saves = 0

    def _migrate(self) -> None:
        version = admit(self._db, self.path, SCHEMA)
        if version < SCHEMA_VERSION:
            with self._transaction():
                if version < 1:
                    self._db.execute(_SCHEMA)
                if version < 2:
                    for column in _V2_COLUMNS:
                        self._db.execute(f"ALTER TABLE relay_state ADD COLUMN {column}")
                for column in _V3_COLUMNS:
                    self._db.execute(f"ALTER TABLE relay_state ADD COLUMN {column}")
                stamp(self._db, SCHEMA)

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    def load(self) -> RelayRecord | None:
        """The saved record, or None on a fresh meter."""
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM relay_state WHERE id = 1").fetchone()
        if row is None:
            return None
        (state, mode, closed, count, changed, pending, lim_state, attempts, cause, causes, max_power_w,
         unbalance_w, limiter_json, source) = row
        changed_utc = _dt.datetime.fromisoformat(changed) if changed else None
        return RelayRecord(control_state=state, control_mode=mode, relay_closed=bool(closed),
                           operation_count=count, last_change_utc=changed_utc, pending=bool(pending),
                           limiter_state=lim_state, limiter_attempts=attempts, limiter_cause=cause,
                           local_causes=tuple(c for c in causes.split(",") if c), max_power_w=max_power_w,
                           max_phase_unbalance_w=unbalance_w, limiter_config=self._limiter_config(limiter_json),
                           supply_source=source)

    def _limiter_config(self, text: str | None) -> LimiterConfig | None:
        """The saved class 71 settings; a record that no longer validates is logged and left out
        (the configuration file's settings apply) rather than stopping the meter."""
        if text is None:
            return None
        try:
            return LimiterConfig.from_dict(json.loads(text))
        except (json.JSONDecodeError, LimiterConfigError) as exc:
            log.error("%s: saved limiter settings unusable, using the configuration file's: %s", self.path, exc)
            return None

    def save(self, record: RelayRecord) -> None:
        """Write ``record`` durably; the operation counter never goes backwards."""
        previous = self.load()
        if previous is not None and record.operation_count < previous.operation_count:
            raise StateError("relay operation counter would go backwards")
        changed = record.last_change_utc.isoformat() if record.last_change_utc else None
        limiter_json = (json.dumps(record.limiter_config.to_dict(), sort_keys=True)
                        if record.limiter_config is not None else None)
        values = (record.control_state, record.control_mode, int(record.relay_closed), record.operation_count,
                  changed, int(record.pending), record.limiter_state, record.limiter_attempts,
                  record.limiter_cause, ",".join(record.local_causes), record.max_power_w,
                  record.max_phase_unbalance_w, limiter_json, record.supply_source)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS)
        with self._transaction():
            self._db.execute(
                f"INSERT INTO relay_state (id, {', '.join(_COLUMNS)}) VALUES (1{', ?' * len(_COLUMNS)})"
                f" ON CONFLICT(id) DO UPDATE SET {updates}", values)
        self.saves += 1

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> RelayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def relay_closed_at_start(record: RelayRecord | None) -> bool:
    """Where a latching relay's contacts are at start: where the last completed operation left
    them (a pulse saved as pending did not complete); a fresh meter leaves the factory connected."""
    if record is None:
        return True
    return record.relay_closed if not record.pending else not record.relay_closed


def source_at_start(record: RelayRecord | None, preferred: str) -> str:
    """The source the changeover contactors close first: the one selected before the restart
    (so a meter running on solar does not close onto a dead grid for a moment), else
    ``preferred``."""
    if record is not None and record.supply_source is not None:
        return record.supply_source
    return preferred

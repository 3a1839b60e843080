"""SQLite home of the STS decoder state (key register, TID memory, staged key-change sections).

Durability rules: WAL journal, ``synchronous=FULL``; every ``save`` is one transaction that is on
disk when it returns, so the processor can report a token only after its TID is durable and a
replayed token is refused after a restart. An optional companion record (e.g. the credit account
after a credit token) is written in the same transaction. The database file holds the decoder key:
it is created with mode 0600.

Schema 2 adds ``sts_memo``: small records that must also survive a restart but are not part of
the decoder state, each written in its own durable transaction: the lockout counter and the end
of a running lockout (``lockout``), and the last token entered with its time, source and result
(``last_token``, what the token gateway 0-0:19.40.0.255 shows). A schema 1 file gains the table
in place.

Also the STS keys file (TOML, mode 0600): the decoder key register a meter is commissioned with.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hw.secret_file import SecretFileError, read_secret_text, write_secret_text
from meterd.core.sts.errors import StsStateError
from meterd.core.sts.state import KeyRegister, StsState
from meterd.store.schema import StoreSchema, admit, stamp
from meterd.store.sqlite import closed_on_failure, open_database

SCHEMA = StoreSchema("sts", {1: 1, 2: 1})  # 2: table sts_memo (additive)
SCHEMA_VERSION = SCHEMA.version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sts_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sts_state (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,
                                      generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sts_companion (name TEXT PRIMARY KEY, doc TEXT NOT NULL,
                                          generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sts_memo (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""


class SqliteStsStore:
    """``StsStateStore`` on one SQLite file; ``companion_name`` names the companion record."""

    def __init__(self, path: str | Path, companion_name: str = "credit") -> None:
        self._path = Path(path)
        self._companion_name = companion_name
        self._create_private_file()
        self._db = open_database(self._path, "FULL", error=StsStateError)
        with closed_on_failure(self._db):
            try:
                self._db.executescript(_SCHEMA)
                self._check_schema()
            except sqlite3.Error as exc:
                raise StsStateError(f"cannot open STS state store: {exc}") from None

    def _create_private_file(self) -> None:
        if not self._path.exists():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)

    def _check_schema(self) -> None:
        """The schema version is kept in ``sts_meta``; a newer one is read or migrated back when
        its stamp allows it (:mod:`meterd.store.schema`), else refused."""
        row = self._db.execute("SELECT value FROM sts_meta WHERE name = 'schema'").fetchone()
        found = None if row is None else int(row[0])
        version = admit(self._db, self._path, SCHEMA, error=StsStateError, found=found or 0)
        if found is not None and version < found:  # migrated back: the version it reached
            self._db.execute("UPDATE sts_meta SET value = ? WHERE name = 'schema'", (str(version),))
        if found is None or version < SCHEMA_VERSION:  # new, or 1 -> 2: sts_memo made by _SCHEMA above
            self._db.execute("INSERT INTO sts_meta VALUES ('schema', ?) ON CONFLICT(name) DO UPDATE SET "
                             "value = excluded.value", (str(SCHEMA_VERSION),))
            stamp(self._db, SCHEMA, user_version=False)

    def load(self) -> StsState | None:
        """The last saved state, or None for a store never commissioned."""
        try:
            row = self._db.execute("SELECT doc FROM sts_state WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            raise StsStateError(f"cannot read STS state: {exc}") from None
        if row is None:
            return None
        try:
            doc = json.loads(row[0])
        except json.JSONDecodeError:
            raise StsStateError("STS state record is not valid JSON") from None
        return StsState.from_dict(doc)

    def load_companion(self) -> dict[str, Any] | None:
        """The companion record saved with the last state that had one, or None."""
        row = self._db.execute("SELECT doc FROM sts_companion WHERE name = ?",
                               (self._companion_name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, state: StsState, companion: Mapping[str, Any] | None = None) -> None:
        """Write ``state`` (and ``companion``) in one durable transaction."""
        doc = json.dumps(state.to_dict(), sort_keys=True)
        extra = None if companion is None else json.dumps(dict(companion), sort_keys=True)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            gen = self._next_generation()
            self._db.execute("INSERT OR REPLACE INTO sts_state (id, doc, generation) VALUES (1, ?, ?)",
                             (doc, gen))
            if extra is not None:
                self._db.execute("INSERT OR REPLACE INTO sts_companion VALUES (?, ?, ?)",
                                 (self._companion_name, extra, gen))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StsStateError(f"cannot save STS state: {exc}") from None

    def load_lockout(self) -> tuple[int, _dt.datetime | None]:
        """The token lockout counter and the end of a running lockout (UTC); (0, None) if never saved."""
        doc = self._load_memo("lockout")
        if doc is None:
            return 0, None
        until = doc.get("until_utc")
        return int(doc.get("rejects", 0)), _dt.datetime.fromisoformat(until) if until else None

    def save_lockout(self, rejects: int, until_utc: _dt.datetime | None) -> None:
        """Write the token lockout counter durably (processor ``LockoutStore`` port)."""
        self._save_memo("lockout", {"rejects": rejects, "until_utc": until_utc.isoformat() if until_utc else None})

    def load_last_token(self) -> dict[str, Any] | None:
        """The last token entered (digits, utc ISO 8601, source, result), or None."""
        return self._load_memo("last_token")

    def save_last_token(self, record: Mapping[str, Any]) -> None:
        """Write the last token entered durably."""
        self._save_memo("last_token", record)

    def _load_memo(self, name: str) -> dict[str, Any] | None:
        try:
            row = self._db.execute("SELECT doc FROM sts_memo WHERE name = ?", (name,)).fetchone()
            return None if row is None else dict(json.loads(row[0]))
        except (sqlite3.Error, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise StsStateError(f"cannot read STS {name} record: {exc.__class__.__name__}") from None

    def _save_memo(self, name: str, doc: Mapping[str, Any]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO sts_memo VALUES (?, ?)", (name, json.dumps(dict(doc), sort_keys=True)))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StsStateError(f"cannot save STS {name} record: {exc}") from None

    def _next_generation(self) -> int:
        row = self._db.execute("SELECT generation FROM sts_state WHERE id = 1").fetchone()
        return 1 if row is None else int(row[0]) + 1

    def generation(self) -> int:
        """How many saves this store has seen (0 when empty); for tests and diagnostics."""
        row = self._db.execute("SELECT generation FROM sts_state WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> SqliteStsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the STS keys file: the decoder key register a meter is commissioned with -----------------

KEYS_FILE_HEADER = (
    "# STS decoder key register of this meter. Mode 0600: the key must not be readable by others.\n"
    "# Used once, to commission an empty STS store; afterwards key change tokens update the store.\n"
)


def load_key_register(path: str | Path) -> KeyRegister:
    """Read the ``[decoder]`` table of an STS keys file (TOML, mode 0600 or stricter).

    Fields: ``key_hex`` (8 bytes EA07, 16 bytes EA11), ``ea``, ``kt``, ``krn``, ``ti``, ``ken``,
    ``sgc``, ``base_date``. StsStateError names the problem but never the key.
    """
    file = Path(path)
    try:
        text = read_secret_text(file)
    except SecretFileError as exc:
        raise StsStateError(f"STS keys file {exc}") from None
    try:
        table = tomllib.loads(text)["decoder"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise StsStateError(f"STS keys file {file}: no valid [decoder] table ({exc.__class__.__name__})") from None
    return KeyRegister.from_dict(table)


def write_key_register(path: str | Path, register: KeyRegister, note: str = "") -> None:
    """Write an STS keys file atomically with mode 0600 (``note``: a comment line, e.g. its origin)."""
    lines = [KEYS_FILE_HEADER]
    if note:
        lines.append(f"# {note}\n")
    lines.append("[decoder]\n")
    for name, value in register.to_dict().items():
        lines.append(f'{name} = "{value}"\n' if isinstance(value, str) else f"{name} = {value}\n")
    write_secret_text(path, "".join(lines))

"""The copies of the energy registers, opened and chosen at start, written and watched while
running.

Three independent copies, each holding a whole checkpoint (registers, the state saved with them,
a sequence number, the meter's serial and its commissioning id):

* the database ``<state_dir>/energy.db`` (:class:`~meterd.store.energy_store.EnergyStore`);
* the register file ``<state_dir>/energy.registers`` (:class:`~meterd.store.register_file.RegisterFile`),
  written and fsynced after each synced database save;
* the energy journal in RAM (:class:`~meterd.store.energy_journal.EnergyJournal`), every cycle.

Plus the commissioning record ``<state_dir>/commissioning.json``: the meter's serial, its
commissioning id, when and how it was commissioned and when it first started.

Choice at start: every copy is checked (CRC, serial, commissioning id); of the durable copies
(database, register file) the newest consistent one is taken
(:func:`~meterd.core.checkpoint.choose_newest`), then the journal when it is newer and no register
of it is below (:func:`~meterd.core.checkpoint.choose_checkpoint`). No register is ever restored
below any copy that survived valid. Damage found (a file that does not open, a CRC error, a
database emptied or behind the register file, a journal that holds no record although its file
is there) is logged at WARNING and becomes an NV memory error event (alarm bit 10) with the copy
and the reason, and, when the state was restored from a durable copy, a storage fall-back event
with the sequence number and time of the restored state (energy counted after it may be
missing). A damaged database is moved aside (``energy.db.damaged-<UTC>``) and made anew; a
database held by another connection ("database is locked": in use, not damaged) is left as it is
and the meter does not start (:class:`StorageUnavailable`).

The registers start from zero only on a commissioned meter: ``meterd commission`` writes the
commissioning record, and the first start after it begins at zero and records "meter
commissioned". With no valid copy and no unused commissioning record the meter refuses to start
(:class:`StorageUnavailable`). A simulated meter on an empty state directory commissions itself.

Writes: a save that the disk refuses (full, I/O error, read-only) raises
:class:`~meterd.core.checkpoint.CheckpointWriteError`; the registers stay in the journal, the
error is logged once, and further saves are skipped with growing back-off (2, 4 … 64 attempts)
until one succeeds; then a line and an event say how long the writes failed. ``fault``: when set
to an :class:`OSError`, every database and register-file write fails with it (fault injection
for tests and the simulator).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.checkpoint import (
    Checkpoint,
    CheckpointWriteError,
    StorageEvent,
    choose_checkpoint,
    choose_newest,
)
from meterd.core.energy import RegisterKey
from meterd.core.errors import StateError
from meterd.store.energy_journal import EnergyJournal, JournalError
from meterd.store.energy_store import EnergyStore
from meterd.store.register_file import REGISTER_FILE_NAME, RegisterFile, sync_directory
from meterd.store.schema import SchemaRefused, take_notices
from meterd.store.sqlite import DatabaseLocked

log = logging.getLogger("meterd.storage")

DATABASE_NAME = "energy.db"
COMMISSIONING_NAME = "commissioning.json"
MAX_SKIP = 64


class StorageUnavailable(StateError):
    """The meter cannot keep its registers: no usable state directory, or no copy of the
    registers and no commissioning. meterd exits with status 2 on it."""


@dataclass(frozen=True)
class Commissioning:
    """The commissioning record: serial, id (32 hex digits), when (UTC, ISO) and how, when the
    meter first started from it ("" until then), the boot token (:func:`boot_token`) of the last start, and the
    sequence number of the last clean stop ("" while running or after a crash)."""

    serial: str
    id: str
    utc: str
    how: str
    started: str = ""
    boot: str = ""
    stopped: str = ""


def boot_token(journal_path: Path | None) -> str:
    """An id of the life of the journal's RAM file system: kept in ``<journal>.boot`` next to the
    journal (made when missing), so it changes when the host restarted (tmpfs emptied) and stays
    while only meterd restarted. Works where ``/proc/sys`` is hidden (systemd ``ProcSubset=pid``);
    "" without a journal."""
    if journal_path is None:
        return ""
    marker = journal_path.with_name(journal_path.name + ".boot")
    try:
        token = marker.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    except OSError:
        return ""
    token = uuid.uuid4().hex
    try:
        marker.write_text(token)
    except OSError:
        return ""
    return token


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def check_state_dir(state_dir: Path) -> None:
    """:class:`StorageUnavailable` unless ``state_dir`` exists (or can be made) and is writable."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageUnavailable(f"state directory {state_dir}: cannot create it: {exc.strerror}") from None
    if not state_dir.is_dir():
        raise StorageUnavailable(f"state directory {state_dir}: not a directory")
    probe = state_dir / ".meterd-write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # full: the meter starts, the journal keeps the state
            log.error("state directory %s is full: the registers stay in the energy journal until it is not",
                      state_dir)
            probe.unlink(missing_ok=True)
            return
        raise StorageUnavailable(f"state directory {state_dir}: not writable: {exc.strerror}") from None


def read_commissioning(state_dir: Path) -> Commissioning | None:
    """The commissioning record, None when there is none; :class:`StateError` when damaged."""
    path = state_dir / COMMISSIONING_NAME
    try:
        raw = json.loads(path.read_text())
        return Commissioning(**{k: str(raw[k]) for k in ("serial", "id", "utc", "how")},
                             **{k: str(raw.get(k, "")) for k in ("started", "boot", "stopped")})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path}: damaged commissioning record: {exc}") from None


def write_commissioning(state_dir: Path, record: Commissioning) -> None:
    """Write the record durably (temporary file, fsync, rename, directory fsync)."""
    path = state_dir / COMMISSIONING_NAME
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, (json.dumps(asdict(record), indent=1) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_directory(state_dir)


def _copy_files(state_dir: Path, journal_path: Path | None) -> list[Path]:
    files = [p for p in state_dir.glob(DATABASE_NAME + "*") if ".damaged-" not in p.name
             and ".decommissioned-" not in p.name]
    files.append(state_dir / REGISTER_FILE_NAME)
    if journal_path is not None:
        files.append(journal_path)
    return [p for p in files if p.exists()]


def commission(state_dir: Path, serial: str, journal_path: Path | None, how: str,
               force: bool = False) -> Commissioning:
    """Commission the meter as new: its registers will start from zero at the next start.
    Refused (:class:`StateError`) while a copy of the registers exists, unless ``force``: the
    copies are then moved aside (``<name>.decommissioned-<UTC>``), never deleted."""
    check_state_dir(state_dir)
    existing = _copy_files(state_dir, journal_path)
    if existing and not force:
        raise StateError(f"{state_dir} already holds the registers of a meter ({existing[0].name}); "
                         "commissioning anew would start them from zero: use --force to do so")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in existing:
        path.rename(path.with_name(f"{path.name}.decommissioned-{stamp}"))
    return _new_record(state_dir, serial, how)


def _new_record(state_dir: Path, serial: str, how: str) -> Commissioning:
    record = Commissioning(serial=serial, id=uuid.uuid4().hex, utc=_now(), how=how)
    write_commissioning(state_dir, record)
    log.info("meter %s: commissioning record written (%s)", serial, how)
    return record


def _damaged_slots(rejected: list[str]) -> list[str]:
    return [why for why in rejected if not why.endswith(": empty")]


class EnergyCopies:
    """The durable copies (database, register file) as one checkpoint store, with the journal
    and the commissioning record; implements :class:`~meterd.core.checkpoint.CheckpointStore`
    and :class:`~meterd.core.checkpoint.StorageHealth`.

    ``state_dir``: where the database, the register file and the record live; ``serial``: the
    meter's serial; ``journal_path``: the journal file (None: no journal); ``auto_commission``:
    commission a meter whose state directory holds nothing at all (simulation)."""

    def __init__(self, state_dir: Path | str, serial: str, journal_path: Path | None, *,
                 auto_commission: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.serial = serial
        self.fault: OSError | None = None
        #: the UTC of the newest checkpoint forced to the medium since start (None: none yet): a
        #: time the meter was alive that survives a power cut (the supervision's heartbeat)
        self.synced_utc: _dt.datetime | None = None
        self.damaged: dict[str, str] = {}
        self._events: list[StorageEvent] = []
        self._failures = 0
        self._skip = 0
        self._first_error = ""
        self._repaired = True
        #: extra time (s) each database write takes, asked before each save (a simulated slow
        #: storage; None on a real meter) and spent in ``sleep``
        self.write_delay: Callable[[], float] | None = None
        self.sleep: Callable[[float], None] = time.sleep
        check_state_dir(self.state_dir)
        before = set(_copy_files(self.state_dir, journal_path))
        record = self._read_record()
        self.database = self._open_database()
        self.register_file = RegisterFile(self.state_dir / REGISTER_FILE_NAME, serial)
        self.journal = self._open_journal(journal_path)
        self._auto: Commissioning | None = None
        self._record: Commissioning | None = None
        self._boot = boot_token(journal_path)
        #: the host kept running since the previous start (the journal's RAM file system, with its
        #: boot token, lived on; a reboot or a power cut empties it); None: no token to tell
        self.host_kept: bool | None = (record.boot == self._boot) if record and record.boot and self._boot else None
        try:
            self.commissioning = self._resolve(record, not before, auto_commission)
            self.restored, self.restored_from = self._choose(record or self._auto)
        except StorageUnavailable:  # leave nothing behind that a later commissioning would take for a copy
            self.database.close()
            if self.journal is not None:
                self.journal.close()
            for path in set(_copy_files(self.state_dir, journal_path)) - before:
                path.unlink(missing_ok=True)
            raise

    @property
    def boot(self) -> str:
        """The boot token of the journal's RAM file system ("" without a journal)."""
        return self._boot

    # -- opening ------------------------------------------------------------------------------

    def _damage(self, copy: str, reason: str) -> None:
        log.warning("energy storage: %s damaged: %s", copy, reason)
        self.damaged[copy] = reason
        self._events.append(StorageEvent(ec.code("NV_MEMORY_ERROR"), {"copy": copy, "reason": reason[:120]}))

    def _read_record(self) -> Commissioning | None:
        try:
            return read_commissioning(self.state_dir)
        except StateError as exc:
            self._damage("commissioning record", str(exc))
            return None

    def _open_database(self, commissioning: str | None = None) -> EnergyStore:
        path = self.state_dir / DATABASE_NAME
        try:
            return EnergyStore(path, commissioning)
        except SchemaRefused as exc:  # a newer slot's file this code cannot read: never reset it
            raise StorageUnavailable(str(exc)) from None
        except DatabaseLocked as exc:  # in use, not damaged: never moved aside or made anew
            raise StorageUnavailable(str(exc)) from None
        except StateError as exc:
            self._damage("database", str(exc))
            self._set_aside("damaged")
            return EnergyStore(path, commissioning)

    def _set_aside(self, why: str) -> None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        for path in self.state_dir.glob(DATABASE_NAME + "*"):
            if "." + why + "-" not in path.name and ".damaged-" not in path.name \
                    and ".decommissioned-" not in path.name:
                path.rename(path.with_name(f"{path.name}.{why}-{stamp}"))

    def _open_journal(self, path: Path | None) -> EnergyJournal | None:
        if path is None:
            log.info("energy journal off: the database keeps the loss bound")
            return None
        try:
            journal = EnergyJournal(path, identity=self.serial)
        except JournalError as exc:
            log.warning("energy journal unavailable (%s): the database keeps the loss bound", exc)
            return None
        if path.parent == self.state_dir:
            log.warning("energy journal %s is not on a RAM file system: the kernel writes it back", path)
        return journal

    def _valid(self) -> dict[str, Checkpoint | None]:
        return {"database": self.database.load(), "register file": self.register_file.load(),
                "journal": self.journal.load() if self.journal is not None else None}

    def _resolve(self, record: Commissioning | None, fresh: bool, auto_commission: bool) -> str:
        """The commissioning id: the record's; else that of the newest valid copy (a database
        from before commissioning ids: its instance id)."""
        if record is not None and record.serial != self.serial:
            raise StorageUnavailable(f"{self.state_dir / COMMISSIONING_NAME} is of meter {record.serial}, "
                                     f"not {self.serial}")
        copies = [cp for cp in self._valid().values() if cp is not None]
        if record is not None:
            return record.id
        if copies:
            newest = max(copies, key=lambda cp: cp.seq)
            return newest.commissioning or self.database.instance
        if auto_commission and fresh and not self.damaged:
            self._auto = _new_record(self.state_dir, self.serial, "simulated meter, empty state directory")
            return self._auto.id
        raise StorageUnavailable(self._nothing_left())

    def _nothing_left(self) -> str:
        damage = "; ".join(f"{copy}: {why}" for copy, why in self.damaged.items()) or "no copy found"
        return (f"no valid copy of the energy registers in {self.state_dir} ({damage}); the meter does "
                "not start from zero unless commissioned: meterd commission --config FILE --state-dir DIR")

    def _choose(self, record: Commissioning | None) -> tuple[Checkpoint | None, str]:
        commissioning = self.commissioning
        stored = self.database.load()
        if stored is not None and stored.commissioning not in ("", commissioning):
            log.warning("energy storage: database is of an earlier commissioning: set aside")
            self.database.close()
            self._set_aside("decommissioned")
            self.database = self._open_database(commissioning)
        try:
            self.database.adopt(commissioning)
        except CheckpointWriteError as exc:
            log.error("energy storage: commissioning id not stored in the database yet: %s", exc)
        self.register_file.adopt(commissioning)
        if self.journal is not None:
            self.journal.adopt(commissioning)
        self._check_copies(record)
        valid = self._valid()
        name, durable, why = choose_newest({"database": valid["database"], "register file": valid["register file"]})
        restored, _ = choose_checkpoint(durable, valid["journal"])
        source = name if restored is durable else "journal"
        if restored is None:
            if record is None or record.started:
                raise StorageUnavailable(self._nothing_left())
            log.warning("meter %s commissioned %s (%s): registers start from zero", self.serial, record.utc,
                        record.how)
            self._events.append(StorageEvent(ec.code("METER_COMMISSIONED"),
                                             {"id": record.id, "how": record.how[:60], "commissioned": record.utc}))
            source = "commissioning"
        elif self.damaged and source != "journal":
            assert restored is not None
            log.warning("energy storage: registers restored from the %s (checkpoint %d of %s): energy counted "
                        "after it may be missing", source, restored.seq, restored.utc.isoformat())
            self._events.append(StorageEvent(ec.code("STORAGE_FALLBACK"), {
                "restored": str(source), "seq": restored.seq, "utc": restored.utc.isoformat(),
                "damaged": ", ".join(sorted(self.damaged))}))
        base = record or Commissioning(serial=self.serial, id=commissioning, utc=_now(),
                                       how="adopted from the copies of the registers")
        self._record = replace(base, started=base.started or _now(), boot=self._boot, stopped="")
        try:
            write_commissioning(self.state_dir, self._record)
        except OSError as exc:  # a full disk: the record is written again at the clean stop
            log.error("energy storage: commissioning record not updated: %s", exc.strerror or exc)
        self._repaired = not self.damaged
        return restored, f"{source} ({why})" if source != "journal" else "journal"

    def _check_copies(self, record: Commissioning | None) -> None:
        """Damage that is not a refused file: copies emptied, behind another, or holding no record."""
        valid = self._valid()
        stored, filed, journaled = valid["database"], valid["register file"], valid["journal"]
        anything = any(cp is not None for cp in valid.values()) or bool(record and record.started)
        if stored is None and anything and "database" not in self.damaged:
            self._damage("database", "holds no checkpoint (emptied or its WAL lost)")
        elif stored is not None and filed is not None and stored.seq < filed.seq:
            self._damage("database", f"checkpoint {stored.seq} is behind the register file's {filed.seq}"
                         " (WAL lost?)")
        rf = self.register_file
        slots = _damaged_slots(rf.rejected)
        if rf.found not in ("intact", "missing"):
            self._damage("register file", rf.found)
        elif slots:
            self._damage("register file", "; ".join(slots))
        elif filed is None and (rf.found == "intact" or (stored is not None and stored.commissioning)):
            self._damage("register file", "missing" if rf.found == "missing" else "holds no record")
        if self.journal is not None:
            found, slots = self.journal.found, _damaged_slots(self.journal.rejected)
            if found not in ("intact", "missing"):
                self._damage("journal", found)
            elif slots:
                self._damage("journal", "; ".join(slots))
            elif found == "intact" and journaled is None:
                self._damage("journal", "holds no record (zeroed?)")
            elif (found == "missing" and record is not None and record.boot and record.boot == self._boot
                  and not record.stopped and any(cp is not None for cp in valid.values())):
                self._damage("journal", "removed (the meter did not stop cleanly and the host did not restart)")

    # -- CheckpointStore ----------------------------------------------------------------------

    def load(self) -> Checkpoint | None:
        """The newest durable checkpoint (database or register file)."""
        _, durable, _ = choose_newest({"database": self.database.load(), "register file": self.register_file.load()})
        return durable

    def save(self, utc: _dt.datetime, registers: Mapping[RegisterKey, int],
             extra: Mapping[str, Any] | None = None, sync: bool = True, seq: int | None = None) -> Checkpoint:
        """Commit to the database and, when ``sync``, to the register file (fsynced);
        :class:`CheckpointWriteError` when the disk refuses or while waiting to retry."""
        if self._skip:
            self._skip -= 1
            raise CheckpointWriteError("energy storage: waiting to retry")
        if self.write_delay is not None:
            delay = self.write_delay()
            if delay > 0:
                self.sleep(delay)
        try:
            if self.fault is not None:
                raise self.fault
            checkpoint = self.database.save(utc, registers, extra, sync=sync, seq=seq)
            if sync:
                self.register_file.write(checkpoint)
        except (CheckpointWriteError, OSError) as exc:
            self._failed(exc)
            raise CheckpointWriteError(str(exc)) from None
        self._succeeded(sync)
        if sync:
            self.synced_utc = utc
        return checkpoint

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self._skip = min(2 ** self._failures, MAX_SKIP)
        if self._failures == 1:
            self._first_error = _reason(exc)
            keeper = "the energy journal" if self.journal is not None else "memory only"
            log.error("energy storage: cannot write (%s): the registers stay in %s; retrying with back-off",
                      self._first_error, keeper)

    def _succeeded(self, synced: bool) -> None:
        if self._failures:
            log.warning("energy storage: writes resumed after %d failed attempts (%s)", self._failures,
                        self._first_error)
            self._events.append(StorageEvent(ec.code("NV_MEMORY_ERROR"), {
                "copy": "storage", "reason": f"writes failed: {self._first_error[:80]}; resumed",
                "failed_attempts": self._failures}))
            self._failures, self._first_error = 0, ""
        if synced and not self._repaired:
            self._repaired = True
            log.info("energy storage: every durable copy rewritten")

    @property
    def saves(self) -> int:
        """Database saves since start."""
        return self.database.saves

    @property
    def synced_saves(self) -> int:
        """Synced database saves since start."""
        return self.database.synced_saves

    def close(self) -> None:
        """Close the database and note the clean stop (with the sequence number of the newest
        durable checkpoint) in the commissioning record."""
        durable = self.load()
        self.database.close()
        journal = self.journal.path if self.journal is not None else None
        if journal is not None and not journal.exists():  # discarded after a clean stop
            journal.with_name(journal.name + ".boot").unlink(missing_ok=True)
        if self._record is not None and durable is not None:
            try:
                write_commissioning(self.state_dir, replace(self._record, stopped=str(durable.seq)))
            except OSError as exc:
                log.warning("energy storage: clean stop not noted: %s", exc.strerror)

    # -- StorageHealth ------------------------------------------------------------------------

    def take_events(self) -> list[StorageEvent]:
        """The storage events not yet handed on, with what the stores of this state directory met
        of a newer schema (:func:`meterd.store.schema.take_notices`)."""
        self._events.extend(StorageEvent(n.code, n.detail) for n in take_notices(self.state_dir))
        events, self._events = self._events, []
        return events

    def status(self) -> set[str]:
        return {"storage_fault"} if self._failures or not self._repaired else set()

    @property
    def failing(self) -> bool:
        """True while writes fail."""
        return bool(self._failures)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc)

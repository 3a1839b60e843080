"""When to persist the energy registers: the loss bound made explicit.

Two ways to keep the registers across a crash of meterd:

* with an energy journal (:class:`CheckpointJournal`, a memory-mapped file on tmpfs, see
  ``meterd.store.energy_journal``) the meter copies its state into the journal at the end of every
  cycle in which something changed. The journal survives kill -9 and any crash of meterd (not a
  power cut or a reboot), and costs no storage writes, so a crash loses nothing counted in a
  finished cycle, and observers may see journal values. The database then only has to survive
  power cuts: ``CheckpointPolicy(journaled=True)`` saves to it, always synced, every
  ``sync_period_s`` if anything changed, on the power-fail input and at shutdown;
* without one (``journaled=False``, no RAM file system) the database alone carries the loss
  bound, with the rules below.

At start :func:`choose_checkpoint` picks between the database and the journal.

Rule without a journal (all energies in milli-units, times in monotonic seconds):
  * persist at once when the power-fail input fires (zero loss);
  * persist when, for any register, the energy not yet persisted plus the energy the next cycle is
    expected to add (the largest increment of the last cycle) would exceed ``bound_milli``; so at a
    steady load the energy a kill -9 can lose stays below the bound (default 10 Wh per register);
  * persist when ``period_s`` has passed since the last save and something changed;
  * persist before registers are published to an observer (API, DLMS, LCD) if anything is unsaved,
    so no observer ever sees a value that a crash could take back.
When one cycle alone adds more than the bound (a very large load, or a very long cycle) the policy
persists every cycle and the loss is at most one cycle's energy; shorten the cycle for such sites.

Two strengths of "persisted" (see :class:`CheckpointStore`):
  * committed: the transaction is in the operating system's hands. It survives kill -9, a crash
    or an OOM kill of meterd, which is what the loss bound is about;
  * synced: also forced to the medium (fsync). Every ``sync_period_s``, on the power-fail input
    (last gasp) and at shutdown. A power cut that the power-fail input did not announce loses at
    most the energy since the last synced checkpoint (the kernel usually writes sooner).
Committing without syncing each time keeps SD-card writes near one small WAL frame per save.

Either way a power cut that the power-fail input did not announce loses at most the energy since
the last synced save (``sync_period_s``, 5 min by default).

Copies and their choice at start (see ``meterd.store.energy_copies``): the database, a separately
synced register file and the journal each hold a whole checkpoint; :func:`choose_newest` picks
the durable one to restore, :func:`choose_checkpoint` then weighs the journal against it. A copy
that cannot be written (a full or failing disk) raises :class:`CheckpointWriteError`: the
registers stay in the journal and the write is retried later. Damage, fall-backs, commissioning
and failed writes reach the meter's event logs as :class:`StorageEvent`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from meterd.core.energy import RegisterKey
from meterd.core.errors import StateError


@dataclass(frozen=True)
class Checkpoint:
    """Persisted meter state: registers in milli-units, the UTC of the save, extra state, and the
    commissioning id of the meter that wrote it ("" when the copy carries none)."""

    seq: int
    utc: _dt.datetime
    registers: Mapping[RegisterKey, int]
    extra: Mapping[str, Any] = field(default_factory=dict)
    commissioning: str = field(default="", compare=False)


class CheckpointWriteError(StateError):
    """A durable copy of the registers could not be written (disk full, I/O error, read-only);
    the caller keeps the state (in the journal) and tries again later."""


@dataclass(frozen=True)
class StorageEvent:
    """Something the storage of the registers wants in the meter's event logs: an event code of
    :mod:`meterd.core.event_codes` (NV memory error, storage fall-back, commissioned) and detail
    (copy name, reason, sequence numbers, UTC of the restored state). The meter dates it with
    its own clock when it hands it on."""

    code: int
    detail: Mapping[str, str | int]


class StorageHealth(Protocol):
    """Port: the state of the durable copies, as the meter reports it."""

    def take_events(self) -> list[StorageEvent]:
        """Events not yet handed out (each is handed out once)."""
        ...

    def status(self) -> set[str]:
        """Status flags (``storage_fault`` while a copy is damaged or cannot be written)."""
        ...


def registers_below(checkpoint: Checkpoint, other: Checkpoint) -> list[RegisterKey]:
    """The registers of ``checkpoint`` that are below ``other``'s."""
    return [key for key, value in other.registers.items() if checkpoint.registers.get(key, 0) < value]


def choose_newest(copies: Mapping[str, Checkpoint | None]) -> tuple[str | None, Checkpoint | None, str]:
    """The copy to restore among valid ones (name → checkpoint, None for a copy that has none),
    and why: the one with the highest sequence number none of whose registers is below any
    other copy's. Every state the meter writes has a higher number and no smaller register than
    the one before, so the newest copy normally qualifies; if none does (a copy holds a register
    that is higher although its number is lower: not a state this meter wrote in order), the
    newest is taken with each register raised to the highest value of any copy, so no register
    is ever restored below a surviving copy (and none above the truth: every copy was true once)."""
    valid = {name: cp for name, cp in copies.items() if cp is not None}
    if not valid:
        return None, None, "no copy holds a checkpoint"
    ordered = sorted(valid.items(), key=lambda item: item[1].seq, reverse=True)
    for name, cp in ordered:
        if not any(registers_below(cp, other) for other in valid.values()):
            older = [f"{n} {c.seq}" for n, c in ordered if n != name]
            return name, cp, f"{name} {cp.seq}" + (f" (also: {', '.join(older)})" if older else "")
    name, newest = ordered[0]
    merged = dict(newest.registers)
    for cp in valid.values():
        for key, value in cp.registers.items():
            merged[key] = max(merged.get(key, 0), value)
    lifted = Checkpoint(seq=newest.seq, utc=newest.utc, registers=merged, extra=newest.extra,
                        commissioning=newest.commissioning)
    return name, lifted, f"{name} {newest.seq}, registers raised to the highest of every copy"


class CheckpointStore(Protocol):
    """Port: durable storage of the energy checkpoint."""

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None for a new meter."""
        ...

    def save(self, utc: _dt.datetime, registers: Mapping[RegisterKey, int],
             extra: Mapping[str, Any] | None = None, sync: bool = True, seq: int | None = None) -> Checkpoint:
        """Commit (and with ``sync`` force to the medium) as number ``seq`` (default: the next);
        must refuse registers that went backwards and a ``seq`` that does not grow."""
        ...


class CheckpointJournal(Protocol):
    """Port: a record of the checkpoint that survives the death of meterd without storage writes."""

    def load(self) -> Checkpoint | None:
        """The newest valid checkpoint of this meter in the journal, or None."""
        ...

    def write(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint``; a write interrupted at any point leaves the previous one valid."""
        ...

    def check(self) -> str | None:
        """Cheap check that the record is still there and whole (None) or what is wrong; the
        caller then re-creates it with :meth:`recreate`."""
        ...

    def recreate(self) -> None:
        """Make a new journal file holding the last written checkpoint."""
        ...


def choose_checkpoint(stored: Checkpoint | None, journaled: Checkpoint | None) -> tuple[Checkpoint | None, str]:
    """The checkpoint to restore at start, and why: the journal's when its sequence number is
    newer than the database's and none of its registers is below the database's (registers never
    go backwards); the database's otherwise. ``journaled`` must already be checked (CRC, meter
    identity) by the journal."""
    if journaled is None:
        return stored, "database (no valid journal)"
    if stored is None:
        return journaled, "journal (database empty)"
    if journaled.seq <= stored.seq:
        return stored, f"database (journal {journaled.seq} is not newer)"
    behind = [key for key, value in stored.registers.items() if journaled.registers.get(key, 0) < value]
    if behind:
        key = behind[0]
        return stored, (f"database (journal {journaled.seq} has {key[0].name}/{key[1].value}"
                        " below the database)")
    return journaled, f"journal (database is at {stored.seq})"


@dataclass
class CheckpointPolicy:
    """Tracks unsaved energy and decides when the registers must be persisted (saved to the
    database). ``journaled``: an energy journal holds every cycle, so the database is saved
    every ``sync_period_s`` only, and always synced."""

    bound_milli: int = 10_000
    period_s: float = 900.0
    sync_period_s: float = 300.0
    journaled: bool = False
    _unsaved: dict[RegisterKey, int] = field(default_factory=dict)
    _last_cycle_max: int = 0
    _last_save_mono: float | None = None
    _last_sync_mono: float | None = None

    def __post_init__(self) -> None:
        if self.bound_milli <= 0:
            raise ValueError("bound_milli must be positive")
        if self.period_s <= 0 or self.sync_period_s <= 0:
            raise ValueError("period_s and sync_period_s must be positive")

    def note_cycle(self, deltas: Mapping[RegisterKey, int]) -> None:
        """Record the increments (milli-units) a cycle added to the live registers."""
        largest = 0
        for key, delta in deltas.items():
            if delta:
                self._unsaved[key] = self._unsaved.get(key, 0) + delta
                largest = max(largest, delta)
        self._last_cycle_max = largest

    @property
    def dirty(self) -> bool:
        """True when some energy is not yet persisted."""
        return bool(self._unsaved)

    def max_unsaved(self) -> int:
        """The largest unsaved energy of any register (milli-units)."""
        return max(self._unsaved.values(), default=0)

    def due(self, now_mono: float) -> bool:
        """True when the registers must be persisted now."""
        if not self._unsaved:
            return False
        if self.journaled:
            return self._last_save_mono is None or now_mono - self._last_save_mono >= self.sync_period_s
        if self.max_unsaved() + self._last_cycle_max > self.bound_milli:
            return True
        if self._last_save_mono is None:
            return True
        return now_mono - self._last_save_mono >= self.period_s

    def sync_due(self, now_mono: float) -> bool:
        """True when the next save should also be forced to the medium."""
        if self.journaled:
            return True
        return self._last_sync_mono is None or now_mono - self._last_sync_mono >= self.sync_period_s

    def saved(self, now_mono: float, synced: bool = True) -> None:
        """Record that everything counted so far has been committed (and ``synced``)."""
        self._unsaved.clear()
        self._last_save_mono = now_mono
        if synced:
            self._last_sync_mono = now_mono

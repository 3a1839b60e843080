"""The metering cycle: front end -> energy registers -> listeners -> durable checkpoint.

:class:`MeteringService` is the one owner of meter state. Each call to :meth:`cycle` reads the
front end once, applies the starting-current rule, adds the increments to the four-quadrant
registers (integer milli-units), hands the cycle to the listeners (tariffs, demand, profiles,
credit, supervision...), copies the state into the energy journal when there is one (every cycle
in which something changed: it survives kill -9 and costs no storage writes) and saves to the
database when :class:`~meterd.core.checkpoint.CheckpointPolicy` says so. One sequence number
counts the states written to either. It implements :class:`~meterd.core.model.MeterModel` for
the adapters.

Storage health: a save the disk refuses (:class:`~meterd.core.checkpoint.CheckpointWriteError`)
does not stop metering: the state stays in the journal and the save is tried again at the next
cycle (the store spaces the attempts). Each cycle the journal is checked (removed, replaced,
damaged: WARNING, re-created, an NV memory error event). Storage events (from ``health``, the
store's :class:`~meterd.core.checkpoint.StorageHealth`, and from the journal check) go to
``storage_sink`` dated with the meter clock; while the sink fails (its own disk is full) they
wait and are handed on later. ``health``'s flags join the status word (``storage_fault``).

The supervised chip (:mod:`meterd.core.chip_health`): each cycle's read is judged by the
:class:`~meterd.core.chip_health.ChipSupervisor` before anything is billed. A fault (the chip
does not answer, lost its configuration, a checksum, a failed transfer, impossible values, a
start that failed) bills nothing that cycle, hands the listeners a reading with no energy, zero
values and the status ``metrology_fault``, records "measurement system error" (IDIS 16, standard
log, alarm bit 11) once per episode, and from the next cycle on asks the front end to recover
(resume a chip whose configuration survived, else restart it, with back-off). A chip that fails
at start leaves the meter running in that state. The end of an episode records its duration and
the estimated energy not measured (:class:`~meterd.core.chip_health.FaultTotals`, saved with the
checkpoint, served over DLMS). Metrology events go out through ``storage_sink`` like the storage
events (the one event outbox of the service).

Two halves of a cycle (see docs/architecture.md, "The metering loop's timing"): :meth:`tick` is
the metering side (read the chip, judge the read, the cycle's increments into ``pending``, a
:class:`~meterd.core.pending.PendingEnergy` whose cumulative record survives kill -9);
:meth:`apply_pending` the rest (drain every tick since the last drain, registers, listeners,
journal, database). :meth:`cycle` runs both, one after the other; on a running meter the
metering loop runs :meth:`tick` on its own thread and the event loop :meth:`apply_pending`. Each
journal record stores the cumulative pending total its registers consumed, so that at restart
:meth:`start` carries ``record − consumed`` into the first cycle.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from meterd.core import event_codes as ec
from meterd.core.checkpoint import (
    Checkpoint,
    CheckpointJournal,
    CheckpointPolicy,
    CheckpointStore,
    CheckpointWriteError,
    StorageEvent,
    StorageHealth,
    choose_checkpoint,
)
from meterd.core.chip_health import (
    ChipCheck,
    ChipFacts,
    ChipReadError,
    ChipSupervisor,
    MetrologyFault,
    MetrologyWarning,
    Recovery,
    active_delivered_mwh,
)
from meterd.core.clock import Clock
from meterd.core.energy import CreepRule, EnergyRegisters, Quantity, RegisterKey, cycle_deltas
from meterd.core.model import MeterIdentity, MeterSnapshot, ProfileBuffer
from meterd.core.pending import CONSUMED_KEY, Consumed, PendingEnergy, RecordState, residual
from meterd.core.reading import PHASES, Channel, FrontEnd, PhaseValues, Reading

log = logging.getLogger("meterd.metering")


class CycleListener(Protocol):
    """Something that acts on every metering cycle and keeps state saved with the registers."""

    name: str

    def on_cycle(self, utc: _dt.datetime, deltas: Mapping[RegisterKey, int],
                 registers: EnergyRegisters, reading: Reading) -> None:
        """Called once per cycle after the registers were updated."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state to store with the energy checkpoint."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state saved by :meth:`state_dict`."""
        ...


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did: the reading (the latest), the register increments (summed over
    ``ticks`` metering ticks: 1 unless the event loop fell behind the metering thread), whether
    it persisted."""

    reading: Reading
    deltas: Mapping[RegisterKey, int]
    persisted: bool
    ticks: int = 1

    @property
    def led_energy_mwh(self) -> int:
        """Active energy of the cycle for the pulse LED: import plus export, total (mWh)."""
        return (self.deltas.get((Quantity.ACTIVE_IMPORT, Channel.TOTAL), 0)
                + self.deltas.get((Quantity.ACTIVE_EXPORT, Channel.TOTAL), 0))


_CHIP_STATE = "metrology"
"""The key of the chip supervision's totals in the checkpoint's extra state."""

STATUS_BITS: dict[str, int] = {
    "checksum_error": 0, "sag": 1, "phase_loss": 2, "voltage_sequence_error": 3,
    "current_sequence_error": 4, "neutral_overcurrent": 5, "reverse_power": 6, "power_fail": 7,
    "clock_invalid": 8, "tamper": 9, "relay_open": 10, "storage_fault": 11, "metrology_fault": 12,
    "clock_doubtful": 13,
}


#: Chip flags that compare or OR all three phases: without L2 and L3 (1P2W) they say nothing
#: of the supply (the per-phase flags of L1, e.g. ``sag_L1``, stand for them).
THREE_PHASE_FLAGS = frozenset({"sag", "phase_loss", "voltage_sequence_error", "current_sequence_error"})


def wired_flag(name: str, phases: tuple[Channel, ...]) -> bool:
    """Whether the chip status flag ``name`` concerns the phases the meter is wired to."""
    if len(phases) == len(PHASES):
        return True
    if name in THREE_PHASE_FLAGS:
        return False
    return not any(name.endswith(f"_{ch.value}") for ch in PHASES if ch not in phases)


@dataclass
class MeteringService:
    """The meter: one owner of registers, reading and checkpoint."""

    frontend: FrontEnd
    clock: Clock
    store: CheckpointStore
    identity_info: MeterIdentity
    creep: CreepRule = field(default_factory=CreepRule)
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    listeners: list[CycleListener] = field(default_factory=list)
    profiles: dict[str, ProfileBuffer] = field(default_factory=dict)
    status_sources: list[Callable[[], set[str]]] = field(default_factory=list)
    clock_listeners: list[Callable[[_dt.datetime, _dt.datetime, str], None]] = field(default_factory=list)
    registers: EnergyRegisters = field(default_factory=EnergyRegisters)
    committed: EnergyRegisters = field(default_factory=EnergyRegisters)
    last_reading: Reading | None = None
    cycles: int = 0
    powered: bool = True
    journal: CheckpointJournal | None = None
    seq: int = 0
    restored_from: str = ""
    health: StorageHealth | None = None
    storage_sink: Callable[[StorageEvent, _dt.datetime], None] | None = None
    chip: ChipSupervisor = field(default_factory=ChipSupervisor)
    chip_check: ChipCheck | None = None
    pending: PendingEnergy = field(default_factory=PendingEnergy)
    pending_found: RecordState | None = None
    carried: dict[RegisterKey, int] = field(default_factory=dict)
    phases: tuple[Channel, ...] = PHASES  # the meter's wiring: L1 alone for 1P2W (status flags)
    _consumed: Consumed | None = None
    _chip_warnings: frozenset[MetrologyWarning] = frozenset()
    _storage_events: list[StorageEvent] = field(default_factory=list)
    _journaled: Checkpoint | None = None
    _journaled_json: str = ""
    _stored_seq: int = 0
    _stored_synced: bool = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Restore the last checkpoint and start the front end."""
        stored = self.store.load()
        journaled = self.journal.load() if self.journal is not None else None
        checkpoint, self.restored_from = choose_checkpoint(stored, journaled)
        self.policy.journaled = self.journal is not None
        self._stored_seq = 0 if stored is None else stored.seq
        # numbers grow past anything already in the journal, even a slot that was not taken
        self.seq = max(self._stored_seq, 0 if journaled is None else journaled.seq)
        if checkpoint is not None:
            self.registers.restore(checkpoint.registers)
            self.committed.restore(checkpoint.registers)
            for listener in self.listeners:
                state = checkpoint.extra.get(listener.name)
                if state is not None:
                    listener.restore(state)
            log.info("restored checkpoint %d of %s from the %s", checkpoint.seq, checkpoint.utc.isoformat(),
                     self.restored_from)
        else:
            log.info("new meter: no checkpoint (%s)", self.restored_from)
        state = checkpoint.extra.get(_CHIP_STATE) if checkpoint is not None else None
        if state is not None:
            self.chip.totals.restore(state)
        self._carry_pending(checkpoint)
        try:
            self.frontend.start()
        except ChipReadError as exc:  # never dark: the meter runs on in the fault state
            log.error("%s: metering stopped, retrying with back-off", exc)
            now = self.clock.mono()
            kinds = frozenset({MetrologyFault.START_FAILED})
            if self.chip.fault_seen(now, kinds):
                self._chip_fault(kinds, str(exc))
            self.chip.restart_failed(now)
        self.policy.saved(self.clock.mono(), synced=False)
        repair = self.health is not None and "storage_fault" in self.health.status()
        if checkpoint is None or checkpoint is journaled or repair:
            # the durable copies catch up with the journal at once; a new meter's zero state is
            # made durable before its first cycle, so a crash before the first save leaves a
            # database that holds it (not one that looks emptied)
            self.persist(sync=True)
        self.deliver_storage_events()

    def _carry_pending(self, checkpoint: Checkpoint | None) -> None:
        """Energy the previous process measured and its checkpoint did not hold (the pending
        record less what the checkpoint consumed) goes into this process's pending energy, to
        be applied by the first cycle; the record is then this process's (before anything is
        written that names it)."""
        self._consumed = Consumed(self.pending.token, {})
        found = self.pending_found
        if checkpoint is not None:
            self.carried = residual(found, Consumed.from_state(checkpoint.extra.get(CONSUMED_KEY)))
        elif found is not None and found.totals:
            log.warning("pending-energy record ignored: no checkpoint of the registers to add it to")
        if self.carried:
            log.warning("carried %s milli-units measured before the restart and not yet in the registers",
                        sum(self.carried.values()))
        self.pending.carry(self.carried)
        self.pending.begin()

    def read_supervised(self) -> Reading:
        """The cycle's reading as the chip supervision lets it be billed: the front end's own
        when it is good, else a reading with no energy, zero values and ``metrology_fault``."""
        now = self.clock.mono()
        chip = self.chip
        self.chip_check = None
        if chip.in_fault:
            restart = chip.restart_due(now)
            recovery = self.frontend.recover(restart=restart)
            if recovery is not Recovery.RUNNING:
                if restart and recovery is Recovery.FAILED:
                    chip.restart_failed(now)
                return self._dark_reading(now)
        try:
            reading: Reading | None = self.frontend.read()
            facts = self.frontend.facts()
        except ChipReadError as exc:
            reading, facts = None, ChipFacts.failed(str(exc))
        opened = not chip.in_fault
        check = self.chip_check = chip.check(now, reading, facts, supply_good=self.powered)
        if check.faults or reading is None:
            if opened:
                self._chip_fault(check.faults, check.detail or "no reading")
            return self._dark_reading(now)
        if check.stalled_s:  # the chip kept the energy (billed now, up to saturation): the stall itself is evented
            log.warning("metering IC read %.1f s after the previous one: the metering loop was stalled", check.stalled_s)
            self._storage_events.append(StorageEvent(ec.code("MEASUREMENT_SYSTEM_ERROR"),
                                                     {"fault": "metering_stalled", "interval_s": round(check.stalled_s)}))
        if check.saturation_started:  # one event per saturation episode; the shortfall is in the totals
            self._storage_events.append(StorageEvent(ec.code("MEASUREMENT_SYSTEM_ERROR"),
                                                     {"fault": "energy_saturation", "detail": check.detail[:200]}))
        if check.warnings != self._chip_warnings:  # one line when the warnings change, not per cycle
            if check.warnings:
                log.warning("metering IC: %s (%s)", ", ".join(sorted(w.value for w in check.warnings)),
                            check.detail)
            self._chip_warnings = check.warnings
        episode = chip.resumed(now, active_delivered_mwh(reading))
        if episode is not None:
            log.warning("metering IC resumed after %.1f s of %s; about %.3f Wh not measured", episode.duration_s,
                        ", ".join(sorted(k.value for k in episode.kinds)), episode.energy_not_measured_wh)
        return reading

    def _chip_fault(self, kinds: frozenset[MetrologyFault], detail: str) -> None:
        """A fault episode opened: one log line and the event (once per episode)."""
        names = sorted(k.value for k in kinds)
        log.error("metering IC fault (%s): %s; energy not billed until it resumes", ", ".join(names), detail)
        self._storage_events.append(StorageEvent(ec.code("MEASUREMENT_SYSTEM_ERROR"),
                                                 {"fault": ",".join(names), "detail": detail[:200]}))

    def _dark_reading(self, now: float) -> Reading:
        """What the listeners see while the chip is in fault: nothing measured, the fault flag."""
        zero = PhaseValues(power_factor=0.0)
        return Reading(mono_s=now, phases=(zero, zero, zero), energy={}, total_power_factor=0.0,
                       frequency_hz=0.0, status=frozenset({"metrology_fault"}))

    def cycle(self) -> CycleResult:
        """Run one metering cycle: :meth:`tick` then :meth:`apply_pending`."""
        self.tick()
        result = self.apply_pending()
        assert result is not None
        return result

    def tick(self) -> Reading:
        """The metering side of a cycle: read the chip, judge the read, add the cycle's
        increments (after the starting-current rule) to the pending energy. Thread-safe against
        :meth:`apply_pending`; one caller at a time."""
        reading = self.read_supervised()
        self.pending.add(cycle_deltas(reading, self.creep), reading)
        return reading

    def apply_pending(self) -> CycleResult | None:
        """Apply every tick since the last call: the summed increments to the registers, the
        latest reading and those increments to the listeners, then the journal (with the
        cumulative total consumed) and the database when due. None when no tick happened."""
        drained = self.pending.drain()
        if drained.reading is None:
            return None
        reading, deltas = drained.reading, dict(drained.deltas)
        self._consumed = drained.consumed
        self.registers.add(deltas)
        self.policy.note_cycle(deltas)
        self.last_reading = reading
        self.cycles += drained.ticks
        utc = self.clock.utc()
        for listener in self.listeners:
            listener.on_cycle(utc, deltas, self.registers, reading)
        persisted = False
        if self.policy.due(self.clock.mono()):
            self.persist()
            persisted = True
        elif self.journal is not None:
            self.journal_write()
        if self._storage_events or self.health is not None or self.storage_sink is not None:
            self.deliver_storage_events()
        return CycleResult(reading=reading, deltas=deltas, persisted=persisted, ticks=drained.ticks)

    def persist(self, sync: bool | None = None) -> None:
        """Commit registers and listener state now; ``sync`` forces them to the medium
        (default: when the policy's sync period has passed)."""
        now = self.clock.mono()
        if sync is None:
            sync = self.policy.sync_due(now)
        checkpoint = self.journal_write(force=True)
        try:
            self.store.save(checkpoint.utc, checkpoint.registers, checkpoint.extra, sync=sync, seq=checkpoint.seq)
        except CheckpointWriteError:
            return  # the store said so once; the state stays in the journal, the next cycle tries again
        self._stored_seq, self._stored_synced = checkpoint.seq, sync
        self.committed.restore(checkpoint.registers)
        self.policy.saved(now, synced=sync)

    def journal_write(self, force: bool = False) -> Checkpoint:
        """The current state as the next checkpoint, copied into the journal (if any). Without
        ``force`` nothing is written (and the last checkpoint returned) when nothing changed."""
        extra = {listener.name: listener.state_dict() for listener in self.listeners}
        extra[_CHIP_STATE] = self.chip.totals.state_dict()
        if self.pending.record is not None and self._consumed is not None:
            extra[CONSUMED_KEY] = self._consumed.state_dict()
        values = self.registers.snapshot()
        extra_json = json.dumps(extra, separators=(",", ":"), sort_keys=True)  # a copy, to compare
        last = self._journaled
        if not force and last is not None and last.registers == values and self._journaled_json == extra_json:
            return last
        self.seq += 1
        checkpoint = Checkpoint(seq=self.seq, utc=self.clock.utc(), registers=values, extra=extra)
        if self.journal is not None:
            try:
                self.watch_journal()
                self.journal.write(checkpoint)
            except Exception:  # noqa: BLE001 - any failure: fall back to the database alone
                log.exception("energy journal failed: the database alone keeps the registers from now on")
                self.journal = None
                self.policy.journaled = False
                if not force:
                    self.persist(sync=True)
                return checkpoint
            self.committed.restore(values)
        self._journaled, self._journaled_json = checkpoint, extra_json
        return checkpoint

    def watch_journal(self) -> None:
        """Re-create the journal when its file was removed, replaced or damaged (WARNING, event)."""
        assert self.journal is not None
        problem = self.journal.check()
        if problem is None:
            return
        log.warning("energy journal: %s: re-created with the last record", problem)
        self.journal.recreate()
        self._storage_events.append(StorageEvent(ec.code("NV_MEMORY_ERROR"), {"copy": "journal", "reason": problem}))

    def deliver_storage_events(self) -> None:
        """Hand storage events to ``storage_sink``; they wait while it fails or is not wired."""
        if self.health is not None:
            self._storage_events.extend(self.health.take_events())
        if self.storage_sink is None:
            return
        while self._storage_events:
            event = self._storage_events[0]
            try:
                self.storage_sink(event, self.clock.utc())
            except Exception as exc:  # noqa: BLE001 - the event store's disk may be full too: later
                log.debug("storage event %d waits: %s", event.code, exc)
                return
            self._storage_events.pop(0)

    def journal_redundant(self) -> bool:
        """True when the database holds, synced, the last state written to the journal (after
        a clean shutdown, for example): the journal file may then be removed."""
        return self._stored_synced and self._stored_seq == self.seq

    def power_fail(self) -> None:
        """The power-fail input fired: last-gasp checkpoint, forced to the medium (zero loss)."""
        self.powered = False
        self.apply_pending()  # what the metering loop measured and the registers do not hold yet
        self.persist(sync=True)
        if self._stored_seq == self.seq:
            log.warning("power fail: last-gasp checkpoint written")
        else:
            log.error("power fail: last-gasp checkpoint NOT written (storage failing): the journal holds it")

    def power_restored(self) -> None:
        """Supply is back after a power-fail signal."""
        self.powered = True

    # -- MeterModel -------------------------------------------------------------------------
    # Two views of the registers: ``registers`` are live (they include energy not yet
    # committed); ``committed`` are the values of the last checkpoint (journal or database),
    # which no crash of meterd can take back. Displays that refresh on their own (LCD, CIU) show
    # ``committed``; a request from an observer (API, DLMS) commits first and then sees the live
    # values, which are then equal. With a journal, ``committed`` follows every cycle.

    @property
    def identity(self) -> MeterIdentity:
        return self.identity_info

    def snapshot(self) -> MeterSnapshot:
        """Registers as published: anything unsaved is journaled (with a journal) or persisted
        first, so a value an observer has seen is never taken back by a crash of meterd."""
        if self.journal is not None:
            self.journal_write()
        elif self.policy.dirty:
            self.persist()
        return MeterSnapshot(utc=self.clock.utc(), reading=self.last_reading,
                             registers=self.registers.snapshot(), status_word=self.status_word())

    def status_flags(self) -> set[str]:
        """Current status flag names (chip flags folded to meter-level names, plus sources)."""
        flags: set[str] = set()
        if self.last_reading is not None:
            for name in self.last_reading.status:
                if not wired_flag(name, self.phases):
                    continue
                for base in STATUS_BITS:
                    if name == base or name.startswith(base + "_"):
                        flags.add(base)
            if self.last_reading.total_active_power_w < 0:
                flags.add("reverse_power")
        flags |= self.chip.flags(self.chip_check)
        if not self.powered:
            flags.add("power_fail")
        if self.health is not None:
            flags |= self.health.status()
        for source in self.status_sources:
            flags |= source()
        return flags

    def status_word(self) -> int:
        """Meter status 0-0:96.5.0.255 (operating status) as a bit field (see :data:`STATUS_BITS`)."""
        word = 0
        for name in self.status_flags():
            bit = STATUS_BITS.get(name)
            if bit is not None:
                word |= 1 << bit
        return word

    def now_utc(self) -> _dt.datetime:
        return self.clock.utc()

    def set_clock(self, new_utc: _dt.datetime, source: str) -> None:
        """Set the meter clock and tell the listeners (profiles mark the change)."""
        old = self.clock.utc()
        self.clock.set_utc(new_utc)
        log.info("clock set by %s: %s -> %s", source, old.isoformat(), new_utc.isoformat())
        self.clock_changed(old, new_utc, source)

    def clock_changed(self, old_utc: _dt.datetime, new_utc: _dt.datetime, source: str) -> None:
        """The meter clock changed from ``old_utc`` to ``new_utc``, set here or stepped by the
        time daemon (``source`` "ntp"): the clock listeners apply the rules of a clock set."""
        for listener in self.clock_listeners:
            listener(old_utc, new_utc, source)

    def profile(self, obis: str) -> ProfileBuffer | None:
        return self.profiles.get(obis)

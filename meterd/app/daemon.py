"""The meterd process: wires config, hardware, the meter service, its adapters, and runs the loop.

One asyncio loop owns the meter state; the chip read has its own schedule. Every cycle
(``[meter] cycle_s`` of meter time) the metering loop (:class:`~meterd.runtime.metrology_loop.MetrologyLoop`)
ticks: it reads the chip, judges the read and adds the increments to the pending energy (with
its crash-safe record). The event loop then applies what is pending (registers, listeners,
journal, database), executes the intents (pulse LED), runs the features' cycle hooks and pings
the systemd watchdog when it is due, and only while the metering loop is healthy.

Two ways to run the tick (see docs/architecture.md, "The metering loop's timing"):

* threaded (``Daemon.run`` with ``[meter] metering_thread = true`` on a Pi, and in simulation at
  a speed above 0): the ``metering`` thread ticks every ``cycle_s`` (``cycle_s / speed`` of real
  time in simulation, where the thread also advances the simulated clock and ends the injected
  faults on time), whatever the event loop is doing; the event loop drains after each tick it
  gets to, and runs the simulated world's scenario events and timers;
* inline (:meth:`Daemon.step`: tests, simulation at speed 0, ``metering_thread = false``): the
  tick and the drain run one after the other in the cycle, so a stepped meter gives exactly the
  numbers it always gave. In simulation the meter clock is a :class:`~meterd.core.clock.SimClock`
  advanced by exactly one cycle per step, and the loop sleeps ``cycle_s / speed`` of real time
  (no sleep at speed 0), so any speed gives the same result.

SIGTERM/SIGINT end the loop cleanly with a final checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import functools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hw.memory import trim
from hw.systemd_notify import Notifier
from meterd.api.server import ApiServer
from meterd.app.config import Config
from meterd.app.feature_api import CycleHook, FeatureContext, Link
from meterd.app.features import attach_all, start_all
from meterd.app.features.dlms import DlmsSecurity
from meterd.app.hardware import Hardware, backends_for, build_hardware
from meterd.app.registry import Registry
from meterd.app.routes import register_metrics, register_routes, register_streams, start_network_api
from meterd.app.wiring import meter_wiring
from meterd.core.checkpoint import CheckpointPolicy, StorageEvent
from meterd.core.chip_health import ChipLimits, ChipSupervisor
from meterd.core.clock import Clock, SimClock
from meterd.core.energy import CreepRule
from meterd.core.events import EventRecorder
from meterd.core.lateness import LatenessStats
from meterd.core.model import MeterIdentity
from meterd.core.pending import PendingEnergy
from meterd.core.power_fail import StartEvidence
from meterd.cosem.objects import metering_loop_objects, metrology_fault_objects
from meterd.runtime import gc_policy
from meterd.runtime.clocks import HostClock
from meterd.runtime.metrology_loop import MetrologyLoop
from meterd.runtime.state_lock import StateLock
from meterd.services.metering import CycleResult, MeteringService
from meterd.store.energy_copies import EnergyCopies, check_state_dir
from meterd.store.energy_journal import JOURNAL_NAME, EnergyJournal, JournalError, shared_journal_path
from meterd.store.pending_slot import PendingSlot, pending_path

log = logging.getLogger("meterd")

FIRMWARE_VERSION = "PMM1221-0.1.0"
TRIM_PERIOD_S = 60.0
"""Real time (s) between two returns of the allocator's free memory to the kernel."""


class Daemon:
    """Everything one meterd process runs."""

    def __init__(self, cfg: Config, *, speed: float | None = None, state_dir: str | None = None) -> None:
        if state_dir is not None:
            cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=state_dir))
        if speed is not None:
            cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, speed=speed))
        self.cfg = cfg
        self.notifier = Notifier()
        self.api = ApiServer()
        self._stop = asyncio.Event()
        self.meter: MeteringService | None = None
        self.hardware: Hardware | None = None
        self.store: EnergyCopies | None = None
        self.journal: EnergyJournal | None = None
        self.clock: Clock | None = None
        self.missed_cycles = 0
        self.late_cycles = 0
        self.info: dict[str, Any] = {}
        self.registry = Registry(cfg.path)
        self.cycle_hooks: list[CycleHook] = []
        self.cosem_factories: list[Any] = []
        self.closers: list[Callable[[], None]] = []
        self.links: list[Link] = []
        self.status_extras: dict[str, Callable[[], Any]] = {}
        self.mono: Callable[[], float] = time.monotonic  # real time of the watchdog (s)
        self.lateness = LatenessStats(late_ms=cfg.meter.cycle_s * 1000.0 / 2)
        self.metrology: MetrologyLoop | None = None
        self.pending_slot: PendingSlot | None = None
        self._watchdog_held = False
        self._last_ping_s = self.mono()

    # -- wiring -----------------------------------------------------------------------------

    def build(self) -> MeteringService:
        """Create the clock, hardware, store and meter service (no I/O loops yet)."""
        cfg = self.cfg
        self.store = self._open_copies()
        self.journal = self.store.journal
        last = self.store.restored
        self.registry.provide(StartEvidence, StartEvidence(self.store.host_kept, last.utc if last is not None else None),
                              by="storage")
        self.registry.provide(EnergyCopies, self.store, by="storage")  # its synced checkpoints: last-alive times
        backends = backends_for(cfg)
        if backends.clock == "sim":
            start = cfg.sim.start()
            if last is not None and last.utc > start:
                start = last.utc  # the simulated world carries on where the meter stopped
            self.clock = SimClock(start_utc=start)
        else:
            from meterd.runtime.clock_helper import ClockHelperClient

            helper = ClockHelperClient(cfg.hardware.clock_helper_socket)
            self.clock = HostClock(setter=helper.set_utc)
        self.hardware = build_hardware(cfg, self.clock, backends)
        if self.hardware.sim is not None:
            self.store.write_delay = self.hardware.sim.storage_delay
            if cfg.sim.slow_storage_s > 0:
                self.hardware.sim.slow_storage(cfg.sim.slow_storage_s)
        identity = MeterIdentity(
            serial=cfg.meter.serial, logical_device_name=cfg.meter.logical_device_name,
            manufacturer_flag=cfg.meter.manufacturer_flag, firmware_version=FIRMWARE_VERSION,
            firmware_signature=firmware_signature())
        start_current_a = cfg.meter.basic_current_a * cfg.meter.starting_current_pct / 100.0
        pending = self._pending_energy()
        self.meter = MeteringService(
            pending=pending, pending_found=self.pending_slot.load() if self.pending_slot is not None else None,
            frontend=self.hardware.frontend, clock=self.clock, store=self.store, identity_info=identity,
            creep=CreepRule(start_current_a=start_current_a), journal=self.journal, health=self.store,
            phases=meter_wiring(cfg).phases,
            chip=ChipSupervisor(ChipLimits(nominal_voltage_v=cfg.meter.nominal_voltage_v,
                                           max_current_a=cfg.meter.max_current_a, cycle_s=cfg.meter.cycle_s)),
            policy=CheckpointPolicy(bound_milli=round(cfg.storage.checkpoint_bound_wh * 1000),
                                    period_s=cfg.storage.checkpoint_period_s,
                                    sync_period_s=cfg.storage.sync_period_s))
        chip = self.meter.chip
        self.cosem_factories.append(metrology_fault_objects(lambda: chip.totals))
        self.cosem_factories.append(metering_loop_objects(self.lateness.summary))
        if self.journal is not None:  # closed last, after the final synced checkpoint
            journal, meter = self.journal, self.meter
            self.closers.append(lambda: journal.close(discard=meter.journal_redundant()))
        if self.pending_slot is not None:
            slot, meter = self.pending_slot, self.meter
            self.closers.append(lambda: slot.close(discard=meter.journal_redundant()))
        self.metrology = self._metrology_loop()
        attach_all(self.context())
        events = self.registry.find(EventRecorder)  # the supervision's recorder
        if events is not None:
            recorder = events

            def storage_event(event: StorageEvent, utc: _dt.datetime) -> None:
                recorder.record(event.code, utc, event.detail)

            self.meter.storage_sink = storage_event
        phases = meter_wiring(cfg).phases  # the phases /status and /ws/values list
        register_routes(self.api, self.meter, self.info, self.status_extras, self.hardware.sim, phases)
        register_streams(self.api, self.meter, self.cycle_hooks, events, self.hardware.sim, self.clock,
                         cfg.meter.cycle_s, phases)
        self.status_extras["loop"] = self.loop_status
        security = self.registry.find(DlmsSecurity)

        def dlms_events() -> dict[tuple[str, str], int]:
            if security is None:
                return {}
            return {(link, name): n for link, limit in security.limits.items() for name, n in limit.occurred.items()}

        register_metrics(self.api, self.meter, self.status_extras, dlms_events)
        return self.meter

    def _pending_energy(self) -> PendingEnergy:
        """The pending energy between the metering loop and the registers, with its record in
        RAM beside the energy journal (none without a journal: the database's bound applies)."""
        token = uuid.uuid4().hex
        if self.journal is None or self.store is None:
            return PendingEnergy(token)
        try:
            self.pending_slot = PendingSlot(pending_path(self.journal.path), self.cfg.meter.serial, self.store.boot)
        except JournalError as exc:
            log.warning("pending-energy record unavailable (%s): energy measured and not yet journaled "
                        "is lost if meterd dies", exc)
            return PendingEnergy(token)
        return PendingEnergy(token, self.pending_slot)

    def _metrology_loop(self) -> MetrologyLoop:
        """The metering loop over the built meter (inline until :meth:`run` starts its thread)."""
        assert self.meter is not None and self.hardware is not None and self.clock is not None
        cfg, hardware, clock = self.cfg, self.hardware, self.clock
        cycle_s = cfg.meter.cycle_s
        sim = hardware.sim
        before_tick: Callable[[], None] | None = None
        if isinstance(clock, SimClock):
            sim_clock = clock

            def before_tick() -> None:  # the thread owns simulated time, and the faults' ends
                sim_clock.advance(cycle_s)
                if sim is not None:
                    sim.end_due_faults(sim_clock.mono())

        speed = cfg.sim.speed if isinstance(clock, SimClock) else 1.0
        return MetrologyLoop(self.meter.tick, cycle_s / speed if speed > 0 else cycle_s,
                             lock=hardware.bus_lock, before_tick=before_tick,
                             stalled=sim.cycle_stalled if sim is not None else None, stats=self.lateness,
                             realtime=not hardware.backends.simulated)

    def threaded(self) -> bool:
        """True when :meth:`run` ticks on the metering thread: ``[meter] metering_thread``, on a
        real clock or in simulation at a speed above 0."""
        if not self.cfg.meter.metering_thread:
            return False
        return not isinstance(self.clock, SimClock) or self.cfg.sim.speed > 0

    def context(self) -> FeatureContext:
        """What the features receive: the built meter and the daemon's own hook lists."""
        assert self.meter is not None and self.clock is not None and self.hardware is not None
        return FeatureContext(cfg=self.cfg, meter=self.meter, clock=self.clock, hardware=self.hardware,
                              api=self.api, registry=self.registry, cycle_hooks=self.cycle_hooks,
                              cosem_factories=self.cosem_factories, closers=self.closers, links=self.links,
                              info=self.info, status_extras=self.status_extras)

    def journal_path(self) -> Path | None:
        """Where the energy journal lives: ``[storage] journal_dir``, else systemd's runtime
        directory (``$RUNTIME_DIRECTORY``, ``/run/meterd``) on a Pi, ``/dev/shm`` (or, without
        it, the state directory) in simulation; None when ``[storage] journal = false``."""
        cfg = self.cfg
        if not cfg.storage.journal:
            return None
        sim = backends_for(cfg).simulated
        directory = cfg.storage.journal_dir
        if not directory:
            if sim:
                directory = "/dev/shm" if Path("/dev/shm").is_dir() else str(cfg.state_dir)
            else:
                directory = os.environ.get("RUNTIME_DIRECTORY", "/run/meterd").split(":")[0]
        if Path(directory) == cfg.state_dir:
            return cfg.state_dir / JOURNAL_NAME
        return shared_journal_path(directory, cfg.state_dir) if sim else Path(directory) / JOURNAL_NAME

    def _open_copies(self) -> EnergyCopies:
        """The copies of the registers (database, register file, journal), checked and chosen
        (see :mod:`meterd.store.energy_copies`); a simulated meter on an empty state directory
        commissions itself, a real one needs ``meterd commission``."""
        cfg = self.cfg
        copies = EnergyCopies(cfg.state_dir, cfg.meter.serial, self.journal_path(),
                              auto_commission=backends_for(cfg).simulated)
        if copies.journal is not None:
            self.info["energy_journal"] = str(copies.journal.path)
        self.info["energy_restored_from"] = copies.restored_from
        return copies

    def _watch_power_fail(self) -> None:
        """The power-fail input: last-gasp checkpoint on the falling supply, resume when back."""
        from hw.inputs import POWER_FAIL

        assert self.hardware is not None and self.meter is not None
        loop = asyncio.get_running_loop()
        meter = self.meter

        def changed(_name: str, active: bool, _mono_s: float) -> None:
            action = meter.power_fail if active else meter.power_restored
            if threading.current_thread() is threading.main_thread():
                action()
            else:  # a real pin's edge arrives on gpiozero's thread
                loop.call_soon_threadsafe(action)

        self.hardware.inputs.add_listener(changed, (POWER_FAIL,))

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit status."""
        check_state_dir(self.cfg.state_dir)  # one line and exit 2 when there is no place for energy
        self.closers.append(StateLock(self.cfg.state_dir, self.journal_path()).release)  # released last
        meter = self.build()
        meter.start()
        self._watch_power_fail()
        loop = asyncio.get_running_loop()
        assert self.hardware is not None
        speed = self.cfg.sim.speed if isinstance(self.clock, SimClock) else 1.0
        self.hardware.scheduler = lambda delay_s, action: loop.call_later(delay_s / speed if speed else 0.0, action)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)

        await start_all(self.context())  # the links first: a status the API answers names them all
        socket_path = self.cfg.under_state(self.cfg.api.socket)
        await self.api.start(socket_path)
        self.info["api_socket"] = str(socket_path)
        await start_network_api(self.api, self.cfg, self.hardware.backends.simulated, self.info)
        self._announce()
        settled = gc_policy.settle()  # the start-up's objects out of every later collection
        log.info("start-up objects frozen: %d (%d collected, %.0f ms)", settled.frozen, settled.collected,
                 settled.duration_ms)
        self.notifier.ready(self.status_line())
        trimmer = asyncio.ensure_future(self._trim_memory())
        try:
            if self.threaded():
                await self._loop_threaded()
            else:
                await self._loop()
        finally:
            trimmer.cancel()
            self.notifier.stopping()
            await self.shutdown()
        return 0

    async def _trim_memory(self) -> None:
        """Give the allocator's free pages back to the kernel once the start-up is done (its
        temporaries: tables, filter designs, the first windows), then every
        :data:`TRIM_PERIOD_S` of real time, so meterd's resident set stays flat
        (:mod:`hw.memory`)."""
        while True:
            trim()
            await asyncio.sleep(TRIM_PERIOD_S)

    def _announce(self) -> None:
        for key, value in sorted(self.info.items()):
            log.info("%s: %s", key, value)

    def loop_status(self) -> dict[str, Any]:
        """The status extras ``loop``: cycles, the metering loop's mode and timing (ms)."""
        metrology = self.metrology
        return {"cycles": self.meter.cycles if self.meter else 0, "late_cycles": self.late_cycles,
                "missed_cycles": self.missed_cycles,
                "speed": self.cfg.sim.speed if isinstance(self.clock, SimClock) else 1.0,
                "metering": "thread" if metrology is not None and metrology.threaded else "inline",
                "scheduling": metrology.scheduling if metrology is not None else "inline",
                "healthy": self.metering_healthy(), "gc_frozen_objects": gc_policy.frozen_objects(),
                **self.lateness.summary().as_dict()}

    def step(self, cycle_s: float | None = None, lateness_ms: float | None = None) -> CycleResult | None:
        """One metering cycle of ``cycle_s`` (s; default ``[meter] cycle_s``), inline: the
        simulated clock advanced by it, the hardware's before-cycle work (scenario events,
        inputs), the metering tick (``lateness_ms``: how late it started, for the stats), then
        :meth:`apply`. None when a simulated stall held the cycle."""
        assert self.meter is not None and self.hardware is not None and self.metrology is not None
        cycle_s = self.cfg.meter.cycle_s if cycle_s is None else cycle_s
        if isinstance(self.clock, SimClock):
            self.clock.advance(cycle_s)
        self.hardware.before_cycle()
        if not self.metrology.tick(lateness_ms):
            return None  # a simulated stall of the metering cycle (sim fault late_cycle)
        return self.apply(cycle_s)

    def apply(self, cycle_s: float | None = None) -> CycleResult | None:
        """The event loop's half of the cycles since the last call: the metering service applies
        the pending ticks, then the intents (pulse LED over the ticks' ``cycle_s`` each), every
        feature's cycle hook, and the watchdog. None (hooks not run) when no tick was pending."""
        assert self.meter is not None and self.hardware is not None
        cycle_s = self.cfg.meter.cycle_s if cycle_s is None else cycle_s
        result = self.meter.apply_pending()
        if result is not None:
            self.hardware.after_cycle(result, cycle_s * result.ticks)
            for hook in self.cycle_hooks:
                hook(result)
        self._watchdog()
        return result

    def metering_healthy(self, now: float | None = None) -> bool:
        """True while the metering loop ticks on time (always, when it runs inline)."""
        return self.metrology is None or self.metrology.healthy(now)

    def _watchdog(self) -> None:
        """Ping the systemd watchdog (with a status line) once per its interval (real time), and
        only while the metering loop is healthy: a metering thread that died or stalls stops the
        pings, and systemd restarts meterd."""
        every = self.notifier.watchdog_interval_s
        if every is None:
            return
        now = self.mono()
        if now - self._last_ping_s < every:
            return
        if not self.metering_healthy(now):
            if not self._watchdog_held:
                self._watchdog_held = True
                log.critical("metering loop not ticking on time: systemd watchdog no longer kicked")
            return
        if self._watchdog_held:
            self._watchdog_held = False
            log.warning("metering loop ticks on time again: systemd watchdog kicked")
        self.notifier.watchdog()
        self.notifier.status(self.status_line())
        self._last_ping_s = now

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        cycle_s = self.cfg.meter.cycle_s
        speed = self.cfg.sim.speed if isinstance(self.clock, SimClock) else 1.0
        real_period = cycle_s / speed if speed > 0 else 0.0
        self._last_ping_s = self.mono()
        deadline = loop.time()
        while not self._stop.is_set():
            lateness_ms = max(loop.time() - deadline, 0.0) * 1000.0 if real_period else None
            self.step(cycle_s, lateness_ms)
            if real_period == 0.0:
                await asyncio.sleep(0)
                continue
            deadline += real_period
            delay = deadline - loop.time()
            if delay < -real_period:  # this cycle ended more than a whole period late
                self.late_cycles += 1
            if delay < -10 * real_period:  # far behind (host suspended?): resynchronise
                missed = int(-delay / real_period)
                self.missed_cycles += missed
                self.lateness.skipped(missed)
                deadline = loop.time()
                delay = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(delay, 0.0))

    async def _loop_threaded(self) -> None:
        """The event loop's side while the metering thread ticks: the first cycle inline, then
        after each tick it gets to (at least every two periods), the hardware's before-cycle work
        (the simulated world's scenario events and timers, which drive the features' pins and
        stores; the inputs) and :meth:`apply` what is pending."""
        assert self.metrology is not None and self.hardware is not None
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        metrology, hardware = self.metrology, self.hardware

        def woken() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a last tick
                loop.call_soon_threadsafe(wake.set)

        metrology.on_tick = woken
        self._last_ping_s = self.mono()
        self.step()  # the first cycle at once, as inline: a reading before the first request is served
        metrology.start()
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                ticked = asyncio.ensure_future(wake.wait())
                await asyncio.wait({ticked, stop}, timeout=2 * metrology.period_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                ticked.cancel()
                wake.clear()
                hardware.before_cycle()
                self.apply()
        finally:
            stop.cancel()
            metrology.stop()

    def status_line(self) -> str:
        """One line for `systemctl status`."""
        if self.meter is None or self.meter.last_reading is None:
            return "starting"
        r = self.meter.last_reading
        return f"metering: P={r.total_active_power_w:.0f} W, f={r.frequency_hz:.2f} Hz, cycles={self.meter.cycles}"

    def request_stop(self) -> None:
        """Ask the loop to end (tests, API)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Close the links and the API, then :meth:`close`."""
        for link in reversed(self.links):
            await link.close()
        await self.api.close()
        self.close()

    def close(self) -> None:
        """Final checkpoint and release of every resource (links closed before): the metering
        thread stopped, what it measured applied, then the synced checkpoint."""
        if self.metrology is not None:
            self.metrology.stop()
        if self.meter is not None:
            self.meter.apply_pending()
            self.meter.persist(sync=True)
        for closer in reversed(self.closers):
            closer()
        if self.hardware is not None:
            self.hardware.close()
        if self.store is not None:
            self.store.close()
        log.info("stopped cleanly")


@functools.lru_cache(maxsize=1)
def firmware_signature() -> str:
    """SHA-256 over the installed meterd sources: the identity of the running image."""
    import hashlib

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()

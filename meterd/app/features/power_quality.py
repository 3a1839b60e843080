"""Power quality in the meter: waveform analysis (IEC 61000-4-30 methods) or the chip's indicative values.

Wires :class:`meterd.services.power_quality.PowerQualityService` into the daemon:

* source ``waveform``: a :class:`~meterd.app.sim_adapters.GridWaveformSource` over the simulated grid
  (``sim.grid.waveform_block``); the sample index follows the meter clock (index = (mono − grid
  start) × 8000), so each 1-s cycle hands the monitor the 8000 samples × 7 rows of that second.
  A step of meter time longer than ``max_step_s`` (in-process meters jumping hours) is a gap:
  it is not analysed and the monitor restarts its stream (flagging the affected values).
  Events (dip, swell, short/long interruption, sustained under/over-voltage) go to the
  power-quality log 0-0:99.98.4.255 through the event recorder (needed, from supervision);
* source ``chip`` (a Pi without the DMA bridge): every ``chip_period_s`` a DFT of the ATM90E36
  (0.512 s, :class:`~meterd.bridge.chip_pq.ChipPq`) gives harmonic ratios of orders 2–32 per channel and the THD+N registers the THD; the
  values are marked indicative (:func:`meterd.pq.monitor.indicative_from_chip`) and there are no
  IEC events; ``auto`` picks ``waveform`` when a waveform source exists, else ``chip``;
* source ``bridge`` (a Pi with the waveform bridge, docs/waveform-bridge.md): the samples of the
  waveform chip's DMA stream from the bridge's USB CDC device ``bridge_device``, drained by a
  thread (:class:`hw.waveform_bridge.BridgeReceiver`) and decoded by
  :class:`meterd.pq.bridge_source.BridgeWaveformSource` (provided in the registry); while the
  bridge is off (unplugged, stalled for ``bridge_stall_s``) the chip's indicative values stand in,
  and the analysis resumes by itself when frames come back;
* COSEM objects from :mod:`meterd.cosem.objects_pq` (THD, harmonics 2–50, Pst/Plt, 10-min
  RMS, the PQ profile 1-0:99.14.0.255 also in ``ctx.meter.profiles``) and
  :mod:`meterd.cosem.objects_pq_quantities` (unbalance, THD40, PWHD, interharmonics); provides the
  :class:`~meterd.services.power_quality.PowerQualityService`;
* the PQ profile rows in ``<state_dir>/pq.db`` (SQLite, WAL, one transaction per row, trimmed to
  ``profile_depth``, versioned schema: :class:`meterd.store.profile_store.SqlitePqStore`),
  restored at start; beside them the exact Pst of the last 2 h (one transaction per 10-min
  interval), from which the running 2-h Plt interval is restored at start;
* EN 50160 (:mod:`meterd.services.pq_week`, waveform source only): the weekly statistics and
  verdict of each week, event 187 when a week closes not compliant, ``GET /pq/en50160``;
* interruptions while the meter was unpowered (the supervision's
  :class:`~meterd.core.power_fail.PowerFailure` of this start) entered once into the PQ
  interruption records (:mod:`meterd.services.pq_interruptions`);
* PQ thresholds written at run time over DLMS (management association,
  :mod:`meterd.cosem.objects_pq_week`) or ``POST /pq/thresholds`` (control role), validated,
  kept in ``pq.db``, applied to the running monitor and evented (186)
  (:mod:`meterd.services.pq_thresholds`); the values written override the section's;
* ``status_extras["power_quality"]``: source, ``indicative``, THD per channel, frequency, Pst, Plt,
  active and recent events and the analysis time per cycle (ms, mean and max); ``GET /pq``
  (:mod:`meterd.api.pq_views`).

Section ``[power_quality]``: ``enabled`` (default on), ``source``, thresholds in % of the nominal
voltage (dip, swell, interruption, hysteresis, under/over-voltage) with minimum durations (s),
``max_step_s``, ``chip_period_s``, ``profile_depth`` (10-min rows), ``phases``: follows
``[meter] wiring`` (default 0; :mod:`meterd.app.wiring`), 3 for a
three-phase four-wire supply (3P4W), 1 for single-phase two-wire (1P2W: U1, I1 and IN are
measured, events, flicker, frequency and aggregates are those of L1, there is no unbalance, and
the DLMS objects, the PQ profile and ``meterctl pq`` show L1 only; in simulation the grid is wired
alike, L2 and L3 dark); for the bridge
``bridge_device``, ``bridge_stall_s``, ``bridge_retry_s`` (s) and the code scales
``bridge_volts_per_code`` (V) and ``bridge_amps_per_code`` (A; 0: the chip's sample unit through
``[frontend] current_scale``); ``worker`` (``auto``: the
analysis runs on a worker thread when the daemon runs in real time, inline when stepped or at
simulation speed 0; ``thread``; ``inline``) and ``worker_queue_blocks`` (blocks that may wait
for the worker; beyond, a block is dropped and the values spanning the gap are flagged).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from meterd.api.pq_views import pq_view, pq_week_routes
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.sim_adapters import GridWaveformSource
from meterd.app.wiring import meter_wiring
from meterd.bridge.chip_pq import ChipPq
from meterd.core.events import EventRecorder
from meterd.core.lateness import LatenessStats
from meterd.core.power_fail import PowerFailure
from meterd.cosem.objects_pq import pq_factory
from meterd.cosem.objects_pq_quantities import quantities_factory
from meterd.cosem.objects_pq_week import pq_week_factory
from meterd.pq.bridge_source import BridgeScale, BridgeWaveformSource
from meterd.pq.errors import PqConfigError
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import WaveformBlock
from meterd.runtime.cycle_timer import CycleTimer
from meterd.runtime.pq_worker import PqWorker
from meterd.services.metering import CycleResult
from meterd.services.power_quality import PQ_PROFILE_OBIS, PowerQualityService, PqOutcome
from meterd.services.pq_interruptions import InterruptionLog
from meterd.services.pq_thresholds import PqThresholds
from meterd.services.pq_week import WeekTracker
from meterd.store.pq_store import SqlitePqWeekStore


@dataclass(frozen=True)
class PowerQualitySection:
    """``[power_quality]``: chain on/off, source, event thresholds (% of Un), durations (s)."""

    enabled: bool = True
    source: str = field(default="auto", metadata=choices("auto", "waveform", "chip", "bridge"))
    dip_threshold_pct: float = field(default=90.0, metadata=rng(1, 99))
    swell_threshold_pct: float = field(default=110.0, metadata=rng(101, 200))
    interruption_threshold_pct: float = field(default=5.0, metadata=rng(1, 50))
    hysteresis_pct: float = field(default=2.0, metadata=rng(0.1, 10))
    undervoltage_threshold_pct: float = field(default=90.0, metadata=rng(1, 99))
    overvoltage_threshold_pct: float = field(default=110.0, metadata=rng(101, 200))
    undervoltage_min_s: float = field(default=60.0, metadata=rng(0, 3600))
    overvoltage_min_s: float = field(default=60.0, metadata=rng(0, 3600))
    max_step_s: float = field(default=2.0, metadata=rng(0.1, 60))
    chip_period_s: float = field(default=10.0, metadata=rng(1, 3600))
    profile_depth: int = field(default=1008, metadata=rng(6, 100_000))
    phases: int = field(default=0, metadata=choices(0, 3, 1))  # 0: as [meter] wiring (meterd.app.wiring)
    bridge_device: str = "/dev/pmm-waveform-bridge"
    bridge_stall_s: float = field(default=2.0, metadata=rng(0.1, 60))
    bridge_retry_s: float = field(default=2.0, metadata=rng(0.01, 600))
    bridge_volts_per_code: float = field(default=BridgeScale().volts_per_code, metadata=rng(1e-9, 1))
    bridge_amps_per_code: float = field(default=0.0, metadata=rng(0, 1))
    worker: str = field(default="auto", metadata=choices("auto", "thread", "inline"))
    worker_queue_blocks: int = field(default=4, metadata=rng(1, 60))

    def pq_settings(self, nominal_voltage_v: float, frequency_hz: float, phases: int = 0) -> PqSettings:
        """The monitor's settings at the meter's nominal voltage (V) and frequency (Hz) for a supply
        of ``phases`` phases (0: this section's, else three)."""
        return PqSettings(
            udin_v=nominal_voltage_v, f_nom_hz=float(frequency_hz), dip_threshold_pct=self.dip_threshold_pct,
            swell_threshold_pct=self.swell_threshold_pct, interruption_threshold_pct=self.interruption_threshold_pct,
            hysteresis_pct=self.hysteresis_pct, undervoltage_threshold_pct=self.undervoltage_threshold_pct,
            overvoltage_threshold_pct=self.overvoltage_threshold_pct,
            undervoltage_min_duration_s=self.undervoltage_min_s, overvoltage_min_duration_s=self.overvoltage_min_s,
            phases=phases or self.phases or 3)

    def __post_init__(self) -> None:
        try:
            self.pq_settings(230.0, 50.0)
        except PqConfigError as exc:
            raise ValueError(str(exc)) from None


SECTION = PowerQualitySection


def attach(ctx: FeatureContext) -> None:
    """Build the PQ chain for the configured source and hook it into the meter cycle."""
    cfg, hw = ctx.cfg, ctx.hardware
    section: PowerQualitySection = cfg.feature("power_quality")
    if not section.enabled:
        ctx.status_extras["power_quality"] = lambda: {"enabled": False}
        ctx.api.route("GET", "/pq", lambda _body: (200, {"enabled": False}))
        return
    source = section.source
    if source == "auto":
        source = "waveform" if hw.sim is not None else "chip"
    if source == "waveform" and hw.sim is None:
        raise ValueError("power_quality.source = waveform needs a waveform stream (the simulated grid)")
    events = ctx.registry.need(EventRecorder, by="power_quality")
    store = SqlitePqWeekStore(cfg.state_dir / "pq.db", depth={PQ_PROFILE_OBIS: section.profile_depth})
    ctx.closers.append(store.close)
    thresholds = PqThresholds(section.pq_settings(cfg.meter.nominal_voltage_v, cfg.meter.frequency_hz,
                                                  len(meter_wiring(cfg).phases)), store, events)
    monitor = PqMonitor(thresholds.settings) if source in ("waveform", "bridge") else None
    if hw.sim is not None and thresholds.settings.phases == 1:
        with hw.sim.lock:  # the simulated supply is wired as the meter is configured
            hw.sim.grid.set_wiring(1)
    if monitor is not None:
        thresholds.apply = monitor.apply_settings
    interruptions = InterruptionLog(store, events, ctx.clock.utc())
    failure = ctx.registry.find(PowerFailure)  # the outage that stopped the meter (supervision)
    if failure is not None:
        interruptions.from_power_failure(failure)
    week = WeekTracker(store, events, interruptions.counts) if monitor is not None else None
    if week is not None:
        ctx.closers.append(week.flush)  # closers run last-in first: before the store closes
    service = PowerQualityService(monitor, events, section.profile_depth, store=store, pst_store=store,
                                  week=week, interruptions=interruptions, phases=thresholds.settings.phases)
    timer = CycleTimer()
    feed: WaveformFeed | None = None
    hook: Callable[[], None]
    if source == "bridge":
        feed = hook = _bridge_feed(ctx, section, service)
        ctx.registry.provide(WaveformFeed, feed, by="power_quality")
        ctx.closers.append(feed.stop_worker)
    elif monitor is not None:
        assert hw.sim is not None
        waveform = GridWaveformSource(hw.sim.grid, ctx.clock, section.max_step_s)
        waveform.read_block()  # the stream starts now
        feed = hook = WaveformFeed(waveform, service)
        ctx.registry.provide(WaveformFeed, feed, by="power_quality")
        ctx.closers.append(feed.stop_worker)  # before the store closes (closers run last added first)
    else:
        hook = _chip_feed(ctx, section, service)
    ctx.cycle_hooks.append(_timed(timer, hook))
    ctx.meter.profiles[PQ_PROFILE_OBIS] = service.profile
    ctx.registry.provide(PowerQualityService, service, by="power_quality")
    ctx.cosem_factories.append(pq_factory(service))
    ctx.cosem_factories.append(quantities_factory(service))
    ctx.cosem_factories.append(pq_week_factory(thresholds, week))
    pq_week_routes(ctx.api, thresholds, week, ctx.clock.utc)
    bridge = ctx.registry.find(BridgeWaveformSource) if source == "bridge" else None

    def status() -> dict[str, object]:
        view = pq_view(service, source, timer.view())
        if feed is not None:
            view["analysis"] = feed.stats()
        if bridge is not None:
            view["bridge"] = dataclasses.asdict(bridge.status())
        return view
    ctx.status_extras["power_quality"] = status
    ctx.api.route("GET", "/pq", lambda _body: (200, pq_view(service, source, timer.view(), detail=True)))
    ctx.info["power_quality"] = ("waveform analysis (IEC 61000-4-30 methods, 8 kHz)" if monitor is not None
                                 else "chip THD+N and DFT registers (indicative)")


SWITCH_INTERVAL_S = 0.001


class BlockSource(Protocol):
    """Where the samples come from: the simulated grid or the waveform bridge."""

    def read_block(self) -> WaveformBlock | None:
        """The next block of samples, None when there is none yet."""
        ...


class WaveformFeed:
    """Each cycle: the waveform samples since the last cycle into the analysis.

    Inline (as built): the block is analysed and recorded within the cycle hook. After
    :meth:`start_worker` (a daemon running in real time) the block goes to a
    :class:`~meterd.runtime.pq_worker.PqWorker` thread and the hook only records the outcomes the
    worker finished since the last cycle, so the event loop never waits for the analysis. The
    block is queued without waking the worker; the wake comes from the event loop's next round
    (``call_soon``: after the cycle in hand, when the loop is about to wait), so that the worker
    does not take the interpreter lock from the loop in the middle of its work (that hand-over,
    and the wait for the operating system to run the loop's thread again, made the hook's
    10–20 ms holds on a busy machine; see :mod:`meterd.runtime.pq_worker`).
    ``holds``: how long each call held the event loop (ms; over ``HOLD_LIMIT_MS`` counts as late),
    the lateness statistic of the metering loop used for the loop's hold by power quality.
    """

    HOLD_LIMIT_MS = 10.0

    def __init__(self, source: BlockSource, service: PowerQualityService, drain: bool = False,
                 after: Callable[[], None] | None = None) -> None:
        self._source = source
        self._service = service
        self._drain = drain
        self._after = after
        self.worker: PqWorker[PqOutcome] | None = None
        self.holds = LatenessStats(late_ms=self.HOLD_LIMIT_MS)

    def _blocks(self) -> list[WaveformBlock]:
        """The block of this cycle (the simulated grid), or every block waiting (``drain``: the
        bridge, whose receiver thread queues frames between cycles)."""
        blocks: list[WaveformBlock] = []
        while (block := self._source.read_block()) is not None:
            blocks.append(block)
            if not self._drain:
                break
        return blocks

    def __call__(self) -> None:
        started = time.perf_counter()
        blocks = self._blocks()
        worker = self.worker
        if worker is None:
            for block in blocks:
                self._service.feed(block)
        else:
            for block in blocks:
                worker.submit(block, wake=False)
            for outcome in worker.take():
                self._service.apply(outcome)
            if blocks:
                _when_idle(worker.wake)
        if self._after is not None:
            self._after()
        self.holds.record((time.perf_counter() - started) * 1000.0)

    def start_worker(self, capacity: int) -> None:
        """Analyse on a worker thread from now on (``capacity`` blocks may wait).

        The interpreter's thread switch interval is lowered to 1 ms (from 5 ms) for the process:
        the event loop's thread, when it wants to run while the worker computes, then waits at
        most about 1 ms for the interpreter lock instead of 5 ms at each hand-over.
        """
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        worker: PqWorker[PqOutcome] = PqWorker(self._service.analyse, capacity)
        worker.start()
        self.worker = worker

    def stop_worker(self) -> None:
        """Stop the worker; what it finished is still recorded."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()
            for outcome in worker.take():
                self._service.apply(outcome)

    def stats(self) -> dict[str, float | int | str]:
        """Where the analysis runs and, on the worker, its counters."""
        held = self.holds.summary()
        hold = {"loop_hold_max_ms": round(held.max_ms, 3), "loop_hold_p99_ms": round(held.p99_ms, 3),
                "loop_holds_over_limit": held.late}
        if self.worker is None:
            return {"runs": "inline", **hold}
        return {"runs": "worker", **hold, **self.worker.stats().as_dict()}


def _when_idle(action: Callable[[], None]) -> None:
    """Run ``action`` from the running event loop's next round, or now without a running loop
    (a daemon stepped by a test)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        action()
        return
    loop.call_soon(action)


def uses_worker(section: PowerQualitySection, simulated: bool, speed: float) -> bool:
    """Whether a running daemon analyses on a worker thread: ``worker = "thread"``, or ``"auto"``
    in real time (a real meter, or a simulation at a speed above 0); a simulation at speed 0
    analyses inline, so that every block is analysed before the next cycle."""
    if section.worker == "auto":
        return not simulated or speed > 0
    return section.worker == "thread"


async def start(ctx: FeatureContext) -> None:
    """A daemon starting to run: move the waveform analysis to its worker thread when it should."""
    feed = ctx.registry.find(WaveformFeed)
    if feed is None:
        return
    section: PowerQualitySection = ctx.cfg.feature("power_quality")
    if uses_worker(section, ctx.hardware.backends.simulated, ctx.cfg.sim.speed):
        feed.start_worker(section.worker_queue_blocks)


def _bridge_feed(ctx: FeatureContext, section: PowerQualitySection,
                 service: PowerQualityService) -> WaveformFeed:
    """Each cycle: every block the bridge delivered into the analysis (on the worker thread once
    the daemon runs); the chip's indicative values while the bridge is off."""
    from hw.waveform_bridge import BridgeReceiver  # the device is opened only with a bridge configured

    receiver = BridgeReceiver(section.bridge_device, retry_s=section.bridge_retry_s)
    ctx.closers.append(receiver.close)
    receiver.start()
    scale = BridgeScale.nominal(ctx.cfg.frontend.current_scale, section.bridge_volts_per_code,
                                section.bridge_amps_per_code)
    source = BridgeWaveformSource(receiver, ctx.clock.mono, ctx.clock.utc, scale, stall_s=section.bridge_stall_s)
    ctx.registry.provide(BridgeWaveformSource, source, by="power_quality")
    chip = _chip_feed(ctx, section, service)

    def after() -> None:
        service.set_stream_live(source.live)
        if not source.live:
            chip()
    return WaveformFeed(source, service, drain=True, after=after)


def _chip_feed(ctx: FeatureContext, section: PowerQualitySection,
               service: PowerQualityService) -> Callable[[], None]:
    """Each cycle: the chip's DFT schedule; new indicative values when one finished."""
    chip = ChipPq(ctx.hardware.frontend.driver, ctx.clock, section.chip_period_s, ctx.hardware.bus_lock)

    def feed() -> None:
        values = chip.poll()
        if values is not None:
            service.set_chip_values(values)
    return feed


def _timed(timer: CycleTimer, work: Callable[[], None]) -> Callable[[CycleResult], None]:
    """The cycle hook: ``work`` with its wall-clock cost (ms) added to ``timer``."""
    def on_cycle(_result: CycleResult) -> None:
        started = time.perf_counter()
        work()
        timer.add((time.perf_counter() - started) * 1000.0)
    return on_cycle

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
* COSEM objects from :mod:`meterd.cosem.objects_pq` (THD, harmonics 2–50, Pst/Plt, 10-min
  RMS, the PQ profile 1-0:99.14.0.255 also in ``ctx.meter.profiles``); provides the
  :class:`~meterd.services.power_quality.PowerQualityService`;
* the PQ profile rows in ``<state_dir>/pq.db`` (SQLite, WAL, one transaction per row, trimmed to
  ``profile_depth``, versioned schema: :class:`meterd.store.profile_store.SqlitePqStore`),
  restored at start; beside them the exact Pst of the last 2 h (one transaction per 10-min
  interval), from which the running 2-h Plt interval is restored at start;
* ``status_extras["power_quality"]``: source, ``indicative``, THD per channel, frequency, Pst, Plt,
  active and recent events and the analysis time per cycle (ms, mean and max); ``GET /pq``
  (:mod:`meterd.api.pq_views`).

Section ``[power_quality]``: ``enabled`` (default on), ``source``, thresholds in % of the nominal
voltage (dip, swell, interruption, hysteresis, under/over-voltage) with minimum durations (s),
``max_step_s``, ``chip_period_s``, ``profile_depth`` (10-min rows), ``worker`` (``auto``: the
analysis runs on a worker thread when the daemon runs in real time, inline when stepped or at
simulation speed 0; ``thread``; ``inline``) and ``worker_queue_blocks`` (blocks that may wait
for the worker; beyond, a block is dropped and the values spanning the gap are flagged).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meterd.api.pq_views import pq_view
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.sim_adapters import GridWaveformSource
from meterd.bridge.chip_pq import ChipPq
from meterd.core.events import EventRecorder
from meterd.core.lateness import LatenessStats
from meterd.cosem.objects_pq import pq_factory
from meterd.pq.errors import PqConfigError
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.runtime.cycle_timer import CycleTimer
from meterd.runtime.pq_worker import PqWorker
from meterd.services.metering import CycleResult
from meterd.services.power_quality import PQ_PROFILE_OBIS, PowerQualityService, PqOutcome
from meterd.store.profile_store import SqlitePqStore


@dataclass(frozen=True)
class PowerQualitySection:
    """``[power_quality]``: chain on/off, source, event thresholds (% of Un), durations (s)."""

    enabled: bool = True
    source: str = field(default="auto", metadata=choices("auto", "waveform", "chip"))
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
    worker: str = field(default="auto", metadata=choices("auto", "thread", "inline"))
    worker_queue_blocks: int = field(default=4, metadata=rng(1, 60))

    def pq_settings(self, nominal_voltage_v: float, frequency_hz: float) -> PqSettings:
        """The monitor's settings at the meter's nominal voltage (V) and frequency (Hz)."""
        return PqSettings(
            udin_v=nominal_voltage_v, f_nom_hz=float(frequency_hz), dip_threshold_pct=self.dip_threshold_pct,
            swell_threshold_pct=self.swell_threshold_pct, interruption_threshold_pct=self.interruption_threshold_pct,
            hysteresis_pct=self.hysteresis_pct, undervoltage_threshold_pct=self.undervoltage_threshold_pct,
            overvoltage_threshold_pct=self.overvoltage_threshold_pct,
            undervoltage_min_duration_s=self.undervoltage_min_s, overvoltage_min_duration_s=self.overvoltage_min_s)

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
    settings = section.pq_settings(cfg.meter.nominal_voltage_v, cfg.meter.frequency_hz)
    monitor = PqMonitor(settings) if source == "waveform" else None
    store = SqlitePqStore(cfg.state_dir / "pq.db", depth={PQ_PROFILE_OBIS: section.profile_depth})
    ctx.closers.append(store.close)
    service = PowerQualityService(monitor, events, section.profile_depth, store=store, pst_store=store)
    timer = CycleTimer()
    feed: WaveformFeed | None = None
    if monitor is not None:
        assert hw.sim is not None
        waveform = GridWaveformSource(hw.sim.grid, ctx.clock, section.max_step_s)
        waveform.read_block()  # the stream starts now
        feed = WaveformFeed(waveform, service)
        ctx.registry.provide(WaveformFeed, feed, by="power_quality")
        ctx.closers.append(feed.stop_worker)  # before the store closes (closers run last added first)
    ctx.cycle_hooks.append(_timed(timer, feed if feed is not None else _chip_feed(ctx, section, service)))
    ctx.meter.profiles[PQ_PROFILE_OBIS] = service.profile
    ctx.registry.provide(PowerQualityService, service, by="power_quality")
    ctx.cosem_factories.append(pq_factory(service))
    ctx.status_extras["power_quality"] = lambda: {**pq_view(service, source, timer.view()),
                                                  **({"analysis": feed.stats()} if feed is not None else {})}
    ctx.api.route("GET", "/pq", lambda _body: (200, pq_view(service, source, timer.view(), detail=True)))
    ctx.info["power_quality"] = ("waveform analysis (IEC 61000-4-30 methods, 8 kHz)" if monitor is not None
                                 else "chip THD+N and DFT registers (indicative)")


SWITCH_INTERVAL_S = 0.001


class WaveformFeed:
    """Each cycle: the waveform samples since the last cycle into the analysis.

    Inline (as built): the block is analysed and recorded within the cycle hook. After
    :meth:`start_worker` (a daemon running in real time) the block goes to a
    :class:`~meterd.runtime.pq_worker.PqWorker` thread and the hook only records the outcomes the
    worker finished since the last cycle, so the event loop never waits for the analysis.
    ``holds``: how long each call held the event loop (ms; over ``HOLD_LIMIT_MS`` counts as late),
    the lateness statistic of the metering loop used for the loop's hold by power quality.
    """

    HOLD_LIMIT_MS = 10.0

    def __init__(self, source: GridWaveformSource, service: PowerQualityService) -> None:
        self._source = source
        self._service = service
        self.worker: PqWorker[PqOutcome] | None = None
        self.holds = LatenessStats(late_ms=self.HOLD_LIMIT_MS)

    def __call__(self) -> None:
        started = time.perf_counter()
        block = self._source.read_block()
        worker = self.worker
        if worker is None:
            if block is not None:
                self._service.feed(block)
        else:
            if block is not None:
                worker.submit(block)
            for outcome in worker.take():
                self._service.apply(outcome)
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

"""Power quality in the meter: waveform analysis (IEC 61000-4-30 methods) or the chip's indicative values.

Wires :class:`meterd.services.power_quality.PowerQualityService` into the daemon:

* source ``waveform``: a :class:`GridWaveformSource` over the simulated grid
  (``sim.grid.waveform_block``); the sample index follows the meter clock (index = (mono − grid
  start) × 8000), so each 1-s cycle hands the monitor the 8000 samples × 7 rows of that second.
  A step of meter time longer than ``max_step_s`` (in-process meters jumping hours) is a gap:
  it is not analysed and the monitor restarts its stream (flagging the affected values).
  Events (dip, swell, short/long interruption, sustained under/over-voltage) go to the
  power-quality log 0-0:99.98.4.255 through ``services["events"]``;
* source ``chip`` (a Pi without the DMA bridge): every ``chip_period_s`` a DFT of the ATM90E36
  (0.512 s) gives harmonic ratios of orders 2–32 per channel and the THD+N registers the THD; the
  values are marked indicative (:func:`meterd.pq.monitor.indicative_from_chip`) and there are no
  IEC events; ``auto`` picks ``waveform`` when a waveform source exists, else ``chip``;
* COSEM objects from :mod:`meterd.cosem.objects_pq` (THD, harmonics 2–50, Pst/Plt, 10-min
  RMS, the PQ profile 1-0:99.14.0.255 also in ``daemon.meter.profiles``);
* the PQ profile rows in ``<state_dir>/pq.db`` (SQLite, WAL, one transaction per row, trimmed to
  ``profile_depth``, versioned schema: :class:`meterd.store.profile_store.SqlitePqStore`),
  restored at start; beside them the exact Pst of the last 2 h (one transaction per 10-min
  interval), from which the running 2-h Plt interval is restored at start;
* ``status_extras["power_quality"]``: source, ``indicative``, THD per channel, frequency, Pst, Plt,
  active and recent events and the analysis time per cycle (ms, mean and max); ``GET /pq``.

Section ``[power_quality]``: ``enabled`` (default on), ``source``, thresholds in % of the nominal
voltage (dip, swell, interruption, hysteresis, under/over-voltage) with minimum durations (s),
``max_step_s``, ``chip_period_s``, ``profile_depth`` (10-min rows).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meterd.app.config import choices, rng
from meterd.core.clock import Clock
from meterd.cosem.objects_pq import pq_factory
from meterd.pq.errors import PqConfigError
from meterd.pq.monitor import CHIP_DFT_MAX_ORDER, PqMonitor, PqValues, indicative_from_chip
from meterd.pq.settings import PqSettings
from meterd.pq.source import WaveformBlock
from meterd.services.power_quality import PQ_PROFILE_OBIS, PowerQualityService, event_detail
from meterd.store.profile_store import SqlitePqStore

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.power_quality")
SAMPLE_RATE_HZ = 8000


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


class GridWaveformSource:
    """:class:`meterd.pq.source.WaveformSource` over the simulated grid, indexed by the meter clock."""

    def __init__(self, grid: Any, clock: Clock, max_step_s: float) -> None:
        self._grid = grid
        self._clock = clock
        self._max_samples = round(max_step_s * SAMPLE_RATE_HZ)
        self._next: int | None = None
        self.gaps = 0

    def _index_now(self) -> int:
        t0: float = self._grid.t0
        return max(round((self._clock.mono() - t0) * SAMPLE_RATE_HZ), 0)

    def read_block(self, max_samples: int = 0) -> WaveformBlock | None:
        """The samples from the last read up to now; None at the start or after a gap."""
        end = self._index_now()
        limit = max_samples or self._max_samples
        start = self._next
        self._next = end
        if start is None or end <= start:
            return None
        if end - start > limit:
            self.gaps += 1
            return None
        utc_end = self._clock.utc()
        utc_first = utc_end - _dt.timedelta(seconds=(end - start) / SAMPLE_RATE_HZ)
        return WaveformBlock(start, self._grid.waveform_block(start, end - start), float(SAMPLE_RATE_HZ), utc_first)


class ChipPq:
    """Indicative values from the ATM90E36: start a DFT, read its ratios 0.512 s later, and the THD+N."""

    DFT_CTRL = 0x1D1
    DFT_S = 4096 / 8000
    BASES = {"I1": 0x100, "I2": 0x120, "I3": 0x140, "U1": 0x160, "U2": 0x180, "U3": 0x1A0}

    def __init__(self, driver: Any, clock: Clock, period_s: float) -> None:
        self._driver = driver
        self._clock = clock
        self._period_s = period_s
        self._started: float | None = None
        self._last: float | None = None

    def poll(self) -> PqValues | None:
        """Run the DFT schedule; returns new values when a DFT finished."""
        now = self._clock.mono()
        if self._started is None:
            if self._last is None or now - self._last >= self._period_s:
                self._driver.write_register(self.DFT_CTRL, 1)
                self._started = now
            return None
        if now - self._started < self.DFT_S or self._driver.read_register(self.DFT_CTRL) & 1:
            return None
        self._started, self._last = None, now
        return self.read()

    def read(self) -> PqValues:
        """The DFT ratio registers (orders 2–32, %) and THD+N registers (%) as indicative values."""
        ratios: dict[str, Sequence[float]] = {name: [self._driver.read_register(base + order - 2) / 163.84
                         for order in range(2, CHIP_DFT_MAX_ORDER + 1)] for name, base in self.BASES.items()}
        thd_u = [self._driver.read_register(0xF1 + i) * 0.01 for i in range(3)]
        thd_i = [self._driver.read_register(0xF5 + i) * 0.01 for i in range(3)]
        return indicative_from_chip(thd_u, thd_i, ratios)


class CycleTimer:
    """Wall-clock cost of the PQ work per cycle (ms): a measurement for the status, not meter time."""

    def __init__(self) -> None:
        self.cycles = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        """One cycle's cost (ms)."""
        self.cycles += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def view(self) -> dict[str, float]:
        """Mean and max (ms)."""
        return {"mean_ms": round(self.total_ms / self.cycles, 2) if self.cycles else 0.0,
                "max_ms": round(self.max_ms, 2)}


def attach(daemon: Daemon) -> None:
    """Build the PQ chain for the configured source and hook it into the meter cycle."""
    cfg = daemon.cfg
    section: PowerQualitySection = cfg.feature("power_quality")
    if not section.enabled:
        daemon.status_extras["power_quality"] = lambda: {"enabled": False}
        daemon.api.route("GET", "/pq", lambda _body: (200, {"enabled": False}))
        return
    meter, clock, hw = daemon.meter, daemon.clock, daemon.hardware
    assert meter is not None and clock is not None and hw is not None
    source = section.source
    if source == "auto":
        source = "waveform" if hw.sim is not None else "chip"
    if source == "waveform" and hw.sim is None:
        raise ValueError("power_quality.source = waveform needs a waveform stream (the simulated grid)")
    settings = section.pq_settings(cfg.meter.nominal_voltage_v, cfg.meter.frequency_hz)
    monitor = PqMonitor(settings) if source == "waveform" else None
    store = SqlitePqStore(cfg.state_dir / "pq.db", depth={PQ_PROFILE_OBIS: section.profile_depth})
    daemon.closers.append(store.close)
    service = PowerQualityService(monitor, daemon.services.get("events"), section.profile_depth, store=store,
                                  pst_store=store)
    timer = CycleTimer()
    if monitor is not None:
        assert hw.sim is not None
        waveform = GridWaveformSource(hw.sim.grid, clock, section.max_step_s)
        waveform.read_block()  # the stream starts now

        def on_cycle(_result: Any) -> None:
            started = time.perf_counter()
            block = waveform.read_block()
            if block is not None:
                service.feed(block)
            timer.add((time.perf_counter() - started) * 1000.0)
    else:
        chip = ChipPq(hw.frontend.driver, clock, section.chip_period_s)

        def on_cycle(_result: Any) -> None:
            started = time.perf_counter()
            values = chip.poll()
            if values is not None:
                service.set_chip_values(values)
            timer.add((time.perf_counter() - started) * 1000.0)

    daemon.cycle_hooks.append(on_cycle)
    meter.profiles[PQ_PROFILE_OBIS] = service.profile
    daemon.services["power_quality"] = service
    daemon.cosem_factories.append(pq_factory(service))
    daemon.status_extras["power_quality"] = lambda: pq_view(service, source, timer)
    daemon.api.route("GET", "/pq", lambda _body: (200, pq_view(service, source, timer, detail=True)))
    daemon.info["power_quality"] = ("waveform analysis (IEC 61000-4-30 methods, 8 kHz)" if monitor is not None
                                    else "chip THD+N and DFT registers (indicative)")


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or value != value else round(value, digits)


def pq_view(service: PowerQualityService, source: str, timer: CycleTimer, detail: bool = False) -> dict[str, Any]:
    """Status of the PQ chain: source, indicative, THD (%), frequency (Hz), Pst, Plt, events, cost."""
    v = service.values()
    view: dict[str, Any] = {
        "enabled": True, "source": source, "indicative": service.indicative,
        "thd_pct": {k: _round(x) for k, x in sorted(v.thd_pct.items())},
        "frequency_hz": _round(v.frequency_hz, 3), "pst": {str(p): _round(x.pst, 3) for p, x in v.pst.items()},
        "plt": {str(p): _round(x, 3) for p, x in v.plt.items()},
        "plt_flagged": {str(p): x for p, x in v.plt_flagged.items()}, "active_events": list(v.active_events),
        "events": service.event_count, "cycle": timer.view(),
    }
    if detail:
        view["recent_events"] = [{"utc": e.start_utc.isoformat(), **event_detail(e)} for e in service.recent]
        view["harmonic_pct"] = {k: [_round(x) for x in r[2:]] for k, r in sorted(v.harmonic_pct.items())}
        view["profile_rows"] = service.profile.entries_in_use()
    return view

"""Supervision in the meter: event logs, tamper detection, voltage events, power cuts, alarms.

Wires :class:`meterd.services.supervision.Supervision` into the daemon:

* event logs and supervision state in ``<state_dir>/events.db`` (SQLite, WAL, one transaction per
  event); it provides the :class:`~meterd.core.events.EventRecorder` every feature records into
  and the :class:`~meterd.services.supervision.Supervision` service;
* inputs: the terminal-cover switch and the magnet sensor are (re)built on the section's pins
  on ``ctx.hardware.pin_factory``; in simulation they are registered in
  ``sim.input_pins`` so the scenario signals ``cover_open`` and ``magnetic_field`` drive them
  (the cover switch is normally closed to GND: an open cover lets the pin go high);
* per cycle (``ctx.cycle_hooks``): ``Supervision.on_cycle`` with the reading and the debounced
  inputs (tampers, under/over/missing voltage per phase, power-cut detection, heartbeat);
* at attach: ``on_start`` accounts the outage that stopped the meter (short or long against
  ``long_failure_s``, from the last-gasp time or else the last heartbeat); at shutdown
  ``on_stop`` marks a clean stop (not an outage). A stop that was not clean, with no cut seen
  before it, while the host kept running (:class:`~meterd.core.power_fail.StartEvidence` from the
  energy storage: the journal's boot token unchanged) was a crash of meterd: "watchdog error"
  (IDIS 15) with the down time, no power-failure record;
* the power-fail input: its edge records "power down" at once, after the daemon's last-gasp
  energy checkpoint (energy first: it is the larger loss);
* clock sets: "clock adjusted (old)" at the old time and "(new)" at the new time, with the source;
* ``ctx.meter.profiles``: every log by its OBIS (0-0:99.98.x.255, 1-0:99.97.0.255); COSEM
  objects from :mod:`meterd.cosem.objects_supervision`; the status flag ``tamper`` while a
  tamper is active; ``status_extras["tamper"]`` (active tampers) and ``["alarms"]``;
* routes ``GET /events`` (newest 50 across logs), ``POST /events {"limit": N, "log": name}``,
  ``POST /alarms/clear {"mask": M}`` (default all bits).

Heartbeat: the power-fail input (the supply supervisor's last gasp) dates a power cut exactly.
Without it (a supervisor that did not fire, a host that went down with meterd) the outage starts at
the last-alive time: the later of the newest energy checkpoint (forced to the medium every
``sync_period_s`` while energy flows: :attr:`~meterd.store.energy_copies.EnergyCopies.synced_utc`)
and the heartbeat saved in SQLite, which is saved only when neither is younger than
``heartbeat_period_s`` (default 300 s; so no write of its own while the checkpoint carries it)
and, every second, in ``alive_file``
(:class:`~meterd.store.alive_file.AliveFile`, 16 bytes
rewritten in place, no flash wear): by default in meterd's runtime directory (``/run/meterd``,
tmpfs, kept across a crash or restart of meterd but not across a power cut; in simulation the
state directory), or the battery-backed RAM of an RTC that has some (``/sys/bus/nvmem/devices/
<rtc>_nvram0/nvmem`` for a DS1307 or MCP7940, not the board's PCF2129), which also survives a
power cut; ``"off"`` disables it. The outage's "power down" carries the start uncertainty (s). Section ``[supervision]``: pins and
debounce (s), tamper thresholds (W, A, V, %), minimum durations (s) per detector, voltage
thresholds (V), outage short/long limit (s), heartbeat period (s), log depths (entries), alarm
filter. The phases watched follow ``[meter] wiring`` (:mod:`meterd.app.wiring`): with "1P2W"
voltage events and power-cut detection see L1 only, reverse current is watched on L1, and missing
potential, phase sequence and current imbalance are off (in simulation the grid is wired alike).
A cover opened while the meter is unpowered is read at start from the RTC's battery-backed
timestamp input (``rtc_tamper_file``, :func:`~meterd.runtime.rtc_tamper.read_rtc_tamper_latch`).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hw.inputs import COVER_OPEN, MAGNETIC_FIELD, POWER_FAIL, InputConfig
from meterd.api.supervision_views import alarms_view, supervision_routes
from meterd.app.config import rng
from meterd.app.feature_api import FeatureContext
from meterd.app.sim_adapters import drive_sim_tamper_inputs
from meterd.app.wiring import meter_wiring
from meterd.core import event_codes as ec
from meterd.core.alarms import ALL_BITS
from meterd.core.errors import MeterError
from meterd.core.event_codes import LOG_OBIS, LogId
from meterd.core.events import EventRecorder
from meterd.core.power_fail import PowerFailSettings, PowerFailure, SoftwareRestart, StartEvidence
from meterd.core.reading import PHASES, Channel
from meterd.core.tamper import THREE_PHASE_KINDS, Persistence, TamperKind, TamperSettings
from meterd.cosem.objects_supervision import supervision_factory
from meterd.runtime.rtc_tamper import read_rtc_tamper_latch
from meterd.runtime.supervision_inputs import InputEdges, PowerFailEvents
from meterd.services.supervision import Supervision, SupervisionSettings, VoltageSettings
from meterd.store.alive_file import AliveFile, alive_path
from meterd.store.energy_copies import EnergyCopies
from meterd.store.event_store import SqliteEventStore

log = logging.getLogger("meterd.supervision")

_PIN = rng(0, 27)
_DURATION = rng(0, 3600)
_DEPTH = rng(1, 10_000)


@dataclass(frozen=True)
class SupervisionSection:
    """``[supervision]``: inputs, tamper and voltage thresholds, durations, outages, log depths."""

    cover_pin: int = field(default=5, metadata=_PIN)
    cover_debounce_s: float = field(default=0.1, metadata=rng(0, 5))
    magnet_pin: int = field(default=13, metadata=_PIN)
    magnet_debounce_s: float = field(default=0.2, metadata=rng(0, 5))
    # tamper thresholds; import_only: reverse current is a tamper only on an import-only supply
    import_only: bool = False
    reverse_power_w: float = field(default=25.0, metadata=rng(1, 100_000))
    neutral_mismatch_a: float = field(default=1.0, metadata=rng(0.01, 200))
    missing_potential_v: float = field(default=138.0, metadata=rng(1, 480))
    current_present_a: float = field(default=0.1, metadata=rng(0.001, 100))
    imbalance_pct: float = field(default=30.0, metadata=rng(1, 1000))
    imbalance_min_current_a: float = field(default=1.0, metadata=rng(0.01, 200))
    # minimum durations (s) of a tamper episode: condition present to start, absent to end
    cover_min_s: float = field(default=1.0, metadata=_DURATION)
    magnet_min_s: float = field(default=2.0, metadata=_DURATION)
    reverse_current_min_s: float = field(default=30.0, metadata=_DURATION)
    neutral_mismatch_min_s: float = field(default=30.0, metadata=_DURATION)
    missing_potential_min_s: float = field(default=30.0, metadata=_DURATION)
    phase_sequence_min_s: float = field(default=10.0, metadata=_DURATION)
    current_without_voltage_min_s: float = field(default=30.0, metadata=_DURATION)
    imbalance_min_s: float = field(default=60.0, metadata=_DURATION)
    # voltage events per phase (V) with minimum durations (s)
    under_voltage_v: float = field(default=207.0, metadata=rng(1, 480))
    over_voltage_v: float = field(default=253.0, metadata=rng(1, 480))
    missing_voltage_v: float = field(default=23.0, metadata=rng(1, 480))
    voltage_hysteresis_v: float = field(default=4.6, metadata=rng(0.1, 50))
    voltage_min_s: float = field(default=60.0, metadata=_DURATION)
    voltage_restore_s: float = field(default=10.0, metadata=_DURATION)
    missing_voltage_min_s: float = field(default=5.0, metadata=_DURATION)
    # power cuts
    supply_loss_v: float = field(default=23.0, metadata=rng(1, 480))
    long_failure_s: float = field(default=180.0, metadata=rng(1, 86_400))
    heartbeat_period_s: float = field(default=300.0, metadata=rng(1, 3600))
    alive_file: str = ""  # "" runtime directory (sim: state directory), "off", or an absolute path
    rtc_tamper_file: str = "/sys/class/rtc/rtc0/timestamp0"
    # log depths (entries)
    standard_depth: int = field(default=100, metadata=_DEPTH)
    fraud_depth: int = field(default=100, metadata=_DEPTH)
    disconnector_depth: int = field(default=100, metadata=_DEPTH)
    power_quality_depth: int = field(default=100, metadata=_DEPTH)
    communication_depth: int = field(default=100, metadata=_DEPTH)
    power_failure_depth: int = field(default=50, metadata=_DEPTH)  # short and long failures
    firmware_depth: int = field(default=20, metadata=_DEPTH)
    token_depth: int = field(default=100, metadata=_DEPTH)
    security_depth: int = field(default=100, metadata=_DEPTH)
    alarm_filter: int = field(default=ALL_BITS, metadata=rng(0, ALL_BITS))

    def __post_init__(self) -> None:
        try:
            self.settings()
        except MeterError as exc:
            raise ValueError(str(exc)) from None

    def settings(self, phases: tuple[Channel, ...] = PHASES) -> SupervisionSettings:
        """The service settings this section gives for a supply of ``phases`` (the meter's wiring:
        L1 alone for 1P2W, where the detectors that compare phases, :data:`THREE_PHASE_KINDS`,
        are off)."""
        both = Persistence
        enabled = frozenset(TamperKind) - (THREE_PHASE_KINDS if len(phases) == 1 else frozenset())
        tamper = TamperSettings(enabled=enabled, phases=phases,
            import_only=self.import_only, reverse_power_w=self.reverse_power_w,
            neutral_mismatch_a=self.neutral_mismatch_a, missing_potential_v=self.missing_potential_v,
            current_present_a=self.current_present_a, imbalance_pct=self.imbalance_pct,
            imbalance_min_current_a=self.imbalance_min_current_a,
            persistence={
                TamperKind.TERMINAL_COVER: both(self.cover_min_s, self.cover_min_s),
                TamperKind.MAGNETIC_FIELD: both(self.magnet_min_s, self.magnet_min_s),
                TamperKind.REVERSE_CURRENT: both(self.reverse_current_min_s, self.reverse_current_min_s),
                TamperKind.NEUTRAL_MISMATCH: both(self.neutral_mismatch_min_s, self.neutral_mismatch_min_s),
                TamperKind.MISSING_POTENTIAL: both(self.missing_potential_min_s, self.missing_potential_min_s),
                TamperKind.PHASE_SEQUENCE: both(self.phase_sequence_min_s, self.phase_sequence_min_s),
                TamperKind.CURRENT_WITHOUT_VOLTAGE: both(self.current_without_voltage_min_s,
                                                         self.current_without_voltage_min_s),
                TamperKind.CURRENT_IMBALANCE: both(self.imbalance_min_s, self.imbalance_min_s),
            })
        voltage = VoltageSettings(
            under_v=self.under_voltage_v, over_v=self.over_voltage_v, missing_v=self.missing_voltage_v,
            hysteresis_v=self.voltage_hysteresis_v, sustained=Persistence(self.voltage_min_s, self.voltage_restore_s),
            missing=Persistence(self.missing_voltage_min_s, self.missing_voltage_min_s), phases=phases)
        power = PowerFailSettings(supply_loss_v=self.supply_loss_v, long_failure_s=self.long_failure_s,
                                  heartbeat_period_s=self.heartbeat_period_s, phases=phases)
        depths = {log_id: getattr(self, f"{log_id.value}_depth") for log_id in LogId}
        return SupervisionSettings(tamper=tamper, voltage=voltage, power=power, depths=depths,
                                   alarm_filter=self.alarm_filter)


SECTION = SupervisionSection


def attach(ctx: FeatureContext) -> None:
    """Build the supervision with its store and hook it into the meter."""
    cfg, meter, clock, hw = ctx.cfg, ctx.meter, ctx.clock, ctx.hardware
    section: SupervisionSection = cfg.feature("supervision")
    store = SqliteEventStore(cfg.state_dir / "events.db")
    ctx.closers.append(store.close)
    wiring = meter_wiring(cfg)
    if hw.sim is not None and wiring.single_phase:
        with hw.sim.lock:  # the simulated supply is wired as the meter is configured
            hw.sim.grid.set_wiring(1)
    path = alive_path(section.alive_file, cfg.state_dir, sim=hw.sim is not None)
    copies = ctx.registry.find(EnergyCopies)
    supervision = Supervision(section.settings(wiring.phases), store, alive=AliveFile(path) if path is not None else None,
                              durable_alive=(lambda: copies.synced_utc) if copies is not None else None)
    failure = supervision.on_start(clock.utc(), ctx.registry.find(StartEvidence))
    if isinstance(failure, SoftwareRestart):
        log.warning("meterd did not stop cleanly %d s ago while the host kept running: a software restart, "
                    "not a power failure", failure.down_s)
    elif failure is not None:
        log.info("%s power failure of %d s ended at start", "long" if failure.long else "short", failure.duration_s)
        ctx.registry.provide(PowerFailure, failure, by="supervision")  # the time's RTC evidence
    ctx.closers.append(lambda: supervision.on_stop(clock.utc()))  # runs before the store closes
    _build_inputs(ctx, section)
    read_rtc_tamper_latch(Path(section.rtc_tamper_file) if section.rtc_tamper_file else None, supervision,
                          clock.utc(), hw.inputs.states()[COVER_OPEN])

    ctx.cycle_hooks.append(InputEdges(hw.inputs, clock, supervision).on_cycle)
    power_fail = PowerFailEvents(clock, supervision)
    hw.inputs.add_listener(power_fail.changed, (POWER_FAIL,))
    meter.clock_listeners.append(_clock_listener(supervision))
    meter.status_sources.append(lambda: {"tamper"} if supervision.tamper_status() else set())
    for obis in LOG_OBIS.values():
        buffer = supervision.profile(obis.profile)
        assert buffer is not None
        meter.profiles[obis.profile] = buffer
    ctx.registry.provide(EventRecorder, supervision.recorder, by="supervision")
    ctx.registry.provide(Supervision, supervision, by="supervision")
    ctx.registry.provide(PowerFailEvents, power_fail, by="supervision")
    ctx.cosem_factories.append(supervision_factory(supervision))
    ctx.status_extras["tamper"] = supervision.tamper_status
    ctx.status_extras["alarms"] = lambda: alarms_view(supervision)
    supervision_routes(ctx.api, supervision, clock)
    ctx.info["supervision"] = (f"{wiring.name}, events in {store.path.name}, cover pin {section.cover_pin}, "
                               f"magnet pin {section.magnet_pin}, long failure ≥ {section.long_failure_s:g} s")


def _build_inputs(ctx: FeatureContext, section: SupervisionSection) -> None:
    """Cover switch (NC to GND: open = pin high) and magnet sensor (active low) on the section's pins."""
    hw, mono = ctx.hardware, ctx.clock.mono
    cover = hw.inputs.replace(COVER_OPEN, InputConfig(section.cover_pin, pull_up=True, active_when_pressed=False,
                                                      debounce_s=section.cover_debounce_s), hw.pin_factory, mono)
    magnet = hw.inputs.replace(MAGNETIC_FIELD, InputConfig(section.magnet_pin, pull_up=True, active_when_pressed=True,
                                                           debounce_s=section.magnet_debounce_s), hw.pin_factory, mono)
    if hw.sim is not None:
        drive_sim_tamper_inputs(hw.sim, hw.pin_factory, cover, magnet)


async def start(ctx: FeatureContext) -> None:
    """Hand real-pin power-fail edges to the running loop."""
    ctx.registry.need(PowerFailEvents, by="supervision").loop = asyncio.get_running_loop()


def _clock_listener(supervision: Supervision) -> Callable[[_dt.datetime, _dt.datetime, str], None]:
    def on_clock_set(old: _dt.datetime, new: _dt.datetime, source: str) -> None:
        supervision.recorder.record(ec.code("CLOCK_ADJUSTED_OLD"), old, {"source": source})
        supervision.recorder.record(ec.code("CLOCK_ADJUSTED_NEW"), new, {"source": source})
    return on_clock_set

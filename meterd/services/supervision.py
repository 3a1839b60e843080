"""Supervision use case: tamper, voltage-quality and power-cut events, alarms, once per cycle.

``Supervision.on_cycle(utc, reading, inputs)`` runs, in order: power-cut detection (on a cut it
calls the last-gasp callback, then records "power down"), the tamper detectors, and the per-phase
voltage monitor (under / over / missing voltage with programmable thresholds in V and minimum
durations in s; "voltage normal" ends an episode). While a power cut is in progress the electrical
detectors are frozen (the readings are meaningless), the input-driven tampers (cover, magnet) keep
running. ``on_start(now_utc, evidence)`` accounts the outage that stopped the meter (its start
the later of the persisted last-alive time and the newest energy checkpoint), or records
a software restart ("watchdog error") when the meter crashed while the host kept running. Events go through the
:class:`~meterd.core.events.EventRecorder`; the alarm register listens to it. Active tampers,
voltage levels, alarms and power state are saved in a :class:`~meterd.core.events.StateStore`
so that an episode open across a restart ends exactly once.

The last-alive heartbeat rides on the energy checkpoint: given ``durable_alive`` (the time of the
newest checkpoint forced to the medium), the heartbeat is persisted only when neither it nor the
last persisted one is younger than ``heartbeat_period_s`` (a meter through which no energy
flows, whose checkpoint is not saved); an outage's start is known to within
``heartbeat_period_s`` either way.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.alarms import ALL_BITS, AlarmRegister
from meterd.core.errors import ConfigError
from meterd.core.event_codes import LogId
from meterd.core.events import DEFAULT_DEPTHS, EventEntry, EventLog, EventRecorder, EventStore, StateStore
from meterd.core.power_fail import (
    PowerFailMonitor,
    PowerFailSettings,
    PowerFailure,
    PowerState,
    PowerUpdate,
    SoftwareRestart,
    StartEvidence,
)
from meterd.core.reading import PHASES, Channel, Reading
from meterd.core.tamper import InputStates, Persistence, Tamper, TamperKind, TamperMonitor, TamperSettings

LastGasp = Callable[[_dt.datetime], None]


class VoltageLevel(enum.Enum):
    """Classification of one phase voltage."""

    NORMAL = "normal"
    UNDER = "under"
    OVER = "over"
    MISSING = "missing"


@dataclass(frozen=True)
class VoltageSettings:
    """Programmable voltage-event thresholds (V) and minimum durations (s).

    Defaults: Un 230 V, under < 207 V (−10 %), over > 253 V (+10 %), missing < 23 V (10 %),
    hysteresis 4.6 V (2 %); under/over must last 60 s (sustained, power-quality.md §5.11),
    missing voltage 5 s; restoration must last 10 s / 5 s. ``phases``: the phases watched (the
    meter's wiring; L1 alone for 1P2W, where L2 and L3 do not exist and give no event).
    """

    under_v: float = 207.0
    over_v: float = 253.0
    missing_v: float = 23.0
    hysteresis_v: float = 4.6
    sustained: Persistence = Persistence(60.0, 10.0)
    missing: Persistence = Persistence(5.0, 5.0)
    phases: tuple[Channel, ...] = PHASES

    def __post_init__(self) -> None:
        if self.hysteresis_v <= 0:
            raise ConfigError("meterd.toml", "voltage.hysteresis_v", "must be > 0")
        if not 0 < self.missing_v + self.hysteresis_v < self.under_v:
            raise ConfigError("meterd.toml", "voltage.missing_v", "missing + hysteresis must be below under_v")
        if not self.under_v + self.hysteresis_v < self.over_v - self.hysteresis_v:
            raise ConfigError("meterd.toml", "voltage.over_v", "over_v - hysteresis must exceed under_v + hysteresis")

    def persistence_of(self, level: VoltageLevel) -> Persistence:
        """Minimum durations for entering / leaving ``level``."""
        return self.missing if level is VoltageLevel.MISSING else self.sustained


def classify(voltage_v: float, current: VoltageLevel, s: VoltageSettings) -> VoltageLevel:
    """The level of ``voltage_v`` (V) given the present level (hysteresis on the way back)."""
    h = s.hysteresis_v
    missing_v = s.missing_v + (h if current is VoltageLevel.MISSING else 0.0)
    under_v = s.under_v + (h if current in (VoltageLevel.UNDER, VoltageLevel.MISSING) else 0.0)
    over_v = s.over_v - (h if current is VoltageLevel.OVER else 0.0)
    if voltage_v < missing_v:
        return VoltageLevel.MISSING
    if voltage_v < under_v:
        return VoltageLevel.UNDER
    if voltage_v > over_v:
        return VoltageLevel.OVER
    return VoltageLevel.NORMAL


@dataclass(frozen=True)
class VoltageEvent:
    """A qualified change of one phase's voltage level, stamped at its onset."""

    phase: Channel
    level: VoltageLevel
    code: int
    utc: _dt.datetime
    voltage_v: float


_LEVEL_CODE = {VoltageLevel.UNDER: "UNDER_VOLTAGE", VoltageLevel.OVER: "OVER_VOLTAGE",
               VoltageLevel.MISSING: "MISSING_VOLTAGE", VoltageLevel.NORMAL: "VOLTAGE_NORMAL"}


class PhaseVoltageMonitor:
    """Per-phase voltage level with minimum durations; one event per qualified level change."""

    def __init__(self, settings: VoltageSettings | None = None,
                 levels: Mapping[Channel, VoltageLevel] | None = None) -> None:
        self.settings = settings or VoltageSettings()
        phases = self.settings.phases
        self._levels = {p: VoltageLevel.NORMAL for p in phases}
        self._levels.update({p: lvl for p, lvl in (levels or {}).items() if p in phases})
        self._candidates: dict[Channel, tuple[VoltageLevel, float, _dt.datetime]] = {}

    @property
    def levels(self) -> Mapping[Channel, VoltageLevel]:
        """The qualified level of each phase."""
        return dict(self._levels)

    def update(self, utc: _dt.datetime, mono_s: float, reading: Reading) -> list[VoltageEvent]:
        """Evaluate one cycle; returns the qualified level changes."""
        events = []
        for phase in self.settings.phases:
            event = self._update_phase(phase, reading.phase(phase).voltage_v, mono_s, utc)
            if event is not None:
                events.append(event)
        return events

    def _update_phase(self, phase: Channel, voltage_v: float, mono_s: float,
                      utc: _dt.datetime) -> VoltageEvent | None:
        level = self._levels[phase]
        seen = classify(voltage_v, level, self.settings)
        if seen is level:
            self._candidates.pop(phase, None)
            return None
        candidate = self._candidates.get(phase)
        if candidate is None or candidate[0] is not seen:
            candidate = (seen, mono_s, utc)
            self._candidates[phase] = candidate
        leaving = seen is VoltageLevel.NORMAL
        rule = self.settings.persistence_of(level if leaving else seen)
        if mono_s - candidate[1] < (rule.end_s if leaving else rule.start_s):
            return None
        self._levels[phase] = seen
        del self._candidates[phase]
        code = ec.code(f"{_LEVEL_CODE[seen]}_{phase.value}")
        return VoltageEvent(phase, seen, code, candidate[2], voltage_v)


class SupervisionStore(EventStore, StateStore, Protocol):
    """A store that keeps both event logs and state records (``meterd.store.event_store``)."""


class AliveCell(Protocol):
    """A last-alive time kept where a write costs nothing (a RAM file, the RTC's battery-backed
    RAM): written every ``resolution_s`` while the supply is up, read once at start."""

    resolution_s: float

    def read(self) -> _dt.datetime | None:
        """The last time written (None: nothing valid)."""
        ...

    def write(self, utc: _dt.datetime) -> None:
        """Keep ``utc`` as the last-alive time."""
        ...


@dataclass(frozen=True)
class SupervisionSettings:
    """Settings of the whole supervision: tamper, voltage, power cut, log depths, alarm filter."""

    tamper: TamperSettings = field(default_factory=TamperSettings)
    voltage: VoltageSettings = field(default_factory=VoltageSettings)
    power: PowerFailSettings = field(default_factory=PowerFailSettings)
    depths: Mapping[LogId, int] = field(default_factory=lambda: dict(DEFAULT_DEPTHS))
    alarm_filter: int = ALL_BITS


_TAMPER_KEY = "tamper"
_VOLTAGE_KEY = "voltage"
_POWER_KEY = "power"
_LATCH_KEY = "rtc_tamper_latch"


class Supervision:
    """Runs the supervision of one meter; owned by the metering loop (one thread)."""

    def __init__(self, settings: SupervisionSettings | None = None, store: SupervisionStore | None = None,
                 last_gasp: LastGasp | None = None, alive: AliveCell | None = None,
                 durable_alive: Callable[[], _dt.datetime | None] | None = None) -> None:
        """``durable_alive``: the UTC of the newest energy checkpoint forced to the medium (None:
        none yet); without it the heartbeat is persisted every ``heartbeat_period_s``."""
        self.settings = settings or SupervisionSettings()
        self._store = store
        self._last_gasp = last_gasp
        self._alive = alive
        self._durable_alive = durable_alive
        self._alive_mono: float | None = None
        self.recorder = EventRecorder(self.settings.depths, store)
        self.alarms = AlarmRegister(self.settings.alarm_filter, store)
        self.recorder.add_listener(self.alarms.on_event)
        self.tamper = TamperMonitor(self.settings.tamper, self._saved_tampers())
        self.voltage = PhaseVoltageMonitor(self.settings.voltage, self._saved_levels())
        self.power = PowerFailMonitor(self.settings.power, self._saved_power())
        self._saved_alive = self.power.state.last_alive_utc  # the persisted last-alive time
        self._started = False

    # --- restoring state -------------------------------------------------------------------
    def _load(self, key: str) -> Mapping[str, object] | None:
        return self._store.load_state(key) if self._store is not None else None

    def _save(self, key: str, value: Mapping[str, object]) -> None:
        if self._store is not None:
            self._store.save_state(key, value)

    def _saved_tampers(self) -> list[Tamper]:
        saved = self._load(_TAMPER_KEY) or {}
        names = saved.get("active", [])
        return [Tamper.from_name(str(n)) for n in names] if isinstance(names, list) else []

    def _saved_levels(self) -> dict[Channel, VoltageLevel]:
        saved = self._load(_VOLTAGE_KEY) or {}
        return {p: VoltageLevel(str(saved[p.value])) for p in PHASES if p.value in saved}

    def _saved_power(self) -> PowerState | None:
        saved = self._load(_POWER_KEY)
        return PowerState.from_record(saved) if saved is not None else None

    # --- lifecycle -------------------------------------------------------------------------
    def on_start(self, now_utc: _dt.datetime,
                 evidence: StartEvidence | None = None) -> PowerFailure | SoftwareRestart | None:
        """At meter start: record the outage that stopped the meter (if any) and its class, or
        the crash that did when the host shows it kept running (``evidence``, see
        :meth:`PowerFailMonitor.start`): then "watchdog error" (IDIS 15, alarm bit 12) at the
        start, with the down time (s) from the last-alive time, and no power-failure record.

        Called once, before the first cycle; ``on_cycle`` calls it itself if the owner did not,
        so the first heartbeat can never overwrite the last-alive time of the previous run.
        """
        self._started = True
        checkpoint = evidence.checkpoint_utc if evidence is not None else None
        if checkpoint is not None and checkpoint <= now_utc:
            self.power.seen_alive(checkpoint, self.settings.power.heartbeat_period_s)
        fine = self._alive.read() if self._alive is not None else None
        if fine is not None and fine <= now_utc:
            assert self._alive is not None
            self.power.seen_alive(fine, self._alive.resolution_s)
        failure = self.power.start(now_utc, evidence.host_kept if evidence is not None else None)
        if isinstance(failure, SoftwareRestart):
            self.recorder.record(ec.code("WATCHDOG_ERROR"), now_utc, {
                "restart": "software", "down_s": failure.down_s, "last_alive_utc": failure.last_alive_utc.isoformat(),
                "start_uncertainty_s": failure.start_uncertainty_s})
        elif failure is not None:
            if failure.estimated_start:
                self.recorder.record(ec.code("POWER_DOWN"), failure.start_utc,
                                     {"estimated": True, "start_uncertainty_s": failure.start_uncertainty_s})
            self._record_restoration(failure)
        self._save_power()
        return failure

    def on_latched_cover_open(self, opened_utc: _dt.datetime, now_utc: _dt.datetime, cover_open_now: bool) -> bool:
        """A cover opening the RTC latched while the meter had no power (its battery-backed
        timestamp input), seen at start ``now_utc`` with the cover input in ``cover_open_now``.

        Recorded once: "terminal cover removed" at the latched time. If the cover is closed now,
        "terminal cover closed" at ``now_utc`` (the first moment the meter can see it); if it is
        still open, the cover episode is left open so the input's closing ends it (and the open
        input at start is not recorded a second time). A cover episode already open (opened
        while powered) is not opened again. Returns True when the latch was new.
        """
        seen = self._load(_LATCH_KEY) or {}
        if seen.get("utc") == opened_utc.isoformat():
            return False
        cover = Tamper(TamperKind.TERMINAL_COVER)
        if cover not in self.tamper.status():
            self.recorder.record(ec.code("TERMINAL_COVER_REMOVED"), opened_utc, {"while_unpowered": True})
            if cover_open_now:
                self.tamper.open_episode(cover)
            else:
                self.recorder.record(ec.code("TERMINAL_COVER_CLOSED"), now_utc, {"while_unpowered": True})
            self._save(_TAMPER_KEY, {"active": self.tamper.status_names()})
        self._save(_LATCH_KEY, {"utc": opened_utc.isoformat()})
        return True

    def on_stop(self, utc: _dt.datetime) -> None:
        """A clean service stop: the next start is not counted as a power failure."""
        self.power.stop(utc)
        self._save_power()

    def _save_power(self) -> None:
        self._save(_POWER_KEY, self.power.state.to_record())
        self._saved_alive = self.power.state.last_alive_utc

    # --- per cycle -------------------------------------------------------------------------
    def on_cycle(self, utc: _dt.datetime, reading: Reading | None,
                 inputs: InputStates | Mapping[str, bool] | None = None,
                 mono_s: float | None = None) -> list[EventEntry]:
        """Run one supervision cycle; returns the events recorded, in order.

        ``mono_s`` defaults to ``reading.mono_s``; it is required when ``reading`` is None.
        """
        if not self._started:
            self.on_start(utc)
        states = inputs if isinstance(inputs, InputStates) else InputStates.from_mapping(inputs or {})
        now_mono = mono_s if mono_s is not None else (reading.mono_s if reading is not None else None)
        if now_mono is None:
            raise ValueError("mono_s is required when there is no reading")
        recorded = self._apply_power(self.power.update(utc, now_mono, reading, states), utc, now_mono)
        self._keep_alive(utc, now_mono)
        electrical = None if self.power.in_outage else reading
        recorded += self._run_tamper(utc, now_mono, electrical, states)
        if electrical is not None:
            recorded += self._run_voltage(utc, now_mono, electrical)
        return recorded

    def on_power_fail_input(self, utc: _dt.datetime, mono_s: float, asserted: bool) -> list[EventEntry]:
        """The power-fail input changed: act at once (last gasp), not at the next cycle."""
        if not self._started:
            self.on_start(utc)
        return self._apply_power(self.power.input_changed(utc, mono_s, asserted))

    def _keep_alive(self, utc: _dt.datetime, mono_s: float) -> None:
        """Write the fine last-alive time every ``resolution_s`` while the supply is up."""
        cell = self._alive
        if cell is None or self.power.in_outage:
            return
        if self._alive_mono is None or mono_s - self._alive_mono >= cell.resolution_s:
            self._alive_mono = mono_s
            cell.write(utc)

    def _apply_power(self, update: PowerUpdate, utc: _dt.datetime | None = None,
                     mono_s: float | None = None) -> list[EventEntry]:
        recorded: list[EventEntry] = []
        if update.down_utc is not None:
            try:
                if self._last_gasp is not None:
                    self._last_gasp(update.down_utc)
            finally:
                recorded.append(self.recorder.record(ec.code("POWER_DOWN"), update.down_utc))
        if update.restored is not None:
            recorded += self._record_restoration(update.restored)
        edge = update.down_utc is not None or update.restored is not None
        if update.save and (edge or self._durable_alive is None):
            self._save_power()
        elif self._durable_alive is not None and utc is not None and mono_s is not None \
                and self.power.alive_stale(utc, self._saved_alive, self._durable_alive()):
            self.power.mark_alive(utc, mono_s)  # no checkpoint carries the last-alive time: save it
            self._save_power()
        return recorded

    def _record_restoration(self, failure: PowerFailure) -> list[EventEntry]:
        detail = {"duration_s": failure.duration_s, "start_utc": failure.start_utc.isoformat(),
                  "estimated_start": failure.estimated_start, "clock_suspect": failure.clock_suspect,
                  "start_uncertainty_s": failure.start_uncertainty_s}
        kind = "LONG_POWER_FAILURE" if failure.long else "SHORT_POWER_FAILURE"
        return [self.recorder.record(ec.code("POWER_UP"), failure.end_utc, {"duration_s": failure.duration_s}),
                self.recorder.record(ec.code(kind), failure.end_utc, detail)]

    def _run_tamper(self, utc: _dt.datetime, mono_s: float, reading: Reading | None,
                    inputs: InputStates) -> list[EventEntry]:
        events = self.tamper.update(utc, mono_s, reading, inputs)
        if events:
            self._save(_TAMPER_KEY, {"active": self.tamper.status_names()})
        return [self.recorder.record(e.code, e.utc, e.detail) for e in events]

    def _run_voltage(self, utc: _dt.datetime, mono_s: float, reading: Reading) -> list[EventEntry]:
        events = self.voltage.update(utc, mono_s, reading)
        if events:
            self._save(_VOLTAGE_KEY, {p.value: lvl.value for p, lvl in self.voltage.levels.items()})
        return [self.recorder.record(e.code, e.utc, {"voltage_v": round(e.voltage_v, 2)}) for e in events]

    # --- accessors for the LCD, the API and DLMS --------------------------------------------
    def tamper_status(self) -> list[str]:
        """Names of the active tampers (e.g. ``["terminal_cover_open"]``)."""
        return self.tamper.status_names()

    def alarm_register(self) -> int:
        """The alarm register 0-0:97.98.0.255."""
        return self.alarms.value

    def alarm_filter(self) -> int:
        """The alarm filter 0-0:97.98.10.255."""
        return self.alarms.filter

    def set_alarm_filter(self, mask: int, utc: _dt.datetime) -> None:
        """Write the alarm filter and record "one or more parameters changed"."""
        self.alarms.set_filter(mask)
        self.recorder.record(ec.code("PARAMETERS_CHANGED"), utc, {"object": "0.0.97.98.10.255"})

    def clear_alarms(self, utc: _dt.datetime, mask: int = ALL_BITS) -> int:
        """Clear alarm bits (command); records "alarm register cleared"; returns the cleared bits."""
        cleared = self.alarms.clear(mask)
        self.recorder.record(ec.code("ALARM_REGISTER_CLEARED"), utc, {"cleared": cleared})
        return cleared

    def power_counters(self) -> dict[str, int]:
        """Power-failure counters: any phase (0-0:96.7.21.255), long (0-0:96.7.9.255), long time (s)."""
        s = self.power.state
        return {"failures": s.failures, "long_failures": s.long_failures,
                "long_failure_time_s": s.long_failure_time_s}

    def recent_events(self, limit: int = 20) -> list[dict[str, object]]:
        """The newest ``limit`` events across all logs, newest first (``meterctl events``)."""
        return [e.as_dict() for e in self.recorder.recent(limit)]

    def profile(self, obis: str) -> EventLog | None:
        """The event log (a ProfileBuffer) with profile OBIS ``obis``, or None."""
        return self.recorder.profile(obis)

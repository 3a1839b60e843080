"""Supervision in the meter: event logs, tamper detection, voltage events, power cuts, alarms.

Wires :class:`meterd.services.supervision.Supervision` into the daemon:

* event logs and supervision state in ``<state_dir>/events.db`` (SQLite, WAL, one transaction per
  event); ``daemon.services["events"]`` is the :class:`~meterd.core.events.EventRecorder` every
  feature records into, ``daemon.services["supervision"]`` the service;
* inputs: the terminal-cover switch and the magnet sensor are (re)built on the section's pins
  on ``daemon.hardware.pin_factory``; in simulation they are registered in
  ``sim.input_pins`` so the scenario signals ``cover_open`` and ``magnetic_field`` drive them
  (the cover switch is normally closed to GND: an open cover lets the pin go high);
* per cycle (``daemon.cycle_hooks``): ``Supervision.on_cycle`` with the reading and the debounced
  inputs (tampers, under/over/missing voltage per phase, power-cut detection, heartbeat);
* at attach: ``on_start`` accounts the outage that stopped the meter (short or long against
  ``long_failure_s``, from the last-gasp time or else the last heartbeat); at shutdown
  ``on_stop`` marks a clean stop (not an outage);
* the power-fail input: its edge records "power down" at once, after the daemon's last-gasp
  energy checkpoint (energy first: it is the larger loss);
* clock sets: "clock adjusted (old)" at the old time and "(new)" at the new time, with the source;
* ``daemon.meter.profiles``: every log by its OBIS (0-0:99.98.x.255, 1-0:99.97.0.255); COSEM
  objects from :mod:`meterd.cosem.objects_supervision`; the status flag ``tamper`` while a
  tamper is active; ``status_extras["tamper"]`` (active tampers) and ``["alarms"]``;
* routes ``GET /events`` (newest 50 across logs), ``POST /events {"limit": N, "log": name}``,
  ``POST /alarms/clear {"mask": M}`` (default all bits).

Heartbeat: the power-fail input (the supply supervisor's last gasp) dates a power cut exactly.
Without it (a crash of meterd, a supervisor that did not fire) the outage starts at the last-alive
time: saved in SQLite every ``heartbeat_period_s`` (default 300 s: one small transaction every
five minutes, for SD cards) and, every second, in ``alive_file`` (:class:`AliveFile`, 16 bytes
rewritten in place, no flash wear): by default in meterd's runtime directory (``/run/meterd``,
tmpfs, kept across a crash or restart of meterd but not across a power cut; in simulation the
state directory), or the battery-backed RAM of an RTC that has some (``/sys/bus/nvmem/devices/
<rtc>_nvram0/nvmem`` for a DS1307 or MCP7940, not the board's PCF2129), which also survives a
power cut; ``"off"`` disables it. The outage's "power down" carries the start uncertainty (s). Section ``[supervision]``: pins and
debounce (s), tamper thresholds (W, A, V, %), minimum durations (s) per detector, voltage
thresholds (V), outage short/long limit (s), heartbeat period (s), log depths (entries), alarm
filter. A cover opened while the meter is unpowered is read at start from the RTC's battery-backed
timestamp input (``rtc_tamper_file``, :func:`read_rtc_tamper_latch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hw.inputs import COVER_OPEN, MAGNETIC_FIELD, POWER_FAIL, InputConfig
from meterd.api.server import ApiError
from meterd.app.config import rng
from meterd.core import event_codes as ec
from meterd.core.alarms import ALL_BITS
from meterd.core.errors import MeterError
from meterd.core.event_codes import LOG_OBIS, LogId
from meterd.core.power_fail import PowerFailSettings
from meterd.core.tamper import Persistence, TamperKind, TamperSettings
from meterd.cosem.objects_supervision import supervision_factory
from meterd.services.supervision import Supervision, SupervisionSettings, VoltageSettings
from meterd.store.event_store import SqliteEventStore

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.supervision")

_PIN = rng(0, 27)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
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

    def settings(self) -> SupervisionSettings:
        """The service settings this section gives."""
        both = Persistence
        tamper = TamperSettings(
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
            missing=Persistence(self.missing_voltage_min_s, self.missing_voltage_min_s))
        power = PowerFailSettings(supply_loss_v=self.supply_loss_v, long_failure_s=self.long_failure_s,
                                  heartbeat_period_s=self.heartbeat_period_s)
        depths = {log_id: getattr(self, f"{log_id.value}_depth") for log_id in LogId}
        return SupervisionSettings(tamper=tamper, voltage=voltage, power=power, depths=depths,
                                   alarm_filter=self.alarm_filter)


SECTION = SupervisionSection


def attach(daemon: Daemon) -> None:
    """Build the supervision with its store and hook it into the meter."""
    cfg = daemon.cfg
    section: SupervisionSection = cfg.feature("supervision")
    meter, clock, hw = daemon.meter, daemon.clock, daemon.hardware
    assert meter is not None and clock is not None and hw is not None
    store = SqliteEventStore(cfg.state_dir / "events.db")
    daemon.closers.append(store.close)
    path = alive_path(section.alive_file, cfg.state_dir, sim=hw.sim is not None)
    supervision = Supervision(section.settings(), store, alive=AliveFile(path) if path is not None else None)
    failure = supervision.on_start(clock.utc())
    if failure is not None:
        log.info("%s power failure of %d s ended at start", "long" if failure.long else "short", failure.duration_s)
    daemon.closers.append(lambda: supervision.on_stop(clock.utc()))  # runs before the store closes
    _build_inputs(daemon, section)
    read_rtc_tamper_latch(Path(section.rtc_tamper_file) if section.rtc_tamper_file else None, supervision,
                          clock.utc(), hw.inputs.states()[COVER_OPEN])

    daemon.cycle_hooks.append(InputEdges(daemon, supervision).on_cycle)
    power_fail = PowerFailEvents(daemon, supervision)
    hw.inputs.add_listener(power_fail.changed, (POWER_FAIL,))
    daemon.services["power_fail_events"] = power_fail
    meter.clock_listeners.append(_clock_listener(supervision))
    meter.status_sources.append(lambda: {"tamper"} if supervision.tamper_status() else set())
    for obis in LOG_OBIS.values():
        buffer = supervision.profile(obis.profile)
        assert buffer is not None
        meter.profiles[obis.profile] = buffer
    daemon.services["events"] = supervision.recorder
    daemon.services["supervision"] = supervision
    daemon.cosem_factories.append(supervision_factory(supervision))
    daemon.status_extras["tamper"] = supervision.tamper_status
    daemon.status_extras["alarms"] = lambda: alarms_view(supervision)
    _routes(daemon, supervision)
    daemon.info["supervision"] = (f"events in {store.path.name}, cover pin {section.cover_pin}, "
                                  f"magnet pin {section.magnet_pin}, long failure ≥ {section.long_failure_s:g} s")


def alive_path(setting: str, state_dir: Path, sim: bool) -> Path | None:
    """Where the fine last-alive time goes: ``setting`` as an absolute path, None for "off", else
    meterd's runtime directory (``$RUNTIME_DIRECTORY``, ``/run/meterd``), the state directory in
    simulation."""
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    if sim:
        return state_dir / "alive"
    return Path(os.environ.get("RUNTIME_DIRECTORY", "/run/meterd").split(":")[0]) / "alive"


class AliveFile:
    """The last-alive time (ms since the epoch) in 16 bytes rewritten in place: the milliseconds
    and their complement (little-endian uint64), so a torn or foreign content reads as nothing. A plain file on tmpfs, or an RTC's nvmem. Write failures are logged once, never raised:
    this only refines the dating of an outage."""

    resolution_s = 1.0
    _FORMAT = struct.Struct("<QQ")
    _MASK = 0xFFFF_FFFF_FFFF_FFFF

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failed = False

    def read(self) -> _dt.datetime | None:
        """The time last written, or None (absent, unreadable or inconsistent)."""
        try:
            with self.path.open("rb") as f:
                raw = f.read(self._FORMAT.size)
        except OSError:
            return None
        if len(raw) != self._FORMAT.size:
            return None
        ms, check = self._FORMAT.unpack(raw)
        if ms == 0 or check != ms ^ self._MASK:
            return None
        return _EPOCH + _dt.timedelta(milliseconds=ms)

    def write(self, utc: _dt.datetime) -> None:
        """Rewrite the 16 bytes with ``utc`` (ms, rounded down)."""
        ms = (utc - _EPOCH) // _dt.timedelta(milliseconds=1)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, self._FORMAT.pack(ms, ms ^ self._MASK), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._failed:
                log.warning("last-alive file %s not writable: %s", self.path, exc)
            self._failed = True


def read_rtc_tamper_latch(path: Path | None, supervision: Supervision, now_utc: _dt.datetime,
                          cover_open_now: bool) -> None:
    """At start: a cover opened while the meter was unpowered, latched by the RTC's battery-backed
    timestamp input (PCF2127/2129, RV3028: sysfs ``timestamp0``, seconds since the epoch, 0 when
    nothing was latched). One "cover removed" at the latched time; "cover closed" at start when
    the cover input (``cover_open_now``, debounced) already shows it closed, else when it closes
    (:meth:`Supervision.on_latched_cover_open`). Then cleared (write 0) when the driver allows it;
    the stored latch time avoids repeats. Absent file (no such RTC, or the simulator): nothing to do."""
    if path is None or not path.exists():
        return
    try:
        text = path.read_text(encoding="ascii").strip()
        seconds = int(text) if text else 0
    except (OSError, ValueError) as exc:
        log.warning("RTC tamper timestamp %s unreadable: %s", path, exc)
        return
    if seconds <= 0:
        return
    opened = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    if supervision.on_latched_cover_open(opened, now_utc, cover_open_now):
        log.warning("terminal cover was opened while unpowered, at %s (RTC latch)", opened.isoformat())
    # a read-only latch is cleared by the RTC driver itself; the stored time avoids repeats
    with contextlib.suppress(OSError):
        path.write_text("0", encoding="ascii")


def _build_inputs(daemon: Daemon, section: SupervisionSection) -> None:
    """Cover switch (NC to GND: open = pin high) and magnet sensor (active low) on the section's pins."""
    hw, clock = daemon.hardware, daemon.clock
    assert hw is not None and clock is not None
    cover = hw.inputs.replace(COVER_OPEN, InputConfig(section.cover_pin, pull_up=True, active_when_pressed=False,
                                                      debounce_s=section.cover_debounce_s), hw.pin_factory, clock.mono)
    magnet = hw.inputs.replace(MAGNETIC_FIELD, InputConfig(section.magnet_pin, pull_up=True, active_when_pressed=True,
                                                           debounce_s=section.magnet_debounce_s),
                               hw.pin_factory, clock.mono)
    sim = hw.sim
    if sim is None:
        return
    pins = hw.pin_factory
    pins.pin(section.cover_pin).drive_low()  # the simulated cover starts closed
    cover.resync()
    magnet.resync()
    sim.input_pins[COVER_OPEN] = section.cover_pin
    sim.input_pins[MAGNETIC_FIELD] = section.magnet_pin

    def cover_signal(value: Any) -> None:
        mock = pins.pin(section.cover_pin)
        if value:
            mock.drive_high()  # switch released: the pull-up wins
        else:
            mock.drive_low()

    sim.extra_signals[COVER_OPEN] = cover_signal


class InputEdges:
    """The per-cycle hook. A cover or magnet change confirmed by the debounce is first shown to
    the supervision at the time of its edge (inputs only, the electrical detectors frozen), so a
    tamper episode is stamped when the input moved, not when the next cycle confirmed it."""

    WATCHED = (COVER_OPEN, MAGNETIC_FIELD)

    def __init__(self, daemon: Daemon, supervision: Supervision) -> None:
        assert daemon.hardware is not None and daemon.clock is not None
        self._inputs = daemon.hardware.inputs
        self._clock = daemon.clock
        self._supervision = supervision
        self._last = {name: self._inputs.states()[name] for name in self.WATCHED}

    def on_cycle(self, result: Any) -> None:
        """Run the supervision for one metering cycle."""
        states = self._inputs.states()
        now_mono, now_utc = self._clock.mono(), self._clock.utc()
        edges = sorted((self._inputs.inputs[n].since_s, n) for n in self.WATCHED if states[n] != self._last[n])
        seen = dict(states)
        seen.update(self._last)
        for since_s, name in edges:
            seen[name] = states[name]
            at_s = min(since_s, now_mono)
            edge_utc = now_utc - _dt.timedelta(seconds=now_mono - at_s)
            self._supervision.on_cycle(edge_utc, None, seen, mono_s=at_s)
        self._last = {name: states[name] for name in self.WATCHED}
        self._supervision.on_cycle(now_utc, result.reading, states, mono_s=now_mono)


class PowerFailEvents:
    """The power-fail edge → "power down" at once. On the loop's thread the record is queued
    behind the daemon's last-gasp energy checkpoint (energy first: it is the larger loss); an
    edge on a real pin's thread is handed to the loop; without a loop (in-process meter) it is
    recorded directly."""

    def __init__(self, daemon: Daemon, supervision: Supervision) -> None:
        assert daemon.clock is not None
        self._clock = daemon.clock
        self._supervision = supervision
        self.loop: asyncio.AbstractEventLoop | None = None

    def changed(self, _name: str, active: bool, mono_s: float) -> None:
        """Input listener ``(name, active, mono_s)``."""
        utc = self._clock.utc()

        def act() -> None:
            self._supervision.on_power_fail_input(utc, mono_s, active)

        if threading.current_thread() is threading.main_thread():
            try:
                asyncio.get_running_loop().call_soon(act)
            except RuntimeError:
                act()
        elif self.loop is not None:
            loop = self.loop
            loop.call_soon_threadsafe(lambda: loop.call_soon(act))
        else:
            act()


async def start(daemon: Daemon) -> None:
    """Hand real-pin power-fail edges to the running loop."""
    handler = daemon.services.get("power_fail_events")
    if isinstance(handler, PowerFailEvents):
        handler.loop = asyncio.get_running_loop()


def _clock_listener(supervision: Supervision) -> Any:
    def on_clock_set(old: _dt.datetime, new: _dt.datetime, source: str) -> None:
        supervision.recorder.record(ec.code("CLOCK_ADJUSTED_OLD"), old, {"source": source})
        supervision.recorder.record(ec.code("CLOCK_ADJUSTED_NEW"), new, {"source": source})
    return on_clock_set


def alarms_view(supervision: Supervision) -> dict[str, Any]:
    """Alarm register and filter (hex) and the names of the alarms set."""
    return {"register": f"0x{supervision.alarm_register():08X}", "filter": f"0x{supervision.alarm_filter():08X}",
            "active": [a.name.lower() for a in supervision.alarms.active()]}


def _limit(body: dict[str, Any]) -> int:
    limit = body.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ApiError(400, "limit must be an integer 1..10000")
    return limit


def events_view(supervision: Supervision, limit: int, log_name: str | None = None) -> dict[str, Any]:
    """The newest ``limit`` events, newest first, across all logs or from one log."""
    if log_name is None:
        return {"events": supervision.recent_events(limit)}
    try:
        log_id = LogId(log_name)
    except ValueError:
        raise ApiError(400, f"unknown log {log_name!r} (known: {', '.join(x.value for x in LogId)})") from None
    entries = supervision.recorder.log(log_id).entries()[::-1][:limit]
    return {"log": log_id.value, "obis": LOG_OBIS[log_id].profile, "events": [e.as_dict() for e in entries]}


def _routes(daemon: Daemon, supervision: Supervision) -> None:
    clock = daemon.clock
    assert clock is not None

    def get_events(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, events_view(supervision, 50)

    def post_events(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("log")
        return 200, events_view(supervision, _limit(body), None if name is None else str(name))

    def clear_alarms(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mask = body.get("mask", ALL_BITS)
        if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask <= ALL_BITS:
            raise ApiError(400, "mask must be a 32-bit unsigned integer")
        cleared = supervision.clear_alarms(clock.utc(), mask)
        return 200, {"cleared": f"0x{cleared:08X}", **alarms_view(supervision)}

    daemon.api.route("GET", "/events", get_events)
    daemon.api.route("POST", "/events", post_events)
    daemon.api.route("POST", "/alarms/clear", clear_alarms)

"""Faults a test rig can force on a simulated meter's world, each reversible, by name.

Every kind acts on the world around the meter (grid, wiring, supply, input pins, the relay's
coils and auxiliary contact, the RTC's battery flags), never on the meter's own state: the
meter finds the fault through its real detection code (supervision, power quality, load
control, battery watch) and records the events it would on a real bench. The metering IC's
faults (:class:`hw.atm90e36.faults.ChipFault`) are listed here too; :class:`SimWorld` times them.

A kind is started with its parameters (validated against :class:`Param` ranges) and returns an
undo; clearing the fault runs it. Undo restores only what the fault changed and only where it is
still as the fault left it, so a load change made meanwhile (``sim set``, a scenario) is kept.

Groups and kinds (parameters in brackets, see :data:`KINDS` for ranges and defaults):

* grid: ``voltage_dip`` [phase, residual_pct], ``voltage_swell`` [phase, magnitude_pct],
  ``interruption`` [phase], ``harmonics`` [phase, order, magnitude_pct], ``flicker`` [phase,
  f_mod_hz, delta_u_pct], ``unbalance`` [phase, voltage_pct, current_pct], ``phase_sequence``,
  ``frequency`` [frequency_hz];
* wiring: ``missing_neutral`` (the star point floats with the load's unbalance),
  ``swapped_phases`` [phase, other] (two voltage leads exchanged), ``reversed_ct`` [phase];
* relay: ``relay_welded`` (the contacts and the auxiliary contact stay closed after an open
  command), ``relay_no_feedback`` (the auxiliary contact is frozen), ``relay_coil_open`` (the
  coils carry no current: the relay does not move);
* supply: ``power_cut`` (the power-fail input falls, then the supply goes: last gasp),
  ``power_cut_no_last_gasp`` (the supply goes, the power-fail input says nothing);
* tamper: ``terminal_cover_open``, ``magnet``;
* rtc: ``rtc_battery_low`` (the RTC reports its backup battery low), ``rtc_battery_lost`` [when] (the
  backup battery gone; the RTC's time lost at once, as over an outage, or at the next supply loss:
  the meter flags its clock invalid until a clock set or the fault's end, which sets the RTC from
  the meter's time);
* time: ``ntp_jump`` [offset_s] (the NTP server's time jumps by offset_s; its end jumps it back),
  ``ntp_lost`` (the NTP server stops answering: the meter free-runs, doubtful after
  ``[time] max_unsynced_h``);
* links: ``ciu_cable_cut`` (the MCU–CIU cable: nothing crosses), ``rs485_noise`` [rate, line]
  (bytes corrupted on the simulated CIU cable and/or the DLMS HDLC line: the link layers drop the
  garbled frames, the CIU link goes down when too few get through);
* links (media): ``medium_cut`` [medium] (the simulated Ethernet or cellular medium: its connects fail
  as an unreachable network's; the media fallback finds it), ``modem_signal_lost``,
  ``modem_deregistered`` [denied], ``modem_bearer_drop``, ``modem_sim_removed``,
  ``modem_connect_refused`` (scripted into the ModemManager stand-in; clearing restores a
  registered modem and the meter reconnects by itself);
* chip: ``brown_out``, ``miso_high``, ``miso_low``, ``bit_flips`` [rate, seed], ``checksum``,
  ``spi_timeout``, ``late_cycle``.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hw.atm90e36.faults import ChipFault
from hw.relay import RelayFault
from hw.sim.grid import Flicker, Harmonic

if TYPE_CHECKING:
    from meterd.app.sim_world import SimWorld

Undo = Callable[[], None]
PHASES = ("L1", "L2", "L3")


@dataclass(frozen=True)
class Param:
    """A fault parameter: a number within ``lo..hi`` (``unit``) or one of ``choices``."""

    name: str
    default: float | str
    lo: float = 0.0
    hi: float = 0.0
    unit: str = ""
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> float | str:
        """The checked value; ValueError naming the parameter otherwise."""
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{self.name}={value!r}: choose from {list(self.choices)}")
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name} must be a number")
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{self.name}={value} out of range {self.lo}..{self.hi} {self.unit}".rstrip())
        return float(value)

    def describe(self) -> dict[str, Any]:
        """For ``GET /sim/faults``."""
        if self.choices:
            return {"name": self.name, "default": self.default, "choices": list(self.choices)}
        return {"name": self.name, "default": self.default, "min": self.lo, "max": self.hi, "unit": self.unit}


@dataclass(frozen=True)
class FaultKind:
    """One injectable fault: its group, what it does, the events the meter records, parameters,
    and ``start(world, params) -> undo``."""

    name: str
    group: str
    summary: str
    events: tuple[str, ...]
    params: tuple[Param, ...]
    start: Callable[[SimWorld, Mapping[str, Any]], Undo]

    def parse(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters from a request or scenario table (defaults filled in); unknown keys refused."""
        known = {p.name: p for p in self.params}
        unknown = set(body) - set(known)
        if unknown:
            raise ValueError(f"fault {self.name}: unknown parameter(s) {sorted(unknown)}; "
                             f"it takes {sorted(known) or 'none'}")
        return {name: p.parse(body[name]) if name in body else p.default for name, p in known.items()}

    def describe(self) -> dict[str, Any]:
        """For ``GET /sim/faults``."""
        return {"kind": self.name, "group": self.group, "summary": self.summary, "events": list(self.events),
                "params": [p.describe() for p in self.params]}


def _phase_param(default: str = "all", allow_all: bool = True) -> Param:
    return Param("phase", default, choices=("all", *PHASES) if allow_all else PHASES)


def _phases(params: Mapping[str, Any]) -> tuple[int, ...]:
    phase = params["phase"]
    return (0, 1, 2) if phase == "all" else (PHASES.index(phase),)


def _patch_phases(world: SimWorld, changes: Mapping[int, Mapping[str, Any]]) -> Undo:
    """Change fields of some phases now; the undo puts back each field that still holds the
    fault's value (a field changed meanwhile by someone else is left alone)."""
    state = world.grid.state
    before = {i: {k: getattr(state.phases[i], k) for k in c} for i, c in changes.items()}
    phases = list(state.phases)
    for i, c in changes.items():
        phases[i] = replace(phases[i], **c)
    world.grid.set_state(replace(state, phases=(phases[0], phases[1], phases[2])))
    applied = {i: {k: getattr(phases[i], k) for k in c} for i, c in changes.items()}

    def undo() -> None:
        now = world.grid.state
        restored = list(now.phases)
        for i, fields in before.items():
            back = {k: v for k, v in fields.items() if getattr(now.phases[i], k) == applied[i][k]}
            restored[i] = replace(restored[i], **back)
        world.grid.set_state(replace(now, phases=(restored[0], restored[1], restored[2])))
    return undo


def _scaled_voltage(factor_key: str, percent: bool = True) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, params: Mapping[str, Any]) -> Undo:
        factor = float(params[factor_key]) / 100.0 if percent else float(params[factor_key])
        phases = world.grid.state.phases
        return _patch_phases(world, {i: {"voltage_v": phases[i].voltage_v * factor} for i in _phases(params)})
    return start


def _interruption(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    return _patch_phases(world, {i: {"on": False} for i in _phases(params)})


def _harmonics(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    order, fraction = int(params["order"]), float(params["magnitude_pct"]) / 100.0
    phases = world.grid.state.phases
    changes: dict[int, dict[str, Any]] = {}
    for i in _phases(params):
        kept = tuple(h for h in phases[i].u_harmonics if h.order != order)
        changes[i] = {"u_harmonics": (*kept, Harmonic(order, fraction))}
    return _patch_phases(world, changes)


def _flicker(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    flicker = Flicker("rect", float(params["f_mod_hz"]), float(params["delta_u_pct"]))
    return _patch_phases(world, {i: {"flicker": flicker} for i in _phases(params)})


def _unbalance(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    i = PHASES.index(params["phase"])
    ph = world.grid.state.phases[i]
    return _patch_phases(world, {i: {"voltage_v": ph.voltage_v * float(params["voltage_pct"]) / 100.0,
                                     "current_a": ph.current_a * float(params["current_pct"]) / 100.0}})


def _phase_sequence(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
    """L2 and L3 exchanged upstream: the sequence turns L1-L3-L2 (each load keeps its angle)."""
    phases = world.grid.state.phases
    return _patch_phases(world, {1: {"voltage_angle_deg": phases[2].voltage_angle_deg},
                                 2: {"voltage_angle_deg": phases[1].voltage_angle_deg}})


def _frequency(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    before = world.grid.state.frequency_hz
    target = float(params["frequency_hz"])
    world.grid.set_frequency(target)

    def undo() -> None:
        if world.grid.state.frequency_hz == target:
            world.grid.set_frequency(before)
    return undo


def _missing_neutral(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
    """The neutral conductor is open: each phase's load (an impedance, from its voltage and
    current now) sits between its line and a floating star point at V_N = Σ Y_k·U_k / Σ Y_k, so
    an unbalanced load shifts the phase voltages (one low, one high) and no neutral current flows."""
    phases = world.grid.state.phases
    volts = [cmath.rect(p.u1_v, math.radians(p.voltage_angle_deg)) for p in phases]
    admittances = [cmath.rect(p.i1_a / p.u1_v, -math.radians(p.phi_deg)) if p.u1_v > 0 else 0j for p in phases]
    total = sum(admittances, 0j)
    star = sum((y * u for y, u in zip(admittances, volts, strict=True)), 0j) / total if total else 0j
    changes: dict[int, dict[str, Any]] = {}
    for i, (p, u, y) in enumerate(zip(phases, volts, admittances, strict=True)):
        shifted = u - star
        changes[i] = {"voltage_v": abs(shifted), "voltage_angle_deg": math.degrees(cmath.phase(shifted)),
                      "current_a": abs(shifted * y) if p.load_connected else p.current_a}
    return _patch_phases(world, changes)


def _swapped_phases(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    """The voltage leads of two phases exchanged at the meter: each current element sees the
    other phase's voltage (the current, set by the load, keeps its angle)."""
    a, b = PHASES.index(params["phase"]), PHASES.index(params["other"])
    if a == b:
        raise ValueError("swapped_phases: phase and other must differ")
    phases = world.grid.state.phases

    def lead(i: int, j: int) -> dict[str, Any]:
        current_angle = phases[i].current_angle_deg
        angle = phases[j].voltage_angle_deg
        return {"voltage_angle_deg": angle, "voltage_v": phases[j].voltage_v,
                "phi_deg": (angle - current_angle + 180.0) % 360.0 - 180.0}
    return _patch_phases(world, {a: lead(a, b), b: lead(b, a)})


def _reversed_ct(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    i = PHASES.index(params["phase"])
    phi = world.grid.state.phases[i].phi_deg
    return _patch_phases(world, {i: {"phi_deg": (phi + 360.0) % 360.0 - 180.0}})


def _relay_fault(fault: RelayFault) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
        relay = _relay(world)
        relay.sim.fault = fault

        def undo() -> None:
            if relay.sim.fault is fault:
                relay.sim.fault = RelayFault.NONE
                relay.sim.sync_feedback()
        return undo
    return start


def _relay_coil_open(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
    """Both coils open-circuit: the driver's outputs switch, no current flows, nothing moves."""
    relay = _relay(world)
    pins = [world.pins.pin(n) for n in relay.coil_pins]
    listeners = [getattr(pin, "listener") for pin in pins]  # noqa: B009 (set by the simulated relay)
    for pin in pins:
        setattr(pin, "listener", _dead_coil)  # noqa: B010

    def undo() -> None:
        for pin, listener in zip(pins, listeners, strict=True):
            setattr(pin, "listener", listener)  # noqa: B010
    return undo


def _dead_coil(_on: bool) -> None:
    """An open coil: the output's edges reach no winding."""


def _relay(world: SimWorld) -> SimRelayPins:
    if world.relay is None:
        raise ValueError("no simulated relay: enable [load_control] with backend = \"sim\"")
    return world.relay


@dataclass(frozen=True)
class SimRelayPins:
    """The simulated relay and its coil pins (BCM), as the world's hand on them."""

    sim: Any
    coil_pins: tuple[int, int]


def _power_cut(last_gasp: bool) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
        if last_gasp:
            world.power_cut(True)
            return lambda: world.power_cut(False)
        undo = _patch_phases(world, {i: {"on": False} for i in range(3)})
        world.supply_changed(True)

        def restore() -> None:
            undo()
            world.supply_changed(False)
        return restore
    return start


def _input(signal: str) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
        handler = world.signal_handlers().get(signal)
        if handler is None:
            raise ValueError(f"the simulated meter has no {signal} input (supervision disabled?)")
        handler(True)
        return lambda: handler(False)
    return start


def _rtc_lost(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    handler = world.signal_handlers().get("rtc_lost")
    if handler is None:
        raise ValueError("the simulated meter has no RTC (display off?)")
    handler(True if params["when"] == "now" else "power_cut")
    return lambda: handler(False)


def _ntp_jump(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    handler = world.signal_handlers().get("ntp_jump")
    if handler is None:
        raise ValueError("the simulated meter has no NTP source ([time] source)")
    offset = float(params["offset_s"])
    handler(offset)
    return lambda: handler(-offset)


def _ntp_lost(world: SimWorld, _params: Mapping[str, Any]) -> Undo:
    handler = world.signal_handlers().get("ntp_reachable")
    if handler is None:
        raise ValueError("the simulated meter has no NTP source ([time] source)")
    handler(False)
    return lambda: handler(True)


def _line_noise(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    """Noise on RS-485 lines (``line``: ``ciu``, ``dlms`` (HDLC) or ``both``): each byte crossing
    them, either way, has one bit flipped with probability ``rate``."""
    names = {"ciu": ("ciu_noise",), "dlms": ("dlms_noise",), "both": ("ciu_noise", "dlms_noise")}[str(params["line"])]
    signals = world.signal_handlers()
    handlers = [signals[n] for n in names if n in signals]
    if not handlers or (params["line"] != "both" and len(handlers) != len(names)):
        raise ValueError(f"the simulated meter has no {params['line']} RS-485 line (feature off, or not a pty)")
    for handler in handlers:
        handler(float(params["rate"]))

    def undo() -> None:
        for handler in handlers:
            handler(0.0)
    return undo


def _medium_cut(world: SimWorld, params: Mapping[str, Any]) -> Undo:
    handler = world.signal_handlers().get(f"{params['medium']}_cut")
    if handler is None:
        raise ValueError("the simulated meter has no communication media (enable [comms])")
    handler(True)
    return lambda: handler(False)


def _modem(action: str) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, params: Mapping[str, Any]) -> Undo:
        handler = world.signal_handlers().get("modem")
        if handler is None:
            raise ValueError('the simulated meter has no modem (enable [comms.modem] with bus = "sim")')
        handler("denied" if action == "deregistered" and params.get("denied") == "yes" else action)
        return lambda: handler("restore")
    return start


def _chip(fault: ChipFault) -> Callable[[SimWorld, Mapping[str, Any]], Undo]:
    def start(world: SimWorld, params: Mapping[str, Any]) -> Undo:
        world.inject_fault(fault, None, rate=float(params.get("rate", 1e-3)), seed=int(params.get("seed", 0)))

        def undo() -> None:
            world.clear_fault(fault)
        return undo
    return start


_P = _phase_param
_GRID_PQ = ("VOLTAGE_DIP",)
KINDS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("voltage_dip", "grid", "the voltage falls to residual_pct of its value", _GRID_PQ,
              (_P(), Param("residual_pct", 50.0, 1.0, 90.0, "%")), _scaled_voltage("residual_pct")),
    FaultKind("voltage_swell", "grid", "the voltage rises to magnitude_pct of its value", ("VOLTAGE_SWELL",),
              (_P(), Param("magnitude_pct", 120.0, 111.0, 200.0, "%")), _scaled_voltage("magnitude_pct")),
    FaultKind("interruption", "grid", "the phase(s) go dead (no voltage, no current)",
              ("SHORT_INTERRUPTION", "LONG_INTERRUPTION", "MISSING_VOLTAGE_Lx"), (_P(),), _interruption),
    FaultKind("harmonics", "grid", "a voltage harmonic of order at magnitude_pct of the fundamental", (),
              (_P(), Param("order", 5.0, 2.0, 50.0), Param("magnitude_pct", 8.0, 0.1, 30.0, "%")), _harmonics),
    FaultKind("flicker", "grid", "rectangular voltage modulation (flicker) at f_mod_hz, delta_u_pct peak-to-peak", (),
              (_P(), Param("f_mod_hz", 8.8, 0.5, 33.0, "Hz"), Param("delta_u_pct", 1.0, 0.1, 20.0, "%")), _flicker),
    FaultKind("unbalance", "grid", "one phase's voltage and load scaled (voltage_pct, current_pct)",
              ("PHASE_ASYMMETRY",), (_P("L3", allow_all=False), Param("voltage_pct", 100.0, 50.0, 150.0, "%"),
                                     Param("current_pct", 10.0, 0.0, 400.0, "%")), _unbalance),
    FaultKind("phase_sequence", "grid", "L2 and L3 exchanged upstream: sequence L1-L3-L2",
              ("PHASE_SEQUENCE_REVERSAL",), (), _phase_sequence),
    FaultKind("frequency", "grid", "the grid frequency steps to frequency_hz", (),
              (Param("frequency_hz", 49.0, 40.0, 70.0, "Hz"),), _frequency),
    FaultKind("missing_neutral", "wiring", "the neutral is open: the star point floats with the load's unbalance",
              ("UNDER_VOLTAGE_Lx", "OVER_VOLTAGE_Lx"), (), _missing_neutral),
    FaultKind("swapped_phases", "wiring", "the voltage leads of phase and other exchanged at the meter",
              ("PHASE_SEQUENCE_REVERSAL", "REVERSE_CURRENT_Lx"),
              (_P("L1", allow_all=False), Param("other", "L2", choices=PHASES)), _swapped_phases),
    FaultKind("reversed_ct", "wiring", "the current of one phase measured reversed", ("REVERSE_CURRENT_Lx",),
              (_P("L1", allow_all=False),), _reversed_ct),
    FaultKind("relay_welded", "relay", "contacts welded: they and the auxiliary contact stay closed",
              ("DISCONNECT_FAILURE", "RELAY_FAULT_RETRIES_EXHAUSTED"), (), _relay_fault(RelayFault.WELDED)),
    FaultKind("relay_no_feedback", "relay", "the auxiliary contact is frozen at its present level",
              ("DISCONNECT_FAILURE", "RELAY_FAULT_RETRIES_EXHAUSTED"), (), _relay_fault(RelayFault.NO_FEEDBACK)),
    FaultKind("relay_coil_open", "relay", "the coils are open-circuit: the relay does not move",
              ("DISCONNECT_FAILURE", "RELAY_FAULT_RETRIES_EXHAUSTED"), (), _relay_coil_open),
    FaultKind("power_cut", "supply", "the power-fail input falls (last gasp), then the supply goes",
              ("POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE"), (), _power_cut(last_gasp=True)),
    FaultKind("power_cut_no_last_gasp", "supply", "the supply goes without a power-fail warning",
              ("MISSING_VOLTAGE_Lx", "SHORT_INTERRUPTION"), (), _power_cut(last_gasp=False)),
    FaultKind("terminal_cover_open", "tamper", "the terminal cover is removed",
              ("TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"), (), _input("cover_open")),
    FaultKind("magnet", "tamper", "a strong magnet at the meter", ("STRONG_DC_FIELD", "NO_STRONG_DC_FIELD"), (),
              _input("magnetic_field")),
    FaultKind("rtc_battery_low", "rtc", "the RTC reports its backup battery low", ("BATTERY_VOLTAGE_LOW",), (),
              _input("battery_low")),
    FaultKind("rtc_battery_lost", "rtc", "the RTC's backup battery is gone: its time is lost now (when = now, as "
              "after an outage) or at the next supply loss (when = power_cut)", ("BATTERY_VOLTAGE_LOW", "CLOCK_INVALID"),
              (Param("when", "now", choices=("now", "power_cut")),), _rtc_lost),
    FaultKind("ntp_jump", "time", "the NTP server's time jumps by offset_s (back again when the fault ends)",
              ("CLOCK_ADJUSTED_OLD", "CLOCK_ADJUSTED_NEW"),
              (Param("offset_s", 3600.0, -31_536_000.0, 31_536_000.0, "s"),), _ntp_jump),
    FaultKind("ntp_lost", "time", "the NTP server stops answering: the meter clock free-runs",
              ("TIME_UNTRUSTED", "TIME_TRUSTED"), (), _ntp_lost),
    FaultKind("ciu_cable_cut", "links", "the MCU–CIU RS-485 cable is cut: nothing crosses either way",
              ("CIU_LINK_LOST", "CIU_LINK_RESTORED"), (), _input("ciu_cable_cut")),
    FaultKind("rs485_noise", "links", "noise on the RS-485 lines (CIU, DLMS HDLC or both): a byte's bit flipped "
              "with probability rate", ("CIU_LINK_LOST",),
              (Param("rate", 0.01, 1e-6, 0.5), Param("line", "both", choices=("both", "ciu", "dlms"))), _line_noise),
    FaultKind("medium_cut", "links", "a communication medium is cut: connects through it fail",
              ("MEDIUM_UNHEALTHY", "MEDIUM_SWITCHED", "NO_MEDIUM"),
              (Param("medium", "ethernet", choices=("ethernet", "cellular")),), _medium_cut),
    FaultKind("modem_signal_lost", "links", "the modem loses coverage: no signal, searching, the bearer gone",
              ("MODEM_FAULT", "MODEM_BEARER_LOST"), (), _modem("signal_lost")),
    FaultKind("modem_deregistered", "links", "the network deregisters the modem (denied = yes: refuses it)",
              ("MODEM_FAULT", "MODEM_BEARER_LOST"), (Param("denied", "no", choices=("no", "yes")),),
              _modem("deregistered")),
    FaultKind("modem_bearer_drop", "links", "the network drops the data bearer; the meter reconnects with back-off",
              ("MODEM_BEARER_LOST", "MODEM_BEARER_UP"), (), _modem("bearer_drop")),
    FaultKind("modem_sim_removed", "links", "the SIM is taken out: the modem fails (sim-missing)",
              ("MODEM_FAULT", "MODEM_BEARER_LOST"), (), _modem("sim_removed")),
    FaultKind("modem_connect_refused", "links", "every Simple.Connect fails (e.g. a wrong APN)", (), (),
              _modem("connect_refused")),
    *(FaultKind(f.value, "chip", "metering IC fault (see hw.atm90e36.faults)",
                ("MEASUREMENT_SYSTEM_ERROR",) if f is not ChipFault.LATE_CYCLE else (),
                (Param("rate", 1e-3, 1e-9, 0.5), Param("seed", 0.0, 0.0, 2**31)) if f is ChipFault.BIT_FLIPS else (),
                _chip(f)) for f in ChipFault),
)}


def fault_kind(name: Any) -> FaultKind:
    """The kind called ``name``; ValueError listing the kinds otherwise."""
    kind = KINDS.get(str(name))
    if kind is None:
        raise ValueError(f"unknown fault {name!r}; choose from {sorted(KINDS)}")
    return kind


@dataclass
class ActiveFault:
    """A fault in force: its kind, parameters, end (meter monotonic s; inf = until cleared), undo."""

    kind: FaultKind
    params: dict[str, Any]
    until_s: float
    undo: Undo


def parse_fault_body(body: Mapping[str, Any]) -> tuple[FaultKind, float | None, dict[str, Any]]:
    """``{"kind", "duration_s", ...parameters}`` from the API or a scenario ``fault`` signal."""
    if not isinstance(body, Mapping):
        body = {"kind": body}
    kind = fault_kind(body.get("kind"))
    duration = body.get("duration_s")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration <= 86_400:
            raise ValueError(f"duration_s={duration!r}: expected 0 < duration_s <= 86400")
        duration = float(duration)
    params = kind.parse({k: v for k, v in body.items() if k not in ("kind", "duration_s")})
    if "seed" in params:
        params["seed"] = int(params["seed"])
    return kind, duration, params

"""The simulated world around a simulated meter: grid, metering IC, input pins.

It is what ``meterctl sim ...`` drives: phase loads (``set_load``), scenario files
(``load_scenario``), power cuts (``power_cut``: the grid goes dark and the supply supervisor's
power-fail pin goes low, exactly what the meter sees on a real bench), faults of the metering IC
and its SPI link (``inject_fault``: :class:`hw.atm90e36.faults.ChipFault`, for a duration in meter
seconds or until ``clear_fault``; ``late_cycle`` stalls the meter's own cycle instead), slow
storage (``slow_storage``: every write of the energy database takes ``delay_s`` longer, as on a
worn SD card; the write blocks the event loop, not the metering thread), and every rig fault of
:mod:`meterd.app.sim_faults` by name (``inject``, ``clear``, ``faults_view``; the scenario signals
``fault`` and ``fault_clear``).

Threads: on a running meter the chip is read on the metering thread while the API changes the
world on the event loop. :attr:`SimWorld.lock` (re-entrant) is the simulated SPI bus's lock too:
every change of the world below holds it, and so does every chip read, so a read never sees a
grid half changed and two threads' transfers never interleave.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hw.atm90e36.analog import AnalogBoard
from hw.atm90e36.faults import ChipFault
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid, GridError, phi_from_pf
from hw.sim.pins import SimPins
from hw.sim.scenario import Scenario, ScenarioError
from meterd.app.sim_faults import KINDS, ActiveFault, SimRelayPins, parse_fault_body

PHASE_NAMES = {"A": "L1", "B": "L2", "C": "L3", "L1": "L1", "L2": "L2", "L3": "L3"}
_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run a :class:`SimWorld` method with the world's lock held."""
    @functools.wraps(method)
    def wrapper(self: SimWorld, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


_PF = re.compile(r"^\s*(-?)\s*(\d+(?:\.\d*)?|\.\d+)\s*([LlCc]?)\s*$")


def parse_power_factor(text: str) -> float:
    """Voltage-to-current angle (°) from "1", "0.5L" (lagging, Q > 0), "0.8C" (leading),
    "-0.5L" (export); raises ValueError for anything else."""
    match = _PF.match(str(text))
    if not match:
        raise ValueError(f"power factor {text!r}: expected like 1, 0.5L, 0.8C or -0.5L")
    sign, magnitude, kind = match.groups()
    pf = float(magnitude)
    if not 0.0 <= pf <= 1.0:
        raise ValueError(f"power factor {text!r}: magnitude must be within 0..1")
    return phi_from_pf(-pf if sign else pf, "C" if kind.upper() == "C" else "L")


class SimWorld:
    """Grid + chip + pins of one simulated meter."""

    def __init__(self, clock: Callable[[], float], pin_factory: Any, power_fail_pin: int,
                 voltage_v: float, current_a: float, power_factor: str, frequency_hz: float,
                 current_scale: float = 1.0, board_seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.grid = Grid(clock)
        self.grid.set_frequency(frequency_hz)
        self.grid.set_all_phases(voltage_v=voltage_v, current_a=current_a,
                                 phi_deg=parse_power_factor(power_factor))
        self.chip = Atm90e36Sim(self.grid, clock, current_scale=current_scale,  # the board's current divider
                                board=AnalogBoard.from_seed(board_seed))
        self.clock = clock
        self.input_pins: dict[str, int] = {}
        self.extra_signals: dict[str, Callable[[Any], None]] = {}
        self.supply_listeners: list[Callable[[bool], None]] = []
        """Told of each supply loss (True) and return (False): parts of the simulated board that
        live on the supply (the RTC without its battery)."""
        self.cycle_hooks: list[Callable[[float], None]] = []
        self.pins = SimPins(pin_factory)
        self.power_fail_pin = power_fail_pin
        self._powered_state: Any = None
        self.scenario: Any = None
        self._pending_scenario: tuple[str, str] | None = None
        self.fault_until: dict[ChipFault, float] = {}  # injected faults with their end (meter mono s)
        self.storage_delay_s = 0.0
        self._slow_until = 0.0
        self.active: dict[str, ActiveFault] = {}  # rig faults in force, by kind
        self.relay: SimRelayPins | None = None  # the simulated relay, when load control has one

    @_locked
    def inject(self, body: Any) -> dict[str, Any]:
        """Start the rig fault ``{"kind", "duration_s" (meter s; absent: until cleared),
        ...parameters}`` (:mod:`meterd.app.sim_faults`); a fault of a kind already in force is
        cleared first. ValueError (nothing changed) for a bad request."""
        kind, duration, params = parse_fault_body(body)
        if kind.name in self.active:
            self.clear(kind.name)
        undo = kind.start(self, params)
        until = self.clock() + duration if duration is not None else float("inf")
        self.active[kind.name] = ActiveFault(kind, params, until, undo)
        return {"fault": kind.name, "group": kind.group, "duration_s": duration, "params": params}

    @_locked
    def clear(self, kind: str | None = None) -> dict[str, Any]:
        """End the rig fault ``kind`` (every one in force when None); ValueError for an unknown kind."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose from {sorted(KINDS)}")
        ended = [kind] if kind is not None else list(self.active)
        for name in ended:
            active = self.active.pop(name, None)
            if active is not None:
                active.undo()
        return {"cleared": sorted(ended)}

    def faults_view(self) -> dict[str, Any]:
        """``GET /sim/faults``: every kind (group, parameters, the events it leads to) and the
        faults in force with the meter seconds left (None: until cleared)."""
        now = self.clock()
        active = [{"kind": name, "params": a.params,
                   "remaining_s": None if a.until_s == float("inf") else round(max(a.until_s - now, 0.0), 3)}
                  for name, a in sorted(self.active.items())]
        return {"kinds": [k.describe() for k in KINDS.values()], "active": active}

    @_locked
    def inject_fault(self, fault: ChipFault, duration_s: float | None = None, rate: float = 1e-3,
                     seed: int = 0) -> dict[str, Any]:
        """Force ``fault`` now for ``duration_s`` meter seconds (None: until :meth:`clear_fault`);
        ``rate`` (per SDO bit) and ``seed`` for ``bit_flips``."""
        if duration_s is not None and not 0 < duration_s <= 86_400:
            raise ValueError(f"duration_s={duration_s}: expected 0 < duration_s <= 86400")
        if fault is not ChipFault.LATE_CYCLE:
            self.chip.inject(fault, rate=rate, seed=seed)
        self.fault_until[fault] = self.clock() + duration_s if duration_s is not None else float("inf")
        return {"fault": fault.value, "duration_s": duration_s}

    @_locked
    def clear_fault(self, fault: ChipFault | None = None) -> dict[str, Any]:
        """End ``fault`` (every injected fault when None)."""
        ended = [fault] if fault is not None else list(self.fault_until)
        for kind in ended:
            self.fault_until.pop(kind, None)
            self.chip.clear(kind)
        return {"cleared": sorted(k.value for k in ended)}

    @_locked
    def slow_storage(self, delay_s: float, duration_s: float | None = None) -> dict[str, Any]:
        """Make every energy-database write take ``delay_s`` (s, 0 ends it) longer, for
        ``duration_s`` meter seconds (None: until changed)."""
        delay = _number(delay_s, "delay_s", 0, 30)
        if duration_s is not None:
            duration_s = _number(duration_s, "duration_s", 0.001, 86_400)
        self.storage_delay_s = delay
        self._slow_until = float("inf") if duration_s is None else self.clock() + duration_s
        return {"slow_storage_s": delay, "duration_s": duration_s}

    def storage_delay(self) -> float:
        """How much longer (s) an energy-database write takes now (0: normal storage)."""
        return self.storage_delay_s

    def cycle_stalled(self) -> bool:
        """True while a ``late_cycle`` fault holds the meter's cycle (no read of the chip)."""
        return ChipFault.LATE_CYCLE in self.fault_until

    @_locked
    def end_due_faults(self, now_s: float) -> None:
        """End the injected faults (and slow storage) whose time is up at ``now_s`` (meter s)."""
        self._end_faults(now_s)

    def _end_faults(self, now_s: float) -> None:
        if self.storage_delay_s and now_s >= self._slow_until:
            self.storage_delay_s = 0.0
        for kind, until in list(self.fault_until.items()):
            if now_s >= until:
                self.clear_fault(kind)
        for name, active in list(self.active.items()):
            if now_s >= active.until_s:
                self.clear(name)

    def _fault_signal(self, value: Any) -> None:
        """The scenario signal ``chip_fault`` (see :func:`fault_request`)."""
        self.inject_fault(*fault_request(value))

    def _fault_rig_signal(self, value: Any) -> None:
        """The scenario signal ``fault``: ``value`` as the body of :meth:`inject`."""
        self.inject(value)

    def _clear_signal(self, value: Any) -> None:
        """The scenario signal ``fault_clear``: a kind, or true / nothing for every fault."""
        self.clear(None if value is None or value is True else str(value))

    @_locked
    def set_load(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ``{"phase", "voltage_v", "current_a", "power_factor", "frequency_hz"}``."""
        phase = str(body.get("phase", "all"))
        changes: dict[str, Any] = {}
        if "voltage_v" in body:
            changes["voltage_v"] = _number(body["voltage_v"], "voltage_v", 0, 480)
        if "current_a" in body:
            changes["current_a"] = _number(body["current_a"], "current_a", 0, 200)
        if "power_factor" in body:
            changes["phi_deg"] = parse_power_factor(str(body["power_factor"]))
        try:
            if "frequency_hz" in body:
                self.grid.set_frequency(_number(body["frequency_hz"], "frequency_hz", 40, 70))
            if changes:
                if phase == "all":
                    self.grid.set_all_phases(**changes)
                elif phase in PHASE_NAMES:
                    self.grid.set_phase(PHASE_NAMES[phase], **changes)
                else:
                    raise ValueError(f"phase {phase!r}: expected A, B, C or all")
        except GridError as exc:
            raise ValueError(str(exc)) from None
        return {"phase": phase, **{k: v for k, v in body.items() if k != "phase"}}

    @_locked
    def load_scenario(self, text: str, name: str) -> dict[str, Any]:
        """Load a TOML scenario (format: :mod:`hw.sim.scenario`); it starts now and its events are
        applied as meter time passes. World signals: ``power_fail`` (true/false) cuts the supply and
        drives the power-fail pin; ``cover_open``, ``magnetic_field`` drive those input pins;
        ``chip_fault`` with ``value = {kind = "miso_high", duration_s = 10}`` injects a chip fault
        (:func:`fault_request`); ``fault`` with ``value = {kind = "voltage_dip", duration_s = 2,
        residual_pct = 40}`` any rig fault and ``fault_clear`` (value: a kind, or true for all)
        ends one (:mod:`meterd.app.sim_faults`)."""
        try:
            scenario = Scenario.from_text(text, self.grid, source=name, start_s=self.clock(),
                                          handlers=self.signal_handlers())
            _check_scenario_faults(scenario)
            self.scenario = scenario
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        self._pending_scenario = None
        return {"scenario": name, "events": len(self.scenario.events)}

    def start_scenario(self, text: str, name: str) -> None:
        """Play a scenario from the first cycle on (``[sim] scenario``): it is loaded by the first
        :meth:`before_cycle`, once every part of the meter has named its input pins and signals,
        so it starts at that cycle's time. Raises ValueError at once for a malformed scenario."""
        try:
            _check_scenario_faults(Scenario.from_text(text, Grid(self.clock), source=name))
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        self._pending_scenario = (text, name)

    def signal_handlers(self) -> dict[str, Callable[[Any], None]]:
        """Scenario ``signal`` names and what they do to the simulated world."""
        handlers: dict[str, Callable[[Any], None]] = {"power_fail": lambda v: self.power_cut(bool(v)),
                                                      "chip_fault": self._fault_signal,
                                                      "fault": self._fault_rig_signal,
                                                      "fault_clear": self._clear_signal}
        for name, pin in self.input_pins.items():
            handlers[name] = self._input_handler(pin)
        handlers.update(self.extra_signals)  # signals other parts of the simulated world react to
        return handlers

    def _input_handler(self, pin: int) -> Callable[[Any], None]:
        """A scenario signal handler that drives ``pin`` (true = active, pulled low)."""
        return lambda value: self.drive_input(pin, bool(value))

    @_locked
    def drive_input(self, pin: int, active_low: bool) -> None:
        """Pull an active-low input pin low (True) or let it go high (False)."""
        self.pins.drive_active_low(pin, active_low)

    @_locked
    def before_cycle(self, now_s: float) -> None:
        """Run the world's own timers (``cycle_hooks``, e.g. a relay's contacts), then the scenario
        events that fell due."""
        if self._pending_scenario is not None:
            self.load_scenario(*self._pending_scenario)
        self._end_faults(now_s)
        for hook in self.cycle_hooks:
            hook(now_s)
        if self.scenario is not None:
            self.scenario.apply_due(now_s)
            self._end_faults(now_s)  # a fault shorter than a cycle ends in the cycle it began

    @_locked
    def power_cut(self, cut: bool) -> None:
        """Cut or restore the supply: grid dark/lit and the power-fail pin low/high."""
        self.supply_changed(cut)
        if cut:
            if self._powered_state is None:
                self._powered_state = self.grid.state
                self.grid.set_all_phases(on=False)
            self.pins.drive(self.power_fail_pin, high=False)
        else:
            if self._powered_state is not None:
                self.grid.set_state(self._powered_state)
                self._powered_state = None
            self.pins.drive(self.power_fail_pin, high=True)


    def supply_changed(self, lost: bool) -> None:
        """Tell the :attr:`supply_listeners` that the supply went (True) or came back."""
        for listener in self.supply_listeners:
            listener(lost)


def fault_request(value: Any) -> tuple[ChipFault, float | None, float, int]:
    """A chip fault request from a scenario ``value`` or an API body: a table ``{kind,
    duration_s, rate, seed}`` (or just the kind's name) as (fault, duration s or None, bit-flip
    rate, seed); ValueError for anything else."""
    spec = value if isinstance(value, dict) else {"kind": value}
    unknown = set(spec) - {"kind", "duration_s", "rate", "seed"}
    if unknown:
        raise ValueError(f"chip fault: unknown key(s) {sorted(unknown)}")
    duration = spec.get("duration_s")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("chip fault: seed must be an integer")
    return (ChipFault.parse(str(spec.get("kind"))),
            None if duration is None else _number(duration, "duration_s", 0.001, 86_400),
            _number(spec.get("rate", 1e-3), "rate", 1e-9, 0.5), seed)


def _check_scenario_faults(scenario: Scenario) -> None:
    """Reject a malformed ``chip_fault`` event when the scenario is loaded, not when it plays."""
    for event in scenario.events:
        if event.signal == "chip_fault":
            fault_request(event.value)
        elif event.signal == "fault":
            parse_fault_body(event.value)
        elif event.signal == "fault_clear" and event.value not in (None, True) and str(event.value) not in KINDS:
            raise ValueError(f"fault_clear: unknown fault {event.value!r}; choose from {sorted(KINDS)}")


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} out of range {lo}..{hi}")
    return float(value)

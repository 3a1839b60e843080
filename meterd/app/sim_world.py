"""The simulated world around a simulated meter: grid, metering IC, input pins.

It is what ``meterctl sim ...`` drives: phase loads (``set_load``), scenario files
(``load_scenario``), power cuts (``power_cut``: the grid goes dark and the supply supervisor's
power-fail pin goes low, exactly what the meter sees on a real bench), faults of the metering IC
and its SPI link (``inject_fault``: :class:`hw.atm90e36.faults.ChipFault`, for a duration in meter
seconds or until ``clear_fault``; ``late_cycle`` stalls the meter's own cycle instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hw.atm90e36.analog import AnalogBoard
from hw.atm90e36.faults import ChipFault
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid, GridError, phi_from_pf
from hw.sim.pins import SimPins
from hw.sim.scenario import Scenario, ScenarioError

PHASE_NAMES = {"A": "L1", "B": "L2", "C": "L3", "L1": "L1", "L2": "L2", "L3": "L3"}
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
                 board_seed: int = 0) -> None:
        self.grid = Grid(clock)
        self.grid.set_frequency(frequency_hz)
        self.grid.set_all_phases(voltage_v=voltage_v, current_a=current_a,
                                 phi_deg=parse_power_factor(power_factor))
        self.chip = Atm90e36Sim(self.grid, clock, board=AnalogBoard.from_seed(board_seed))
        self.clock = clock
        self.input_pins: dict[str, int] = {}
        self.extra_signals: dict[str, Callable[[Any], None]] = {}
        self.cycle_hooks: list[Callable[[float], None]] = []
        self.pins = SimPins(pin_factory)
        self.power_fail_pin = power_fail_pin
        self._powered_state: Any = None
        self.scenario: Any = None
        self._pending_scenario: tuple[str, str] | None = None
        self.fault_until: dict[ChipFault, float] = {}  # injected faults with their end (meter mono s)

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

    def clear_fault(self, fault: ChipFault | None = None) -> dict[str, Any]:
        """End ``fault`` (every injected fault when None)."""
        ended = [fault] if fault is not None else list(self.fault_until)
        for kind in ended:
            self.fault_until.pop(kind, None)
            self.chip.clear(kind)
        return {"cleared": sorted(k.value for k in ended)}

    def cycle_stalled(self) -> bool:
        """True while a ``late_cycle`` fault holds the meter's cycle (no read of the chip)."""
        return ChipFault.LATE_CYCLE in self.fault_until

    def _end_faults(self, now_s: float) -> None:
        for kind, until in list(self.fault_until.items()):
            if now_s >= until:
                self.clear_fault(kind)

    def _fault_signal(self, value: Any) -> None:
        """The scenario signal ``chip_fault`` (see :func:`fault_request`)."""
        self.inject_fault(*fault_request(value))

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

    def load_scenario(self, text: str, name: str) -> dict[str, Any]:
        """Load a TOML scenario (format: :mod:`hw.sim.scenario`); it starts now and its events are
        applied as meter time passes. World signals: ``power_fail`` (true/false) cuts the supply and
        drives the power-fail pin; ``cover_open``, ``magnetic_field`` drive those input pins;
        ``chip_fault`` with ``value = {kind = "miso_high", duration_s = 10}`` injects a chip fault
        (:func:`fault_request`)."""
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
                                                      "chip_fault": self._fault_signal}
        for name, pin in self.input_pins.items():
            handlers[name] = self._input_handler(pin)
        handlers.update(self.extra_signals)  # signals other parts of the simulated world react to
        return handlers

    def _input_handler(self, pin: int) -> Callable[[Any], None]:
        """A scenario signal handler that drives ``pin`` (true = active, pulled low)."""
        return lambda value: self.drive_input(pin, bool(value))

    def drive_input(self, pin: int, active_low: bool) -> None:
        """Pull an active-low input pin low (True) or let it go high (False)."""
        self.pins.drive_active_low(pin, active_low)

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

    def power_cut(self, cut: bool) -> None:
        """Cut or restore the supply: grid dark/lit and the power-fail pin low/high."""
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


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} out of range {lo}..{hi}")
    return float(value)

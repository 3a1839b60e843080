"""Timed scenarios: a TOML list of grid and world events applied as the simulated clock advances.

Format (times in seconds from the scenario start, which defaults to the grid's start time)::

    [[events]]
    at_s = 0.0
    phase = "all"                 # "L1" | "L2" | "L3" | "all"; needed with any phase key
    voltage_v = 230.0             # fundamental RMS (V)
    current_a = 5.0               # fundamental RMS (A)
    pf = 0.8                      # with pf_kind = "L" (Q > 0) or "C"; negative pf = export
    # phi_deg = 36.87             # or the voltage-to-current angle directly
    voltage_angle_deg = -120.0    # e.g. to script a wrong phase sequence
    u_harmonics = [[5, 0.06, 0.0], [7, 0.05, 0.0]]   # (order, fraction of fundamental, phase °)
    i_harmonics = [[3, 0.30, 0.0]]
    on = false                    # interruption of this phase
    flicker = { shape = "rect", f_mod_hz = 8.8, delta_u_pct = 1.0 }   # or flicker = false

    [[events]]
    at_s = 60.0
    frequency_hz = 49.8           # grid-wide keys: frequency_hz, neutral_extra_a,
    neutral_extra_a = 3.0         # neutral_extra_angle_deg, power_cut (true = all phases off,
    power_cut = true              # false = all phases back on)

    [[events]]
    at_s = 90.0
    signal = "cover_open"         # a world event for another component; optional value = ...

    [[events]]
    at_s = 120.0
    signal = "chip_fault"         # a metering IC fault (hw.atm90e36.faults.ChipFault) for 10 s
    value = { kind = "miso_high", duration_s = 10 }   # bit_flips also takes rate and seed

Events are applied in ``at_s`` order (file order for equal times), each dated exactly at
``start + at_s`` (the grid moves a change that would rewrite already-observed time to the
observation horizon). ``signal`` events are handed to the matching handler (``handlers[name](value)``)
and returned by :meth:`Scenario.apply_due`. Unknown keys, bad types and missing ``phase`` are
rejected with the file name, event number and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.errors import HwError
from hw.sim.grid import Flicker, Grid, GridError

_PHASE_KEYS = {"voltage_v", "current_a", "pf", "pf_kind", "phi_deg", "voltage_angle_deg",
               "u_harmonics", "i_harmonics", "on", "flicker"}
_GRID_KEYS = {"frequency_hz", "neutral_extra_a", "neutral_extra_angle_deg", "power_cut"}
_OTHER_KEYS = {"at_s", "phase", "signal", "value"}
_PHASES = {"L1", "L2", "L3", "all"}


class ScenarioError(HwError, ValueError):
    """A scenario file or event that cannot be applied."""


@dataclass(frozen=True)
class ScenarioEvent:
    """One timed event: phase changes, grid-wide changes and/or a named world signal."""

    at_s: float
    phase: str | None = None
    phase_changes: Mapping[str, Any] = field(default_factory=dict)
    grid_changes: Mapping[str, Any] = field(default_factory=dict)
    signal: str | None = None
    value: Any = None


def parse_event(raw: Mapping[str, Any], where: str) -> ScenarioEvent:
    """Validate one ``[[events]]`` table; ``where`` names it in error messages."""
    unknown = set(raw) - _PHASE_KEYS - _GRID_KEYS - _OTHER_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    at_s = raw.get("at_s")
    if not isinstance(at_s, int | float) or isinstance(at_s, bool) or at_s < 0:
        raise ScenarioError(f"{where}: at_s must be a number >= 0, got {at_s!r}")
    phase_changes = {k: v for k, v in raw.items() if k in _PHASE_KEYS}
    phase = raw.get("phase")
    if phase_changes and phase not in _PHASES:
        raise ScenarioError(f"{where}: phase must be one of {sorted(_PHASES)} with keys {sorted(phase_changes)}")
    if "flicker" in phase_changes:
        phase_changes["flicker"] = _flicker(phase_changes["flicker"], where)
    signal = raw.get("signal")
    if signal is not None and not isinstance(signal, str):
        raise ScenarioError(f"{where}: signal must be a string")
    return ScenarioEvent(float(at_s), phase, phase_changes,
                         {k: v for k, v in raw.items() if k in _GRID_KEYS}, signal, raw.get("value"))


def _flicker(value: Any, where: str) -> Flicker | None:
    if value is False:
        return None
    if not isinstance(value, Mapping) or set(value) != {"shape", "f_mod_hz", "delta_u_pct"}:
        raise ScenarioError(f"{where}: flicker needs shape, f_mod_hz and delta_u_pct (or false)")
    try:
        return Flicker(value["shape"], float(value["f_mod_hz"]), float(value["delta_u_pct"]))
    except GridError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


class Scenario:
    """Events applied to ``grid`` when :meth:`apply_due` is called with a time (s) past them."""

    def __init__(self, grid: Grid, events: list[ScenarioEvent], start_s: float | None = None,
                 handlers: Mapping[str, Callable[[Any], None]] | None = None, source: str = "<scenario>") -> None:
        self.grid = grid
        self.start_s = grid.t0 if start_s is None else float(start_s)
        self.handlers = dict(handlers or {})
        self.source = source
        self._events = sorted(events, key=lambda e: e.at_s)
        self._next = 0

    @classmethod
    def from_text(cls, text: str, grid: Grid, source: str = "<string>", **kw: Any) -> Scenario:
        """Parse TOML ``text`` (see the module docstring)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: {exc}") from exc
        unknown = set(data) - {"events"}
        if unknown:
            raise ScenarioError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
        raw_events = data.get("events", [])
        events = [parse_event(raw, f"{source}: events[{i}]") for i, raw in enumerate(raw_events)]
        return cls(grid, events, source=source, **kw)

    @classmethod
    def load(cls, path: str | Path, grid: Grid, **kw: Any) -> Scenario:
        """Read a scenario TOML file."""
        path = Path(path)
        return cls.from_text(path.read_text(encoding="utf-8"), grid, source=str(path), **kw)

    @property
    def events(self) -> tuple[ScenarioEvent, ...]:
        """All events in application order."""
        return tuple(self._events)

    def next_due_s(self) -> float | None:
        """Absolute time (s) of the next pending event, or None when all are applied."""
        if self._next >= len(self._events):
            return None
        return self.start_s + self._events[self._next].at_s

    def apply_due(self, t: float) -> list[ScenarioEvent]:
        """Apply every pending event dated at or before ``t`` (s); return them."""
        applied = []
        while self._next < len(self._events) and self.start_s + self._events[self._next].at_s <= t:
            event = self._events[self._next]
            self._next += 1
            self._apply(event, self.start_s + event.at_s)
            applied.append(event)
        return applied

    def _apply(self, event: ScenarioEvent, t: float) -> None:
        where = f"{self.source}: event at {event.at_s} s"
        try:
            if event.phase_changes:
                if event.phase == "all":
                    self.grid.set_all_phases(at_s=t, **event.phase_changes)
                else:
                    self.grid.set_phase(str(event.phase), at_s=t, **event.phase_changes)
            self._apply_grid(event.grid_changes, t)
        except (GridError, TypeError) as exc:
            raise ScenarioError(f"{where}: {exc}") from exc
        if event.signal is not None and event.signal in self.handlers:
            self.handlers[event.signal](event.value)

    def _apply_grid(self, changes: Mapping[str, Any], t: float) -> None:
        if "frequency_hz" in changes:
            self.grid.set_frequency(float(changes["frequency_hz"]), at_s=t)
        if "neutral_extra_a" in changes or "neutral_extra_angle_deg" in changes:
            state = self.grid.state
            self.grid.set_neutral_extra(float(changes.get("neutral_extra_a", state.neutral_extra_a)),
                                        float(changes.get("neutral_extra_angle_deg", state.neutral_extra_angle_deg)),
                                        at_s=t)
        if "power_cut" in changes:
            self.grid.set_all_phases(at_s=t, on=not bool(changes["power_cut"]))

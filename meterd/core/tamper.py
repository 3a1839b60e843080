"""Tamper detection: conditions from each cycle's reading and inputs, turned into episodes.

Every detector has a programmable threshold and minimum durations (:class:`Persistence`): a
condition must hold for ``start_s`` seconds (monotonic time) before an episode starts and be
absent for ``end_s`` seconds before it ends, so each episode yields exactly one start and one
end event. Both events carry the UTC at which the condition first appeared (start) or first
disappeared (end), not the time it was confirmed. Chatter shorter than the minimum gives nothing.

Detectors: terminal cover open (input), magnetic field (input), reverse current per phase
(P < −threshold W while the meter is import-only), neutral current mismatch
(|IN measured − IN calculated| > threshold A), missing potential per phase (U below threshold V
on a phase carrying current while another phase has voltage), current without voltage (every
phase below the voltage threshold while current flows), wrong phase sequence (chip flag
``voltage_sequence_error``, ATM90E36 URevWn), current imbalance (largest deviation of a phase
current from the mean, in % of the mean, above threshold while the mean is above a minimum).

A single-phase two-wire meter (``TamperSettings.phases`` = L1 only) runs the per-phase detectors
on L1 alone and never the three-phase ones (:data:`THREE_PHASE_KINDS`: missing potential, phase
sequence, current imbalance), whose conditions a supply without L2 and L3 would always meet.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from meterd.core import event_codes as ec
from meterd.core.errors import ConfigError
from meterd.core.reading import PHASES, Channel, Reading


@dataclass(frozen=True)
class Persistence:
    """Minimum durations (s): condition present ``start_s`` to start, absent ``end_s`` to end."""

    start_s: float = 0.0
    end_s: float = 0.0

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.end_s < 0:
            raise ConfigError("meterd.toml", "persistence", "durations must be >= 0 s")


@dataclass(frozen=True)
class Transition:
    """An episode edge: ``active`` True for a start, False for an end; ``utc`` of the change."""

    active: bool
    utc: _dt.datetime


class Qualifier:
    """Turns a sampled boolean condition into episodes with minimum start/end durations."""

    def __init__(self, persistence: Persistence, active: bool = False) -> None:
        self.persistence = persistence
        self._active = active
        self._candidate: tuple[float, _dt.datetime] | None = None

    @property
    def active(self) -> bool:
        """True while an episode is open."""
        return self._active

    def update(self, condition: bool, mono_s: float, utc: _dt.datetime) -> Transition | None:
        """Feed one sample (monotonic s, UTC); returns the edge of an episode when one qualifies."""
        if condition == self._active:
            self._candidate = None
            return None
        if self._candidate is None:
            self._candidate = (mono_s, utc)
        since_mono, since_utc = self._candidate
        needed_s = self.persistence.end_s if self._active else self.persistence.start_s
        if mono_s - since_mono < needed_s:
            return None
        self._active = condition
        self._candidate = None
        return Transition(condition, since_utc)


class TamperKind(enum.Enum):
    """A kind of tamper; per-phase kinds have one :class:`Tamper` per phase."""

    TERMINAL_COVER = "terminal_cover_open"
    MAGNETIC_FIELD = "magnetic_field"
    REVERSE_CURRENT = "reverse_current"
    NEUTRAL_MISMATCH = "neutral_mismatch"
    MISSING_POTENTIAL = "missing_potential"
    PHASE_SEQUENCE = "phase_sequence"
    CURRENT_WITHOUT_VOLTAGE = "current_without_voltage"
    CURRENT_IMBALANCE = "current_imbalance"

    @property
    def per_phase(self) -> bool:
        """True for kinds detected on each phase separately."""
        return self in (TamperKind.REVERSE_CURRENT, TamperKind.MISSING_POTENTIAL)


@dataclass(frozen=True)
class Tamper:
    """One detector: a kind, and the phase for per-phase kinds."""

    kind: TamperKind
    phase: Channel | None = None

    @property
    def name(self) -> str:
        """Status name shown by the LCD and ``meterctl status`` (e.g. ``reverse_current_L2``)."""
        return self.kind.value if self.phase is None else f"{self.kind.value}_{self.phase.value}"

    @classmethod
    def from_name(cls, name: str) -> Tamper:
        """Inverse of :attr:`name`."""
        return next(t for t in ALL_TAMPERS if t.name == name)


#: Detectors that compare phases with each other: meaningless without L2 and L3 (1P2W).
THREE_PHASE_KINDS: frozenset[TamperKind] = frozenset(
    {TamperKind.MISSING_POTENTIAL, TamperKind.PHASE_SEQUENCE, TamperKind.CURRENT_IMBALANCE})


ALL_TAMPERS: tuple[Tamper, ...] = tuple(
    t for kind in TamperKind
    for t in ((Tamper(kind, p) for p in PHASES) if kind.per_phase else (Tamper(kind),))
)


def _codes(tamper: Tamper) -> tuple[int, int]:
    c, ph = ec.code, tamper.phase.value if tamper.phase is not None else ""
    names = {
        TamperKind.TERMINAL_COVER: ("TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"),
        TamperKind.MAGNETIC_FIELD: ("STRONG_DC_FIELD", "NO_STRONG_DC_FIELD"),
        TamperKind.REVERSE_CURRENT: (f"REVERSE_CURRENT_{ph}", f"REVERSE_CURRENT_END_{ph}"),
        TamperKind.NEUTRAL_MISMATCH: ("NEUTRAL_MISMATCH", "NEUTRAL_MISMATCH_END"),
        TamperKind.MISSING_POTENTIAL: (f"MISSING_POTENTIAL_{ph}", f"MISSING_POTENTIAL_END_{ph}"),
        TamperKind.PHASE_SEQUENCE: ("PHASE_SEQUENCE_REVERSAL", "PHASE_SEQUENCE_NORMAL"),
        TamperKind.CURRENT_WITHOUT_VOLTAGE: ("CURRENT_WITHOUT_VOLTAGE", "CURRENT_WITHOUT_VOLTAGE_END"),
        TamperKind.CURRENT_IMBALANCE: ("PHASE_ASYMMETRY", "PHASE_ASYMMETRY_END"),
    }[tamper.kind]
    return c(names[0]), c(names[1])


TAMPER_CODES: Mapping[Tamper, tuple[int, int]] = MappingProxyType({t: _codes(t) for t in ALL_TAMPERS})

DEFAULT_PERSISTENCE: Mapping[TamperKind, Persistence] = MappingProxyType({
    TamperKind.TERMINAL_COVER: Persistence(1.0, 1.0),
    TamperKind.MAGNETIC_FIELD: Persistence(2.0, 2.0),
    TamperKind.REVERSE_CURRENT: Persistence(30.0, 30.0),
    TamperKind.NEUTRAL_MISMATCH: Persistence(30.0, 30.0),
    TamperKind.MISSING_POTENTIAL: Persistence(30.0, 30.0),
    TamperKind.PHASE_SEQUENCE: Persistence(10.0, 10.0),
    TamperKind.CURRENT_WITHOUT_VOLTAGE: Persistence(30.0, 30.0),
    TamperKind.CURRENT_IMBALANCE: Persistence(60.0, 60.0),
})


@dataclass(frozen=True)
class TamperSettings:
    """Programmable thresholds (V, A, W, %) and minimum durations of the tamper detectors;
    ``enabled``: the kinds that run; ``phases``: the phases the per-phase kinds watch (the
    meter's wiring: L1-L3, or L1 alone for 1P2W)."""

    import_only: bool = True
    reverse_power_w: float = 25.0
    neutral_mismatch_a: float = 1.0
    missing_potential_v: float = 138.0
    current_present_a: float = 0.1
    imbalance_pct: float = 30.0
    imbalance_min_current_a: float = 1.0
    persistence: Mapping[TamperKind, Persistence] = field(default_factory=lambda: dict(DEFAULT_PERSISTENCE))
    enabled: frozenset[TamperKind] = frozenset(TamperKind)
    phases: tuple[Channel, ...] = PHASES

    def __post_init__(self) -> None:
        for key in ("reverse_power_w", "neutral_mismatch_a", "missing_potential_v",
                    "current_present_a", "imbalance_pct", "imbalance_min_current_a"):
            if getattr(self, key) <= 0:
                raise ConfigError("meterd.toml", f"tamper.{key}", "must be > 0")

    def persistence_of(self, kind: TamperKind) -> Persistence:
        """Minimum durations of ``kind`` (project default when not set)."""
        return self.persistence.get(kind, DEFAULT_PERSISTENCE[kind])


@dataclass(frozen=True)
class InputStates:
    """Debounced digital inputs: terminal cover open, magnetic field sensed, power-fail asserted."""

    cover_open: bool = False
    magnetic_field: bool = False
    power_fail: bool = False

    @classmethod
    def from_mapping(cls, states: Mapping[str, bool]) -> InputStates:
        """Build from ``hw.inputs`` names: cover_open, magnetic_field, power_fail."""
        return cls(bool(states.get("cover_open", False)), bool(states.get("magnetic_field", False)),
                   bool(states.get("power_fail", False)))


@dataclass(frozen=True)
class TamperEvent:
    """A qualified tamper edge: which tamper, start or end, event code, UTC, detail."""

    tamper: Tamper
    started: bool
    code: int
    utc: _dt.datetime
    detail: Mapping[str, str | float]


def _imbalance_pct(reading: Reading, min_current_a: float) -> float:
    currents = [p.current_a for p in reading.phases]
    mean_a = sum(currents) / 3.0
    if mean_a < min_current_a:
        return 0.0
    return max(abs(i - mean_a) for i in currents) / mean_a * 100.0


def _electrical(tamper: Tamper, reading: Reading, s: TamperSettings) -> bool:
    volts = [p.voltage_v for p in reading.phases]
    kind = tamper.kind
    if kind is TamperKind.REVERSE_CURRENT:
        assert tamper.phase is not None
        return s.import_only and reading.phase(tamper.phase).active_power_w < -s.reverse_power_w
    if kind is TamperKind.NEUTRAL_MISMATCH:
        return abs(reading.neutral_current_a - reading.neutral_current_calc_a) > s.neutral_mismatch_a
    if kind is TamperKind.MISSING_POTENTIAL:
        assert tamper.phase is not None
        phase = reading.phase(tamper.phase)
        others_live = any(v >= s.missing_potential_v for v in volts)
        return phase.voltage_v < s.missing_potential_v and phase.current_a > s.current_present_a and others_live
    if kind is TamperKind.CURRENT_WITHOUT_VOLTAGE:
        dead = all(v < s.missing_potential_v for v in volts)
        return dead and any(p.current_a > s.current_present_a for p in reading.phases)
    if kind is TamperKind.PHASE_SEQUENCE:
        return "voltage_sequence_error" in reading.status
    return _imbalance_pct(reading, s.imbalance_min_current_a) > s.imbalance_pct


def _detail(tamper: Tamper, reading: Reading | None) -> dict[str, str | float]:
    detail: dict[str, str | float] = {"tamper": tamper.name}
    if reading is None:
        return detail
    kind = tamper.kind
    if tamper.phase is not None:
        phase = reading.phase(tamper.phase)
        detail.update(voltage_v=round(phase.voltage_v, 2), current_a=round(phase.current_a, 3),
                      power_w=round(phase.active_power_w, 1))
    elif kind is TamperKind.NEUTRAL_MISMATCH:
        detail.update(neutral_a=round(reading.neutral_current_a, 3),
                      neutral_calc_a=round(reading.neutral_current_calc_a, 3))
    elif kind is TamperKind.CURRENT_IMBALANCE:
        detail.update(imbalance_pct=round(_imbalance_pct(reading, 1e-6), 1))
    return detail


class TamperMonitor:
    """Runs every detector once per cycle and keeps the set of active tampers."""

    def __init__(self, settings: TamperSettings | None = None, active: Iterable[Tamper] = ()) -> None:
        self.settings = settings or TamperSettings()
        already = set(active)
        self._qualifiers = {t: Qualifier(self.settings.persistence_of(t.kind), t in already)
                            for t in ALL_TAMPERS}

    def _condition(self, tamper: Tamper, reading: Reading | None, inputs: InputStates) -> bool | None:
        if tamper.kind not in self.settings.enabled:
            return False
        if tamper.phase is not None and tamper.phase not in self.settings.phases:
            return False
        if tamper.kind is TamperKind.TERMINAL_COVER:
            return inputs.cover_open
        if tamper.kind is TamperKind.MAGNETIC_FIELD:
            return inputs.magnetic_field
        if reading is None:
            return None
        return _electrical(tamper, reading, self.settings)

    def update(self, utc: _dt.datetime, mono_s: float, reading: Reading | None,
               inputs: InputStates) -> list[TamperEvent]:
        """Evaluate one cycle; returns the qualified starts and ends, in detector order.

        ``reading`` None (front end not read this cycle) freezes the electrical detectors.
        """
        events: list[TamperEvent] = []
        for tamper, qualifier in self._qualifiers.items():
            condition = self._condition(tamper, reading, inputs)
            if condition is None:
                continue
            edge = qualifier.update(condition, mono_s, utc)
            if edge is not None:
                start, end = TAMPER_CODES[tamper]
                events.append(TamperEvent(tamper, edge.active, start if edge.active else end, edge.utc,
                                          _detail(tamper, reading)))
        return events

    def open_episode(self, tamper: Tamper) -> None:
        """Mark ``tamper`` active without an event: its start was recorded elsewhere (the RTC's
        latch of a cover opened while unpowered); the end is then detected as usual."""
        self._qualifiers[tamper] = Qualifier(self.settings.persistence_of(tamper.kind), True)

    def status(self) -> frozenset[Tamper]:
        """The tampers with an open episode."""
        return frozenset(t for t, q in self._qualifiers.items() if q.active)

    def status_names(self) -> list[str]:
        """Names of the active tampers, in detector order (LCD, ``meterctl status``)."""
        return [t.name for t, q in self._qualifiers.items() if q.active]

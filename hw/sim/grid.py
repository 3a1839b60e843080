"""The simulated supply and load: a three-phase four-wire grid with exact energy truth and waveforms.

The grid is piecewise constant in time. Each change (a :meth:`Grid.set_phase`, frequency step,
power cut…) starts a new *segment* at a time ``t`` (s) taken from the injected clock callable or
given explicitly. Within a segment every phase is a fixed set of phasors:

* voltage: fundamental RMS ``voltage_v`` (V) at angle ``voltage_angle_deg`` (0/−120/+120 by
  default), harmonics ``u_harmonics`` as (order, magnitude as a fraction of the fundamental,
  phase in degrees) — harmonic *h* sits at angle ``h·voltage_angle + phase``;
* current: fundamental RMS ``current_a`` (A) lagging the voltage by ``phi_deg`` (positive =
  inductive, Q > 0; 180° = pure export), harmonics ``i_harmonics`` referenced like the voltage's;
* ``on`` = False models an interruption of that phase (voltage and current 0);
* ``load_connected`` = False models the meter's load-side contacts open: voltage present, no
  current flows, ``current_a`` is kept as the load that flows again when they close;
* optional amplitude modulation of the voltage for flicker (:class:`Flicker`).

Grid-wide: frequency (Hz) and an extra neutral current (A RMS, at ``neutral_extra_angle_deg``)
that flows in the neutral only (a tamper: load connected phase-to-earth or a neutral bypass).

Truth: P, Q (Budeanu sum over harmonic orders), S = Urms·Irms, fundamental and harmonic active
power are integrated exactly per segment into per-phase and total accumulators (Wh, varh, VAh):
active import/export, reactive per quadrant Q1..Q4 (quadrant from the signs of P and Q of that
channel), apparent (arithmetic; vector sum for the total in ``apparent_vector_vah``), and
fundamental/harmonic active import/export. The total channel uses signed sums of the phases,
as the metering IC does by default. Flicker modulation shapes the waveform only; it does not
change the truth accumulators (its effect on energy is below 1e-4 relative for real test levels).

Changes never rewrite observed history: a change dated before the latest time already handed out
(by :meth:`Grid.segments`, :meth:`Grid.truth` or :meth:`Grid.waveform_block`) takes effect at that
time instead, so truth and every consumer always agree.

Waveforms: :meth:`Grid.waveform_block` returns instantaneous samples at 8 kHz, rows U1, I1, U2, I2,
U3, I3, IN (V and A), sample *k* taken at ``t0 + k / 8000``; the phase of the fundamental is
carried continuously across segments, so frequency steps are phase-continuous and a change dated
``grid.sample_time(k)`` starts exactly at sample *k*.
"""

from __future__ import annotations

import bisect
import cmath
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

import numpy as np

from hw.errors import HwError

SAMPLE_RATE_HZ = 8000
"""Waveform sample rate (Hz), the ATM90E36 ADC output rate."""

CHANNELS = ("L1", "L2", "L3", "T")
"""Truth channels: the three phases and the all-phase total."""

ROW_ORDER = ("U1", "I1", "U2", "I2", "U3", "I3", "IN")
"""Row order of :meth:`Grid.waveform_block`."""

_WH_PER_WS = 1.0 / 3600.0


class GridError(HwError, ValueError):
    """An invalid grid change (unknown phase or key, time going backwards, bad value)."""


@dataclass(frozen=True)
class Harmonic:
    """One harmonic: ``order`` ≥ 2, ``magnitude`` as a fraction of the fundamental, ``phase_deg``."""

    order: int
    magnitude: float
    phase_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.order < 2 or self.magnitude < 0:
            raise GridError(f"harmonic needs order >= 2 and magnitude >= 0, got {self}")


@dataclass(frozen=True)
class Flicker:
    """Voltage amplitude modulation: factor ``1 + (ΔU/U)/2 · m(t)`` with m a sine or a square wave.

    ``f_mod_hz`` is the modulation frequency (a rectangular period holds two changes),
    ``delta_u_pct`` the relative peak-to-peak change ΔU/U in %.
    """

    shape: Literal["sine", "rect"]
    f_mod_hz: float
    delta_u_pct: float

    def __post_init__(self) -> None:
        if self.shape not in ("sine", "rect") or self.f_mod_hz <= 0 or self.delta_u_pct < 0:
            raise GridError(f"bad flicker modulation {self}")

    def factor(self, t_s: np.ndarray) -> np.ndarray:
        """Amplitude factor at times ``t_s`` (s, relative to the grid's start)."""
        wave = np.sin(2 * np.pi * self.f_mod_hz * t_s)
        if self.shape == "rect":
            wave = np.where(wave >= 0, 1.0, -1.0)
        return 1.0 + self.delta_u_pct / 200.0 * wave


@dataclass(frozen=True)
class PhasePowers:
    """Derived values of one phase: RMS (V, A), powers (W, var, VA), THD (% of fundamental)."""

    urms_v: float
    irms_a: float
    p_w: float
    q_var: float
    s_va: float
    p_fund_w: float
    p_harm_w: float
    thd_u_pct: float
    thd_i_pct: float


@dataclass(frozen=True)
class PhaseState:
    """One phase during a segment (see the module docstring for the conventions)."""

    voltage_v: float = 230.0
    current_a: float = 0.0
    phi_deg: float = 0.0
    voltage_angle_deg: float = 0.0
    u_harmonics: tuple[Harmonic, ...] = ()
    i_harmonics: tuple[Harmonic, ...] = ()
    on: bool = True
    flicker: Flicker | None = None
    load_connected: bool = True

    def __post_init__(self) -> None:
        if self.voltage_v < 0 or self.current_a < 0:
            raise GridError("voltage_v and current_a are RMS magnitudes (>= 0); use phi_deg for direction")

    @property
    def u1_v(self) -> float:
        """Fundamental voltage RMS (V), 0 when the phase is off."""
        return self.voltage_v if self.on else 0.0

    @property
    def i1_a(self) -> float:
        """Fundamental current RMS (A) that flows: 0 when the phase is off or the load is
        disconnected (the meter's relay open); ``current_a`` is then the load that returns."""
        return self.current_a if self.on and self.load_connected else 0.0

    @property
    def current_angle_deg(self) -> float:
        """Angle of the fundamental current (°, same reference as ``voltage_angle_deg``)."""
        return self.voltage_angle_deg - self.phi_deg

    @cached_property
    def powers(self) -> PhasePowers:
        """RMS values and powers of this phase."""
        u1, i1 = self.u1_v, self.i1_a
        u_h = {h.order: h for h in self.u_harmonics}
        i_h = {h.order: h for h in self.i_harmonics}
        p_harm = q_harm = 0.0
        for order in u_h.keys() & i_h.keys():
            mag = u1 * u_h[order].magnitude * i1 * i_h[order].magnitude
            delta = math.radians(u_h[order].phase_deg - i_h[order].phase_deg)
            p_harm += mag * math.cos(delta)
            q_harm += mag * math.sin(delta)
        phi = math.radians(self.phi_deg)
        p_fund = u1 * i1 * math.cos(phi)
        q_fund = u1 * i1 * math.sin(phi)
        thd_u = math.sqrt(sum(h.magnitude ** 2 for h in self.u_harmonics))
        thd_i = math.sqrt(sum(h.magnitude ** 2 for h in self.i_harmonics))
        urms, irms = u1 * math.sqrt(1 + thd_u ** 2), i1 * math.sqrt(1 + thd_i ** 2)
        return PhasePowers(urms, irms, p_fund + p_harm, q_fund + q_harm, urms * irms, p_fund, p_harm,
                           100 * thd_u, 100 * thd_i)

    def current_phasor(self, order: int) -> complex:
        """Complex RMS phasor (A) of the current component of ``order`` (1 = fundamental)."""
        if order == 1:
            return cmath.rect(self.i1_a, math.radians(self.current_angle_deg))
        for h in self.i_harmonics:
            if h.order == order:
                angle = order * self.voltage_angle_deg + h.phase_deg
                return cmath.rect(self.i1_a * h.magnitude, math.radians(angle))
        return 0j


def phi_from_pf(pf: float, kind: Literal["L", "C"] = "L") -> float:
    """Voltage-to-current angle φ (°) for a power factor: |pf| ≤ 1, negative = export; L = Q > 0."""
    if not -1.0 <= pf <= 1.0 or kind not in ("L", "C"):
        raise GridError(f"power factor {pf!r} {kind!r}: need -1 <= pf <= 1 and kind 'L' or 'C'")
    phi = math.degrees(math.acos(pf))
    return phi if kind == "L" else -phi


DEFAULT_ANGLES_DEG = (0.0, -120.0, 120.0)


def _default_phases() -> tuple[PhaseState, PhaseState, PhaseState]:
    a, b, c = (PhaseState(voltage_angle_deg=angle) for angle in DEFAULT_ANGLES_DEG)
    return (a, b, c)


@dataclass(frozen=True)
class GridState:
    """The whole grid during one segment: three phases, frequency (Hz), extra neutral current (A)."""

    phases: tuple[PhaseState, PhaseState, PhaseState] = field(default_factory=_default_phases)
    frequency_hz: float = 50.0
    neutral_extra_a: float = 0.0
    neutral_extra_angle_deg: float = 0.0

    @cached_property
    def phase_powers(self) -> tuple[PhasePowers, PhasePowers, PhasePowers]:
        """Derived values of L1, L2, L3."""
        a, b, c = (ph.powers for ph in self.phases)
        return (a, b, c)

    def _orders(self) -> set[int]:
        orders = {1}
        for ph in self.phases:
            orders.update(h.order for h in ph.i_harmonics)
        return orders

    def neutral_rms_a(self, include_extra: bool = True) -> float:
        """Neutral current RMS (A): phasor sum of the phase currents per order (+ the extra current)."""
        total_sq = 0.0
        for order in self._orders():
            s = sum((ph.current_phasor(order) for ph in self.phases), 0j)
            if include_extra and order == 1:
                s += cmath.rect(self.neutral_extra_a, math.radians(self.neutral_extra_angle_deg))
            total_sq += abs(s) ** 2
        return math.sqrt(total_sq)

    @cached_property
    def truth_rates(self) -> np.ndarray:
        """Truth accumulation rates, shape (4 channels, 12 quantities), in Wh (varh, VAh) per second."""
        rates = np.zeros((len(CHANNELS), len(TruthEnergy.FIELDS)))
        pw = self.phase_powers
        for i, p in enumerate(pw):
            rates[i] = _channel_rates(p.p_w, p.q_var, p.s_va, p.s_va, p.p_fund_w, p.p_harm_w)
        p_t = sum(p.p_w for p in pw)
        q_t = sum(p.q_var for p in pw)
        rates[3] = _channel_rates(p_t, q_t, sum(p.s_va for p in pw), math.hypot(p_t, q_t),
                                  sum(p.p_fund_w for p in pw), sum(p.p_harm_w for p in pw))
        return rates * _WH_PER_WS


def _channel_rates(p: float, q: float, s: float, s_vec: float, p_fund: float, p_harm: float) -> list[float]:
    q_pos, q_neg = max(q, 0.0), max(-q, 0.0)
    export = p < 0
    return [max(p, 0.0), max(-p, 0.0),
            0.0 if export else q_pos, q_pos if export else 0.0,
            q_neg if export else 0.0, 0.0 if export else q_neg,
            s, s_vec, max(p_fund, 0.0), max(-p_fund, 0.0), max(p_harm, 0.0), max(-p_harm, 0.0)]


@dataclass(frozen=True)
class TruthEnergy:
    """Exact energy of one channel since the grid started (Wh, varh, VAh)."""

    FIELDS = ("active_import_wh", "active_export_wh", "reactive_q1_varh", "reactive_q2_varh",
              "reactive_q3_varh", "reactive_q4_varh", "apparent_vah", "apparent_vector_vah",
              "fundamental_import_wh", "fundamental_export_wh", "harmonic_import_wh", "harmonic_export_wh")

    active_import_wh: float
    active_export_wh: float
    reactive_q1_varh: float
    reactive_q2_varh: float
    reactive_q3_varh: float
    reactive_q4_varh: float
    apparent_vah: float
    apparent_vector_vah: float
    fundamental_import_wh: float
    fundamental_export_wh: float
    harmonic_import_wh: float
    harmonic_export_wh: float

    @property
    def reactive_forward_varh(self) -> float:
        """Inductive reactive energy (Q1 + Q2), varh."""
        return self.reactive_q1_varh + self.reactive_q2_varh

    @property
    def reactive_reverse_varh(self) -> float:
        """Capacitive reactive energy (Q3 + Q4), varh."""
        return self.reactive_q3_varh + self.reactive_q4_varh


@dataclass(frozen=True)
class _Segment:
    t_start: float
    state: GridState
    cycles0: float          # fundamental phase at t_start, in cycles (fractional part only)
    cum: np.ndarray         # truth accumulated before t_start, shape (4, 12)


_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, 1: 0, 2: 1, 3: 2, "A": 0, "B": 1, "C": 2}


def phase_index(phase: int | str) -> int:
    """Index 0..2 of a phase given as 1..3, "L1".."L3" or "A".."C"."""
    try:
        return _PHASE_INDEX[phase]
    except KeyError:
        raise GridError(f"unknown phase {phase!r}; use 1..3 or 'L1'..'L3'") from None


class Grid:
    """The simulated grid; ``clock()`` returns monotonic seconds and dates changes without ``at_s``."""

    def __init__(self, clock: Callable[[], float], state: GridState | None = None,
                 sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self._clock = clock
        self.t0 = float(clock())
        self.sample_rate_hz = sample_rate_hz
        first = _Segment(self.t0, state or GridState(), 0.0, np.zeros((len(CHANNELS), len(TruthEnergy.FIELDS))))
        self._segments: list[_Segment] = [first]
        self._starts: list[float] = [self.t0]
        self._horizon = self.t0
        self._tables: dict[int, tuple[_Segment, _CycleTable | None]] = {}
        self.phases = 3
        """Phases of the supply: 3 (three-phase four-wire) or 1 (single-phase two-wire, L1 only)."""

    def set_wiring(self, phases: int, at_s: float | None = None) -> float:
        """Wire the supply as 3P4W (``phases`` 3) or 1P2W (1: L2 and L3 do not exist, their voltages
        and currents are 0 and stay so; the neutral carries the current of L1); returns the time."""
        if phases not in (1, 3):
            raise GridError(f"phases {phases!r}: a supply has 3 (3P4W) or 1 (1P2W)")
        self.phases = phases
        if phases == 3:
            return self.set_state(self.state, at_s)
        a, b, c = self.state.phases
        return self.set_state(replace(self.state, phases=(a, replace(b, on=False), replace(c, on=False))), at_s)

    # ---- changes -------------------------------------------------------------------------
    @property
    def state(self) -> GridState:
        """The latest state (the one in force from the last change on)."""
        return self._segments[-1].state

    def set_state(self, state: GridState, at_s: float | None = None) -> float:
        """Start a new segment with ``state``; returns the time (s) it took effect."""
        t = float(self._clock() if at_s is None else at_s)
        last = self._segments[-1]
        if t < last.t_start:
            raise GridError(f"change at {t} s is before the previous change at {last.t_start} s")
        t = max(t, self._horizon)
        cycles = (last.cycles0 + last.state.frequency_hz * (t - last.t_start)) % 1.0
        cum = last.cum + last.state.truth_rates * (t - last.t_start)
        if t == last.t_start:
            self._segments[-1] = _Segment(t, state, last.cycles0, last.cum)
        else:
            self._segments.append(_Segment(t, state, cycles, cum))
            self._starts.append(t)
        return t

    def set_phase(self, phase: int | str, at_s: float | None = None, **changes: Any) -> float:
        """Change fields of one phase (``voltage_v``, ``current_a``, ``phi_deg`` or ``pf`` with
        ``pf_kind`` "L"/"C", ``voltage_angle_deg``, ``u_harmonics``/``i_harmonics`` as
        (order, magnitude, phase_deg) tuples, ``on``, ``flicker``); returns the effective time."""
        idx = phase_index(phase)
        if idx >= self.phases:
            raise GridError(f"phase {phase!r}: a single-phase (1P2W) supply has L1 only")
        phases = list(self.state.phases)
        phases[idx] = _changed_phase(phases[idx], changes)
        return self.set_state(replace(self.state, phases=(phases[0], phases[1], phases[2])), at_s)

    def set_all_phases(self, at_s: float | None = None, **changes: Any) -> float:
        """Apply the same :meth:`set_phase` changes to L1, L2 and L3 at once (1P2W: to L1)."""
        a, b, c = (_changed_phase(ph, dict(changes)) if i < self.phases else ph
                   for i, ph in enumerate(self.state.phases))
        return self.set_state(replace(self.state, phases=(a, b, c)), at_s)

    def set_frequency(self, frequency_hz: float, at_s: float | None = None) -> float:
        """Change the grid frequency (Hz), phase-continuously."""
        if not 1.0 <= frequency_hz <= 1000.0:
            raise GridError(f"frequency {frequency_hz} Hz out of range")
        return self.set_state(replace(self.state, frequency_hz=float(frequency_hz)), at_s)

    def set_load_connected(self, connected: bool, at_s: float | None = None) -> float:
        """Connect or disconnect the load on all phases (the meter's relay); returns the time."""
        return self.set_all_phases(at_s=at_s, load_connected=bool(connected))

    def set_neutral_extra(self, current_a: float, angle_deg: float = 0.0, at_s: float | None = None) -> float:
        """Set the extra neutral-only current (A RMS at ``angle_deg`` vs the L1 reference)."""
        if current_a < 0:
            raise GridError("neutral extra current is an RMS magnitude (>= 0)")
        return self.set_state(replace(self.state, neutral_extra_a=float(current_a),
                                      neutral_extra_angle_deg=float(angle_deg)), at_s)

    # ---- queries -------------------------------------------------------------------------
    def _segment_index(self, t: float) -> int:
        return max(bisect.bisect_right(self._starts, t) - 1, 0)

    def state_at(self, t: float) -> GridState:
        """The state in force at time ``t`` (s)."""
        return self._segments[self._segment_index(t)].state

    def segments(self, t_from: float, t_to: float) -> Iterator[tuple[float, GridState]]:
        """Yield ``(duration_s, state)`` pieces covering [t_from, t_to) in time order."""
        self._horizon = max(self._horizon, t_to)
        i = self._segment_index(t_from)
        t = t_from
        while t < t_to:
            end = self._starts[i + 1] if i + 1 < len(self._starts) else math.inf
            stop = min(end, t_to)
            if stop > t:
                yield stop - t, self._segments[i].state
            t = stop
            i += 1

    def truth(self, t: float | None = None) -> dict[str, TruthEnergy]:
        """Exact energy per channel (L1, L2, L3, T) from the grid start to ``t`` (default: now)."""
        t = float(self._clock() if t is None else t)
        self._horizon = max(self._horizon, t)
        seg = self._segments[self._segment_index(t)]
        cum = seg.cum + seg.state.truth_rates * max(t - seg.t_start, 0.0)
        return {ch: TruthEnergy(*(float(v) for v in cum[i])) for i, ch in enumerate(CHANNELS)}

    def sample_time(self, index: int) -> float:
        """Time (s) of waveform sample ``index``."""
        return self.t0 + index / self.sample_rate_hz

    def waveform_block(self, start_index: int, n: int) -> np.ndarray:
        """Samples ``start_index`` … ``start_index + n − 1``: array (7, n), rows U1 I1 U2 I2 U3 I3 IN."""
        if start_index < 0 or n < 0:
            raise GridError("sample indices start at 0")
        idx = np.arange(start_index, start_index + n, dtype=np.float64)
        t = self.t0 + idx / self.sample_rate_hz
        out = np.zeros((len(ROW_ORDER), n))
        if n == 0:
            return out
        self._horizon = max(self._horizon, float(t[-1]))
        first_seg, last_seg = self._segment_index(float(t[0])), self._segment_index(float(t[-1]))
        if first_seg == last_seg:  # the usual case: no change of state inside the block
            pieces: list[tuple[int, int, int]] = [(first_seg, 0, n)]
        else:
            seg_of = np.searchsorted(np.asarray(self._starts), t, side="right") - 1
            pieces = []
            for seg_i in np.unique(seg_of):
                lo, hi = np.searchsorted(seg_of, [seg_i, seg_i + 1])
                pieces.append((int(seg_i), int(lo), int(hi)))
        for seg_i, lo, hi in pieces:
            seg = self._segments[max(seg_i, 0)]
            table = self._cycle_table(seg)
            if table is None:
                _fill_segment(out[:, lo:hi], seg, t[lo:hi], self.t0)
            else:
                table.fill(out[:, lo:hi], start_index + lo, t[lo:hi] - self.t0)
        return out

    def _cycle_table(self, seg: _Segment) -> _CycleTable | None:
        """The samples of one period of ``seg``'s waveform, computed once per segment (None when
        the period is not a whole number of samples up to one second)."""
        cached = self._tables.get(id(seg))
        if cached is not None and cached[0] is seg:
            return cached[1]
        if len(self._tables) > 64:
            self._tables.clear()
        table = _CycleTable.build(seg, self.t0, self.sample_rate_hz)
        self._tables[id(seg)] = (seg, table)
        return table


def _harmonic_tuple(value: Any) -> tuple[Harmonic, ...]:
    result = []
    for item in value:
        result.append(item if isinstance(item, Harmonic) else Harmonic(int(item[0]), float(item[1]),
                                                                         float(item[2]) if len(item) > 2 else 0.0))
    return tuple(result)


_PHASE_KEYS = {"voltage_v", "current_a", "phi_deg", "voltage_angle_deg", "u_harmonics", "i_harmonics",
               "on", "flicker", "pf", "pf_kind", "load_connected"}


def _changed_phase(phase: PhaseState, changes: dict[str, Any]) -> PhaseState:
    unknown = set(changes) - _PHASE_KEYS
    if unknown:
        raise GridError(f"unknown phase keys {sorted(unknown)}; allowed {sorted(_PHASE_KEYS)}")
    changes = dict(changes)
    if "pf" in changes:
        if "phi_deg" in changes:
            raise GridError("give either pf or phi_deg, not both")
        changes["phi_deg"] = phi_from_pf(float(changes.pop("pf")), changes.pop("pf_kind", "L"))
    elif "pf_kind" in changes:
        raise GridError("pf_kind needs pf")
    for key in ("u_harmonics", "i_harmonics"):
        if key in changes:
            changes[key] = _harmonic_tuple(changes[key])
    for key in ("voltage_v", "current_a", "phi_deg", "voltage_angle_deg"):
        if key in changes:
            changes[key] = float(changes[key])
    return replace(phase, **changes)


def _sine_at(sin_theta: np.ndarray, cos_theta: np.ndarray, angle_deg: float) -> np.ndarray:
    """sin(θ + angle) from sin θ and cos θ (angle addition: two products instead of a sine per sample)."""
    if angle_deg == 0.0:
        return sin_theta.copy()
    a = math.radians(angle_deg)
    result: np.ndarray = sin_theta * math.cos(a) + cos_theta * math.sin(a)
    return result


def _series(theta: np.ndarray, sin_theta: np.ndarray, cos_theta: np.ndarray, base_angle_deg: float, rms: float,
            fund_angle_deg: float, harmonics: tuple[Harmonic, ...]) -> np.ndarray:
    """√2·rms·[sin(θ + fund) + Σ m_h sin(h(θ + base) + φ_h)] for instantaneous samples.

    The fundamental comes from sin θ and cos θ (computed once per block for every channel), the
    harmonics from their own sines.
    """
    wave = _sine_at(sin_theta, cos_theta, fund_angle_deg)
    for h in harmonics:
        wave += h.magnitude * np.sin(h.order * (theta + math.radians(base_angle_deg)) + math.radians(h.phase_deg))
    wave *= math.sqrt(2.0) * rms
    return wave


def _fill_segment(out: np.ndarray, seg: _Segment, t: np.ndarray, t0: float) -> None:
    state = seg.state
    theta = 2 * np.pi * (seg.cycles0 + state.frequency_hz * (t - seg.t_start))
    sin_theta, cos_theta = np.sin(theta), np.cos(theta)
    neutral = np.zeros_like(t)
    for p, ph in enumerate(state.phases):
        if not ph.on:
            continue
        u = _series(theta, sin_theta, cos_theta, ph.voltage_angle_deg, ph.voltage_v, ph.voltage_angle_deg,
                    ph.u_harmonics)
        if ph.flicker is not None:
            u *= ph.flicker.factor(t - t0)
        i = _series(theta, sin_theta, cos_theta, ph.voltage_angle_deg, ph.i1_a, ph.current_angle_deg,
                    ph.i_harmonics)
        out[2 * p] = u
        out[2 * p + 1] = i
        neutral += i
    if state.neutral_extra_a:
        neutral += math.sqrt(2.0) * state.neutral_extra_a * _sine_at(sin_theta, cos_theta,
                                                                      state.neutral_extra_angle_deg)
    out[6] = neutral


class _CycleTable:
    """The seven rows of one period of a segment's waveform (without flicker), P samples long.

    When f·P/fs is a whole number for a period P of at most one second of samples (50 Hz at
    8 kHz: 160 samples, 60 Hz: 400), the phase of sample n is that of sample n mod P, so a block
    is a gather from the table: the same formula as :func:`_fill_segment`, evaluated once per
    period (with the phase reduced modulo one cycle first, so also exact after days of samples).
    Flicker, a function of time, is applied per block.
    """

    def __init__(self, samples: np.ndarray, state: GridState, sample_rate_hz: int) -> None:
        self.period = samples.shape[1]
        # one period twice: any stretch of up to one period is one contiguous slice, starting at
        # its first sample's place in the period (a block is copied a period at a time: a table
        # tiled over a whole second took 0.46 MB of the simulated meter's memory)
        self._samples = np.concatenate((samples, samples), axis=1)
        self._state = state

    @classmethod
    def build(cls, seg: _Segment, t0: float, sample_rate_hz: int) -> _CycleTable | None:
        """The table of ``seg`` (grid start ``t0``, s), or None when its period is too long."""
        ratio = Fraction(seg.state.frequency_hz) / Fraction(sample_rate_hz)  # cycles per sample
        if ratio.denominator > sample_rate_hz:
            return None
        period = ratio.denominator
        phase0 = (seg.cycles0 + seg.state.frequency_hz * (t0 - seg.t_start)) % 1.0  # cycles at sample 0
        j = np.arange(period, dtype=np.float64)
        out = np.zeros((len(ROW_ORDER), period))
        pseudo = _Segment(0.0, _without_flicker(seg.state), phase0, seg.cum)
        _fill_segment(out, pseudo, j / sample_rate_hz, 0.0)
        return cls(out, seg.state, sample_rate_hz)

    def fill(self, out: np.ndarray, first_index: int, rel_t: np.ndarray) -> None:
        """Samples ``first_index`` … into ``out`` (7, n); ``rel_t`` their times after the grid's start (s)."""
        n, period = out.shape[1], self.period
        off = first_index % period
        for a in range(0, n, period):
            m = min(period, n - a)
            out[:, a : a + m] = self._samples[:, off : off + m]
        for p, ph in enumerate(self._state.phases):
            if ph.on and ph.flicker is not None:
                out[2 * p] *= ph.flicker.factor(rel_t)


def _without_flicker(state: GridState) -> GridState:
    """``state`` with no flicker on any phase (the cycle table holds the unmodulated waveform)."""
    if all(ph.flicker is None for ph in state.phases):
        return state
    a, b, c = (replace(ph, flicker=None) for ph in state.phases)
    return replace(state, phases=(a, b, c))


def truth_as_mapping(truth: Mapping[str, TruthEnergy]) -> dict[str, dict[str, float]]:
    """Truth as plain nested dicts (channel → field → value), e.g. for JSON reports."""
    return {ch: {name: getattr(te, name) for name in TruthEnergy.FIELDS} for ch, te in truth.items()}

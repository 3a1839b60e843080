"""Calibration of the metering IC: the application-note formulas, the values, their limits.

Pure functions from the ATM90E36 application note (``atm90e36.md`` §7), in its order per phase:
RMS offsets at no voltage / no current (:func:`rms_offset`), power offsets at Un and no current
(:func:`power_offset`), voltage and current RMS gains against the reference (:func:`rms_gain`),
the active/reactive energy gain at PF 1 (:func:`energy_gain`) and the phase compensation at
PF 0.5 L (:func:`phase_delay`). Each takes the register value in force while measuring, so a
second pass refines the first.

:class:`CalibrationValues` are the registers of one board (per phase A, B, C);
:func:`check_plausible` refuses values no healthy board needs (a wrong reference, a phase not
connected, a swapped CT) with a message naming the register, the phase and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from meterd.core.errors import MeterError

NOMINAL_UGAIN = 52800
"""Ugain reset value (the chip's voltage RMS gain, proportional)."""
NOMINAL_IGAIN = 30000
"""Igain reset value (the chip's current RMS gain, proportional)."""
U_OFFSET_V_PER_LSB = 0.01 * 128 / 65536
"""Uoffset LSB (V): 2^7 × the Urms raw32 LSB (0.01 V / 65536) ≈ 0.0195 mV."""
I_OFFSET_A_PER_LSB = 0.001 * 128 / 65536
"""Ioffset LSB (A): 2^7 × the Irms raw32 LSB (1 mA / 65536) ≈ 1.95 µA."""
POWER_OFFSET_W_PER_LSB = 0.00256
"""Poffset/Qoffset LSB (W, var)."""
PHI_CLOCK_HZ = 2.048e6
"""PhiX counts delay cycles of this clock (0.488 µs each)."""
PHI_MAX = 0x3FF
"""Largest PhiX delay (bits 9:0)."""
PHI_DELAY_VOLTAGE = 0x8000
"""PhiX bit 15: delay the voltage channel (a negative correction)."""


class CalibrationRejected(MeterError):
    """A calibration result outside plausible limits, or a measurement it cannot use."""


def rms_gain(old_gain: int, reference: float, measured: float) -> int:
    """New Ugain/Igain: ``old × reference / measured`` (AN: 52800 × 220 / 234.563 = 49522)."""
    if measured <= 0 or reference <= 0:
        raise CalibrationRejected(f"RMS gain needs a positive reference and reading (got {reference}, {measured})")
    return round(old_gain * reference / measured)


def rms_offset(old_offset: int, measured: float, lsb: float) -> int:
    """New Uoffset/Ioffset from the RMS value read at no input (V or A) with ``old_offset`` in
    force: the reading's negation in offset LSBs (``lsb``: :data:`U_OFFSET_V_PER_LSB`,
    :data:`I_OFFSET_A_PER_LSB`), added to the old value."""
    return old_offset - round(measured / lsb)


def rms_offset_from_raw(raw32: int) -> int:
    """The AN's Uoffset/Ioffset from the averaged raw 32-bit Urms/Irms (MSW·65536 + LSW) at no
    input: ``raw32 >> 7``, two's-complement negated, low 16 bits."""
    return (-(raw32 >> 7)) & 0xFFFF


def power_offset(old_offset: int, measured: float) -> int:
    """New Poffset/Qoffset from the power read at Un and no current (W or var) with
    ``old_offset`` in force (0.00256 W per LSB)."""
    return old_offset - round(measured / POWER_OFFSET_W_PER_LSB)


def power_offset_from_raw(raw32: int) -> int:
    """The AN's Poffset/Qoffset from the averaged raw 32-bit Pmean (MSW·65536 + LSW) at no
    current: ``raw32 × 100000 / 65536 >> 8``, negated, low 16 bits."""
    return (-((raw32 * 100000 // 65536) >> 8)) & 0xFFFF


def energy_error(measured: float, reference: float) -> float:
    """Relative error of a measured energy or power against the reference (fraction)."""
    if reference == 0:
        raise CalibrationRejected("the reference power is 0: no load applied")
    return (measured - reference) / reference


def energy_gain(old_gain: int, error: float) -> int:
    """New GainX for a relative error ``error`` measured at PF 1 with ``old_gain`` in force:
    the factor ``(1 + old/32768) / (1 + error)`` (AN, old 0: ``−ε/(1+ε) × 32768``; ε = −0.1378
    gives 0x1475)."""
    factor = (1 + old_gain / 32768) / (1 + error)
    return round((factor - 1) * 32768)


def phase_gain(frequency_hz: float) -> float:
    """Gphase = 2.048 MHz / (2π f √3): PhiX counts per unit of error at PF 0.5 (3763.739 at 50 Hz)."""
    return PHI_CLOCK_HZ / (2 * math.pi * frequency_hz * math.sqrt(3))


def phi_to_signed(register: int) -> int:
    """PhiX as a signed delay in cycles: + delays the current, − the voltage."""
    magnitude = register & PHI_MAX
    return -magnitude if register & PHI_DELAY_VOLTAGE else magnitude


def phi_from_signed(delay: int) -> int:
    """The PhiX register for a signed delay (cycles); bit 15 set for a negative one."""
    if abs(delay) > PHI_MAX:
        raise CalibrationRejected(f"phase compensation of {delay} cycles exceeds the register's {PHI_MAX}")
    return PHI_DELAY_VOLTAGE | -delay if delay < 0 else delay


def phase_delay(old_phi: int, error: float, frequency_hz: float) -> int:
    """New PhiX for the relative error ``error`` at PF 0.5 L (after the gain calibration) with
    ``old_phi`` in force: ``round(ε × Gphase)`` added to the old delay (AN: 0.95 % → 0x24)."""
    return phi_from_signed(phi_to_signed(old_phi) + round(error * phase_gain(frequency_hz)))


PHASES = ("L1", "L2", "L3")


def _ideal3(value: int) -> tuple[int, int, int]:
    return (value, value, value)


@dataclass(frozen=True)
class CalibrationValues:
    """The calibration registers of one board, per phase L1, L2, L3 (A, B, C): RMS gains
    (unsigned), RMS offsets, energy gain GainX, phase compensation PhiX (raw), power offsets."""

    u_gain: tuple[int, int, int] = _ideal3(NOMINAL_UGAIN)
    i_gain: tuple[int, int, int] = _ideal3(NOMINAL_IGAIN)
    u_offset: tuple[int, int, int] = _ideal3(0)
    i_offset: tuple[int, int, int] = _ideal3(0)
    energy_gain: tuple[int, int, int] = _ideal3(0)
    phase_delay: tuple[int, int, int] = _ideal3(0)
    p_offset: tuple[int, int, int] = _ideal3(0)
    q_offset: tuple[int, int, int] = _ideal3(0)

    def as_dict(self) -> dict[str, list[int]]:
        """Plain JSON form (lists of three integers by register name)."""
        return {name: list(values) for name, values in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationValues:
        """From :meth:`as_dict`'s form; ValueError for a missing or malformed register."""
        kwargs: dict[str, tuple[int, int, int]] = {}
        for name in cls.__dataclass_fields__:
            values = data[name]
            if (not isinstance(values, list) or len(values) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                raise ValueError(f"calibration register {name}: expected three integers, got {values!r}")
            kwargs[name] = (values[0], values[1], values[2])
        return cls(**kwargs)

    def with_phase(self, phase: int, **changes: int) -> CalibrationValues:
        """A copy with register values of one phase (0–2) replaced."""
        updated: dict[str, tuple[int, int, int]] = {}
        for name, value in changes.items():
            triple = list(getattr(self, name))
            triple[phase] = value
            updated[name] = (triple[0], triple[1], triple[2])
        return CalibrationValues(**{**asdict(self), **updated})


@dataclass(frozen=True)
class CalibrationLimits:
    """What a healthy board may need: RMS gains within ``gain_pct`` % of nominal, energy gain
    within ``energy_gain_pct`` %, phase compensation at most ``phase_deg`` ° (at 50 Hz), RMS
    offsets at most ``u_offset_v`` V / ``i_offset_a`` A, power offsets at most ``power_offset_w``."""

    gain_pct: float = 10.0
    energy_gain_pct: float = 10.0
    phase_deg: float = 3.0
    u_offset_v: float = 1.0
    i_offset_a: float = 0.02
    power_offset_w: float = 5.0
    frequency_hz: float = 50.0


def check_plausible(values: CalibrationValues, limits: CalibrationLimits | None = None) -> None:
    """Raise :class:`CalibrationRejected` naming each register outside ``limits``."""
    lim = limits or CalibrationLimits()
    problems: list[str] = []
    phi_max = round(lim.phase_deg / 360 / lim.frequency_hz * PHI_CLOCK_HZ)
    for i, phase in enumerate(PHASES):
        checks = (
            ("Ugain", abs(values.u_gain[i] / NOMINAL_UGAIN - 1) * 100, lim.gain_pct, "%"),
            ("Igain", abs(values.i_gain[i] / NOMINAL_IGAIN - 1) * 100, lim.gain_pct, "%"),
            ("Gain", abs(values.energy_gain[i] / 32768) * 100, lim.energy_gain_pct, "%"),
            ("Phi", abs(phi_to_signed(values.phase_delay[i])), phi_max, "cycles"),
            ("Uoffset", abs(values.u_offset[i]) * U_OFFSET_V_PER_LSB, lim.u_offset_v, "V"),
            ("Ioffset", abs(values.i_offset[i]) * I_OFFSET_A_PER_LSB, lim.i_offset_a, "A"),
            ("Poffset", abs(values.p_offset[i]) * POWER_OFFSET_W_PER_LSB, lim.power_offset_w, "W"),
            ("Qoffset", abs(values.q_offset[i]) * POWER_OFFSET_W_PER_LSB, lim.power_offset_w, "var"),
        )
        for name, amount, limit, unit in checks:
            if amount > limit:
                problems.append(f"{name} {phase}: {amount:.4g} {unit} beyond the plausible {limit:g} {unit}")
    for name in ("u_gain", "i_gain"):
        if any(not 0 < v <= 0xFFFF for v in getattr(values, name)):
            problems.append(f"{name}: outside the unsigned 16-bit register")
    for name in ("u_offset", "i_offset", "energy_gain", "p_offset", "q_offset"):
        if any(not -0x8000 <= v <= 0x7FFF for v in getattr(values, name)):
            problems.append(f"{name}: outside the signed 16-bit register")
    if problems:
        raise CalibrationRejected("calibration refused (check the reference, the wiring and the load): "
                                  + "; ".join(problems))


@dataclass(frozen=True)
class PhaseReading:
    """One phase's values at a calibration point: voltage (V), current (A), active power (W),
    reactive power (var); from the meter (averaged) or from the reference standard."""

    voltage_v: float
    current_a: float
    active_power_w: float
    reactive_power_var: float


def offsets_step(values: CalibrationValues, no_voltage: tuple[PhaseReading, ...],
                 no_current: tuple[PhaseReading, ...], current_scale: float = 1.0) -> CalibrationValues:
    """RMS offsets from readings at no voltage and no current, power offsets from readings at Un
    and no current (all with ``values`` in force). ``current_scale`` is the board's current scale
    k (the chip sees I/k and the meter reports k × the chip's current and power): the offset
    registers are in the chip's units, so current and power readings are divided by it."""
    k = current_scale
    out = values
    for i in range(3):
        out = out.with_phase(
            i, u_offset=rms_offset(values.u_offset[i], no_voltage[i].voltage_v, U_OFFSET_V_PER_LSB),
            i_offset=rms_offset(values.i_offset[i], no_current[i].current_a / k, I_OFFSET_A_PER_LSB),
            p_offset=power_offset(values.p_offset[i], no_current[i].active_power_w / k),
            q_offset=power_offset(values.q_offset[i], no_current[i].reactive_power_var / k))
    return out


def gains_step(values: CalibrationValues, meter: tuple[PhaseReading, ...],
               reference: tuple[PhaseReading, ...]) -> CalibrationValues:
    """RMS gains and energy gain from a PF 1 point (meter and reference readings per phase).

    The RMS offsets were measured at the old gains and the gain scales the board's offset with the
    signal, so each offset is rescaled by new gain / old gain (the AN's order, offsets before
    gains, otherwise leaves ``offset × gain change`` behind: tens of µA at a 2 % current gain)."""
    out = values
    for i in range(3):
        u_gain = rms_gain(values.u_gain[i], reference[i].voltage_v, meter[i].voltage_v)
        i_gain = rms_gain(values.i_gain[i], reference[i].current_a, meter[i].current_a)
        out = out.with_phase(
            i, u_gain=u_gain, i_gain=i_gain, u_offset=round(values.u_offset[i] * u_gain / values.u_gain[i]),
            i_offset=round(values.i_offset[i] * i_gain / values.i_gain[i]),
            energy_gain=energy_gain(values.energy_gain[i],
                                    energy_error(meter[i].active_power_w, reference[i].active_power_w)))
    return out


def phase_step(values: CalibrationValues, meter: tuple[PhaseReading, ...], reference: tuple[PhaseReading, ...],
               frequency_hz: float) -> CalibrationValues:
    """Phase compensation from a PF 0.5 L point (after the gain step)."""
    out = values
    for i in range(3):
        error = energy_error(meter[i].active_power_w, reference[i].active_power_w)
        out = out.with_phase(i, phase_delay=phase_delay(values.phase_delay[i], error, frequency_hz))
    return out


class ReferenceStandard(Protocol):
    """A reference standard (a lab's reference meter, or the simulated grid's truth) as the
    calibration and the accuracy test use it. ``name``: the instrument (make, model, serial);
    ``uncertainty_pct``: its expanded uncertainty (%).

    ``read()``: the per-phase values now (V, A, W, var, phases L1–L3). ``energy_wh(times)``: the
    cumulative total active energy (import Wh, export Wh) at each meter time (monotonic s) — a
    lab adapter gates its standard's energy counter on the meter's cycles; a reference that only
    reads values (typed in, from a file) raises :class:`CalibrationRejected` there.
    """

    name: str
    uncertainty_pct: float

    def read(self) -> tuple[PhaseReading, PhaseReading, PhaseReading]: ...

    def energy_wh(self, times: Sequence[float]) -> list[tuple[float, float]]: ...

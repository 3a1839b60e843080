"""The range of the metering IC's energy registers: how long one holds at the worst-case load.

Each energy register of the chip is a 16-bit counter (0…65535 counts) cleared when read; one
count is ``1e6 × LSB / MC`` milli-units (mWh, mvarh, mVAh) of true energy (LSB 0.1 or 0.01 CF,
MC the meter constant in imp/kWh). The meter must read each register before it can fill, and the
constants are chosen so that even the all-phase total holds at least :data:`MIN_HOLD_S` at the
worst-case load: every phase at ``1.15 × Un`` and ``1.2 × Imax``. With the shipped 1000 imp/kWh
and 0.1 CF (100 mWh per count), a register holds 6553.5 Wh: 247.8 s at 3 × 264.5 V × 120 A =
95.22 kW (see ``docs/architecture.md``, "Energy register saturation").
"""

from __future__ import annotations

from fractions import Fraction

FULL_COUNT = 0xFFFF
"""The largest count of a 16-bit energy register: a register read at this value may have saturated."""
VOLTAGE_HEADROOM = 1.15
"""Worst-case phase voltage as a multiple of Un."""
CURRENT_HEADROOM = 1.2
"""Worst-case phase current as a multiple of Imax (Imax + 20 %)."""
MIN_HOLD_S = 60.0
"""The least time (s) an energy register must hold at the worst-case load."""
PHASES = 3


def milli_per_count(meter_constant_imp_per_kwh: int, energy_lsb_cf: float | Fraction) -> Fraction:
    """True milli-units (mWh) per register count: 1e6 × LSB / MC (exact)."""
    lsb = Fraction(str(energy_lsb_cf)) if isinstance(energy_lsb_cf, float) else energy_lsb_cf
    return Fraction(10**6) * lsb / meter_constant_imp_per_kwh


def capacity_wh(milli: Fraction | int) -> float:
    """The energy (Wh) a full register holds: 65535 counts × ``milli`` mWh."""
    return float(FULL_COUNT * Fraction(milli) / 1000)


def worst_case_power_w(nominal_voltage_v: float, max_current_a: float, phases: int = PHASES) -> float:
    """The largest power (W) the meter is rated to see: ``phases × 1.15 Un × 1.2 Imax``."""
    return phases * VOLTAGE_HEADROOM * nominal_voltage_v * CURRENT_HEADROOM * max_current_a


def hold_time_s(capacity: float, power_w: float) -> float:
    """Seconds a register of ``capacity`` Wh takes to fill at ``power_w`` W (inf at no power)."""
    return float("inf") if power_w <= 0 else capacity * 3600.0 / power_w


def hold_problem(meter_constant_imp_per_kwh: int, energy_lsb_cf: float | Fraction, nominal_voltage_v: float,
                 max_current_a: float, min_hold_s: float = MIN_HOLD_S) -> str:
    """Why these constants let the all-phase total register fill in less than ``min_hold_s`` at
    the worst-case load (the numbers), or "" when they do not."""
    milli = milli_per_count(meter_constant_imp_per_kwh, energy_lsb_cf)
    cap = capacity_wh(milli)
    power = worst_case_power_w(nominal_voltage_v, max_current_a)
    hold = hold_time_s(cap, power)
    if hold >= min_hold_s:
        return ""
    return (f"{meter_constant_imp_per_kwh} imp/kWh with an LSB of {float(energy_lsb_cf):g} CF is "
            f"{float(milli):g} mWh per count, 65535 counts = {cap:g} Wh; at {PHASES} × {VOLTAGE_HEADROOM} × "
            f"{nominal_voltage_v:g} V × {CURRENT_HEADROOM * max_current_a:g} A = {power / 1000:.2f} kW the total "
            f"energy register fills in {hold:.1f} s, less than the {min_hold_s:g} s required")


def late_risk(interval_s: float, power_w: float, capacity: float, safety_fraction: float) -> bool:
    """True when ``interval_s`` (s) at ``power_w`` (W) may have filled ``safety_fraction`` of a
    register of ``capacity`` Wh: the read came late enough to risk saturation."""
    return capacity > 0 and interval_s * power_w / 3600.0 >= safety_fraction * capacity

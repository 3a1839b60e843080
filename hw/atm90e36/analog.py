"""The analogue front end of one simulated board: what the metering IC's ADCs see.

A real board's voltage dividers, current transformers (or shunts) and ADC channels are not
ideal: each channel has a gain error, each current transformer shifts its current's phase against
the voltage, the channels have offsets (noise and DC on an RMS measurement, cross-talk from the
voltage into the current path on power), and the current transformer's gain drifts slightly at low
current. The chip's calibration registers (Ugain/Igain, Uoffset/Ioffset, GainX, PhiX,
Poffset/Qoffset) exist to take these errors out; this module puts them in, so that an
uncalibrated simulated board is as far out of class as a real one.

:class:`AnalogBoard` holds one board's errors, drawn reproducibly from a board seed
(:meth:`AnalogBoard.from_seed`; seed 0 is the ideal board, which changes nothing, bit for bit).
:func:`seen_powers` is the one function the simulator calls: it turns the grid's true values of a
phase into the values the chip's DSP works on, before its own calibration, with the phase shift the
host programmed in PhiX applied on top (the chip's phase compensation acts on the same signals).

Model, per phase ``k`` (U, I true RMS; φ true voltage-to-current angle; Un 230 V):

* ``U_seen = gu_k × U + uo_k`` (V; ``uo_k`` is the noise floor the chip reads at no voltage,
  which Uoffset removes);
* ``I_seen = gi_k × (1 + nl_k × e^(−I / I_nl)) × I + io_k`` (A; the low-current non-linearity
  ``nl_k`` fades with the current, ``I_nl`` = 0.2 A);
* the current channel lags by ``δ_k`` (CT phase error), so the chip sees ``φ + δ_k`` and, with
  PhiX, ``φ + δ_k + δ_PhiX``;
* ``P_seen = gu_k × gi_k × (1 + nl_k e^(−I/I_nl)) × U I cos(φ + δ) + po_k × U / Un`` (W; same for
  Q with sin and ``qo_k``); apparent power scales with the gains.

Ranges drawn for a seeded board (uniform): voltage gain ±0.8 %, current gain +1 … +2.5 % (burden
resistors on the high side), CT phase error 0.35–0.6° of lead (δ < 0: a current transformer's
secondary leads its primary), voltage offset 0.05–0.3 V, current offset 0.5–3 mA, power offsets
±0.05–0.4 W (var), non-linearity 0.02–0.05 %. Every seeded board is then out of class 0.5S
uncalibrated: at PF 0.5 L its power error is above +1.2 % on every phase.
"""

from __future__ import annotations

import cmath
import math
import random
from dataclasses import dataclass, replace

from hw.sim.grid import PhasePowers

NOMINAL_VOLTAGE_V = 230.0
"""Un (V) the cross-talk power offsets are quoted at."""
NONLINEAR_CURRENT_A = 0.2
"""Current (A) at which the low-current non-linearity has fallen to 1/e."""


@dataclass(frozen=True)
class ChannelErrors:
    """One phase's analogue errors: gains (factor), CT phase error (° of current lag), RMS
    offsets (V, A), power offsets at Un (W, var), low-current non-linearity (fraction)."""

    u_gain: float = 1.0
    i_gain: float = 1.0
    phase_deg: float = 0.0
    u_offset_v: float = 0.0
    i_offset_a: float = 0.0
    p_offset_w: float = 0.0
    q_offset_var: float = 0.0
    nonlinearity: float = 0.0

    @property
    def ideal(self) -> bool:
        """True when this channel changes nothing."""
        return self == ChannelErrors()


@dataclass(frozen=True)
class AnalogBoard:
    """The analogue errors of one board, per phase A, B, C; ``seed`` identifies the board."""

    seed: int = 0
    phases: tuple[ChannelErrors, ChannelErrors, ChannelErrors] = (ChannelErrors(), ChannelErrors(),
                                                                   ChannelErrors())

    @property
    def ideal(self) -> bool:
        """True for a board without errors (seed 0)."""
        return all(p.ideal for p in self.phases)

    @classmethod
    def from_seed(cls, seed: int) -> AnalogBoard:
        """The board with ``seed`` (0: the ideal board); the same seed always gives the same errors."""
        if seed == 0:
            return cls()
        rng = random.Random(f"pmm-board-{seed}")

        def sign() -> float:
            return 1.0 if rng.random() < 0.5 else -1.0

        def channel() -> ChannelErrors:
            return ChannelErrors(
                u_gain=1 + rng.uniform(-0.008, 0.008), i_gain=1 + rng.uniform(0.01, 0.025),
                phase_deg=-rng.uniform(0.35, 0.6), u_offset_v=rng.uniform(0.05, 0.3),
                i_offset_a=rng.uniform(0.0005, 0.003), p_offset_w=sign() * rng.uniform(0.05, 0.4),
                q_offset_var=sign() * rng.uniform(0.05, 0.4), nonlinearity=rng.uniform(0.0002, 0.0005))

        a, b, c = channel(), channel(), channel()
        return cls(seed=seed, phases=(a, b, c))


def phi_shift_rad(phi_register: int, frequency_hz: float) -> float:
    """Angle (rad) the chip adds to the voltage-to-current angle for a PhiX value: bits 9:0 delay
    in 2.048 MHz cycles; bit 15 clear delays the current (angle grows), set delays the voltage."""
    delay_s = (phi_register & 0x3FF) / 2.048e6
    shift = 2 * math.pi * frequency_hz * delay_s
    return -shift if phi_register & 0x8000 else shift


def seen_powers(board: AnalogBoard, phase: int, pw: PhasePowers, phi_rad: float) -> PhasePowers:
    """The values of phase ``phase`` (0–2) as the chip's DSP sees them, before its gain and offset
    registers: the board's errors, then the PhiX compensation ``phi_rad`` (rad). The grid's own
    object is returned unchanged for an ideal channel without compensation."""
    ch = board.phases[phase]
    if ch.ideal and phi_rad == 0.0:
        return pw
    current_factor = ch.i_gain * (1 + ch.nonlinearity * math.exp(-pw.irms_a / NONLINEAR_CURRENT_A))
    power_factor = ch.u_gain * current_factor
    rotate = cmath.rect(1.0, math.radians(ch.phase_deg) + phi_rad)
    z = complex(pw.p_w, pw.q_var) * rotate * power_factor
    z_fund = complex(pw.p_fund_w, pw.q_var) * rotate * power_factor  # reactive taken as fundamental
    crosstalk = pw.urms_v / NOMINAL_VOLTAGE_V
    p_off, q_off = ch.p_offset_w * crosstalk, ch.q_offset_var * crosstalk
    return replace(pw, urms_v=ch.u_gain * pw.urms_v + ch.u_offset_v,
                   irms_a=current_factor * pw.irms_a + ch.i_offset_a,
                   p_w=z.real + p_off, q_var=z.imag + q_off, s_va=pw.s_va * power_factor,
                   p_fund_w=z_fund.real + p_off, p_harm_w=pw.p_harm_w * power_factor)


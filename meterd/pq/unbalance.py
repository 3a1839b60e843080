"""Supply voltage unbalance by symmetrical components (IEC 61000-4-30 §5.7, power-quality.md §8).

The fundamental phasors of U1, U2, U3 are DFT line k = 10 (50 Hz) or 12 (60 Hz) of the same
resampled 10/12-cycle window the harmonics come from (all three channels resampled at the same
instants, so their angles are comparable). With a = e^{j2π/3}:

    U_pos = (Ua + a·Ub + a²·Uc) / 3,  U_neg = (Ua + a²·Ub + a·Uc) / 3,  U_zero = (Ua + Ub + Uc) / 3
    u2 = |U_neg| / |U_pos| · 100 %,   u0 = |U_zero| / |U_pos| · 100 %

Only the fundamental enters (harmonics of any sequence do not). A window whose positive-sequence
voltage is below the minimum (an interruption) has no unbalance value.
"""

from __future__ import annotations

import cmath
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meterd.pq.source import FloatArray

ComplexArray = npt.NDArray[np.complex128]
_A = cmath.exp(2j * math.pi / 3.0)


def fundamental_phasors(window: FloatArray, cycles: int) -> ComplexArray:
    """RMS phasors (V, complex) of DFT line ``cycles`` of each row of ``window`` (rows, N points
    covering exactly ``cycles`` fundamental periods): √2·X_k / N, angle relative to the window start."""
    n = window.shape[-1]
    return np.asarray(window @ _kernel(n, cycles), dtype=np.complex128)


@functools.cache
def _kernel(n: int, cycles: int) -> ComplexArray:
    """√2/N · e^{−j2π·cycles·n/N}: the DFT line ``cycles`` of N points as RMS, computed once."""
    return np.asarray(np.exp(-2j * math.pi * cycles * np.arange(n) / n) * (math.sqrt(2.0) / n),
                      dtype=np.complex128)


@dataclass(frozen=True)
class Unbalance:
    """Symmetrical components of one window (V, RMS) and the ratios u2, u0 (% of U_pos)."""

    positive_v: float
    negative_v: float
    zero_v: float

    @property
    def u2_pct(self) -> float:
        """Negative-sequence unbalance |U_neg| / |U_pos| · 100 (%)."""
        return self.negative_v / self.positive_v * 100.0

    @property
    def u0_pct(self) -> float:
        """Zero-sequence unbalance |U_zero| / |U_pos| · 100 (%)."""
        return self.zero_v / self.positive_v * 100.0


def sequence_components(ua: complex, ub: complex, uc: complex) -> tuple[complex, complex, complex]:
    """(positive, negative, zero) sequence phasors of three phase-to-neutral phasors (Fortescue)."""
    a, a2 = _A, _A * _A
    return (ua + a * ub + a2 * uc) / 3.0, (ua + a2 * ub + a * uc) / 3.0, (ua + ub + uc) / 3.0


def unbalance(phasors: ComplexArray, min_positive_v: float) -> Unbalance | None:
    """Unbalance of the phasors of U1, U2, U3 (V); None when |U_pos| ≤ ``min_positive_v`` (V)."""
    pos, neg, zero = sequence_components(complex(phasors[0]), complex(phasors[1]), complex(phasors[2]))
    if abs(pos) <= max(min_positive_v, 1e-12):
        return None
    return Unbalance(abs(pos), abs(neg), abs(zero))

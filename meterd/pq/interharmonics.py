"""Interharmonic groups and centred subgroups (IEC 61000-4-7, power-quality.md §6.4).

From the line RMS Y_k of a 10-cycle (50 Hz, 5 Hz lines) or 12-cycle (60 Hz) window, with the
harmonic h on line k = cycles·h, the interharmonic quantities between orders h and h+1 are

    group:            Y²ig,h  = Σ_{i=1..cycles−1} Y²_{k+i}   (all lines between two harmonics)
    centred subgroup: Y²isg,h = Σ_{i=2..cycles−2} Y²_{k+i}   (without the lines next to a harmonic)

indexed by h = 0…50 (index 0: between DC and the fundamental, index 50: between orders 50 and 51),
in the unit of the input (V or A, RMS). IEC 61000-4-30 class A reports the centred subgroups; the
groups are kept beside them (IEC 61000-4-7's basic interharmonic quantity).
"""

from __future__ import annotations

import numpy as np

from meterd.pq.harmonics import MAX_ORDER
from meterd.pq.source import FloatArray


def interharmonic_rows(lines: FloatArray, cycles: int) -> tuple[FloatArray, FloatArray]:
    """(groups, centred subgroups) of every row of ``lines`` (rows, lines): two (rows, 51) arrays.

    Lines k = cycles·h … cycles·h + cycles − 1 are viewed as one row of a (rows, 51, cycles) array:
    column 0 is harmonic h, columns 1…cycles−1 the interharmonic lines after it.
    """
    spans = (lines[:, : (MAX_ORDER + 1) * cycles] ** 2).reshape(lines.shape[0], MAX_ORDER + 1, cycles)
    groups = np.sqrt(np.sum(spans[:, :, 1:], axis=2))
    subgroups = np.sqrt(np.sum(spans[:, :, 2 : cycles - 1], axis=2))
    return np.asarray(groups, dtype=np.float64), np.asarray(subgroups, dtype=np.float64)

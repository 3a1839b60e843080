"""Percentiles by linear interpolation between order statistics (NumPy's default ``linear``
method, Hyndman & Fan type 7), the rule of the flickermeter's classifier (IEC 61000-4-15 §7.6)
and of the EN 50160 95 % values.

The same values as ``np.percentile``, element for element; computed here with one sort because
``np.percentile`` imports ``numpy.ma`` on its first call (0.7 MiB of resident code in meterd).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meterd.pq.source import FloatArray


def percentiles(values: FloatArray, q_pct: Sequence[float]) -> FloatArray:
    """The ``q_pct`` percentiles (0…100) of ``values`` (any shape, flattened; at least one value)."""
    a = np.sort(np.asarray(values, dtype=np.float64), axis=None)
    if a.size == 0:
        raise ValueError("percentile of no values")
    pos = np.asarray(q_pct, dtype=np.float64) / 100.0 * (a.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, a.size - 1)
    t = pos - lo
    below, above = a[lo], a[hi]
    diff = above - below
    # NumPy's lerp: from the lower value below the middle, from the upper one above it
    return np.where(t >= 0.5, above - diff * (1.0 - t), below + diff * t)


def percentile(values: FloatArray, q_pct: float) -> float:
    """One percentile (0…100) of ``values``."""
    return float(percentiles(values, (q_pct,))[0])

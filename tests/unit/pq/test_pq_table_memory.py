"""The interpolator's weight table is built in slices: its temporaries stay small (meterd's peak RSS)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from meterd.pq import harmonics


def test_the_weight_table_is_built_without_a_large_peak() -> None:
    harmonics._weight_table.cache_clear()
    tracemalloc.start()
    try:
        table = harmonics._weight_table()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        harmonics._weight_table.cache_clear()
    assert table.dtype == np.float32 and table.shape == (4097, 48)
    assert peak < table.nbytes + 4 * 2**20  # the table (0.8 MB) and one slice's temporaries; at once: 17 MiB
    # the Kaiser-windowed sinc, row q at q/4096 of a sample, taps −23…+24 (a whole row: the sample itself)
    assert table[0, 23] == 1.0 and np.all(np.abs(table[0, :23]) < 1e-6)
    assert np.isclose(table[2048].sum(), 1.0, atol=1e-3)

"""What keeps the waveform analysis light in memory (meterd's peak RSS): the same results with
smaller temporaries and buffers."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from meterd.pq import harmonics
from meterd.pq.flicker import PinstInterval, pst_from_pinst
from meterd.pq.history import SampleHistory
from meterd.pq.monitor import PqMonitor, history_capacity
from meterd.pq.percentile import percentile, percentiles

FS = 8000.0


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 5000])
def test_percentiles_equal_numpys_linear_method(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.lognormal(size=n) * rng.choice([1.0, -1.0], size=n)
    values[rng.integers(0, n, size=n // 3)] = 0.5  # ties
    qs = [0.0, 0.1, 0.7, 1, 5, 17, 20, 50, 83, 95, 99.9, 100.0]
    assert np.array_equal(percentiles(values, qs), np.percentile(values, qs))
    assert percentile(values, 95) == float(np.percentile(values, 95))


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentiles(np.zeros(0), [50])


def _history(seconds: float) -> SampleHistory:
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x = np.vstack([np.sqrt(2) * 230 * np.sin(2 * np.pi * 50 * t + k) + 3 * np.sin(2 * np.pi * 350 * t)
                   for k in range(7)])
    hist = SampleHistory(7, history_capacity(FS))
    hist.reset(0)
    hist.append(0, x)
    return hist


def test_resampling_in_chunks_gives_the_whole_products_result_with_a_small_peak() -> None:
    hist = _history(1.0)
    start, stop = 1234.56, 1234.56 + 1600.2
    harmonics.prepare_tables()
    tracemalloc.start()
    try:
        got = harmonics.resample_window(hist, slice(0, 7), start, stop)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the whole product at once, as it was computed before
    t = start + np.arange(2048) * ((stop - start) / 2048)
    base = np.floor(t).astype(np.int64)
    weights = harmonics._weight_table()[np.rint((t - base) * 4096).astype(np.int64)]
    segment = hist.get(slice(0, 7), int(base[0]) - 23, int(base[-1]) + 25).astype(np.float32)
    taps = np.lib.stride_tricks.sliding_window_view(segment, 48, axis=1)[:, base - base[0]]
    whole = np.einsum("rnj,nj->rn", taps, weights).astype(np.float64)
    assert np.array_equal(got, whole)
    assert peak < 1.5 * 2**20  # 1.3 MB; the whole product at once: 3.4 MB


def test_history_holds_a_second_block_and_the_longest_window_behind_it() -> None:
    assert history_capacity(8000.0) == 16384
    assert history_capacity(16000.0) == 32768
    lowest_hz, cycles = 42.5, 12  # the longest window: 12 cycles at −15 % of 50 Hz
    for fs in (4000.0, 8000.0, 10240.0, 16000.0):
        window = cycles * fs / lowest_hz
        lag = fs / lowest_hz + harmonics.interpolation_margin() + 8
        assert history_capacity(fs) >= fs + window + lag + harmonics.interpolation_margin()


def test_the_monitors_history_takes_under_two_megabytes_at_8_khz() -> None:
    monitor = PqMonitor()
    history = monitor._history
    assert history._buf.nbytes + history._sums.nbytes <= 2 * 7 * 16384 * 8


def test_a_percentile_does_not_import_numpy_ma() -> None:
    code = ("import sys, numpy as np\n"
            "from meterd.pq.percentile import percentiles\n"
            "from meterd.pq.flicker import pst_from_pinst\n"
            "percentiles(np.arange(10.0), [50]); pst_from_pinst(np.linspace(0.1, 2.0, 1000))\n"
            "assert 'numpy.ma' not in sys.modules, 'numpy.ma imported'\n"
            "np.percentile(np.arange(10.0), 50)\n"
            "assert 'numpy.ma' in sys.modules  # what np.percentile does\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_pinst_interval_gives_the_joined_values_from_one_array() -> None:
    rng = np.random.default_rng(7)
    chunks = [rng.random((3, n)) for n in (100, 37, 100, 63)]
    interval = PinstInterval(3, rate_hz=100.0)
    array = interval._values
    for chunk in chunks:
        interval.append(chunk)
    joined = np.concatenate(chunks, axis=1)
    assert len(interval) == 300
    for i in range(3):
        assert np.array_equal(interval.channel(i), joined[i])
        assert pst_from_pinst(interval.channel(i)) == pst_from_pinst(joined[i].copy())
    interval.clear()
    interval.append(chunks[0])
    assert len(interval) == 100 and interval._values is array  # the next interval reuses the array


def test_pinst_interval_grows_when_an_interval_outgrows_it() -> None:
    interval = PinstInterval(1, rate_hz=100.0, capacity_s=1.0)
    values = np.arange(250.0)[None, :]
    for a in range(0, 250, 50):
        interval.append(values[:, a : a + 50])
    assert interval.capacity >= 250
    assert np.array_equal(interval.channel(0), values[0])


def test_the_monitors_pinst_array_holds_ten_minutes_of_a_fast_clock() -> None:
    monitor = PqMonitor()
    interval = monitor._pinst
    assert interval.capacity >= 600 * 100 * 1.02  # 100 Hz Pinst, a sample clock 2 % fast
    assert interval._values.shape[0] == 3 and interval._values.nbytes < 1.5 * 2**20


def test_the_zero_crossing_detector_keeps_two_periods_not_the_block() -> None:
    from meterd.pq.zerocross import ZeroCrossingDetector

    zc = ZeroCrossingDetector(FS, 50.0, min_amplitude_v=10.0)
    t = np.arange(3 * int(FS)) / FS
    x = 325.0 * np.sin(2 * np.pi * 50.0 * t)
    marks = []
    for a in range(0, x.size, int(FS)):
        marks += zc.process(a, x[a : a + int(FS)])
    assert len(marks) >= 290  # 100 crossings a second, less the filter's start
    assert zc._raw.size == 2 * 160 and zc._raw.base is None  # two periods of its own
    assert zc._strong_count.nbytes <= 8  # the block's index is dropped after the block

"""Class A 10-s frequency at EN 50160's limits (47 Hz and 52 Hz) and across frequency steps.

Expected values come from the definition (IEC 61000-4-30 class A, power-quality.md §2.5): the whole
cycles (rising zero crossing to rising zero crossing) lying inside each 10-s clock interval,
f = N cycles / their total duration; class A allows ±10 mHz. The signal's rising zero crossings are
known in closed form from its phase-continuous frequency schedule. The detector once updated its
period only within ±5 % of the current value, so at 47 Hz it free-ran and gave no 10-s value, and
after a step down from 50.5 Hz read 47.66 Hz.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import WaveformBlock

FS = 8000
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)  # on a 10-s boundary
CLASS_A_HZ = 0.010

Schedule = list[tuple[float, float]]  # (from s, frequency Hz), first entry from 0 s


def cycles_at(schedule: Schedule, t: np.ndarray) -> np.ndarray:
    """Phase of the supply in cycles (phase-continuous across the frequency changes)."""
    out = np.zeros_like(t)
    done = 0.0
    for i, (start, f_hz) in enumerate(schedule):
        end = schedule[i + 1][0] if i + 1 < len(schedule) else math.inf
        inside = (t >= start) & (t < end)
        out[inside] = done + f_hz * (t[inside] - start)
        done += f_hz * (end - start) if end < math.inf else 0.0
    return out


def rising_crossings(schedule: Schedule, seconds: float) -> list[float]:
    """Times (s) at which the phase passes a whole number of cycles (sin rises through zero)."""
    times, done = [], 0.0
    for i, (start, f_hz) in enumerate(schedule):
        end = schedule[i + 1][0] if i + 1 < len(schedule) else seconds
        k = math.ceil(done)
        while (t := start + (k - done) / f_hz) < end:
            times.append(t)
            k += 1
        done += f_hz * (end - start)
    return times


def expected_ten_second_hz(schedule: Schedule, seconds: float, interval: int) -> float:
    """Whole cycles inside [10·interval, 10·interval + 10) s over their total duration."""
    lo, hi = 10.0 * interval, 10.0 * interval + 10.0
    inside = [t for t in rising_crossings(schedule, seconds) if lo <= t < hi]
    return (len(inside) - 1) / (inside[-1] - inside[0])


def ten_second_values(schedule: Schedule, seconds: int, f_nom_hz: float = 50.0, seed: int = 19) -> dict[int, float]:
    """Feed three phases at 230 V in blocks of random size (1 sample to 1 s); every 10-s value
    released, by interval index (interval k ends at T0 + 10·(k + 1) s), each exactly once and unflagged."""
    mon = PqMonitor(PqSettings(f_nom_hz=f_nom_hz))
    rng = np.random.default_rng(seed)
    values: dict[int, float] = {}
    first = 0
    while first < seconds * FS:
        n = min(int(rng.integers(1, FS + 1)), seconds * FS - first)
        t = (first + np.arange(n)) / FS
        cycles = cycles_at(schedule, t)
        x = np.zeros((7, n))
        for p in range(3):
            x[2 * p] = math.sqrt(2) * 230 * np.sin(2 * np.pi * (cycles - p / 3))
        mon.feed(WaveformBlock(first, x, float(FS), T0 + dt.timedelta(seconds=first / FS)))
        first += n
        v = mon.latest()
        if v.frequency_end_utc is None:
            continue
        interval = round((v.frequency_end_utc - T0).total_seconds()) // 10 - 1
        assert v.frequency_hz is not None and not v.frequency_flagged
        if interval not in values:
            assert interval == len(values), f"10-s interval {len(values)} gave no value"
            values[interval] = v.frequency_hz
        assert values[interval] == v.frequency_hz
    return values


@pytest.mark.parametrize("f_hz", [47.0, 52.0])
def test_ten_second_frequency_at_the_en_50160_limits(f_hz: float) -> None:
    got = ten_second_values([(0.0, f_hz)], 31)
    assert sorted(got) == [0, 1, 2]
    for interval, value in got.items():
        expected = expected_ten_second_hz([(0.0, f_hz)], 31, interval)
        assert expected == pytest.approx(f_hz, abs=1e-9)
        assert value == pytest.approx(expected, abs=CLASS_A_HZ)


@pytest.mark.parametrize(("before_hz", "after_hz", "step_s"),
                         [(50.5, 47.0, 14.3), (50.5, 47.0, 17.77), (47.0, 52.0, 14.3), (49.5, 50.5, 14.3)])
def test_ten_second_frequency_across_a_step(before_hz: float, after_hz: float, step_s: float) -> None:
    """The step inside 10–20 s: that interval holds cycles of both frequencies, the next only the new."""
    schedule = [(0.0, before_hz), (step_s, after_hz)]
    got = ten_second_values(schedule, 31)
    assert sorted(got) == [0, 1, 2]
    for interval, value in got.items():
        assert value == pytest.approx(expected_ten_second_hz(schedule, 31, interval), abs=CLASS_A_HZ)
    assert got[2] == pytest.approx(after_hz, abs=CLASS_A_HZ)


def test_ten_second_frequency_of_a_60_hz_system_at_its_lower_limit() -> None:
    """60 Hz nominal at −6 % (56.4 Hz)."""
    got = ten_second_values([(0.0, 56.4)], 21, f_nom_hz=60.0)
    assert got[1] == pytest.approx(56.4, abs=CLASS_A_HZ)

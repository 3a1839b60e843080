"""Recorded outputs of the power-quality chain on a fixed set of signals (tests/data/pq_reference.json).

The signals — harmonics and interharmonics at 49.8 Hz, 8.8 Hz flicker across a 10-min tick, dips,
swells and an interruption after amplitude steps of several sizes, frequency steps 50.5 → 47 →
52 Hz — are fed through :class:`~meterd.pq.monitor.PqMonitor` in blocks of random size (fixed seed).
Every output is collected as it appears: finished events, 150-cycle and 10-min aggregates, 10-s
frequencies, Pst, and the harmonic analysis of the last window of each channel.
``tests/unit/pq/test_pq_reference.py`` compares the chain with the recorded outputs within the
class A tolerances. Regenerate (only when a change of results is intended and understood) with

    PYTHONPATH=$PWD python -m tests.pq_reference
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from meterd.pq.monitor import PqMonitor
from meterd.pq.source import WaveformBlock

FS = 8000
DATA = Path(__file__).resolve().parent / "data" / "pq_reference.json"
UDIN = 230.0

Signal = Callable[[np.ndarray], np.ndarray]  # sample times (s) → samples (7, n)


def _three_phase(t: np.ndarray, cycles: np.ndarray, level: Callable[[int, np.ndarray], np.ndarray],
                 harmonics: tuple[tuple[int, float], ...] = (), interharmonic: tuple[float, float] | None = None,
                 ) -> np.ndarray:
    """U (V) and I (A) of three phases; ``cycles`` is the fundamental's phase in cycles."""
    x = np.zeros((7, t.size))
    for p in range(3):
        w = 2 * np.pi * (cycles - p / 3)
        u = np.sin(w) + sum(a * np.sin(h * w + 0.3 * h) for h, a in harmonics)
        if interharmonic is not None:
            u = u + interharmonic[1] * np.sin(2 * np.pi * interharmonic[0] * t)
        x[2 * p] = math.sqrt(2) * UDIN * level(p, t) * u
        x[2 * p + 1] = math.sqrt(2) * 10.0 * (np.sin(w - 0.4) + 0.25 * np.sin(3 * w) + 0.1 * np.sin(5 * w + 1))
    x[6] = x[1] + x[3] + x[5]
    return x


def harmonics(t: np.ndarray) -> np.ndarray:
    """49.8 Hz with 5 % 5th, 4 % 7th, 1.5 % 11th, 0.5 % 23rd, 0.3 % 49th and a 0.4 % tone at 182 Hz."""
    return _three_phase(t, 49.8 * t, lambda p, t: np.ones_like(t),
                        ((5, 0.05), (7, 0.04), (11, 0.015), (23, 0.005), (49, 0.003)), (182.0, 0.004))


def flicker(t: np.ndarray) -> np.ndarray:
    """50 Hz with 0.6 % sinusoidal 8.8 Hz modulation on L1, 1 % rectangular 4 Hz on L2, none on L3."""
    def level(p: int, t: np.ndarray) -> np.ndarray:
        if p == 0:
            return 1 + 0.003 * np.sin(2 * np.pi * 8.8 * t)
        if p == 1:
            return 1 + 0.005 * np.sign(np.sin(2 * np.pi * 4.0 * t))
        return np.ones_like(t)
    return _three_phase(t, 50.0 * t, level, ((3, 0.02),))


def events(t: np.ndarray) -> np.ndarray:
    """Steps of several sizes and phase angles: dips, swells, a three-phase interruption."""
    steps = {0: [(0.5, 0.7, 0.4), (1.5, 1.62, 0.1), (2.405, 2.6, 0.85), (3.6, 3.8, 0.0)],
             1: [(0.9, 1.1, 1.3), (2.0, 2.25, 0.6), (3.6, 3.8, 0.0)],
             2: [(1.2013, 1.4, 1.6), (2.1, 2.2, 0.75), (3.6, 3.8, 0.0)]}

    def level(p: int, t: np.ndarray) -> np.ndarray:
        out = np.ones_like(t)
        for on, off, pu in steps[p]:
            out[(t >= on - 1e-9) & (t < off - 1e-9)] = pu
        return out
    return _three_phase(t, 50.0 * t, level, ((5, 0.03),))


def frequency_steps(t: np.ndarray) -> np.ndarray:
    """50.5 Hz, 47 Hz from 12.3 s, 52 Hz from 24.6 s (phase-continuous)."""
    cycles = np.where(t < 12.3, 50.5 * t, np.where(t < 24.6, 50.5 * 12.3 + 47.0 * (t - 12.3),
                                                    50.5 * 12.3 + 47.0 * 12.3 + 52.0 * (t - 24.6)))
    return _three_phase(t, cycles, lambda p, t: np.ones_like(t))


# name → (signal, seconds, UTC of the first sample)
SIGNALS: dict[str, tuple[Signal, float, dt.datetime]] = {
    "harmonics": (harmonics, 4.0, dt.datetime(2026, 2, 1, 8, 0, 0, tzinfo=dt.UTC)),
    "flicker": (flicker, 30.0, dt.datetime(2026, 2, 1, 8, 9, 35, tzinfo=dt.UTC)),  # 25 s before a tick
    "events": (events, 4.5, dt.datetime(2026, 2, 1, 8, 0, 0, tzinfo=dt.UTC)),
    "frequency_steps": (frequency_steps, 41.0, dt.datetime(2026, 2, 1, 8, 0, 0, tzinfo=dt.UTC)),
}


def block_sizes(total: int, seed: int) -> list[int]:
    """Random block sizes 1…4000 samples covering ``total`` samples."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while sum(out) < total:
        out.append(min(int(rng.integers(1, 4000)), total - sum(out)))
    return out


def run(name: str) -> dict[str, Any]:
    """Feed one signal; every output as plain JSON values."""
    make, seconds, t0 = SIGNALS[name]
    n = int(seconds * FS)
    x = make(np.arange(n) / FS)
    mon = PqMonitor()
    out: dict[str, Any] = {"events": [], "150-cycle": [], "10-min": [], "frequency": [], "pst": []}
    first = 0
    freq_seen = None
    for size in block_sizes(n, seed=len(name)):
        block = WaveformBlock(first, x[:, first : first + size], float(FS), t0 + dt.timedelta(seconds=first / FS))
        for e in mon.feed(block):
            out["events"].append({"kind": e.kind, "phases": list(e.phases), "start_s": e.start_index / FS,
                                  "end_s": e.end_index / FS, "residual_v": e.residual_v, "max_v": e.max_v,
                                  "worst_phase": e.worst_phase})
        first += size
        v = mon.latest()
        for kind in ("150-cycle", "10-min"):
            agg = v.aggregates.get(kind)
            if agg is not None and (not out[kind] or out[kind][-1]["end_utc"] != agg.end_utc.isoformat()):
                out[kind].append({"end_utc": agg.end_utc.isoformat(), "n": agg.n_values, "flagged": bool(agg.flagged),
                                  "rms": agg.rms.tolist(), "thds_pct": agg.thds_pct,
                                  "subgroup_u1": agg.subgroup_rms[0].tolist(),
                                  "subgroup_i1": agg.subgroup_rms[1].tolist()})
        if v.frequency_hz is not None and v.frequency_hz is not freq_seen:
            freq_seen = v.frequency_hz
            out["frequency"].append({"hz": float(v.frequency_hz), "flagged": bool(v.frequency_flagged)})
        for phase, pst in sorted(v.pst.items()):
            entry = {"phase": phase, "end_utc": pst.end_utc.isoformat(), "pst": float(pst.pst), "flagged": bool(pst.flagged)}
            if entry not in out["pst"]:
                out["pst"].append(entry)
    v = mon.latest()
    out["harmonics"] = {ch: {"harmonic_rms": h.harmonic_rms.tolist(), "subgroup_rms": h.subgroup_rms.tolist(),
                             "group_rms": h.group_rms.tolist(),
                             "interharmonic_subgroup_rms": h.interharmonic_subgroup_rms.tolist(),
                             "thds_pct": h.thds_pct}
                        for ch, h in sorted(v.harmonics.items())}
    out["rms_10cycle"] = dict(sorted(v.rms_10cycle.items()))
    out["urms_half_v"] = {str(k): val for k, val in sorted(v.urms_half_v.items())}
    return out


def record() -> dict[str, Any]:
    """Outputs of every signal."""
    return {name: run(name) for name in SIGNALS}


def _compact(obj: Any) -> Any:
    """Floats to 10 significant digits (far finer than any class A tolerance), recursively."""
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    if isinstance(obj, list):
        return [_compact(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    return obj


if __name__ == "__main__":
    DATA.write_text(json.dumps(_compact(record()), sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {DATA} ({DATA.stat().st_size} bytes)")

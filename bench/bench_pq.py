"""Benchmark: CPU time of the whole power-quality chain per second of 3-phase 8 kHz input.

The run starts on a 10-min UTC tick and crosses the next one, so a full 10-min interval is closed:
its aggregation and the Pst of three phases (percentiles over 10 min of Pinst) are included, with
the 10/12-cycle RMS, harmonics, events, 10-s frequency and the flickermeters of every block.
Prints CPU per input second (ms), the share of one core (%), and the cost of the block that
closed the interval (ms). ``--seconds N`` changes the length (at least 605 s to cross the tick).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time

import numpy as np

from meterd.pq.monitor import PqMonitor
from meterd.pq.source import WaveformBlock

FS = 8000
SECONDS = 610
BLOCK = 800  # 100 ms blocks, as the runtime would deliver them
T0 = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)  # on a 10-min tick


def make_signal(first: int, n: int) -> np.ndarray:
    """Samples first…first+n−1: 230 V with 3 % 5th, 0.5 % flicker at 8.8 Hz; 10 A with 20 % 3rd."""
    t = (first + np.arange(n)) / FS
    x = np.zeros((7, n))
    flicker = 1 + 0.0025 * np.sin(2 * np.pi * 8.8 * t)
    for p in range(3):
        ph = 2 * np.pi * p / 3
        x[2 * p] = math.sqrt(2) * 230 * flicker * (np.sin(2 * np.pi * 50 * t - ph)
                                                   + 0.03 * np.sin(5 * (2 * np.pi * 50 * t - ph)))
        x[2 * p + 1] = math.sqrt(2) * 10 * (np.sin(2 * np.pi * 50 * t - ph - 0.3)
                                            + 0.2 * np.sin(3 * (2 * np.pi * 50 * t - ph)))
    x[6] = x[1] + x[3] + x[5]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=SECONDS, help="input seconds (default %(default)s)")
    seconds = parser.parse_args().seconds
    mon = PqMonitor()  # includes the one-off flicker scale calibration
    cpu_s, tick_ms, worst_ms = 0.0, 0.0, 0.0
    for second in range(seconds):
        x = make_signal(second * FS, FS)  # signal generation is not timed
        for s in range(0, FS, BLOCK):
            first = second * FS + s
            block = WaveformBlock(first, x[:, s : s + BLOCK], float(FS), T0 + dt.timedelta(seconds=first / FS))
            had = mon.latest().aggregates.get("10-min")
            start = time.process_time()
            mon.feed(block)
            spent = time.process_time() - start
            cpu_s += spent
            worst_ms = max(worst_ms, spent * 1000)
            if mon.latest().aggregates.get("10-min") is not had:
                tick_ms = spent * 1000
    v = mon.latest()
    closed = v.aggregates.get("10-min")
    if seconds >= 605 and (closed is None or len(v.pst) != 3):
        raise SystemExit("the run did not close a 10-min interval with its Pst")
    print(f"pq_chain_cpu_per_input_second: {cpu_s / seconds * 1000:.1f} ms")
    print(f"pq_chain_core_load: {cpu_s / seconds * 100:.1f} % of one core")
    print(f"pq_block_closing_10min_interval: {tick_ms:.1f} ms (worst 100-ms block {worst_ms:.1f} ms)")
    print(f"pq_input_seconds: {seconds} s, 10-min intervals closed: {int(closed is not None)}, "
          f"Pst L1 {v.pst[1].pst:.3f}" if 1 in v.pst else f"pq_input_seconds: {seconds} s")


if __name__ == "__main__":
    main()

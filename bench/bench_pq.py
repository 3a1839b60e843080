"""Benchmark: CPU time of the whole power-quality chain per second of 3-phase 8 kHz input."""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np

from meterd.pq.monitor import PqMonitor
from meterd.pq.source import WaveformBlock

FS = 8000.0
SECONDS = 60
BLOCK = 800  # 100 ms blocks, as the runtime would deliver them


def make_signal(n: int) -> np.ndarray:
    t = np.arange(n) / FS
    x = np.zeros((7, n))
    for p in range(3):
        ph = 2 * np.pi * p / 3
        x[2 * p] = math.sqrt(2) * 230 * (np.sin(2 * np.pi * 50 * t - ph) + 0.03 * np.sin(2 * np.pi * 250 * t))
        x[2 * p + 1] = math.sqrt(2) * 10 * (np.sin(2 * np.pi * 50 * t - ph - 0.3) + 0.2 * np.sin(2 * np.pi * 150 * t))
    x[6] = x[1] + x[3] + x[5]
    return x


def main() -> None:
    x = make_signal(int(SECONDS * FS))
    mon = PqMonitor()  # includes the one-off flicker scale calibration
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    start = time.process_time()
    for s in range(0, x.shape[1], BLOCK):
        mon.feed(WaveformBlock(s, x[:, s : s + BLOCK], FS, t0 + dt.timedelta(seconds=s / FS)))
    cpu_s = time.process_time() - start
    print(f"pq_chain_cpu_per_input_second: {cpu_s / SECONDS * 1000:.1f} ms")
    print(f"pq_chain_core_load: {cpu_s / SECONDS * 100:.1f} %")
    print(f"pq_input_seconds: {SECONDS} s")


if __name__ == "__main__":
    main()

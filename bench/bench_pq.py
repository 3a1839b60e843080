"""Benchmark of power quality: the chain's CPU, the simulated meter's speed, the event loop's hold,
meterd's RSS and its storage writes over a simulated day, with the waveform analysis on.

Parts (``--part``, default all but ``day``):

* ``chain``: CPU time of the whole chain (:class:`~meterd.pq.monitor.PqMonitor`) per second of
  three-phase 8 kHz input, in 100-ms blocks and in the meter's 1-s blocks. The run starts on a
  10-min UTC tick and crosses the next one, so a full 10-min interval is closed (aggregation and
  the Pst of three phases) besides the RMS, harmonics, events, 10-s frequency and flickermeters;
* ``meter``: simulated hours per wall hour of the whole simulated meter (every feature of
  tests/simmeter, PQ on), stepped as ``meterd run --speed 0`` steps it, and with PQ off, with
  the machine's load average; and simulated hours per CPU hour (what an idle core gives);
* ``hold``: the longest time the event loop was held, seen by a 1-ms ticker on the loop while
  the meter runs at 10× real time (1 cycle per 100 ms), with the analysis inline and on its
  worker thread (``[power_quality] worker``), the start-up's objects frozen as meterd freezes them
  (``meterd.runtime.gc_policy``), and a full collection's time before and after that;
* ``day``: a real ``meterd run --speed 0`` process (PQ on, or off with ``--day-pq off``; with the
  interpreter options ``systemd/meterd.service`` runs it with) over
  ``--day-seconds`` of meter time (default a whole day): its RSS at start (the first status
  answer), after 10 min of meter time (warm-up) and at the end, its peak
  (VmHWM before the stop, and over its whole life with the stop: the exited child's maximum RSS),
  and the bytes it sent to the block layer (``/proc/<pid>/io`` ``write_bytes`` minus
  ``cancelled_write_bytes``: what this process made the kernel write to storage, tmpfs excluded,
  whatever else runs on the machine), scaled to a day.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterd.pq.monitor import PqMonitor  # noqa: E402
from meterd.pq.source import WaveformBlock  # noqa: E402

FS = 8000
SECONDS = 610
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


def chain(seconds: int, block: int) -> None:
    """CPU of the chain per input second in blocks of ``block`` samples."""
    mon = PqMonitor()  # includes the one-off flicker scale calibration
    cpu_s, tick_ms, worst_ms = 0.0, 0.0, 0.0
    for second in range(seconds):
        x = make_signal(second * FS, FS)  # signal generation is not timed
        for s in range(0, FS, block):
            first = second * FS + s
            blk = WaveformBlock(first, x[:, s : s + block], float(FS), T0 + dt.timedelta(seconds=first / FS))
            had = mon.latest().aggregates.get("10-min")
            start = time.process_time()
            mon.feed(blk)
            spent = time.process_time() - start
            cpu_s += spent
            worst_ms = max(worst_ms, spent * 1000)
            if mon.latest().aggregates.get("10-min") is not had:
                tick_ms = spent * 1000
    v = mon.latest()
    closed = v.aggregates.get("10-min")
    if seconds >= 605 and (closed is None or len(v.pst) != 3):
        raise SystemExit("the run did not close a 10-min interval with its Pst")
    label = f"{block * 1000 // FS}-ms blocks"
    print(f"pq_chain_cpu_per_input_second ({label}): {cpu_s / seconds * 1000:.1f} ms"
          f" ({cpu_s / seconds * 100:.2f} % of one core)")
    print(f"pq_block_closing_10min_interval ({label}): {tick_ms:.1f} ms (worst block {worst_ms:.1f} ms)")


def meter_speed(seconds: int) -> None:
    """Simulated hours per wall hour of the stepped simulated meter, PQ on and off."""
    from tests.simmeter import SimMeter

    for pq in (True, False):
        with tempfile.TemporaryDirectory() as d:
            sm = SimMeter(Path(d), sim={"current_a": 1.45, "power_factor": "0.95L"}, display={"kind": "dummy"},
                          power_quality={"enabled": pq})
            sm.run(30)  # warm-up: the first windows, caches
            t0, c0 = time.perf_counter(), time.process_time()
            sm.run(seconds)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            sm.close()
        state = "on" if pq else "off"
        print(f"simulated_hours_per_wall_hour_pq_{state}: {seconds / wall:.1f}"
              f" ({wall / seconds * 1000:.1f} ms wall, {cpu / seconds * 1000:.1f} ms CPU per simulated second;"
              f" {seconds} s of meter time; load average {_load_average()})")
        print(f"simulated_hours_per_cpu_hour_pq_{state}: {seconds / cpu:.1f}"
              " (the wall-clock figure on an otherwise idle core)")


def _load_average() -> str:
    """The 1-min load average of the machine (the wall-clock figures depend on it)."""
    return f"{os.getloadavg()[0]:.2f}"


def _full_collection_ms() -> float:
    """The time of one full (generation 2) collection of the cyclic garbage collector (ms)."""
    t0 = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - t0) * 1000.0


def loop_hold(seconds: int) -> None:
    """The longest event-loop hold at 10× real time, the analysis inline and on its worker."""
    from meterd.app.features.power_quality import WaveformFeed
    from meterd.runtime import gc_policy
    from tests.simmeter import SimMeter

    async def run(meter: SimMeter, cycles: int) -> float:
        loop = asyncio.get_running_loop()
        worst = [0.0]
        done = asyncio.Event()

        async def ticker() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = loop.time()
                worst[0] = max(worst[0], now - last)
                last = now

        async def cycles_at_10x() -> None:
            for _ in range(cycles):
                meter.daemon.step(1.0)
                await asyncio.sleep(0.1)
            done.set()

        t = asyncio.ensure_future(ticker())
        await cycles_at_10x()
        await t
        return worst[0] * 1000.0

    for mode in ("inline", "thread"):
        with tempfile.TemporaryDirectory() as d:
            meter = SimMeter(Path(d), display={"kind": "dummy"}, power_quality={"enabled": True})
            feed = meter.daemon.registry.need(WaveformFeed, by="bench")
            if mode == "thread":
                feed.start_worker(4)
            meter.run(5)
            if mode == "inline":
                full_ms = _full_collection_ms()
            settled = gc_policy.settle()  # as meterd does once started
            if mode == "inline":
                print(f"gc_full_collection: {full_ms:.1f} ms before the start-up's objects are frozen,"
                      f" {_full_collection_ms():.1f} ms after ({settled.frozen} frozen)")
            hold_ms = asyncio.run(run(meter, seconds))
            stats = feed.stats()
            meter.close()
        print(f"event_loop_longest_hold_{mode}: {hold_ms:.1f} ms (1-ms ticker, {seconds} cycles at 10x real time;"
              f" PQ hook wall max {stats['loop_hold_max_ms']:.1f} ms, p99 {stats['loop_hold_p99_ms']:.1f} ms"
              + (f"; worker: {stats['analysed']} analysed, {stats['dropped']} dropped)" if mode == "thread" else ")"))


def _proc_kib(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith(key + ":"))


def _proc_io(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def day(day_seconds: int, power_quality: bool = True) -> None:
    """A meterd process at speed 0 (PQ on or off): RSS at start, after warm-up and at the end, peak, storage writes."""
    from meterd.app.simrun import METERD_PYTHON_FLAGS
    from tests.meterd_process import MeterdProcess

    with tempfile.TemporaryDirectory() as d:  # meterd as its systemd unit and `make run` start it (METERD_PYTHON_FLAGS)
        meter = MeterdProcess(Path(d), speed="0", power_quality=power_quality, python_flags=METERD_PYTHON_FLAGS)
        pid = meter.proc.pid
        try:
            warm_rss = None
            t0 = time.perf_counter()
            start_cycles = int(meter.status()["loop"]["cycles"])
            start_rss = _proc_kib(pid, "VmRSS")
            samples: list[tuple[int, int]] = []
            while True:
                cycles = int(meter.status()["loop"]["cycles"]) - start_cycles
                rss = _proc_kib(pid, "VmRSS")
                samples.append((cycles, rss))
                if warm_rss is None and cycles >= 600:
                    warm_rss, io_warm, warm_cycles = rss, _proc_io(pid), cycles
                if cycles >= day_seconds:
                    break
                time.sleep(5)
            wall = time.perf_counter() - t0
            end_rss, peak = _proc_kib(pid, "VmRSS"), _proc_kib(pid, "VmHWM")
            io_end = _proc_io(pid)
        finally:
            t_stop = time.perf_counter()
            meter.stop()
            stop_s = time.perf_counter() - t_stop
    # the peak over meterd's whole life, its stop included: the exited child's maximum RSS (meterd is
    # this process's only child) or the VmHWM read before the stop, whichever is higher
    lifetime_peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, peak)
    assert warm_rss is not None
    written = (io_end - io_warm) * 86_400 / max(cycles - warm_cycles, 1)
    print(f"meterd_power_quality: {'on' if power_quality else 'off'}")
    print(f"meterd_rss_at_start: {start_rss / 1024:.1f} MiB (first status answer)")
    print(f"meterd_rss_after_warmup: {warm_rss / 1024:.1f} MiB (after {warm_cycles} s of meter time)")
    print(f"meterd_rss_end: {end_rss / 1024:.1f} MiB after {cycles} s of meter time"
          f" (growth {(end_rss - warm_rss) / 1024:+.2f} MiB); peak (VmHWM) {peak / 1024:.1f} MiB")
    print(f"meterd_peak_rss_lifetime: {lifetime_peak / 1024:.1f} MiB (start to exit, the stop included;"
          f" the stop took {stop_s:.1f} s)")
    print(f"meterd_process_writes_per_day: {written / 1e6:.2f} MB (/proc/<pid>/io write_bytes - cancelled,"
          f" {cycles - warm_cycles} s of meter time scaled to 24 h; not the 5-MB budget's measure: a speed-0"
          " process without real-time write-back, the simulation's last-alive file in the state directory;"
          " bench/bench_storage.py is that measure)")
    print(f"meterd_speed_0: {cycles / wall:.1f} simulated hours per wall hour (process, incl. start)")
    print("meterd_rss_samples (meter s, MiB): "
          + ", ".join(f"{c}:{r / 1024:.1f}" for c, r in samples[:: max(len(samples) // 12, 1)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "chain", "meter", "hold", "day"), default="all")
    parser.add_argument("--seconds", type=int, default=SECONDS, help="chain input seconds (default %(default)s)")
    parser.add_argument("--meter-seconds", type=int, default=600, help="meter time of the speed run (s)")
    parser.add_argument("--hold-cycles", type=int, default=100, help="cycles of the loop-hold run")
    parser.add_argument("--day-seconds", type=int, default=86_400, help="meter time of the day run (s)")
    parser.add_argument("--day-pq", choices=("on", "off"), default="on", help="power quality in the day run")
    args = parser.parse_args()
    if args.part in ("all", "chain"):
        chain(args.seconds, FS // 10)
        chain(args.seconds, FS)
    if args.part in ("all", "meter"):
        meter_speed(args.meter_seconds)
    if args.part in ("all", "hold"):
        loop_hold(args.hold_cycles)
    if args.part == "day":
        day(args.day_seconds, power_quality=args.day_pq == "on")


if __name__ == "__main__":
    main()

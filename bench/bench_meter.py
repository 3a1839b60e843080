"""Metering foundation numbers: cycle CPU, meterd peak RSS, 24 h of simulation, SD-card writes.

Prints ``name: value unit`` lines. Uses the daemon's own wiring (tests/simmeter.py) in-process,
and a real meterd process for the resident-set size. CPU and 24 h wall time are given with the
waveform analysis (power quality) off and on; the costly PQ-on figures are measured over fewer
cycles and scaled (``PMM_BENCH_PQ_CYCLES``, default 200; ``PMM_BENCH_PQ_SECONDS``, default 3600).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterd.app.meterctl import request  # noqa: E402
from tests.simmeter import SimMeter  # noqa: E402


def io_counters() -> tuple[int, int]:
    """(bytes handed to write(2), bytes sent to the storage layer) by this process so far."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


def cycle_cpu(tmp: Path, name: str, cycles: int, power_quality: bool) -> float:
    """CPU time (s) of the process per 1000 one-second metering cycles, measured over ``cycles``
    cycles (after 50 warm-up cycles) and scaled to 1000; every feature attached, the waveform
    analysis (power quality) on or off."""
    sm = SimMeter(tmp / name, sim={"current_a": 10.0, "power_factor": "0.9L"},
                  power_quality={"enabled": power_quality})
    sm.run(50)
    t0 = time.process_time()
    sm.run(cycles)
    cpu = time.process_time() - t0
    sm.close()
    return cpu * 1000 / cycles


def day_wall_pq(tmp: Path, seconds: int) -> float:
    """Wall time (s) of ``seconds`` of meter time at 1 kW with power quality on, scaled to 24 h."""
    sm = SimMeter(tmp / "day-pq", sim={"current_a": 1.45, "power_factor": "0.95L"}, display={"kind": "dummy"},
                  power_quality={"enabled": True})
    t0 = time.perf_counter()
    sm.run(seconds)
    wall = time.perf_counter() - t0
    sm.close()
    return wall * 86_400 / seconds


def day(tmp: Path, name: str, current_a: float, seconds: int) -> tuple[float, int, int, int]:
    """Wall time (s), bytes written (write(2) and storage level) and checkpoints for ``seconds``
    of meter time at a load."""
    # the LCD as on a Pi (no PNG capture: screen images are a simulator artefact, not meter storage)
    sm = SimMeter(tmp / name, sim={"current_a": current_a, "power_factor": "0.95L"}, display={"kind": "dummy"})
    store = sm.daemon.store
    assert store is not None
    (w0, b0), s0, t0 = io_counters(), store.saves, time.perf_counter()
    sm.run(seconds)
    wall = time.perf_counter() - t0
    (w1, b1), saves = io_counters(), store.saves - s0
    sm.close()
    return wall, w1 - w0, b1 - b0, saves


def journal_cpu(tmp: Path, cycles: int = 2000) -> tuple[float, float]:
    """CPU (µs) the energy journal costs per cycle: the whole step the metering service runs
    (listener state built, compared, written), and the journal's own encode, CRC and copy."""
    sm = SimMeter(tmp / "journal", sim={"current_a": 10.0, "power_factor": "0.9L"})
    sm.run(50)
    journal = sm.daemon.journal
    assert journal is not None
    t0 = time.process_time()
    for _ in range(cycles):
        sm.meter.journal_write(force=True)  # the step of every cycle, timed alone
    t1 = time.process_time()
    last = journal.load()
    assert last is not None
    for _ in range(cycles):
        journal.write(last)
    t2 = time.process_time()
    sm.close()
    return (t1 - t0) / cycles * 1e6, (t2 - t1) / cycles * 1e6


def peak_rss_kib(tmp: Path) -> int:
    """Peak resident set (KiB) of a meterd process running config/sim.toml (every feature, power
    quality on) at full speed, its DLMS wrapper on a port the kernel picks (never a fixed one)."""
    state = tmp / "rss"
    config = tmp / "rss.toml"
    text = (REPO / "config/sim.toml").read_text()
    config.write_text(re.sub(r"(?m)^tcp_port = .*$", "tcp_port = 0", text))
    log = tmp / "rss.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "meterd", "run", "--config", str(config),
                                 "--state-dir", str(state), "--speed", "0"], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"meterd exited with {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("meterd did not answer on its API socket within 30 s")
            try:
                if request(str(state / "meterd.sock"), "GET", "/status")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(10)  # keep it busy at full speed, with API reads
        for _ in range(20):
            request(str(state / "meterd.sock"), "GET", "/status")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"cpu_per_1000_cycles_pq_off: {cycle_cpu(tmp, 'cpu', 1000, False):.3f} s"
              " (every feature attached, power quality off)")
        pq_cycles = int(os.environ.get("PMM_BENCH_PQ_CYCLES", "200"))
        print(f"cpu_per_1000_cycles_pq_on: {cycle_cpu(tmp, 'cpu-pq', pq_cycles, True):.3f} s"
              f" (every feature attached, power quality on; measured over {pq_cycles} cycles, scaled)")
        print(f"meterd_peak_rss: {peak_rss_kib(tmp) / 1024:.1f} MiB (config/sim.toml, power quality on)")
        wall, written, block, saves = day(tmp, "day", 1.45, 86_400)  # 1 kW average household
        print(f"simulate_24h_wall_pq_off: {wall:.1f} s (1 s cycle, full speed, every feature attached,"
              " power quality off)")
        pq_s = int(os.environ.get("PMM_BENCH_PQ_SECONDS", "3600"))
        print(f"simulate_24h_wall_pq_on: {day_wall_pq(tmp, pq_s):.1f} s (power quality on; measured over"
              f" {pq_s} s of meter time, scaled to 24 h)")
        print(f"bytes_written_per_day_1kW: {written / 1e6:.2f} MB written, {block / 1e6:.2f} MB to storage"
              f" ({saves} database saves; the energy journal on tmpfs writes nothing to storage)")
        for label, current_a in (("6.9kW", 10.0), ("69kW", 100.0)):  # 2 h, extrapolated to a day
            _, written2, block2, saves2 = day(tmp, label, current_a, 7_200)
            print(f"bytes_written_per_day_{label}: {written2 * 12 / 1e6:.2f} MB written, {block2 * 12 / 1e6:.2f} MB"
                  f" to storage ({saves2 * 12} database saves, from 2 h)")
        print("bytes_written_budget: 5.00 MB/day")
        per_cycle_us, copy_us = journal_cpu(tmp)
        print(f"energy_journal_cpu_per_cycle: {per_cycle_us:.0f} µs (state built and compared, encoded, CRC, copied"
              f" into the map; the encode and copy alone {copy_us:.0f} µs)")
        print("loss_on_crash_of_meterd: nothing counted in a finished cycle (energy journal);"
              f" loss_on_unannounced_power_cut: energy since the last synced save (every {86_400 / max(saves, 1):.0f} s"
              " at 1 kW)")
        _ = os.getpid()


if __name__ == "__main__":
    main()

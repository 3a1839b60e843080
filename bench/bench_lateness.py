"""Metering-cycle lateness under load: the metering thread against the old inline cycle.

A real meterd process (simulated chip, speed 1, power quality on) is loaded the way a busy meter
is: 8 DLMS clients (gurux, wrapper over TCP) read the whole load profile over and over, a client
hammers the local API (``GET /status``), and the storage is slow (``[sim] slow_storage_s``:
every energy-database write takes that much longer, with a synced save every 5 s, so the
event loop blocks on it). Each mode runs on a copy of one prepared state directory holding two
days of load profile (192 rows per read). Prints, per mode, the metering cycles' start lateness
(p99 and max over the run, ms, from ``meterctl status`` → ``loop``), the ticks and late ticks,
and the DLMS/API work done.

``[meter] metering_thread = true``: the chip is read on its own thread; the event loop's
blocking delays only the registers' update. ``false``: the old inline cycle, which waits for
everything else on the event loop.

Run from the repository root: ``.venv/bin/python bench/bench_lateness.py``
(``PMM_BENCH_SECONDS``, default 60: the length of each run; ``PMM_BENCH_SLOW_S``, default 0.5).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gurux_dlms.objects import GXDLMSProfileGeneric  # noqa: E402

from tests.dlms_gurux_client import GuruxSession, make_client  # noqa: E402
from tests.dlms_harness import SocketIO  # noqa: E402
from tests.meterd_process import MeterdProcess  # noqa: E402
from tests.simmeter import SimMeter  # noqa: E402

CLIENTS = 8
PROFILE_DAYS = 2


def prepare(state: Path) -> None:
    """A meter with two days of 15-minute load profile (cycles of 60 s, then a clean stop)."""
    meter = SimMeter(state, sim={"current_a": 2.0, "power_factor": "0.9L"})  # no register fills in 60 s
    meter.run(PROFILE_DAYS * 86_400, cycle_s=60.0)
    meter.close()


class Load:
    """The DLMS clients and the API hammer, on threads, until stopped."""

    def __init__(self, meter: MeterdProcess) -> None:
        self.meter = meter
        self.stop = threading.Event()
        self.profile_reads = 0
        self.rows = 0
        self.api_calls = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._dlms, args=(i,), daemon=True) for i in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self._api, daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _dlms(self, index: int) -> None:
        ic = 1 + index * 10_000_000
        while not self.stop.is_set():
            try:
                io = SocketIO(self.meter.dlms_port)
                session = GuruxSession(make_client(17, invocation_counter=ic), io.send, io.receive)
                ic += 100_000
                session.connect()
                try:
                    profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
                    session.read(profile, 3)
                    session.read(profile, 2)
                    with self._lock:
                        self.profile_reads += 1
                        self.rows += len(profile.buffer)
                finally:
                    session.close()
                    io.close()
            except Exception as exc:  # noqa: BLE001 - counted, the bench goes on
                with self._lock:
                    self.errors.append(f"client {index}: {type(exc).__name__}: {exc}")
                time.sleep(0.2)

    def _api(self) -> None:
        while not self.stop.is_set():
            try:
                self.meter.api("GET", "/status")
                self.api_calls += 1
            except OSError as exc:
                self.errors.append(f"api: {exc}")
                time.sleep(0.05)


def run_mode(base: Path, prepared: Path, threaded: bool, seconds: float, slow_s: float) -> dict[str, Any]:
    """One run of meterd on a copy of ``prepared`` in the given mode; the ``loop`` status and load done."""
    name = "thread" if threaded else "inline"
    work = base / name
    shutil.copytree(prepared, work / "state")
    meter = MeterdProcess(work, speed="1", power_quality=True, metering_thread="true" if threaded else "false",
                          slow_storage_s=str(slow_s), sync_period_s="5.0")
    try:
        load = Load(meter)
        start = meter.status()["loop"]
        load.start()
        time.sleep(seconds)
        load.finish()
        loop = meter.status()["loop"]
    finally:
        rc = meter.stop()
    return {"mode": name, "loop": loop, "start": start, "profile_reads": load.profile_reads, "rows": load.rows,
            "api_calls": load.api_calls, "errors": load.errors, "rc": rc}


def main() -> None:
    seconds = float(os.environ.get("PMM_BENCH_SECONDS", "60"))
    slow_s = float(os.environ.get("PMM_BENCH_SLOW_S", "0.5"))
    with tempfile.TemporaryDirectory(prefix="bench-lateness-") as tmp:
        base = Path(tmp)
        prepared = base / "prepared"
        t0 = time.monotonic()
        prepare(prepared)
        print(f"prepared: {PROFILE_DAYS} days of load profile in {time.monotonic() - t0:.0f} s")
        print(f"load: {CLIENTS} DLMS clients reading the load profile, the API hammered, PQ on, "
              f"each energy-database write {slow_s:g} s slower (a save every 5 s); {seconds:g} s per mode")
        results = [run_mode(base, prepared, threaded, seconds, slow_s) for threaded in (True, False)]
    print(f"{'mode':8} {'metering':>9} {'ticks':>6} {'late':>5} {'missed':>6} {'p99 ms':>8} {'max ms':>8} "
          f"{'profiles':>8} {'rows':>7} {'api':>6} errors")
    for r in results:
        loop = r["loop"]
        print(f"{r['mode']:8} {loop['metering']:>9} {loop['ticks']:6d} {loop['late_ticks']:5d} {loop['missed_ticks']:6d} "
              f"{loop['lateness_p99_ms']:8.1f} {loop['lateness_max_ms']:8.1f} {r['profile_reads']:8d} "
              f"{r['rows']:7d} {r['api_calls']:6d} {len(r['errors'])}")
        for error in r["errors"][:3]:
            print(f"  {error}")
    thread, inline = results
    print(f"metering-cycle lateness p99: thread {thread['loop']['lateness_p99_ms']:.1f} ms, "
          f"inline {inline['loop']['lateness_p99_ms']:.1f} ms")
    print(f"metering-cycle lateness max: thread {thread['loop']['lateness_max_ms']:.1f} ms, "
          f"inline {inline['loop']['lateness_max_ms']:.1f} ms")


if __name__ == "__main__":
    main()

"""Benchmark of the event logs and the supervision cycle (prints name: value unit)."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from meterd.core.clock import SimClock
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.core.reading import PhaseValues, Reading
from meterd.services.supervision import Supervision
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def bench_record(tmp: Path, synchronous: str, n: int) -> None:
    with SqliteEventStore(tmp / f"rec_{synchronous}.db", synchronous=synchronous) as store:
        rec = EventRecorder({LogId.FRAUD: 100}, store)
        start = time.perf_counter()
        for i in range(n):
            rec.record(40 + (i % 2), T0 + dt.timedelta(seconds=i), {"tamper": "terminal_cover_open"})
        elapsed = time.perf_counter() - start
    print(f"record_event_sqlite_{synchronous.lower()}: {elapsed / n * 1e3:.3f} ms/event")


def bench_restart(tmp: Path) -> None:
    path = tmp / "restart.db"
    depths = dict.fromkeys(LogId, 1000)
    with SqliteEventStore(path, synchronous="NORMAL") as store:
        rec = EventRecorder(depths, store)
        for i in range(3000):
            rec.record((1, 40, 62, 76)[i % 4], T0 + dt.timedelta(seconds=i))
    start = time.perf_counter()
    with SqliteEventStore(path) as store:
        rec = EventRecorder(depths, store)
    print(f"restart_load_4x1000_rows: {(time.perf_counter() - start) * 1e3:.1f} ms")
    log = rec.log(LogId.STANDARD)
    start = time.perf_counter()
    for _ in range(100):
        log.rows_between(T0, T0 + dt.timedelta(days=1))
    print(f"rows_between_1000_rows: {(time.perf_counter() - start) / 100 * 1e3:.3f} ms")


def bench_cycle(tmp: Path, n: int) -> None:
    clock = SimClock(T0)
    phases = tuple(PhaseValues(voltage_v=230.0, current_a=5.0, active_power_w=1150.0) for _ in range(3))
    with SqliteEventStore(tmp / "cycle.db") as store:
        sup = Supervision(store=store)
        sup.on_start(clock.utc())
        start = time.perf_counter()
        for _ in range(n):
            sup.on_cycle(clock.utc(), Reading(mono_s=clock.mono(), phases=phases, energy={}), {})
            clock.advance(1.0)
        elapsed = time.perf_counter() - start
    print(f"supervision_cycle_with_1s_heartbeat: {elapsed / n * 1e3:.3f} ms/cycle")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bench_record(tmp, "FULL", 500)
        bench_record(tmp, "NORMAL", 2000)
        bench_restart(tmp)
        bench_cycle(tmp, 2000)


if __name__ == "__main__":
    main()

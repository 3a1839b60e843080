"""Benchmark: 60 simulated days of the revenue function.

1. Service level: 60 days at 1-s cycles through RevenueService with SQLite stores.
2. Whole meter: 60 days of the simulated meter (daemon wiring, every feature attached) at 15-min
   cycles (``tests.simmeter.SimMeter``), as the accelerated sim runs it.

Prints the time of each simulation, the per-cycle cost, the database sizes afterwards and the
size of the revenue state written with every energy checkpoint (JSON).
Usage: ``python bench/bench_revenue.py [days]``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from meterd.core.calendar import CalendarSet, DayProfile, Season, WeekProfile, YearDate, at
from meterd.core.energy import EnergyRegisters, Quantity
from meterd.core.legal_time import eu_clock_settings
from meterd.core.reading import Channel, PhaseValues, Reading
from meterd.services.revenue import RevenueConfig, RevenueService
from meterd.store.billing_store import SqliteBillingStore
from meterd.store.profile_store import SqliteProfileStore

DAYS = int(sys.argv[1]) if len(sys.argv) > 1 else 60


def calendar() -> CalendarSet:
    work = DayProfile(1, (at("00:00", 1), at("07:00", 2), at("18:00", 4), at("22:00", 1)))
    weekend = DayProfile(2, (at("00:00", 1), at("12:00", 3)))
    week = WeekProfile("w", (1, 1, 1, 1, 1, 2, 2))
    return CalendarSet("bench", (Season("all", YearDate(1, 1), "w"),), (week,), (work, weekend))


def main() -> None:
    t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    step = dt.timedelta(seconds=1)
    cycles = DAYS * 86400
    deltas = [{(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 500 + i % 300,
               (Quantity.ACTIVE_IMPORT, Channel.L1): 200, (Quantity.ACTIVE_IMPORT, Channel.L2): 150,
               (Quantity.ACTIVE_IMPORT, Channel.L3): 150 + i % 300,
               (Quantity.REACTIVE_Q1, Channel.TOTAL): 120, (Quantity.APPARENT_IMPORT, Channel.TOTAL): 560 + i % 300}
              for i in range(7)]
    reading = Reading(0.0, (PhaseValues(230.1), PhaseValues(229.8), PhaseValues(231.0)), {})
    with tempfile.TemporaryDirectory() as tmp:
        profiles = SqliteProfileStore(Path(tmp) / "profiles.db")
        billing = SqliteBillingStore(Path(tmp) / "billing.db")
        svc = RevenueService(RevenueConfig(clock=eu_clock_settings(60)), calendar(), profiles, billing)
        registers = EnergyRegisters()
        start = time.perf_counter()
        for i in range(cycles):
            d = deltas[i % 7]
            registers.add(d)
            svc.on_cycle(t, d, registers, reading)
            t += step
        elapsed = time.perf_counter() - start
        profiles.close()
        billing.close()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"revenue_{DAYS}d_1s_cycles: {elapsed:.2f} s")
        print(f"revenue_cycles: {cycles} cycles")
        print(f"revenue_per_cycle: {elapsed / cycles * 1e6:.2f} us (incl. EnergyRegisters.add)")
        print(f"revenue_load_profile_rows: {svc.load_profile.entries_in_use()} rows")
        print(f"revenue_billing_periods: {svc.billing.counter} periods")
        print(f"revenue_sqlite_size: {size / 1024:.0f} KiB")


def whole_meter() -> None:
    """60 days of the whole simulated meter at 15-min cycles."""
    import json

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from tests.simmeter import SimMeter

    with tempfile.TemporaryDirectory() as tmp:
        sm = SimMeter(Path(tmp), sim={"start_utc": "2026-03-01T00:00:00+00:00", "current_a": 0.25},
                      revenue={"max_cycle_gap_s": 1800.0}, display={"kind": "dummy"})
        start, cpu = time.perf_counter(), time.process_time()
        sm.run(DAYS * 86400, 900)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        svc = sm.service(RevenueService)
        state = len(json.dumps(svc.state_dict(), separators=(",", ":")))
        rows = svc.load_profile.entries_in_use()
        sm.close()
        sizes = {p.name: p.stat().st_size for p in Path(tmp).iterdir() if p.suffix == ".db"}
        print(f"meter_{DAYS}d_15min_cycles: {elapsed:.1f} s wall, {cpu:.1f} s CPU")
        print(f"meter_load_profile_rows: {rows} rows")
        print(f"meter_revenue_state: {state} B JSON per checkpoint")
        for name in ("profiles.db", "billing.db", "energy.db"):
            print(f"meter_{name}: {sizes.get(name, 0) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
    whole_meter()

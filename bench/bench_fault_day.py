"""Benchmark: a simulated day (default 24 h) with a metering-IC fault injected every 10 minutes.

Prints the billed, true and flagged energy, the part neither billed nor flagged (goal ≤ 0.01 %),
the faults injected by kind, those that left no measurement-system event, the export billed on an
import load (goal 0) and the wall time. Usage: ``python bench/bench_fault_day.py [hours]``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.fault_day import run_fault_day

HOURS = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0


def main() -> None:
    logging.disable(logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        day = run_fault_day(Path(tmp), hours=HOURS)
    wall = time.perf_counter() - started
    print(f"{HOURS:g} h simulated, a 30-s chip fault every 10 min, 1-s cycles: {wall:.1f} s wall")
    print(f"true import {day.true_wh / 1000:.3f} kWh, billed {day.billed_wh / 1000:.3f} kWh, "
          f"not measured (meter's record) {day.estimate_wh:.1f} Wh, "
          f"true energy of flagged cycles {day.flagged_true_wh:.1f} Wh over {day.flagged_s:.0f} s")
    print(f"billed − (true − not measured): {day.unexplained_pct:+.5f} % of the true energy (goal within ±0.01 %)")
    print(f"faults injected: {day.injected_total} {day.injected}; fault events {day.episodes_logged}; "
          f"injections without an event: {day.unlogged or 'none'}")
    print(f"export billed on an import load: {day.export_wh:.3f} Wh; daemon rebuilt: {day.rebuilt}")


if __name__ == "__main__":
    main()

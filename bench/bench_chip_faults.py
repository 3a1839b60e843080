"""Benchmark: each injected metering-IC fault through the whole simulated meter.

For every :class:`hw.atm90e36.faults.ChipFault` (10 s of fault on a 6.9 kW import load, 1-s
cycles) prints: cycles to detection (metering cycles run since the injection until the fault or
warning flag), cycles to recovery (after the fault's end, until a billed cycle without the fault
flag), the billed active energy against the truth (the grid's integral) over the run, the most the
billed register ever got ahead of the truth (phantom energy; register quantisation is ~1 mWh), the
export billed (an import load: must be 0), the events / fault episodes and the meter's estimate
of the energy not measured. Usage: ``python bench/bench_chip_faults.py [duration_s] [rate]``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from hw.atm90e36.faults import ChipFault
from tests.chip_faults import run_fault

DURATION_S = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
RATE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.005


def main() -> None:
    logging.disable(logging.CRITICAL)
    print(f"{DURATION_S:g} s of each fault, 6.9 kW import, 1-s cycles, bit-flip rate {RATE:g} per SDO bit")
    print(f"{'fault':12} {'detect':>6} {'recover':>7} {'billed Wh':>10} {'true Wh':>9} {'error %':>8} "
          f"{'ahead mWh':>9} {'export':>6} {'events':>6} {'lost Wh':>8} {'estimate Wh':>11}")
    for kind in ChipFault:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_fault(Path(tmp), kind, duration_s=DURATION_S, rate=RATE)
        lost = (run.true_mwh - run.billed_mwh) / 1000
        print(f"{kind.value:12} {run.detected_after!s:>6} {run.recovered_after!s:>7} {run.billed_mwh / 1000:10.3f} "
              f"{run.true_mwh / 1000:9.3f} {run.billed_error_pct:8.2f} {run.ahead_mwh:9.1f} {run.export_mwh:6d} "
              f"{run.events:6d} {lost:8.3f} {run.estimate_wh:11.3f}")


if __name__ == "__main__":
    main()

"""Benchmark: a full calibration and a full class 0.5S accuracy run at simulated speed.

A seeded simulated board (analogue errors) in a meter built in process (the daemon's own build and
cycle, as fast as the cycles run: the simulated time of ``[sim] speed = 0``); the AN procedure
(offsets, gains, phase, re-measurement) against the simulated reference standard, then every
IEC 62053-22 class 0.5S point in import and export with the starting-current and no-load tests,
and the report in HTML, PDF, JSON and CSV. Prints the wall time, the simulated time and the meter
cycles of each, the largest error and the verdict. Usage:
``python bench/bench_calibration.py [board_seed] [resolution_pct] [meter_constant] [energy_lsb_cf]``
(defaults 16, 0.02 and the meter's configuration).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from meterd.services.accuracy_test import Nameplate, class_05s_plan, run_accuracy
from meterd.services.calibration import CalibrationService
from meterd.services.calibration_procedure import ProcedureSettings, calibrate
from meterd.tools.accuracy_report import write_all
from tests.calibration_rig import InProcessMeter, SimSource, reference
from tests.simmeter import SimMeter

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 16
RESOLUTION_PCT = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02


def main() -> None:
    logging.disable(logging.CRITICAL)
    frontend: dict[str, Any] = {}
    if len(sys.argv) > 4:
        frontend = {"meter_constant_imp_per_kwh": int(sys.argv[3]), "energy_lsb_cf": float(sys.argv[4])}
    with tempfile.TemporaryDirectory() as tmp:
        sections: dict[str, dict[str, Any]] = {"sim": {"board_seed": SEED, "current_a": 0.0}}
        if frontend:
            sections["frontend"] = frontend
        meter = SimMeter(Path(tmp) / "state", **sections)
        service = meter.service(CalibrationService)
        link, source, ref = InProcessMeter(meter), SimSource(meter), reference(meter)
        plate = Nameplate.from_mapping(service.nameplate)
        print(f"board seed {SEED}; register {plate.energy_resolution_mwh:g} mWh/count; cycle {plate.cycle_s:g} s; "
              f"point resolution {RESOLUTION_PCT:g} %")
        t0, c0, s0 = time.perf_counter(), service.cycles, meter.clock.mono()
        calibrate(link, source, ref, ProcedureSettings(operator="bench", current_scale=meter.daemon.cfg.frontend.current_scale))
        t1, c1, s1 = time.perf_counter(), service.cycles, meter.clock.mono()
        print(f"calibration:   {t1 - t0:8.1f} s wall, {s1 - s0:9.0f} s simulated, {c1 - c0:7d} cycles")
        record = service.record
        info = {"serial": service.serial, "calibration_id": record.calibration_id if record else "",
                "calibration_date": record.utc.isoformat() if record else "", **service.nameplate}
        report = run_accuracy(link, source, ref, plate, info, class_05s_plan(plate), RESOLUTION_PCT)
        t2, c2, s2 = time.perf_counter(), service.cycles, meter.clock.mono()
        print(f"accuracy run:  {t2 - t1:8.1f} s wall, {s2 - s1:9.0f} s simulated, {c2 - c1:7d} cycles, "
              f"{len(report.points)} points + starting + no load")
        write_all(report, Path(tmp) / "report")
        print(f"report:        {time.perf_counter() - t2:8.1f} s wall (HTML, PDF, JSON, CSV)")
        print(f"largest |error| {report.max_abs_error_pct:.4f} %; verdict {'PASS' if report.passed else 'FAIL'}")
        meter.close()


if __name__ == "__main__":
    main()

"""The accuracy certification end to end on a seeded simulated board: out of class uncalibrated,
within a fifth of the class limit after ``calibrate``; the report read as a person would read it
(PDF pages rendered to images: plot drawn, limit lines in their colour, one table row per point)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meterd.services.accuracy_test import (
    AccuracyPoint,
    AccuracyReport,
    Nameplate,
    class_05s_plan,
    run_accuracy,
)
from meterd.services.calibration import CalibrationService
from meterd.services.calibration_procedure import ProcedureSettings, calibrate
from meterd.tools import accuracy_report
from tests.calibration_rig import InProcessMeter, SimSource, reference
from tests.simmeter import SimMeter

SEED = 16


def _run(meter: SimMeter, loads: tuple[str, ...], directions: tuple[str, ...], resolution_pct: float,
         keep: Callable[[AccuracyPoint], bool] = lambda _p: True) -> AccuracyReport:
    service = meter.service(CalibrationService)
    plate = Nameplate.from_mapping(service.nameplate)
    record = service.record
    info = {"serial": service.serial, "calibration_id": record.calibration_id if record else "",
            "calibration_date": record.utc.isoformat() if record else "", "run_utc": meter.clock.utc().isoformat(),
            **service.nameplate}
    plan = [p for p in class_05s_plan(plate, directions=directions, loads=loads) if keep(p)]
    return run_accuracy(InProcessMeter(meter), SimSource(meter), reference(meter), plate, info, plan, resolution_pct,
                        samples_kept=service.view()["samples_kept"])


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def _pixels_of(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> np.ndarray:
    return np.all(np.abs(image[:, :, :3].astype(int) - _rgb(hex_colour)) <= tolerance, axis=2)


def _bands(mask_rows: np.ndarray) -> int:
    """Runs of consecutive True rows (one per table row coloured in that colour)."""
    rows = mask_rows.astype(int)
    return int(np.sum(np.diff(np.concatenate(([0], rows))) == 1))


def _check_pdf(pdf: Path, tmp: Path, report: AccuracyReport) -> None:
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp / "page")], check=True)
    pages = sorted(tmp.glob("page-*.png"))
    n = len(report.points)
    assert len(pages) == 1 + -(-n // accuracy_report.ROWS_PER_PAGE)
    first = np.asarray(Image.open(pages[0]).convert("RGB"))
    h, w, _ = first.shape
    plot = first[int(0.2 * h):int(0.7 * h), int(0.1 * w):int(0.95 * w)]
    assert np.mean(np.any(plot < 200, axis=2)) > 0.02            # the plot area is not blank
    assert _pixels_of(plot, accuracy_report.LIMIT_COLOUR, 30).sum() > 200   # the limit lines are drawn
    rows = 0
    for page in pages[1:]:
        img = np.asarray(Image.open(page).convert("RGB"))
        result_colour = accuracy_report.PASS_COLOUR if report.passed else accuracy_report.FAIL_COLOUR
        rows += _bands(_pixels_of(img, accuracy_report.PASS_COLOUR).any(axis=1)) if report.passed else 0
        assert _pixels_of(img, result_colour).any()
    if report.passed:
        assert rows == n                                           # one PASS row per point


@pytest.mark.slow  # about 100 s: `make soak`; `make test` keeps the short form, test_calibration_meterctl.py
def test_uncalibrated_fails_then_calibrated_passes_within_a_fifth_of_the_limit(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path / "state", sim={"board_seed": SEED, "current_a": 0.0})
    before = _run(meter, ("L1",), ("import",), 0.2)
    assert not before.passed and sum(not p.passed for p in before.points) >= 2
    calibrate(InProcessMeter(meter), SimSource(meter), reference(meter), ProcedureSettings(operator="A. Technician", current_scale=meter.daemon.cfg.frontend.current_scale))
    # every balanced point in import, unity PF in export, one phase alone (the full run: slow test)
    after = _run(meter, ("balanced", "L2"), ("import", "export"), 0.05,
                 lambda p: p.direction == "import" or (p.load == "balanced" and p.power_factor == "1"))
    meter.close()
    assert after.passed, [p.as_dict() for p in after.points if not p.passed]
    assert after.max_abs_error_pct <= 0.1
    assert {s.name for s in after.special} == {"starting current", "no load"}
    paths = accuracy_report.write_all(after, tmp_path / "report")
    data = json.loads(paths["json"].read_text())
    assert data["passed"] and len(data["points"]) == len(after.points)
    assert data["meter"]["calibration_id"].startswith("PMM1221000001-C001-")
    with open(paths["csv"], newline="") as fh:
        assert sum(1 for row in csv.DictReader(fh) if row["result"] == "PASS") == len(after.points) + 2
    page = paths["html"].read_text()
    assert data["meter"]["calibration_id"] in page and page.count(">PASS<") == len(after.points) + 2
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: make sysdeps")
    _check_pdf(paths["pdf"], tmp_path, after)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 60 points, each long enough for 0.02 % at 0.1 Wh per count: about 10 min
def test_full_class_05s_run_after_calibration(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path / "state", sim={"board_seed": SEED + 1, "current_a": 0.0})
    calibrate(InProcessMeter(meter), SimSource(meter), reference(meter), ProcedureSettings(operator="A. Technician", current_scale=meter.daemon.cfg.frontend.current_scale))
    report = _run(meter, ("balanced", "L1", "L2", "L3"), ("import", "export"), 0.02)
    meter.close()
    assert len(report.points) == 60
    assert report.passed and report.max_abs_error_pct <= 0.1
    paths = accuracy_report.write_all(report, tmp_path / "report")
    if shutil.which("pdftoppm") is not None:
        _check_pdf(paths["pdf"], tmp_path, report)

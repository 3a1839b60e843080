"""``meterctl calibrate`` and ``meterctl accuracy-test`` against a running meterd (local API only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.meterd_process import REPO, MeterdProcess


def _ctl(meter: MeterdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", meter.socket, "--json", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def test_calibrate_then_accuracy_test_through_the_api(tmp_path: Path) -> None:
    meter = MeterdProcess(tmp_path, speed="0", board_seed="16", current_a="0.0")
    try:
        state = meter.api("GET", "/calibration")[1]
        assert state["state"] == "fault" and state["problem"] == "missing"
        refused = _ctl(meter, "calibrate", "--operator", "T", "--reference", "csv")
        assert refused.returncode == 1 and "--csv" in refused.stderr
        done = _ctl(meter, "calibrate", "--operator", "A. Technician", "--note", "bench 2")
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["calibration"]["operator"] == "A. Technician"
        assert all(abs(e) < 0.1 for p in answer["verification"] for e in p["errors_pct"])
        state = meter.api("GET", "/calibration")[1]
        assert state["state"] == "calibrated" and (meter.state / "calibration.json").exists()
        out = tmp_path / "report"
        run = _ctl(meter, "accuracy-test", "--loads", "balanced", "--directions", "import", "--resolution", "0.2",
                   "--out", str(out))
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["passed"] and summary["points"] == 12
        data = json.loads((out / "accuracy.json").read_text())
        assert data["meter"]["calibration_id"] == state["record"]["calibration_id"]
        assert {p.suffix for p in out.iterdir()} == {".html", ".pdf", ".json", ".csv"}
    finally:
        assert meter.stop() == 0

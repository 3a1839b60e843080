"""SD-card wear: what the meter writes per simulated day stays within the budget (5 MB/day at a
1 s cycle) at an average household load of 1 kW, with every feature attached.

Measured as the bytes meterd hands to write(2) (``wchar``) in a process of its own, so nothing
else is counted; the LCD is a dummy device as on a Pi (screen PNGs are a simulator artefact).
The short form measures 2 simulated hours and scales to a day; `make soak` runs the whole day.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import soak_enabled

REPO = Path(__file__).resolve().parents[2]
BUDGET_BYTES_PER_DAY = 5_000_000

PROBE = r'''
import json, sys, pathlib
sys.path.insert(0, sys.argv[1])
from tests.simmeter import SimMeter
seconds = int(sys.argv[3])
sm = SimMeter(pathlib.Path(sys.argv[2]), sim={"current_a": 1.45, "power_factor": "0.95L"}, display={"kind": "dummy"})
sm.run(60)  # start-up writes (keys, schemas) are not part of the daily rate
def io():
    return {k: int(v) for k, v in (l.split(": ") for l in open("/proc/self/io").read().splitlines())}
a = io()
sm.run(seconds)
b = io()
print(json.dumps({"wchar": b["wchar"] - a["wchar"], "write_bytes": b["write_bytes"] - a["write_bytes"],
                  "checkpoints": sm.daemon.store.saves}))
sm.close()
'''


def measure(tmp_path: Path, seconds: int) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(tmp_path / "state"), str(seconds)],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bytes_written_per_day_within_budget(tmp_path):
    seconds = 86_400 if soak_enabled() else 7_200
    result = measure(tmp_path, seconds)
    per_day = result["wchar"] * 86_400 / seconds
    assert result["checkpoints"] > 0
    assert per_day <= BUDGET_BYTES_PER_DAY, f"{per_day / 1e6:.2f} MB/day written"


@pytest.mark.slow
def test_bytes_written_over_a_whole_day(tmp_path):
    result = measure(tmp_path, 86_400)
    assert result["wchar"] <= BUDGET_BYTES_PER_DAY

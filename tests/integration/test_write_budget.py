"""SD-card wear: what the meter writes to persistent storage per simulated day stays within the
budget (5 MB/day at a 1 s cycle) at 1 kW (an average household), 6.9 kW and 69 kW (3 × 230 V at
1.45 A, 10 A and 100 A), with every feature attached.

Method: each load runs in a meter in a process of its own, so nothing else is counted. The
process's ``wchar`` (/proc/self/io: every byte handed to write(2), pwrite(2) and the like, to any
file) is read before and after the measured stretch of meter time. The probe checks that the only
regular files the process has open are under the state directory, and the energy journal on
tmpfs (``/dev/shm`` here, ``/run/meterd`` on a Pi). The journal is written through a shared memory
map: copies into RAM, no write call, so it is excluded by construction and costs the SD card
nothing. So ``wchar`` is the bytes written into files under the state directory, plus the few
log lines meterd writes to stderr: an upper bound on what reaches the SD card (before the
kernel merges rewrites of the same page). The
probe also checks that every cycle went to the journal and the energy database was saved only
every 5 min. The LCD is a dummy device as on a Pi (screen PNGs are a simulator artefact). The short form measures 15
simulated minutes per load (three energy saves, one profile period) and scales to a day; `make soak` (PMM_SOAK=1) measures whole days.
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
LOADS_A = {"1kW": 1.45, "6.9kW": 10.0, "69kW": 100.0}  # per phase, at 230 V, PF 0.95 lagging

PROBE = r'''
import json, os, sys, pathlib
sys.path.insert(0, sys.argv[1])
from tests.simmeter import SimMeter
state, seconds, current_a = pathlib.Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sm = SimMeter(state, sim={"current_a": current_a, "power_factor": "0.95L"}, display={"kind": "dummy"})
journal = sm.daemon.journal
sm.run(60)  # start-up writes (keys, schemas) are not part of the daily rate
def io():
    return {k: int(v) for k, v in (l.split(": ") for l in open("/proc/self/io").read().splitlines())}
def open_files():
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and pathlib.Path(target).is_file():
            found.add(target)
    return found
a, saves, writes = io(), sm.daemon.store.saves, journal.writes if journal else 0
sm.run(seconds)
b = io()
files = open_files()
allowed = str(state.resolve())
ram = {str(journal.path)} if journal else set()  # the RAM files: the energy journal and the pending-energy record
if sm.daemon.pending_slot is not None:
    ram.add(str(sm.daemon.pending_slot.path))
strays = sorted(f for f in files if not f.startswith(allowed + "/") and f not in ram)
print(json.dumps({"wchar": b["wchar"] - a["wchar"], "write_bytes": b["write_bytes"] - a["write_bytes"],
                  "saves": sm.daemon.store.saves - saves, "journal_writes": (journal.writes if journal else 0) - writes,
                  "journal": str(journal.path) if journal else "", "ram": sorted(ram), "strays": strays}))
sm.close()
'''


def measure(tmp_path: Path, name: str, current_a: float, seconds: int) -> dict:
    """What a meter at ``current_a`` (A per phase) wrote over ``seconds`` of meter time."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(REPO), str(tmp_path / name), str(seconds),
                          str(current_a)], capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_day(tmp_path: Path, seconds: int) -> dict[str, float]:
    per_day: dict[str, float] = {}
    for name, current_a in LOADS_A.items():
        result = measure(tmp_path, name, current_a, seconds)
        assert result["strays"] == [], result["strays"]  # nothing written outside the state dir
        assert result["journal"].startswith("/dev/shm/")  # the journal is on tmpfs
        assert all(f.startswith("/dev/shm/") for f in result["ram"])  # and the pending-energy record
        assert result["journal_writes"] == seconds  # every cycle is in the journal...
        assert 0 < result["saves"] <= seconds // 300 + 1  # ...the database every 5 min only
        per_day[name] = result["wchar"] * 86_400 / seconds
    assert all(v <= BUDGET_BYTES_PER_DAY for v in per_day.values()), {k: f"{v / 1e6:.2f} MB/day"
                                                                     for k, v in per_day.items()}
    return per_day


def test_bytes_written_per_day_within_budget_at_any_load(tmp_path):
    check_day(tmp_path, 86_400 if soak_enabled() else 900)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three whole simulated days, one per load: longer than the default 300 s
def test_bytes_written_over_whole_days(tmp_path):
    check_day(tmp_path, 86_400)

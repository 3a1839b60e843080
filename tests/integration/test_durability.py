"""Energy survives crashes: kill -9 at random moments, and the power-fail last gasp.

* In-process: 200 random crash points. A crash is modelled exactly as kill -9 leaves things: the
  database files as they are on disk at that instant (SQLite has written every committed
  transaction before returning). A meter restarted from them holds the last checkpoint: no
  register is more than the bound behind the live value at the crash, none is below a value
  that was published, and none ever goes backwards.
* Real processes: meterd at full simulator speed is killed with SIGKILL at random moments and
  restarted; what `meterctl --json status` showed before the kill is never more than what it
  shows after. With the power-fail input, the last gasp loses nothing at all.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterd.app.meterctl import request
from meterd.core.energy import ALL_KEYS
from tests.conftest import soak_enabled
from tests.simmeter import SimMeter, sim_config_file

BOUND_MILLI = 10_000
REPO = Path(__file__).resolve().parents[2]


def crash_copy(src: Path, dst: Path) -> None:
    """The state directory as kill -9 would leave it (no close, no WAL checkpoint)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name.startswith("energy.db"):
            shutil.copy2(f, dst / f.name)


def test_200_random_crashes_lose_at_most_the_bound(tmp_path):
    rng = random.Random(20261124)
    live_dir = tmp_path / "live"
    sm = SimMeter(live_dir, sim={"current_a": 20.0, "power_factor": "0.8L"})
    published = {k: 0 for k in ALL_KEYS}
    worst = 0
    try:
        for i in range(200):
            sm.run(rng.randint(1, 40))
            if rng.random() < 0.2:  # an observer reads: published values must never be taken back
                published = dict(sm.meter.snapshot().registers)
            live = sm.meter.registers.snapshot()
            crash_dir = tmp_path / f"crash{i}"
            crash_copy(live_dir, crash_dir)
            restarted = SimMeter(crash_dir, sim={"current_a": 20.0})
            got = restarted.meter.registers.snapshot()
            restarted.hardware.close()
            assert restarted.daemon.store is not None
            restarted.daemon.store.close()
            shutil.rmtree(crash_dir)
            for key in ALL_KEYS:
                loss = live[key] - got[key]
                assert 0 <= loss <= BOUND_MILLI, (i, key, loss)
                assert got[key] >= published[key], (i, key)
                worst = max(worst, loss)
    finally:
        sm.close()
    assert worst > 0  # the crashes really fell between checkpoints


def test_power_fail_last_gasp_loses_nothing(tmp_path):
    live_dir = tmp_path / "live"
    sm = SimMeter(live_dir, sim={"current_a": 30.0})
    try:
        sm.run(37)
        sm.world.power_cut(True)  # supply supervisor pulls the power-fail pin low
        live = sm.meter.registers.snapshot()
        crash_copy(live_dir, tmp_path / "after")
    finally:
        sm.hardware.close()
    restarted = SimMeter(tmp_path / "after")
    try:
        assert restarted.meter.registers.snapshot() == live
    finally:
        restarted.close()


# -- real processes ------------------------------------------------------------------------

def start_meterd(state: Path, config: Path | None = None) -> subprocess.Popen[bytes]:
    if config is None:
        state.parent.mkdir(parents=True, exist_ok=True)
        config = sim_config_file(state.parent)
    env = dict(os.environ, METERD_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "meterd", "run", "--config", str(config),
                             "--state-dir", str(state), "--speed", "0"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def status(state: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"meterd died: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            code, view = request(str(state / "meterd.sock"), "GET", "/status", timeout=5.0)
        except OSError:
            code, view = 0, {}
        if code == 200:
            return view
        time.sleep(0.05)
    raise AssertionError("meterd did not answer")


def flatten(view: dict) -> dict[str, float]:
    return {f"{ch}.{k}": v for ch, regs in view["energy"].items() for k, v in regs.items()}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 200 start/kill cycles of a whole meterd process
def test_kill_9_soak_never_goes_backwards(tmp_path):
    run_kill_cycles(tmp_path, 200)


def test_kill_9_short(tmp_path):
    run_kill_cycles(tmp_path, 200 if soak_enabled() else 12)


def run_kill_cycles(tmp_path: Path, kills: int) -> None:
    rng = random.Random(7)
    state = tmp_path / "state"
    before: dict[str, float] | None = None
    for _ in range(kills):
        proc = start_meterd(state)
        try:
            after = flatten(status(state, proc))
            if before is not None:
                for key, value in before.items():
                    assert after[key] >= value, (key, value, after[key])
            time.sleep(rng.uniform(0.0, 0.3))
            before = flatten(status(state, proc))
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert before is not None and before["total.active_import_wh"] > 0


def test_kill_9_after_power_fail_is_exact(tmp_path):
    state = tmp_path / "state"
    (tmp_path / "idle").mkdir()
    idle = sim_config_file(tmp_path / "idle", current_a="0.0")  # the restart adds nothing
    proc = start_meterd(state)
    try:
        status(state, proc)
        time.sleep(0.3)
        ctl = [sys.executable, "-m", "meterd.app.meterctl", "--socket", str(state / "meterd.sock")]
        subprocess.run(ctl + ["sim", "power-fail"], check=True, capture_output=True, cwd=REPO)
        time.sleep(0.2)
        at_fail = flatten(status(state, proc))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = start_meterd(state, idle)
    try:
        again = flatten(status(state, proc))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert at_fail["total.active_import_wh"] > 0
    assert again == at_fail

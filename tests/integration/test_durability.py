"""Energy survives crashes: kill -9 at random moments, and the power-fail last gasp.

* In-process: 200 random crash points. A crash is modelled exactly as kill -9 leaves things: the
  database files as they are on disk at that instant (SQLite has written every committed
  transaction before returning) and the energy journal as it is in RAM (its file on tmpfs,
  copied under the name the restarted meter looks for). With the journal the restarted meter
  holds every register exactly as after the last cycle (zero loss), although the database
  alone is far behind; without it no register is more than the bound behind. Either way none
  is below a value that was published, and none ever goes backwards.
* Real processes: meterd at full simulator speed is killed with SIGKILL at random moments and
  restarted; what `meterctl --json status` showed before the kill is never more than what it
  shows after. Every other kill first stops the load, so the registers at the kill are known
  (the truth): the restarted meter must show them exactly. With the power-fail input, the last
  gasp loses nothing at all.
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

from meterd.app.daemon import Daemon
from meterd.app.meterctl import request
from meterd.core.energy import ALL_KEYS
from meterd.store.energy_store import EnergyStore
from tests.conftest import soak_enabled
from tests.simmeter import SimMeter, sim_config, sim_config_file

BOUND_MILLI = 10_000
REPO = Path(__file__).resolve().parents[2]


def journal_file(state: Path, **sections: dict) -> Path | None:
    """Where a meter on ``state`` keeps its energy journal (None when it has none)."""
    return Daemon(sim_config(state, **sections)).journal_path()


def crash_copy(src: Path, dst: Path, **sections: dict) -> None:
    """The state directory as kill -9 would leave it (no close, no WAL checkpoint), and the
    energy journal as it is in RAM, under the name a meter on ``dst`` looks for."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name.startswith(("energy.", "commissioning.")):  # the database, register file, record
            shutil.copy2(f, dst / f.name)
    journal = journal_file(src, **sections)
    if journal is not None and journal.exists():
        target = journal_file(dst, **sections)
        assert target is not None
        shutil.copyfile(journal, target)
        boot = journal.with_name(journal.name + ".boot")  # the RAM file system's life, with it
        if boot.exists():
            shutil.copyfile(boot, target.with_name(target.name + ".boot"))


def discard(meter: SimMeter) -> None:
    """Drop a restarted meter without a final checkpoint (its journal file is removed), closing
    what it opened so a long run of restarts does not run out of file descriptors."""
    for closer in reversed(meter.daemon.closers):  # the features' stores and pins; no checkpoint
        closer()
    meter.hardware.close()
    assert meter.daemon.store is not None
    meter.daemon.store.close()
    if meter.daemon.journal is not None:
        meter.daemon.journal.close(discard=True)
        meter.daemon.journal.path.with_name(meter.daemon.journal.path.name + ".boot").unlink(missing_ok=True)
    if meter.daemon.pending_slot is not None:
        meter.daemon.pending_slot.close(discard=True)


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "database-only"])
def test_200_random_crashes(tmp_path, journal):
    """With the journal: zero loss against the last cycle; without: at most the bound. 200 crash
    points with PMM_SOAK=1; the short form runs 100 with the journal, 40 without."""
    crashes = 200 if soak_enabled() else (100 if journal else 40)
    rng = random.Random(20261124)
    storage = {"journal": journal}
    live_dir = tmp_path / "live"
    sm = SimMeter(live_dir, sim={"current_a": 20.0, "power_factor": "0.8L"}, storage=storage)
    assert (sm.daemon.journal is not None) == journal
    published = {k: 0 for k in ALL_KEYS}
    worst = database_behind = 0
    try:
        for i in range(crashes):
            sm.run(rng.randint(1, 40))
            if rng.random() < 0.2:  # an observer reads: published values must never be taken back
                published = dict(sm.meter.snapshot().registers)
            live = sm.meter.registers.snapshot()
            crash_dir = tmp_path / f"crash{i}"
            crash_copy(live_dir, crash_dir, storage=storage)
            database = EnergyStore(crash_dir / "energy.db")
            stored = database.load()
            database.close()
            on_disk = stored.registers if stored is not None else dict.fromkeys(ALL_KEYS, 0)
            database_behind = max(database_behind, *(live[k] - on_disk[k] for k in ALL_KEYS))
            restarted = SimMeter(crash_dir, sim={"current_a": 20.0}, storage=storage)
            got = restarted.meter.registers.snapshot()
            discard(restarted)
            shutil.rmtree(crash_dir)
            for key in ALL_KEYS:
                loss = live[key] - got[key]
                assert 0 <= loss <= (0 if journal else BOUND_MILLI), (i, key, loss)
                assert got[key] >= published[key], (i, key)
                worst = max(worst, loss)
    finally:
        sm.close()
    if journal:  # the database alone was far behind: the journal carried the difference
        assert worst == 0 and database_behind > 10 * BOUND_MILLI
        assert sm.daemon.journal is not None and not sm.daemon.journal.path.exists()  # clean stop
    else:
        assert worst > 0  # the crashes really fell between checkpoints


def test_power_fail_last_gasp_loses_nothing(tmp_path):
    """The database alone (tmpfs is gone after the power cut) holds every register exactly."""
    live_dir = tmp_path / "live"
    sm = SimMeter(live_dir, sim={"current_a": 30.0})
    try:
        sm.run(37)
        sm.world.power_cut(True)  # supply supervisor pulls the power-fail pin low
        sm.meter.power_fail()  # what the daemon's watcher of that pin does (not wired in-process)
        live = sm.meter.registers.snapshot()
        (tmp_path / "after").mkdir()
        for f in live_dir.glob("energy.db*"):  # no journal: the power cut emptied the RAM
            shutil.copy2(f, tmp_path / "after" / f.name)
    finally:
        discard(sm)
    restarted = SimMeter(tmp_path / "after")
    try:
        assert "database" in restarted.meter.restored_from
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


def status(state: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> dict:
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
    run_kill_cycles(tmp_path, 200 if soak_enabled() else 6)


def frozen_status(state: Path, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """Stop the load, then the registers once they no longer move: what the meter holds at any
    later moment (the truth at a kill)."""
    code, _ = request(str(state / "meterd.sock"), "POST", "/sim/set", {"phase": "all", "current_a": 0.0})
    assert code == 200
    last = flatten(status(state, proc))
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = flatten(status(state, proc))
        if now == last:
            return now
        last = now
    raise AssertionError("the registers kept moving without load")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def run_kill_cycles(tmp_path: Path, kills: int) -> None:
    """Odd kills land at random moments under load (maybe in the middle of a journal or
    database write): nothing published is taken back. Even kills come after the load was
    stopped: the restarted meter (idle, so it adds nothing) must hold exactly what the meter
    held when it was killed, its registers and the last status published."""
    rng = random.Random(7)
    state = tmp_path / "state"
    (tmp_path / "idle").mkdir()
    idle = sim_config_file(tmp_path / "idle", current_a="0.0")
    before: dict[str, float] | None = None
    exact = 0
    try:
        for i in range(kills):
            proc = start_meterd(state)
            try:
                after = flatten(status(state, proc))
                if before is not None:
                    for key, value in before.items():
                        assert after[key] >= value, (key, value, after[key])
                time.sleep(rng.uniform(0.0, 0.3))
                before = flatten(status(state, proc))
                if i % 2 == 0:
                    truth = frozen_status(state, proc)
                time.sleep(rng.uniform(0.0, 0.3))
            finally:
                kill(proc)
            if i % 2:
                continue
            proc = start_meterd(state, idle)
            try:
                again = flatten(status(state, proc))
            finally:
                kill(proc)
            assert again == truth, {k: (truth[k], again[k]) for k in truth if again[k] != truth[k]}
            exact += 1
            before = truth
    finally:
        path = journal_file(state)
        if path is not None:
            path.unlink(missing_ok=True)
    assert exact > 0 and before is not None and before["total.active_import_wh"] > 0


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
        path = journal_file(state)
        if path is not None:
            path.unlink(missing_ok=True)
    assert at_fail["total.active_import_wh"] > 0
    assert again == at_fail


def test_journal_written_once_per_cycle_and_not_by_observers(tmp_path):
    """Each cycle changes the state (registers, profile accumulators): one journal write per
    cycle; observers reading between cycles change nothing and write nothing, not even to the
    database; the displays' committed view follows the journal."""
    sm = SimMeter(tmp_path / "state", sim={"current_a": 10.0})
    try:
        journal, store = sm.daemon.journal, sm.daemon.store
        assert journal is not None and store is not None
        sm.run(5)
        writes, saves = journal.writes, store.saves
        sm.run(50)
        assert journal.writes == writes + 50
        for _ in range(20):
            published = sm.meter.snapshot().registers
        assert journal.writes == writes + 50 and store.saves == saves
        assert published == sm.meter.committed.snapshot() == sm.meter.registers.snapshot()
    finally:
        sm.close()


class BrokenJournal:
    def load(self):
        return None

    def write(self, checkpoint):
        raise OSError(28, "No space left on device")


def test_a_failing_journal_falls_back_to_the_database(tmp_path):
    sm = SimMeter(tmp_path / "state", sim={"current_a": 20.0})
    try:
        sm.run(10)
        sm.meter.journal = BrokenJournal()
        sm.run(1)
        assert sm.meter.journal is None and not sm.meter.policy.journaled
        stored = sm.daemon.store.load()
        assert stored is not None and stored.registers == sm.meter.registers.snapshot()
        saves = sm.daemon.store.saves
        sm.run(30)  # from now on the bound drives database commits, as without a journal
        assert sm.daemon.store.saves > saves
    finally:
        sm.close()


def test_without_a_usable_journal_directory_the_database_keeps_the_bound(tmp_path):
    """A journal directory that does not exist (no tmpfs, no systemd runtime directory): the meter
    logs it and runs as without a journal, commits driven by the loss bound."""
    sm = SimMeter(tmp_path / "state", sim={"current_a": 20.0}, storage={"journal_dir": str(tmp_path / "none")})
    try:
        assert sm.daemon.journal is None and not sm.meter.policy.journaled
        worst = 0
        for _ in range(40):
            sm.run(1)
            stored = sm.daemon.store.load()
            on_disk = stored.registers if stored is not None else dict.fromkeys(ALL_KEYS, 0)
            behind = max(sm.meter.registers.snapshot()[k] - on_disk[k] for k in ALL_KEYS)
            assert behind <= BOUND_MILLI
            worst = max(worst, behind)
        assert worst > 0  # between commits, as before the journal
    finally:
        sm.close()


def test_journal_paths(tmp_path):
    state = tmp_path / "state"
    shared = journal_file(state, storage={"journal_dir": str(tmp_path)})
    assert shared is not None and shared.parent == tmp_path and shared.name.endswith("-energy.journal")
    assert shared != journal_file(tmp_path / "other", storage={"journal_dir": str(tmp_path)})
    assert journal_file(state, storage={"journal_dir": str(state)}) == state / "energy.journal"
    assert journal_file(state, storage={"journal": False}) is None
    pi = Daemon(sim_config(state, hardware={"backend": "pi", "pin_factory": "mock"},
                           storage={"journal_dir": "/run/meterd"}))
    assert pi.journal_path() == Path("/run/meterd/energy.journal")

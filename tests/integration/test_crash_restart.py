"""A crash of meterd is not a power cut, with real processes: meterd killed with SIGKILL and
started again on the same host records one software restart ("watchdog error", IDIS 15) and no
power failure, with every register as it was; a real outage (the host restarted: the journal's
RAM file system emptied, or the power-fail input announced the cut) keeps its power-failure
records. The processes, the events (read over the API) and the energy are checked after each."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meterd.app.meterctl import request
from tests.integration.test_durability import (
    BOUND_MILLI,
    REPO,
    crash_copy,
    discard,
    flatten,
    frozen_status,
    journal_file,
    kill,
    start_meterd,
    status,
)
from tests.simmeter import SimMeter, sim_config_file

POWER_NAMES = {"POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE", "LONG_POWER_FAILURE"}


def events(state: Path, log: str | None = None) -> list[dict[str, Any]]:
    """Every event of the meter on ``state`` (or of one log), oldest first."""
    body: dict[str, Any] = {"limit": 500} if log is None else {"limit": 500, "log": log}
    code, view = request(str(state / "meterd.sock"), "POST", "/events", body, timeout=5.0)
    assert code == 200, view
    return list(view["events"])[::-1]


def named(entries: list[dict[str, Any]]) -> list[str]:
    return [str(e["name"]) for e in entries]


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def idle_config(tmp_path: Path) -> Path:
    (tmp_path / "idle").mkdir(exist_ok=True)
    return sim_config_file(tmp_path / "idle", current_a="0.0")  # a restart that adds no energy


def host_restart(state: Path) -> None:
    """What a reboot or a power cut of the host does to the journal's RAM file system."""
    journal = journal_file(state)
    assert journal is not None and journal.exists()
    journal.unlink()
    journal.with_name(journal.name + ".boot").unlink()


def test_kill_9_of_meterd_is_a_software_restart_with_every_register_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = start_meterd(state, sim_config_file(tmp_path, sync_period_s="5.0"))  # a database copy too
    try:
        status(state, proc)
        truth = frozen_status(state, proc)
        before = events(state)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not [name for name in named(before) if name in POWER_NAMES | {"WATCHDOG_ERROR"}]
    proc = start_meterd(state, idle_config(tmp_path))
    try:
        assert flatten(status(state, proc)) == truth
        after = events(state)
        power_failure_log = events(state, "power_failure")
        alarms = status(state, proc)["alarms"]
    finally:
        assert stop(proc) == 0
    assert named(after)[len(before):] == ["WATCHDOG_ERROR"], after[len(before):]
    restart = next(e for e in after if e["name"] == "WATCHDOG_ERROR")
    assert restart["detail"]["restart"] == "software" and restart["detail"]["down_s"] >= 0
    assert power_failure_log == []
    assert "watchdog_error" in alarms["active"]
    assert truth["total.active_import_wh"] > 0
    # a clean stop after it: the next start records nothing at all
    proc = start_meterd(state, idle_config(tmp_path))
    try:
        assert flatten(status(state, proc)) == truth
        assert named(events(state)) == named(after)
    finally:
        assert stop(proc) == 0


def test_kill_9_and_a_host_restart_is_a_power_failure(tmp_path: Path) -> None:
    """The journal and its boot token gone (tmpfs emptied): the supply was lost with the host.
    The registers come from the durable copies, at most the loss bound behind (the database is
    synced every 5 s of meter time: less than 10 Wh at 3.45 kW)."""
    state = tmp_path / "state"
    tmp_path.mkdir(exist_ok=True)
    proc = start_meterd(state, sim_config_file(tmp_path, sync_period_s="5.0"))
    try:
        status(state, proc)
        truth = frozen_status(state, proc)
        before = named(events(state))
    finally:
        kill(proc)
    host_restart(state)
    proc = start_meterd(state, idle_config(tmp_path))
    try:
        again = flatten(status(state, proc))
        new = named(events(state))[len(before):]
        power_failure_log = named(events(state, "power_failure"))
    finally:
        assert stop(proc) == 0
    assert "WATCHDOG_ERROR" not in new
    assert [name for name in new if name in POWER_NAMES] == ["POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE"]
    assert power_failure_log == ["SHORT_POWER_FAILURE"]
    for key, value in truth.items():
        assert 0 <= value - again[key] <= BOUND_MILLI / 1000, (key, value, again[key])


def test_power_fail_input_then_kill_9_is_a_power_failure_with_the_host_kept(tmp_path: Path) -> None:
    """The supply supervisor announced the cut (last gasp) before meterd died; the journal and
    its boot token survived (the host rode it out): still a power failure, dated at the cut,
    and not a software restart. Every register is exact."""
    state = tmp_path / "state"
    proc = start_meterd(state)
    try:
        status(state, proc)
        ctl = [sys.executable, "-m", "meterd.app.meterctl", "--socket", str(state / "meterd.sock")]
        subprocess.run(ctl + ["sim", "power-fail"], check=True, capture_output=True, cwd=REPO)
        deadline = time.monotonic() + 30.0
        while "POWER_DOWN" not in named(events(state)):  # the edge's "power down" is recorded on the loop
            assert time.monotonic() < deadline, "no power down recorded"
        at_fail = flatten(status(state, proc))
    finally:
        kill(proc)
    journal = journal_file(state)
    assert journal is not None and journal.with_name(journal.name + ".boot").exists()
    proc = start_meterd(state, idle_config(tmp_path))
    try:
        again = flatten(status(state, proc))
        all_events = events(state)
        power_failure_log = named(events(state, "power_failure"))
    finally:
        assert stop(proc) == 0
    assert again == at_fail and at_fail["total.active_import_wh"] > 0
    names = named(all_events)
    assert "WATCHDOG_ERROR" not in names
    assert [n for n in names if n in POWER_NAMES] == ["POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE"]
    down = next(e for e in all_events if e["name"] == "POWER_DOWN")
    assert not down["detail"].get("estimated", False)  # dated by the last gasp, not estimated
    assert power_failure_log == ["SHORT_POWER_FAILURE"]


def test_the_storage_tells_whether_the_host_kept_running(tmp_path: Path) -> None:
    """First start: nothing to tell; after a kill -9 with the journal's RAM file system kept:
    kept; with it emptied: not kept."""
    live = tmp_path / "live"
    meter = SimMeter(live, sim={"current_a": 10.0}, storage={"sync_period_s": 5.0})
    try:
        assert meter.daemon.store is not None and meter.daemon.store.host_kept is None
        meter.run(20)
        crash_copy(live, tmp_path / "kept")
        crash_copy(live, tmp_path / "rebooted")
    finally:
        meter.close()
    host_restart(tmp_path / "rebooted")
    for name, kept in (("kept", True), ("rebooted", False)):
        again = SimMeter(tmp_path / name, sim={"current_a": 0.0})
        try:
            assert again.daemon.store is not None and again.daemon.store.host_kept is kept
        finally:
            discard(again)

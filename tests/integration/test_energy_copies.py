"""The copies of the registers in a running meter: the journal watched, commissioning, private
files."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.checkpoint import Checkpoint
from meterd.core.events import EventRecorder
from meterd.store.energy_copies import (
    COMMISSIONING_NAME,
    EnergyCopies,
    StorageUnavailable,
    read_commissioning,
)
from meterd.store.register_file import REGISTER_FILE_NAME
from tests.integration.test_durability import REPO, crash_copy, discard, kill, start_meterd, status
from tests.simmeter import SimMeter, sim_config_file

NV = ec.code("NV_MEMORY_ERROR")


def journal_events(sm: SimMeter) -> list[str]:
    return [str(e.detail["reason"]) for e in sm.service(EventRecorder).recent(50)
            if e.code == NV and e.detail.get("copy") == "journal"]


def _zero(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(bytes(path.stat().st_size))


@pytest.mark.parametrize("damage", ["removed", "zeroed", "truncated"])
def test_journal_damaged_while_running_is_noticed_within_a_cycle(tmp_path, caplog, damage):
    sm = SimMeter(tmp_path / "state", sim={"current_a": 20.0})
    try:
        journal = sm.daemon.journal
        assert journal is not None
        sm.run(30)
        if damage == "removed":
            journal.path.unlink()
        elif damage == "zeroed":
            _zero(journal.path)
        else:
            os.truncate(journal.path, 100)
        with caplog.at_level(logging.WARNING, logger="meterd"):
            sm.run(1)
        warned = [r for r in caplog.records if r.name == "meterd.metering" and "energy journal" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING
        assert journal.path.exists() and journal.check() is None and journal.recreated == 1
        assert len(journal_events(sm)) == 1
        sm.run(20)
        live = sm.meter.registers.snapshot()
        crash_copy(tmp_path / "state", tmp_path / "crash")  # kill -9 after the damage: nothing lost
        again = SimMeter(tmp_path / "crash", sim={"current_a": 0.0})
        try:
            assert again.meter.registers.snapshot() == live
            assert again.meter.restored_from.startswith("journal")
        finally:
            discard(again)
    finally:
        sm.close()


def test_a_simulated_meter_commissions_itself_on_an_empty_state_directory(tmp_path):
    sm = SimMeter(tmp_path / "state")
    try:
        events = [e for e in sm.service(EventRecorder).recent(10) if e.code == ec.code("METER_COMMISSIONED")]
        assert len(events) == 1 and "simulated" in str(events[0].detail["how"])
        record = read_commissioning(tmp_path / "state")
        assert record is not None and record.started and record.id == sm.daemon.store.commissioning
        sm.run(10)
    finally:
        sm.close()
    again = SimMeter(tmp_path / "state")  # a restart is not a new commissioning
    try:
        assert len([e for e in again.service(EventRecorder).recent(10)
                    if e.code == ec.code("METER_COMMISSIONED")]) == 1
    finally:
        again.close()


def test_without_any_copy_meterd_refuses_to_start_with_one_line(tmp_path):
    state = tmp_path / "state"
    sm = SimMeter(state, sim={"current_a": 20.0})
    sm.run(30)
    sm.close()
    for path in [*state.glob("energy.db*"), state / REGISTER_FILE_NAME]:
        path.unlink()
    config = sim_config_file(tmp_path)
    out = subprocess.run([sys.executable, "-m", "meterd", "run", "--config", str(config), "--state-dir", str(state),
                          "--speed", "0"], capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = [line for line in out.stderr.splitlines() if "WARNING" not in line]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "no valid copy of the energy registers" in lines[0] and "meterd commission" in lines[0]
    assert not list(state.glob("energy.db*"))  # the refused start left nothing behind
    done = subprocess.run([sys.executable, "-m", "meterd", "commission", "--config", str(config), "--state-dir",
                           str(state)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    restarted = SimMeter(state)
    try:
        assert restarted.meter.registers.snapshot() == dict.fromkeys(restarted.meter.registers.snapshot(), 0)
        assert [e for e in restarted.service(EventRecorder).recent(10) if e.code == ec.code("METER_COMMISSIONED")]
    finally:
        restarted.close()


def test_commission_refuses_a_meter_with_registers_unless_forced(tmp_path):
    state = tmp_path / "state"
    sm = SimMeter(state, sim={"current_a": 20.0})
    sm.run(30)
    sm.close()
    config = sim_config_file(tmp_path)
    cmd = [sys.executable, "-m", "meterd", "commission", "--config", str(config), "--state-dir", str(state)]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert refused.returncode == 2 and "--force" in refused.stderr
    forced = subprocess.run([*cmd, "--force"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert list(state.glob("energy.db.decommissioned-*"))  # moved aside, never deleted
    record = read_commissioning(state)
    assert record is not None and not record.started and "--force" in record.how


def test_a_real_meter_needs_the_commission_command(tmp_path):
    with pytest.raises(StorageUnavailable, match="meterd commission"):
        EnergyCopies(tmp_path / "state", "PMM1", None)
    assert not (tmp_path / "state" / COMMISSIONING_NAME).exists()


def test_a_journal_of_an_earlier_commissioning_is_not_applied(tmp_path):
    state = tmp_path / "state"
    sm = SimMeter(state, sim={"current_a": 20.0})
    sm.run(30)
    journal = sm.daemon.journal
    assert journal is not None
    old = tmp_path / "old.journal"
    shutil.copyfile(journal.path, old)
    sm.close()
    config = sim_config_file(tmp_path)
    subprocess.run([sys.executable, "-m", "meterd", "commission", "--config", str(config), "--state-dir", str(state),
                    "--force"], check=True, capture_output=True, cwd=REPO, timeout=120)
    shutil.copyfile(old, journal.path)  # the old meter's journal is still in RAM
    again = SimMeter(state)
    try:
        assert sum(again.meter.registers.snapshot().values()) == 0
        assert again.daemon.journal is not None
        kept = again.daemon.journal.load()  # at most the new meter's own zero state, made durable at start
        assert kept is None or (kept.seq == again.meter.seq and sum(kept.registers.values()) == 0)
        again.run(2)  # the journal, checked each cycle, is not taken for damaged
        assert not [e for e in again.service(EventRecorder).recent(50)
                    if e.code == ec.code("NV_MEMORY_ERROR") and e.detail.get("reason") == "newest record damaged"]
    finally:
        again.close()


def test_state_files_are_not_world_readable_whatever_the_umask(tmp_path):
    state = tmp_path / "state"
    previous = os.umask(0o022)  # a careless shell; meterd sets its own
    try:
        proc = start_meterd(state)
        try:
            status(state, proc)
        finally:
            kill(proc)
    finally:
        os.umask(previous)
    checked = 0
    for path in state.rglob("*"):
        if path.is_socket():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, (path, oct(mode))
        checked += 1
    assert checked > 10
    assert (state / "energy.db").exists() and (state / COMMISSIONING_NAME).exists()


def test_the_register_file_is_a_whole_copy(tmp_path):
    """After a synced save the register file alone restores the meter."""
    sm = SimMeter(tmp_path / "state", sim={"current_a": 20.0})
    try:
        sm.run(30)
        sm.meter.persist(sync=True)
        live = sm.meter.registers.snapshot()
        filed = sm.daemon.store.register_file.load()
        assert isinstance(filed, Checkpoint) and filed.registers == live
        assert filed.commissioning == sm.daemon.store.commissioning
    finally:
        sm.close()


def test_a_crash_in_the_first_seconds_of_a_new_meter_is_not_taken_for_damage(tmp_path):
    """kill -9 before the first periodic save: the database already holds the zero state made
    durable at the first start, so the restart finds no copy emptied and restores every Wh."""
    live = SimMeter(tmp_path / "live", sim={"current_a": 20.0})
    live.run(5)
    counted = live.meter.registers.snapshot()
    crash_copy(tmp_path / "live", tmp_path / "crash")
    again = SimMeter(tmp_path / "crash")
    try:
        assert again.meter.registers.snapshot() == counted
        again.run(1)
        assert not [e for e in again.service(EventRecorder).recent(50) if e.code == ec.code("NV_MEMORY_ERROR")]
    finally:
        discard(again)
        discard(live)

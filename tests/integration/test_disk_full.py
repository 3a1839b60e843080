"""A full or failing disk never stops metering.

* Injected: the energy storage's ``fault`` (every database and register-file write fails with
  ENOSPC) for a simulated day: the meter keeps metering with its state in the journal, logs the
  failure once, flags ``storage_fault``, and when the fault is lifted writes again (no restart),
  records the NV memory error event "writes failed …; resumed", and a kill -9 then loses nothing.
* Real: the state directory on a small tmpfs filled to the last byte (needs root and mount; the
  test is skipped where the machine does not allow it). Every writer on it fails; metering goes
  on for a simulated day, and after space returns the registers reach the disk again.
* A state directory that cannot be written: one line, exit 2.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.core.reading import Channel
from tests.conftest import soak_enabled
from tests.integration.test_durability import REPO, crash_copy, discard
from tests.simmeter import SimMeter, sim_config_file

IMPORT = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
DAY_S = 86_400
CYCLE_S = 10.0 if soak_enabled() else 40.0  # a day in 8640 cycles (2160 in the short form)


def restart_holds(sm: SimMeter, tmp_path: Path, name: str) -> None:
    """A kill -9 now, and a restart: the registers exactly as live (nothing lost)."""
    live = sm.meter.registers.snapshot()
    crash_dir = tmp_path / name
    crash_copy(sm.daemon.cfg.state_dir, crash_dir)
    restarted = SimMeter(crash_dir, sim={"current_a": 0.0})
    try:
        assert restarted.meter.registers.snapshot() == live
    finally:
        discard(restarted)
        shutil.rmtree(crash_dir)


def test_injected_disk_full_for_a_day(tmp_path, caplog):
    sm = SimMeter(tmp_path / "state", sim={"current_a": 20.0})
    try:
        store, journal = sm.daemon.store, sm.daemon.journal
        assert store is not None and journal is not None
        sm.run(900)
        saves, writes = store.saves, journal.writes
        start = sm.meter.registers.snapshot()[IMPORT]
        store.fault = OSError(errno.ENOSPC, "No space left on device")
        with caplog.at_level(logging.INFO, logger="meterd"):
            sm.run(DAY_S, cycle_s=CYCLE_S)
        failed = [r for r in caplog.records if "cannot write" in r.getMessage()]
        assert len(failed) == 1 and failed[0].levelno == logging.ERROR and failed[0].exc_info is None
        assert "ENOSPC" in failed[0].getMessage()
        assert store.saves == saves  # nothing reached the disk...
        assert journal.writes >= writes + DAY_S / CYCLE_S  # ...every cycle is in the journal
        assert sm.meter.registers.snapshot()[IMPORT] - start > 100_000_000  # a day at ~4.6 kW: metering went on
        assert "storage_fault" in sm.meter.status_flags()
        assert sm.meter.status_word() & (1 << 11)
        restart_holds(sm, tmp_path, "during")  # a crash while the disk is full loses nothing
        store.fault = None  # space returns
        sm.run(MAX_WAIT_S, cycle_s=CYCLE_S)
        assert store.saves > saves and not store.failing
        assert "storage_fault" not in sm.meter.status_flags()
        durable = store.load()
        assert durable is not None and durable.seq == sm.meter._stored_seq  # noqa: SLF001
        events = sm.service(EventRecorder).recent(20)
        resumed = [e for e in events if e.code == ec.code("NV_MEMORY_ERROR") and e.detail.get("copy") == "storage"]
        assert len(resumed) == 1 and "ENOSPC" in str(resumed[0].detail["reason"])
        assert int(resumed[0].detail["failed_attempts"]) > 10
        restart_holds(sm, tmp_path, "after")
    finally:
        sm.close()


MAX_WAIT_S = 64 * CYCLE_S * 2  # the longest back-off between attempts, twice


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            try:
                while f.write(bytes(size)):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_a_real_full_disk_for_a_day(tmp_path, caplog):
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "4m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        sm = SimMeter(mnt / "state", sim={"current_a": 20.0})  # the journal on /dev/shm
        try:
            store = sm.daemon.store
            assert store is not None
            sm.run(900)
            start = sm.meter.registers.snapshot()[IMPORT]
            filler = _fill(mnt)
            with caplog.at_level(logging.WARNING):
                sm.run(DAY_S, cycle_s=CYCLE_S)
            assert store.failing
            assert sm.meter.registers.snapshot()[IMPORT] - start > 100_000_000
            assert not any(r.exc_info for r in caplog.records)  # one line each, no traceback
            restart_holds(sm, tmp_path, "during")
            filler.unlink()  # space returns
            sm.run(MAX_WAIT_S, cycle_s=CYCLE_S)
            assert not store.failing
            sm.meter.persist(sync=True)
            durable = store.load()
            assert durable is not None and durable.registers == sm.meter.registers.snapshot()
            restart_holds(sm, tmp_path, "after")
        finally:
            sm.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_read_only_state_directory_is_one_line_and_exit_2(tmp_path):
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        config = sim_config_file(tmp_path)
        out = subprocess.run([sys.executable, "-m", "meterd", "run", "--config", str(config), "--state-dir",
                              str(mnt / "state"), "--speed", "0"], capture_output=True, text=True, cwd=REPO,
                             timeout=120)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "state directory" in lines[0] and "Traceback" not in out.stderr, out.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_meter_starts_on_a_disk_full_to_the_last_byte(tmp_path, caplog):
    """meterd stopped, the card filled, meterd started: the databases open (in exclusive locking
    mode: the WAL index then needs no file), the registers are restored, metering goes on, and
    when space returns the registers reach the disk."""
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "4m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        first = SimMeter(mnt / "state", sim={"current_a": 20.0})
        first.run(60)
        counted = first.meter.registers.snapshot()
        first.close()
        filler = _fill(mnt)
        with caplog.at_level(logging.WARNING):
            sm = SimMeter(mnt / "state", sim={"current_a": 20.0})
        try:
            assert sm.meter.registers.snapshot() == counted
            assert not [r for r in caplog.records if "damaged" in r.getMessage()]  # full is not damage
            assert not any(r.exc_info for r in caplog.records)
            sm.run(600, cycle_s=CYCLE_S)
            assert sm.meter.registers.snapshot()[IMPORT] > counted[IMPORT]
            filler.unlink()
            sm.run(MAX_WAIT_S, cycle_s=CYCLE_S)
            sm.meter.persist(sync=True)
            store = sm.daemon.store
            assert store is not None and not store.failing
            durable = store.load()
            assert durable is not None and durable.registers == sm.meter.registers.snapshot()
        finally:
            sm.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)

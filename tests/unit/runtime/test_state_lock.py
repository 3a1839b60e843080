"""One meter per state directory: the state-directory and journal locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meterd.runtime.state_lock import LOCK_NAME, FileLock, StateLock, StateLockError, holder_pid, probe


def test_second_lock_on_a_state_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = StateLock(tmp_path / "state", tmp_path / "shm" / "energy.journal")
    assert holder_pid(tmp_path / "state" / LOCK_NAME) == os.getpid()
    assert holder_pid(tmp_path / "shm" / "energy.journal.lock") == os.getpid()
    with pytest.raises(StateLockError) as info:
        StateLock(tmp_path / "state", tmp_path / "shm" / "energy.journal")
    assert info.value.pid == os.getpid()
    assert str(info.value) == (f"state directory {tmp_path / 'state'} is in use by another meterd "
                               f"(pid {os.getpid()}): lock {tmp_path / 'state' / LOCK_NAME} is held; "
                               "stop that meter first")
    first.release()
    StateLock(tmp_path / "state", tmp_path / "shm" / "energy.journal").release()


def test_journal_shared_by_two_state_directories_is_refused_and_nothing_stays_held(tmp_path: Path) -> None:
    journal = tmp_path / "shm" / "energy.journal"
    first = StateLock(tmp_path / "a", journal)
    with pytest.raises(StateLockError, match=rf"energy journal {journal} is in use by another meterd \(pid"):
        StateLock(tmp_path / "b", journal)
    assert probe(tmp_path / "b") is None  # the refused start released the directory it had locked
    first.release()


def test_release_removes_the_files_and_is_idempotent(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "state", tmp_path / "energy.journal")
    assert probe(tmp_path / "state") == os.getpid()
    lock.release()
    lock.release()
    assert not (tmp_path / "state" / LOCK_NAME).exists()
    assert not (tmp_path / "energy.journal.lock").exists()
    assert probe(tmp_path / "state") is None


def test_lock_file_left_by_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    """A holder killed with SIGKILL leaves its file (with its pid) but no lock."""
    state = tmp_path / "state"
    code = ("import sys, os; from pathlib import Path; from meterd.runtime.state_lock import StateLock; "
            "StateLock(Path(sys.argv[1])); print('locked', flush=True); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.stdout == "locked\n" and proc.returncode == -9
    assert holder_pid(state / LOCK_NAME) is not None
    assert probe(state) is None
    lock = StateLock(state)
    assert holder_pid(state / LOCK_NAME) == os.getpid()
    lock.release()


def test_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code = ("import sys; from pathlib import Path; from meterd.runtime.state_lock import StateLock; "
            "StateLock(Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(state)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert probe(state) == holder.pid
        with pytest.raises(StateLockError) as info:
            StateLock(state)
        assert info.value.pid == holder.pid and f"(pid {holder.pid})" in str(info.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert probe(state) is None


def test_unwritable_journal_directory_is_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    lock = StateLock(tmp_path / "state", blocker / "energy.journal")  # its parent is a file
    assert [fl.path.name for fl in lock.locks] == [LOCK_NAME]
    lock.release()


def test_file_lock_held_flag(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock", "x")
    assert lock.held
    lock.release()
    assert not lock.held

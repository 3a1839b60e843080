"""The register file, the choice among copies, and the storage write back-off."""

from __future__ import annotations

import datetime as dt
import errno
import sqlite3

import pytest

from meterd.core.checkpoint import Checkpoint, CheckpointWriteError, choose_newest
from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.store.energy_copies import MAX_SKIP, EnergyCopies, commission
from meterd.store.energy_journal import EnergyJournal
from meterd.store.register_file import MIN_SLOT_SIZE, RegisterFile
from meterd.store.sqlite import WriteBacklog, storage_failure

KEY = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
OTHER = (Quantity.ACTIVE_EXPORT, Channel.TOTAL)
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def cp(seq: int, value: int, other: int = 0, extra: dict | None = None) -> Checkpoint:
    return Checkpoint(seq=seq, utc=T0 + dt.timedelta(seconds=seq), registers={KEY: value, OTHER: other},
                      extra=extra or {})


def same(got: Checkpoint | None, want: Checkpoint) -> bool:
    """The same state (the store fills in the registers ``want`` does not name, at 0)."""
    return (got is not None and got.seq == want.seq and got.extra == want.extra
            and all(got.registers[k] == v for k, v in want.registers.items())
            and not any(v for k, v in got.registers.items() if k not in want.registers))


def test_register_file_round_trip_and_a_torn_write_keeps_the_other_slot(tmp_path):
    path = tmp_path / "energy.registers"
    rf = RegisterFile(path, "PMM1", commissioning="ab" * 16)
    assert rf.found == "missing" and rf.load() is None
    rf.write(cp(1, 10))
    rf.write(cp(2, 20))
    again = RegisterFile(path, "PMM1")
    assert same(again.load(), cp(2, 20)) and again.load().commissioning == "ab" * 16
    raw = bytearray(path.read_bytes())
    half = len(raw) // 2
    raw[half + 40:half + 60] = bytes(20)  # the newest slot (B) torn
    path.write_bytes(bytes(raw))
    torn = RegisterFile(path, "PMM1")
    assert same(torn.load(), cp(1, 10)) and [why for why in torn.rejected if why.startswith("slot B")]
    assert RegisterFile(path, "PMM2").load() is None  # another meter's


def test_register_file_grows_for_a_large_state(tmp_path):
    path = tmp_path / "energy.registers"
    rf = RegisterFile(path, "PMM1")
    rf.write(cp(1, 1))
    big = {"x": list(range(5000))}
    rf.write(cp(2, 2, extra=big))
    assert path.stat().st_size > 2 * MIN_SLOT_SIZE
    assert same(RegisterFile(path, "PMM1").load(), cp(2, 2, extra=big))


def test_choose_newest_never_restores_below_a_surviving_copy():
    assert choose_newest({"a": None, "b": None})[1] is None
    name, chosen, _ = choose_newest({"database": cp(5, 50), "register file": cp(7, 70)})
    assert name == "register file" and chosen == cp(7, 70)
    # a copy with a higher register but a lower number (not a state written in order): lifted
    name, chosen, why = choose_newest({"database": cp(9, 90, 1), "register file": cp(8, 80, 5)})
    assert name == "database" and chosen is not None
    assert chosen.registers == {KEY: 90, OTHER: 5} and "raised" in why


def test_storage_write_failures_back_off_and_resume_with_an_event(tmp_path):
    commission(tmp_path, "PMM1", None, "test")
    copies = EnergyCopies(tmp_path, "PMM1", None)
    assert [e.detail["how"] for e in copies.take_events()] == ["test"]
    copies.save(T0, {KEY: 1}, seq=1)
    copies.fault = OSError(errno.ENOSPC, "No space left on device")
    attempts = 0
    for n in range(2, 200):
        with pytest.raises(CheckpointWriteError):
            copies.save(T0, {KEY: n}, seq=n)
        attempts += 1
    assert copies.failing and copies.status() == {"storage_fault"}
    copies.fault = None
    for n in range(200, 200 + MAX_SKIP + 1):  # the longest wait, then a write
        try:
            copies.save(T0, {KEY: n}, seq=n)
            break
        except CheckpointWriteError:
            continue
    assert not copies.failing and copies.status() == set()
    (event,) = copies.take_events()
    assert "ENOSPC" in str(event.detail["reason"]) and 5 < int(event.detail["failed_attempts"]) < attempts
    assert copies.register_file.load() is not None and copies.register_file.load().registers[KEY] == n
    copies.close()


def test_a_journal_check_sees_removal_and_damage(tmp_path):
    path = tmp_path / "j"
    journal = EnergyJournal(path, "PMM1")
    journal.write(cp(1, 1))
    assert journal.check() is None
    path.unlink()
    assert journal.check() == "file removed"
    journal.recreate()
    assert journal.check() is None and same(EnergyJournal(path, "PMM1").load(), cp(1, 1))
    with open(path, "r+b") as f:
        f.write(bytes(64))
    assert "damaged" in (journal.check() or "")


def test_the_write_backlog_keeps_order_and_raises_nothing_for_a_full_disk():
    done: list[int] = []
    full = [True]

    def write(n: int):
        def run() -> None:
            if full[0]:
                raise sqlite3.OperationalError("database or disk is full")
            done.append(n)
        return run

    backlog = WriteBacklog("test", limit=3)
    for n in range(5):
        backlog.run(write(n))
    assert backlog.pending == 3 and backlog.dropped == 2 and done == []
    full[0] = False
    backlog.run(write(5))
    assert done == [3, 4, 5] and backlog.pending == 0 and backlog.dropped == 3  # the limit holds
    assert storage_failure(OSError(errno.EROFS, "Read-only file system"))
    assert not storage_failure(ValueError("a bug"))

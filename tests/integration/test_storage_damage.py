"""Damaged storage: no single damaged copy of the registers takes them back, and every fall-back
is an event.

A meter runs under load; at a random moment its state is copied as kill -9 leaves it (the
approach of ``test_durability``: the files in the state directory as they are on disk, the
energy journal as it is in RAM), one or two copies are damaged, and a meter restarts on the copy.
Its registers must never be below the newest value that survives in any valid copy (each copy
read on its own, after the damage), never above the truth (the live registers at the kill), never
zero; and when the restart lost energy, or a copy that was damaged held a newer state than the one
restored, the event log has an NV memory error naming the copy. The table is printed (``-s``).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from meterd.core import event_codes as ec
from meterd.core.checkpoint import Checkpoint
from meterd.core.energy import ALL_KEYS, Quantity
from meterd.core.errors import StateError
from meterd.core.events import EventRecorder
from meterd.core.reading import Channel
from meterd.store.energy_journal import EnergyJournal, JournalError
from meterd.store.energy_store import EnergyStore
from meterd.store.register_file import REGISTER_FILE_NAME, RegisterFile
from tests.conftest import soak_enabled
from tests.integration.test_durability import crash_copy, discard, journal_file
from tests.simmeter import SimMeter

SERIAL = "PMM1221000001"  # config/sim.toml
IMPORT = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
LOAD = {"current_a": 20.0, "power_factor": "0.8L"}


def _files(state: Path, copy: str) -> list[Path]:
    if copy == "database":
        return [state / n for n in ("energy.db", "energy.db-wal", "energy.db-shm")]
    if copy == "register file":
        return [state / REGISTER_FILE_NAME]
    path = journal_file(state)
    assert path is not None
    return [path]


def delete(copy: str) -> Callable[[Path], None]:
    def damage(state: Path) -> None:
        for path in _files(state, copy):
            path.unlink(missing_ok=True)
    return damage


def empty(copy: str) -> Callable[[Path], None]:
    def damage(state: Path) -> None:
        for path in _files(state, copy):
            if path.exists():
                os.truncate(path, 0)
    return damage


def zero(copy: str) -> Callable[[Path], None]:
    def damage(state: Path) -> None:
        for path in _files(state, copy):
            if path.exists():
                path.write_bytes(bytes(path.stat().st_size))
    return damage


def truncate(copy: str, size: int = 100) -> Callable[[Path], None]:
    def damage(state: Path) -> None:
        for path in _files(state, copy):
            if path.exists():
                os.truncate(path, size)
    return damage


def scribble(copy: str, start: int) -> Callable[[Path], None]:
    """Overwrite everything from byte ``start`` with random bytes (pages, slots, WAL frames)."""
    def damage(state: Path) -> None:
        rng = random.Random(start)
        for path in _files(state, copy):
            if path.exists() and path.stat().st_size > start and not path.name.endswith("-shm"):
                size = path.stat().st_size
                with open(path, "r+b") as f:
                    f.seek(start)
                    f.write(rng.randbytes(size - start))
    return damage


def wal_lost(state: Path) -> None:
    for name in ("energy.db-wal", "energy.db-shm"):
        (state / name).unlink(missing_ok=True)


CASES: dict[str, tuple[tuple[str, ...], tuple[Callable[[Path], None], ...]]] = {
    "database deleted": (("database",), (delete("database"),)),
    "database emptied": (("database",), (empty("database"),)),
    "database WAL lost": (("database",), (wal_lost,)),
    "database pages overwritten": (("database",), (scribble("database", 1024),)),
    "journal deleted": (("journal",), (delete("journal"),)),
    "journal zeroed": (("journal",), (zero("journal"),)),
    "journal truncated": (("journal",), (truncate("journal"),)),
    "journal corrupted": (("journal",), (scribble("journal", 60),)),
    "register file deleted": (("register file",), (delete("register file"),)),
    "register file corrupted": (("register file",), (scribble("register file", 60),)),
    "database deleted + journal deleted": (("database", "journal"), (delete("database"), delete("journal"))),
    "database overwritten + journal zeroed": (("database", "journal"),
                                              (scribble("database", 1024), zero("journal"))),
    "journal corrupted + register file deleted": (("journal", "register file"),
                                                  (scribble("journal", 60), delete("register file"))),
    "WAL lost + register file corrupted": (("database", "register file"),
                                           (wal_lost, scribble("register file", 60))),
}


def surviving(state: Path, scratch: Path) -> dict[str, Checkpoint | None]:
    """Each copy read on its own after the damage (None: nothing valid in it)."""
    found: dict[str, Checkpoint | None] = {}
    scratch.mkdir()
    for path in _files(state, "database"):
        if path.exists():
            shutil.copy2(path, scratch / path.name)
    try:
        store = EnergyStore(scratch / "energy.db")
        found["database"] = store.load()
        store.close()
    except StateError:
        found["database"] = None
    found["register file"] = RegisterFile(state / REGISTER_FILE_NAME, SERIAL).load()
    journal = _files(state, "journal")[0]
    if journal.exists():
        shutil.copy2(journal, scratch / "journal")
        try:
            found["journal"] = EnergyJournal(scratch / "journal", SERIAL).load()
        except JournalError:
            found["journal"] = None
    else:
        found["journal"] = None
    shutil.rmtree(scratch)
    return found


def wh(milli: int) -> str:
    return f"{milli / 1000:.1f}"


def run_matrix(tmp_path: Path, rounds: int) -> list[str]:
    rng = random.Random(20261204)
    live_dir = tmp_path / "live"
    sm = SimMeter(live_dir, sim=LOAD)
    rows = [f"{'damage':42} {'restored from':38} {'floor Wh':>9} {'after Wh':>9} {'truth Wh':>9} "
            f"{'lost Wh':>8}  events"]
    try:
        n = 0
        for _ in range(rounds):
            for case, (copies, damages) in CASES.items():
                n += 1
                sm.run(rng.randint(30, 700))
                truth = sm.meter.registers.snapshot()
                before = surviving(live_dir, tmp_path / f"pre{n}")  # what each copy held at the kill
                crash_dir = tmp_path / f"crash{n}"
                crash_copy(live_dir, crash_dir)
                for damage in damages:
                    damage(crash_dir)
                after = surviving(crash_dir, tmp_path / f"post{n}")
                floor = {k: max((cp.registers[k] for cp in after.values() if cp is not None), default=0)
                         for k in ALL_KEYS}
                restarted = SimMeter(crash_dir, sim={"current_a": 0.0})
                try:
                    got = restarted.meter.registers.snapshot()
                    events = restarted.service(EventRecorder).recent(50)
                    source = restarted.daemon.store.restored_from
                finally:
                    discard(restarted)
                    shutil.rmtree(crash_dir)
                named = {str(e.detail.get("copy", "")) for e in events if e.code == ec.code("NV_MEMORY_ERROR")}
                fell_back = any(e.code == ec.code("STORAGE_FALLBACK") for e in events)
                lost = truth[IMPORT] - got[IMPORT]
                rows.append(f"{case:42} {source[:38]:38} {wh(floor[IMPORT]):>9} {wh(got[IMPORT]):>9} "
                            f"{wh(truth[IMPORT]):>9} {wh(lost):>8}  "
                            + ", ".join(sorted(named) + (["fallback"] if fell_back else [])))
                for key in ALL_KEYS:
                    assert floor[key] <= got[key] <= truth[key], (case, key, floor[key], got[key], truth[key])
                assert got[IMPORT] > 0, case  # never from zero
                newest_restored = max((cp.seq for cp in after.values() if cp is not None), default=0)
                for copy in copies:  # a damaged copy that held a newer state: its damage is evented
                    held = before[copy]
                    if held is not None and held.seq > newest_restored:
                        assert copy in named, (case, copy, named)
                if lost > 0:
                    assert named and fell_back, (case, lost, named)
    finally:
        sm.close()
    print("\n" + "\n".join(rows))
    return rows


def test_storage_damage_matrix(tmp_path):
    """Every kind of damage once (short form); five random kill points each with PMM_SOAK=1."""
    rows = run_matrix(tmp_path, 5 if soak_enabled() else 1)
    assert len(rows) == 1 + len(CASES) * (5 if soak_enabled() else 1)

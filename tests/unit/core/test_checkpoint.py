"""The checkpoint policy (loss bound), the SQLite energy store and the energy journal."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import pytest

from meterd.app.features import load_config
from meterd.core.checkpoint import Checkpoint, CheckpointPolicy, choose_checkpoint
from meterd.core.energy import ALL_KEYS, Quantity
from meterd.core.errors import ConfigError, StateError
from meterd.core.reading import Channel
from meterd.store.energy_journal import DEFAULT_SLOT_SIZE, EnergyJournal, encode_slot, identity_digest
from meterd.store.energy_store import EnergyStore, encode_extra, pack_registers

KEY = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
UTC = dt.UTC


def test_policy_keeps_unsaved_energy_within_the_bound_at_steady_load():
    policy = CheckpointPolicy(bound_milli=10_000, period_s=1e9)
    policy.saved(0.0)
    worst = 0
    for t in range(1, 500):
        policy.note_cycle({KEY: 1_700})
        worst = max(worst, policy.max_unsaved())
        if policy.due(float(t)):
            policy.saved(float(t))
    assert worst <= 10_000


def test_policy_saves_on_period_only_when_dirty():
    policy = CheckpointPolicy(bound_milli=10_000, period_s=60)
    policy.saved(0.0)
    assert not policy.due(100.0)
    policy.note_cycle({KEY: 1})
    assert not policy.due(59.0)
    assert policy.due(60.0)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        CheckpointPolicy(bound_milli=0)


def test_store_round_trip_and_monotonic(tmp_path):
    store = EnergyStore(tmp_path / "energy.db")
    assert store.load() is None
    t = dt.datetime(2026, 3, 1, tzinfo=UTC)
    store.save(t, {KEY: 5}, {"revenue": {"x": 1}})
    store.save(t, {KEY: 7})
    with pytest.raises(StateError, match="backwards"):
        store.save(t, {KEY: 6})
    store.close()
    again = EnergyStore(tmp_path / "energy.db")
    cp = again.load()
    assert cp is not None and cp.seq == 2 and cp.registers[KEY] == 7 and cp.utc == t
    again.close()  # meterd holds its databases exclusively: read the file once it is closed
    db = sqlite3.connect(tmp_path / "energy.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_store_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "energy.db"
    EnergyStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer"):
        EnergyStore(path)


def test_sync_follows_its_own_period():
    policy = CheckpointPolicy(bound_milli=10_000, period_s=60, sync_period_s=300)
    assert policy.sync_due(0.0)  # nothing synced yet
    policy.saved(0.0, synced=True)
    policy.note_cycle({KEY: 20_000})
    assert policy.due(1.0) and not policy.sync_due(1.0)
    policy.saved(1.0, synced=False)
    assert not policy.sync_due(299.0) and policy.sync_due(300.0)


def test_store_counts_synced_saves(tmp_path):
    store = EnergyStore(tmp_path / "energy.db")
    t = dt.datetime(2026, 3, 1, tzinfo=UTC)
    store.save(t, {KEY: 1}, sync=False)
    store.save(t, {KEY: 2}, sync=True)
    store.save(t, {KEY: 3}, sync=False)
    assert (store.saves, store.synced_saves, store.page_size) == (3, 1, 1024)
    store.close()
    assert EnergyStore(tmp_path / "energy.db").load().registers[KEY] == 3


# -- the energy journal ----------------------------------------------------------------------

def checkpoint(seq: int, energy: int, extra: dict | None = None) -> Checkpoint:
    registers = {key: 0 for key in ALL_KEYS}
    registers[KEY] = energy
    return Checkpoint(seq=seq, utc=dt.datetime(2026, 3, 1, 12, 0, seq % 60, 250_000, tzinfo=UTC),
                      registers=registers, extra=extra or {"revenue": {"rate": seq}})


def test_journal_round_trip_across_reopen(tmp_path):
    path = tmp_path / "energy.journal"
    journal = EnergyJournal(path, "PMM1/db")
    assert journal.load() is None and journal.rejected == []
    for seq in range(1, 6):
        journal.write(checkpoint(seq, 100 * seq))
    journal.close()
    assert path.stat().st_size == 2 * DEFAULT_SLOT_SIZE
    again = EnergyJournal(path, "PMM1/db")
    assert again.load() == checkpoint(5, 500)
    again.write(checkpoint(6, 600))  # goes to the slot that held 4, never over 5
    assert EnergyJournal(path, "PMM1/db").load() == checkpoint(6, 600)


def _slots(path):
    raw = path.read_bytes()
    half = len(raw) // 2
    return raw[:half], raw[half:]


@pytest.mark.parametrize("torn", ["A", "B"])
def test_journal_torn_write_at_every_byte_keeps_the_other_slot(tmp_path, torn):
    """kill -9 in the middle of a write: the slot being written holds the start (or, for a copy
    that runs backwards, the end) of the new record over the old one; the other slot wins."""
    path = tmp_path / "energy.journal"
    journal = EnergyJournal(path, "PMM1/db")
    first = 1 if torn == "A" else 2  # the slot written next holds `first`; the other `first + 1`
    for seq in range(1, first + 2):
        journal.write(checkpoint(seq, 10 * seq))
    journal.close()
    before = path.read_bytes()
    slot = 0 if torn == "A" else 1
    offset = slot * (len(before) // 2)
    new = encode_slot(first + 2, checkpoint(first + 2, 1).utc, identity_digest("PMM1/db"),
                      checkpoint(first + 2, 999_999).registers, {"revenue": {"rate": 7}})
    assert _slots(path)[1 - slot][:4] == b"PMMJ"
    torn = 0
    for cut in range(len(new)):
        for part, at in ((new[:cut], offset), (new[cut + 1:], offset + cut + 1)):  # head, or tail, written
            raw = bytearray(before)
            raw[at:at + len(part)] = part
            path.write_bytes(raw)
            got = EnergyJournal(path, "PMM1/db").load()
            # the missing bytes may already hold the new record's values: then the write is whole
            whole = raw[offset:offset + len(new)] == new
            torn += not whole
            assert got is not None and got.seq == (first + 2 if whole else first + 1), (cut, got)
    assert torn > len(new)  # most cuts really tear the record
    raw = bytearray(before)
    raw[offset:offset + len(new)] = new  # the whole write landed
    path.write_bytes(raw)
    assert EnergyJournal(path, "PMM1/db").load().seq == first + 2


def test_journal_crc_refuses_a_damaged_slot(tmp_path):
    path = tmp_path / "energy.journal"
    journal = EnergyJournal(path, "PMM1/db")
    journal.write(checkpoint(1, 10))
    journal.write(checkpoint(2, 20))  # slot B
    journal.close()
    raw = bytearray(path.read_bytes())
    half = len(raw) // 2
    raw[half + 100] ^= 0x01  # one bit of B's payload
    path.write_bytes(raw)
    opened = EnergyJournal(path, "PMM1/db")
    assert opened.load() == checkpoint(1, 10) and opened.rejected == ["slot B: CRC mismatch"]
    opened.close()
    raw[100] ^= 0x01
    path.write_bytes(raw)
    assert EnergyJournal(path, "PMM1/db").load() is None


def test_journal_of_another_meter_is_refused(tmp_path):
    path = tmp_path / "energy.journal"
    journal = EnergyJournal(path, "PMM1/db-one")
    journal.write(checkpoint(1, 10))
    journal.write(checkpoint(2, 20))
    journal.close()
    other = EnergyJournal(path, "PMM1/db-two")  # same serial, another energy database
    assert other.load() is None
    assert other.rejected == ["slot A: written for another meter", "slot B: written for another meter"]
    other.write(checkpoint(1, 5))
    other.close()
    assert EnergyJournal(path, "PMM2/db-one").load() is None  # another serial
    assert EnergyJournal(path, "PMM1/db-one").load() == checkpoint(2, 20)  # slot B untouched


def test_journal_takes_the_highest_sequence_whichever_slot(tmp_path):
    path = tmp_path / "energy.journal"
    for count in (1, 2, 3, 4):
        path.unlink(missing_ok=True)
        journal = EnergyJournal(path, "PMM1/db")
        for seq in range(1, count + 1):
            journal.write(checkpoint(seq, seq))
        journal.close()
        assert EnergyJournal(path, "PMM1/db").load().seq == count


def test_journal_grows_for_a_large_payload(tmp_path):
    path = tmp_path / "energy.journal"
    journal = EnergyJournal(path, "PMM1/db")
    journal.write(checkpoint(1, 1))
    rng = random.Random(3)
    big = {"revenue": {"noise": [rng.getrandbits(64) for _ in range(4000)]}}
    journal.write(checkpoint(2, 2, big))
    assert journal.slot_size > DEFAULT_SLOT_SIZE
    journal.write(checkpoint(3, 3))
    journal.close()
    assert not path.with_name(path.name + ".new").exists()
    again = EnergyJournal(path, "PMM1/db")
    assert again.load() == checkpoint(3, 3) and again.slot_size > DEFAULT_SLOT_SIZE


def test_choose_checkpoint_never_goes_backwards():
    db = checkpoint(10, 1000)
    assert choose_checkpoint(None, None) == (None, "database (no valid journal)")
    assert choose_checkpoint(db, None)[0] is db
    assert choose_checkpoint(None, checkpoint(3, 5))[0] == checkpoint(3, 5)
    newer = checkpoint(11, 1200)
    chosen, why = choose_checkpoint(db, newer)
    assert chosen is newer and why.startswith("journal")
    assert choose_checkpoint(db, checkpoint(10, 1000))[0] is db  # same state: the database
    assert choose_checkpoint(db, checkpoint(9, 2000))[0] is db  # older sequence
    chosen, why = choose_checkpoint(db, checkpoint(12, 999))  # newer, but a register went back
    assert chosen is db and "below the database" in why


def test_journaled_policy_saves_the_database_on_the_sync_period_only():
    policy = CheckpointPolicy(bound_milli=10_000, period_s=900, sync_period_s=300, journaled=True)
    policy.saved(0.0, synced=False)
    for t in range(1, 300):
        policy.note_cycle({KEY: 50_000})  # far above the bound each cycle: the journal has it
        assert not policy.due(float(t))
    assert policy.due(300.0) and policy.sync_due(300.0)


def test_store_sequence_numbers_must_grow_and_instance_is_stable(tmp_path):
    store = EnergyStore(tmp_path / "energy.db")
    t = dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert store.save(t, {KEY: 1}, seq=40).seq == 40
    with pytest.raises(StateError, match="not newer"):
        store.save(t, {KEY: 2}, seq=40)
    assert store.save(t, {KEY: 2}).seq == 41
    instance = store.instance
    store.close()
    assert EnergyStore(tmp_path / "energy.db").instance == instance != EnergyStore(tmp_path / "b.db").instance


def test_store_upgrades_a_version_1_file(tmp_path):
    path = tmp_path / "energy.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
               " utc TEXT NOT NULL, registers BLOB NOT NULL, extra BLOB NOT NULL)")
    db.execute("INSERT INTO checkpoint VALUES (1, 7, '2026-03-01T00:00:00+00:00', ?, ?)",
               (pack_registers({KEY: 1234}), encode_extra({"payment": {"x": 1}})))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = EnergyStore(path)
    cp = store.load()
    assert cp.seq == 7 and cp.registers[KEY] == 1234 and cp.extra == {"payment": {"x": 1}}
    assert len(store.instance) == 32
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


def test_journal_dir_must_be_absolute(tmp_path):
    cfg = tmp_path / "meterd.toml"
    cfg.write_text('[storage]\njournal_dir = "run/meterd"\n')
    with pytest.raises(ConfigError, match="journal_dir 'run/meterd' must be an absolute path") as info:
        load_config(cfg)
    assert "\n" not in str(info.value)

"""The checkpoint policy (loss bound) and the SQLite energy store."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from meterd.core.checkpoint import CheckpointPolicy
from meterd.core.energy import Quantity
from meterd.core.errors import StateError
from meterd.core.reading import Channel
from meterd.store.energy_store import EnergyStore

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
    db = sqlite3.connect(tmp_path / "energy.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1


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

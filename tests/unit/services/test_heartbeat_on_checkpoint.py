"""The last-alive heartbeat rides on the energy checkpoint: while a checkpoint forced to the
medium is younger than ``heartbeat_period_s`` the supervision writes no heartbeat of its own, and
an outage's start is the later of the persisted heartbeat and the newest checkpoint, known to
within ``heartbeat_period_s`` either way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from meterd.core.power_fail import PowerFailSettings, StartEvidence
from meterd.services.supervision import Supervision, SupervisionSettings
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
PERIOD_S = 300.0
SETTINGS = SupervisionSettings(power=PowerFailSettings(heartbeat_period_s=PERIOD_S))


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


class CountingStore(SqliteEventStore):
    """The event store, counting the saves of the power state (each one a synced transaction)."""

    power_saves: list[dt.datetime | None]

    def save_state(self, key: str, value: Mapping[str, object]) -> None:
        if key == "power":
            alive = value.get("last_alive_utc")
            self.power_saves.append(dt.datetime.fromisoformat(str(alive)) if alive else None)
        super().save_state(key, value)


def open_store(path: Path) -> CountingStore:
    store = CountingStore(path)
    store.power_saves = []
    return store


class Checkpoints:
    """The energy checkpoint forced to the medium every ``every_s`` (s) from ``until_s`` on back."""

    def __init__(self, every_s: float | None, until_s: float = 1e12) -> None:
        self.every_s = every_s
        self.until_s = until_s
        self.synced: dt.datetime | None = None

    def tick(self, s: int) -> None:
        if self.every_s is not None and s % self.every_s == 0 and s <= self.until_s:
            self.synced = at(s)


def run(sup: Supervision, checkpoints: Checkpoints, first_s: int, last_s: int, saves: list[dt.datetime | None],
        bound: list[float]) -> None:
    """Cycles of 1 s; ``bound``: after each, how old the newest durable last-alive time is (s)."""
    for s in range(first_s, last_s):
        checkpoints.tick(s)  # the checkpoint is persisted before the cycle hooks run
        sup.on_cycle(at(s), None, {}, mono_s=float(s))
        durable = [t for t in (*saves[-1:], checkpoints.synced) if t is not None]
        bound.append((at(s) - max(durable)).total_seconds())


def test_no_heartbeat_is_written_while_the_checkpoint_carries_it(tmp_path: Path) -> None:
    checkpoints = Checkpoints(every_s=PERIOD_S)
    with open_store(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, durable_alive=lambda: checkpoints.synced)
        sup.on_start(at(0))
        bound: list[float] = []
        run(sup, checkpoints, 0, 3600, store.power_saves, bound)
        assert store.power_saves == [at(0)]  # the start alone: an hour with no heartbeat of its own
        assert max(bound) < PERIOD_S


def test_without_a_checkpoint_the_heartbeat_is_written_every_period(tmp_path: Path) -> None:
    """No energy flows (no checkpoint is saved) from 600 s on: the heartbeat takes over, so the
    last-alive time on the medium is never older than the period."""
    checkpoints = Checkpoints(every_s=PERIOD_S, until_s=600)
    with open_store(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, durable_alive=lambda: checkpoints.synced)
        sup.on_start(at(0))
        bound: list[float] = []
        run(sup, checkpoints, 0, 2000, store.power_saves, bound)
        assert store.power_saves == [at(0), at(900), at(1200), at(1500), at(1800)]
        assert max(bound) < PERIOD_S


def test_a_supervision_without_the_checkpoint_keeps_its_own_heartbeat(tmp_path: Path) -> None:
    with open_store(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store)
        sup.on_start(at(0))
        for s in range(0, 700):
            sup.on_cycle(at(s), None, {}, mono_s=float(s))
        assert store.power_saves == [at(0), at(0), at(300), at(600)]


def outage_after(tmp_path: Path, checkpoint_s: float | None, heartbeat_s: int, restart_s: int):
    """A meter alive until ``heartbeat_s`` with no checkpoint (its heartbeat saved), restarted at
    ``restart_s`` with the newest checkpoint found at ``checkpoint_s``."""
    checkpoints = Checkpoints(every_s=None)
    with open_store(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, durable_alive=lambda: checkpoints.synced)
        sup.on_start(at(0))
        for s in range(0, heartbeat_s + 1):
            sup.on_cycle(at(s), None, {}, mono_s=float(s))
    evidence = StartEvidence(host_kept=False, checkpoint_utc=at(checkpoint_s) if checkpoint_s is not None else None)
    with open_store(tmp_path / "events.db") as store:
        return Supervision(SETTINGS, store).on_start(at(restart_s), evidence)


def test_the_outage_starts_at_the_later_of_the_heartbeat_and_the_checkpoint(tmp_path: Path) -> None:
    failure = outage_after(tmp_path / "a", checkpoint_s=1150.0, heartbeat_s=1000, restart_s=5000)
    assert failure is not None and failure.estimated_start
    assert (failure.start_utc, failure.duration_s, failure.start_uncertainty_s) == (at(1150), 3850, PERIOD_S)
    (tmp_path / "b").mkdir()
    failure = outage_after(tmp_path / "b", checkpoint_s=450.0, heartbeat_s=1000, restart_s=5000)
    assert failure is not None and failure.start_utc == at(900)  # the heartbeat saved at 900 s is later
    (tmp_path / "c").mkdir()
    failure = outage_after(tmp_path / "c", checkpoint_s=None, heartbeat_s=1000, restart_s=5000)
    assert failure is not None and failure.start_utc == at(900)
    (tmp_path / "d").mkdir()
    failure = outage_after(tmp_path / "d", checkpoint_s=6000.0, heartbeat_s=1000, restart_s=5000)
    assert failure is not None and failure.start_utc == at(900)  # a checkpoint after "now" is not evidence

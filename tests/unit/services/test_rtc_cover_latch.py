"""A terminal cover opened while the meter had no power, latched by the RTC's battery-backed
timestamp input: one "removed" at the latched time and one "closed" when the cover input shows it
closed (at start, or later), never a duplicate — also across restarts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.services.supervision import Supervision
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
OPENED = T0 - dt.timedelta(hours=3)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def fraud(sup: Supervision) -> list[tuple[str, dt.datetime]]:
    return [(ec.lookup(e.code).name, e.utc) for e in sup.recorder.log(LogId.FRAUD).entries()]


def run(sup: Supervision, first_s: int, last_s: int, cover_open: bool) -> None:
    for s in range(first_s, last_s):
        sup.on_cycle(at(s), None, {"cover_open": cover_open}, mono_s=float(s))


def test_cover_still_open_at_start_is_one_episode_closed_by_the_input(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        sup.on_start(T0)
        assert sup.on_latched_cover_open(OPENED, T0, cover_open_now=True)
        run(sup, 0, 20, cover_open=True)  # the open input is the same episode, not a new one
        assert fraud(sup) == [("TERMINAL_COVER_REMOVED", OPENED)]
        assert sup.tamper_status() == ["terminal_cover_open"]
    with SqliteEventStore(tmp_path / "events.db") as store:  # restart, cover still open
        sup = Supervision(store=store)
        sup.on_start(at(30))
        assert not sup.on_latched_cover_open(OPENED, at(30), cover_open_now=True)  # the same latch again
        run(sup, 30, 40, cover_open=True)
        run(sup, 40, 45, cover_open=False)
        assert fraud(sup) == [("TERMINAL_COVER_REMOVED", OPENED), ("TERMINAL_COVER_CLOSED", at(40))]
        assert sup.tamper_status() == []


def test_cover_closed_at_start_gets_its_closed_event_at_start() -> None:
    sup = Supervision()
    sup.on_start(T0)
    assert sup.on_latched_cover_open(OPENED, T0, cover_open_now=False)
    run(sup, 0, 10, cover_open=False)
    assert fraud(sup) == [("TERMINAL_COVER_REMOVED", OPENED), ("TERMINAL_COVER_CLOSED", T0)]
    assert sup.recorder.log(LogId.FRAUD).entries()[1].detail == {"while_unpowered": True}


def test_latch_while_a_cover_episode_is_already_open_adds_nothing() -> None:
    sup = Supervision()
    sup.on_start(T0)
    run(sup, 0, 5, cover_open=True)  # opened while powered: recorded by the input
    assert sup.on_latched_cover_open(OPENED, at(5), cover_open_now=True)
    run(sup, 5, 10, cover_open=False)
    assert [name for name, _ in fraud(sup)] == ["TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"]

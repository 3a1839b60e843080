"""Tamper scenarios end to end: synthetic readings over time → Supervision → SQLite event logs.

Each scenario is a timeline of segments (duration s, what the grid and the inputs look like). It
runs one cycle per second on a SimClock through :class:`Supervision` with a real SQLite store,
and checks the fraud log holds exactly one start and one end event per tamper episode, stamped
at the onset and at the restoration, plus alarms, status and survival across a restart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.clock import SimClock
from meterd.core.event_codes import LogId
from meterd.core.reading import PhaseValues, Reading
from meterd.core.tamper import Persistence, TamperKind, TamperSettings
from meterd.services.supervision import Supervision, SupervisionSettings
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
PERSIST = {k: Persistence(10.0, 5.0) for k in TamperKind}
SETTINGS = SupervisionSettings(tamper=TamperSettings(persistence=PERSIST))


@dataclasses.dataclass(frozen=True)
class World:
    """The grid and the inputs during one segment."""

    volts: tuple[float, float, float] = (230.0, 230.0, 230.0)
    amps: tuple[float, float, float] = (8.0, 8.0, 8.0)
    sign: tuple[int, int, int] = (1, 1, 1)
    neutral_a: float = 0.0
    neutral_calc_a: float = 0.0
    status: frozenset[str] = frozenset()
    cover_open: bool = False
    magnet: bool = False

    def reading(self, mono_s: float) -> Reading:
        phases = tuple(PhaseValues(voltage_v=v, current_a=i, active_power_w=s * v * i, apparent_power_va=v * i)
                       for v, i, s in zip(self.volts, self.amps, self.sign, strict=True))
        return Reading(mono_s=mono_s, phases=phases, energy={}, neutral_current_a=self.neutral_a,
                       neutral_current_calc_a=self.neutral_calc_a, status=self.status)

    def inputs(self) -> dict[str, bool]:
        return {"cover_open": self.cover_open, "magnetic_field": self.magnet, "power_fail": False}


NORMAL = World()


def play(sup: Supervision, clock: SimClock, timeline: list[tuple[float, World]], step_s: float = 1.0):
    """Run the timeline; returns the events recorded and the UTC at which each segment began."""
    events, starts = [], []
    for duration_s, world in timeline:
        starts.append(clock.utc())
        for _ in range(round(duration_s / step_s)):
            events += sup.on_cycle(clock.utc(), world.reading(clock.mono()), world.inputs())
            clock.advance(step_s)
    return events, starts


def fraud(sup: Supervision) -> list[tuple[int, dt.datetime]]:
    return [(e.code, e.utc) for e in sup.recorder.log(LogId.FRAUD).entries()]


SCENARIOS = {
    "terminal_cover": (World(cover_open=True), "TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"),
    "magnet": (World(magnet=True), "STRONG_DC_FIELD", "NO_STRONG_DC_FIELD"),
    "reverse_L3": (World(sign=(1, 1, -1)), "REVERSE_CURRENT_L3", "REVERSE_CURRENT_END_L3"),
    "neutral_mismatch": (World(neutral_a=6.0, neutral_calc_a=0.3), "NEUTRAL_MISMATCH", "NEUTRAL_MISMATCH_END"),
    "missing_potential_L1": (World(volts=(0.0, 230.0, 230.0)), "MISSING_POTENTIAL_L1", "MISSING_POTENTIAL_END_L1"),
    "current_without_voltage": (World(volts=(0.0, 0.0, 0.0)), "CURRENT_WITHOUT_VOLTAGE",
                                "CURRENT_WITHOUT_VOLTAGE_END"),
    "phase_sequence": (World(status=frozenset({"voltage_sequence_error"})), "PHASE_SEQUENCE_REVERSAL",
                       "PHASE_SEQUENCE_NORMAL"),
    "imbalance": (World(amps=(12.0, 8.0, 2.0)), "PHASE_ASYMMETRY", "PHASE_ASYMMETRY_END"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_tamper_gives_one_start_and_one_end_at_the_right_times(tmp_path, name: str) -> None:
    world, start_name, end_name = SCENARIOS[name]
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store)
        sup.on_start(clock.utc())
        _, starts = play(sup, clock, [(30, NORMAL), (120, world), (60, NORMAL)])
        assert fraud(sup) == [(ec.code(start_name), starts[1]), (ec.code(end_name), starts[2])]
        assert sup.tamper_status() == []
        assert sup.alarm_register() & Alarm.FRAUD_ATTEMPT.mask
    with SqliteEventStore(tmp_path / "events.db") as store:
        again = Supervision(SETTINGS, store)
        assert fraud(again) == [(ec.code(start_name), starts[1]), (ec.code(end_name), starts[2])]


def test_chattering_cover_below_minimum_duration_gives_no_event() -> None:
    clock = SimClock(T0)
    sup = Supervision(SETTINGS)
    sup.on_start(clock.utc())
    chatter = [(9, World(cover_open=True)), (1, NORMAL)] * 20 + [(3, World(magnet=True)), (3, NORMAL)] * 10
    events, _ = play(sup, clock, [(10, NORMAL), *chatter, (30, NORMAL)])
    assert events == [] and fraud(sup) == []
    assert sup.alarm_register() == 0


def test_sub_second_chatter_with_fast_cycles() -> None:
    clock = SimClock(T0)
    sup = Supervision(SETTINGS)
    timeline = [(0.4, World(cover_open=True)), (0.2, NORMAL)] * 50
    events, _ = play(sup, clock, timeline, step_s=0.1)
    assert events == []


def test_overlapping_tampers_and_status(tmp_path) -> None:
    clock = SimClock(T0)
    sup = Supervision(SETTINGS)
    sup.on_start(clock.utc())
    both = World(cover_open=True, sign=(-1, 1, 1))
    _, starts = play(sup, clock, [(20, NORMAL), (60, World(cover_open=True)), (60, both)])
    assert sup.tamper_status() == ["terminal_cover_open", "reverse_current_L1"]
    _, ends = play(sup, clock, [(60, World(sign=(-1, 1, 1))), (60, NORMAL)])
    assert fraud(sup) == [(40, starts[1]), (ec.code("REVERSE_CURRENT_L1"), starts[2]), (41, ends[0]),
                          (ec.code("REVERSE_CURRENT_END_L1"), ends[1])]
    assert sup.alarm_register() == (Alarm.FRAUD_ATTEMPT.mask | Alarm.TERMINAL_COVER.mask
                                    | Alarm.REVERSE_CURRENT.mask)
    assert sup.clear_alarms(clock.utc()) != 0 and sup.alarm_register() == 0
    assert sup.recent_events(1)[0]["name"] == "ALARM_REGISTER_CLEARED"


def test_episode_open_across_restart_ends_exactly_once(tmp_path) -> None:
    clock = SimClock(T0)
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as store:
        sup = Supervision(SETTINGS, store)
        sup.on_start(clock.utc())
        _, starts = play(sup, clock, [(10, NORMAL), (40, World(cover_open=True))])
        sup.on_stop(clock.utc())
    clock.advance(30.0)
    with SqliteEventStore(path) as store:
        sup = Supervision(SETTINGS, store)
        assert sup.on_start(clock.utc()) is None
        assert sup.tamper_status() == ["terminal_cover_open"]
        _, later = play(sup, clock, [(30, World(cover_open=True)), (30, NORMAL)])
        assert fraud(sup) == [(40, starts[1]), (41, later[1])]


def test_fraud_log_stays_bounded_over_many_episodes(tmp_path) -> None:
    settings = dataclasses.replace(SETTINGS, depths={LogId.FRAUD: 10},
                                   tamper=TamperSettings(persistence={k: Persistence(1.0, 1.0) for k in TamperKind}))
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(settings, store)
        play(sup, clock, [(3, World(magnet=True)), (3, NORMAL)] * 40)
        assert sup.recorder.log(LogId.FRAUD).entries_in_use() == 10
        assert store.count(LogId.FRAUD) == 10
        codes = [c for c, _ in fraud(sup)]
        assert codes == [42, 43] * 5


def test_recent_events_for_meterctl(tmp_path) -> None:
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store)
        play(sup, clock, [(30, World(cover_open=True)), (30, NORMAL)])
        recent = sup.recent_events(5)
        assert [r["name"] for r in recent] == ["TERMINAL_COVER_CLOSED", "TERMINAL_COVER_REMOVED"]
        assert recent[0]["utc"] == (T0 + dt.timedelta(seconds=30)).isoformat()
        assert recent[1]["detail"]["tamper"] == "terminal_cover_open"

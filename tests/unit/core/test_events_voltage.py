"""Power-quality voltage events (under / over / missing voltage per phase) from the supervision."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.clock import SimClock
from meterd.core.errors import ConfigError
from meterd.core.event_codes import LogId
from meterd.core.reading import Channel, PhaseValues, Reading
from meterd.core.tamper import Persistence
from meterd.services.supervision import (
    PhaseVoltageMonitor,
    Supervision,
    SupervisionSettings,
    VoltageLevel,
    VoltageSettings,
    classify,
)
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
FAST = VoltageSettings(sustained=Persistence(10.0, 5.0), missing=Persistence(2.0, 2.0))


def reading(mono: float, volts) -> Reading:
    return Reading(mono_s=mono, phases=tuple(PhaseValues(voltage_v=v, current_a=1.0) for v in volts), energy={})


def play(sup: Supervision, clock: SimClock, timeline):
    starts = []
    for seconds, volts in timeline:
        starts.append(clock.utc())
        for _ in range(seconds):
            sup.on_cycle(clock.utc(), reading(clock.mono(), volts), {})
            clock.advance(1.0)
    return starts


def pq(sup: Supervision) -> list[tuple[int, dt.datetime]]:
    return [(e.code, e.utc) for e in sup.recorder.log(LogId.POWER_QUALITY).entries()]


def test_classify_with_hysteresis() -> None:
    s = VoltageSettings()
    n, u, o, m = VoltageLevel.NORMAL, VoltageLevel.UNDER, VoltageLevel.OVER, VoltageLevel.MISSING
    assert [classify(v, n, s) for v in (230.0, 206.9, 253.1, 10.0)] == [n, u, o, m]
    assert classify(209.0, u, s) is u and classify(211.7, u, s) is n
    assert classify(250.0, o, s) is o and classify(248.0, o, s) is n
    assert classify(25.0, m, s) is m and classify(30.0, m, s) is u


def test_under_voltage_episode_gives_start_and_normal_with_onset_times() -> None:
    clock = SimClock(T0)
    sup = Supervision(SupervisionSettings(voltage=FAST))
    starts = play(sup, clock, [(20, (230, 230, 230)), (60, (230, 200, 230)), (30, (230, 230, 230))])
    assert pq(sup) == [(ec.code("UNDER_VOLTAGE_L2"), starts[1]), (ec.code("VOLTAGE_NORMAL_L2"), starts[2])]
    assert sup.alarm_register() == Alarm.UNDER_VOLTAGE.mask


def test_over_voltage_shorter_than_minimum_is_ignored() -> None:
    clock = SimClock(T0)
    sup = Supervision(SupervisionSettings(voltage=FAST))
    play(sup, clock, [(20, (230, 230, 230)), (9, (260, 230, 230)), (20, (230, 230, 230))] * 3)
    assert pq(sup) == []


def test_thresholds_are_programmable() -> None:
    clock = SimClock(T0)
    settings = VoltageSettings(under_v=220.0, over_v=240.0, hysteresis_v=2.0, sustained=Persistence(5.0, 5.0))
    sup = Supervision(SupervisionSettings(voltage=settings))
    starts = play(sup, clock, [(10, (230, 230, 230)), (10, (230, 230, 245)), (10, (230, 230, 230))])
    assert pq(sup) == [(ec.code("OVER_VOLTAGE_L3"), starts[1]), (ec.code("VOLTAGE_NORMAL_L3"), starts[2])]
    with pytest.raises(ConfigError):
        VoltageSettings(under_v=250.0, over_v=240.0)
    with pytest.raises(ConfigError):
        VoltageSettings(hysteresis_v=0.0)


def test_single_phase_loss_is_missing_voltage_not_a_power_cut() -> None:
    clock = SimClock(T0)
    sup = Supervision(SupervisionSettings(voltage=FAST))
    starts = play(sup, clock, [(10, (230, 230, 230)), (20, (0, 230, 230)), (10, (230, 230, 230))])
    assert pq(sup) == [(ec.code("MISSING_VOLTAGE_L1"), starts[1]), (ec.code("VOLTAGE_NORMAL_L1"), starts[2])]
    assert sup.power_counters()["failures"] == 0


def test_level_change_without_normal_between() -> None:
    monitor = PhaseVoltageMonitor(FAST)
    events = []
    for t, v in enumerate([230] * 5 + [200] * 15 + [5] * 5 + [230] * 10):
        events += monitor.update(T0 + dt.timedelta(seconds=t), float(t), reading(float(t), (v, 230, 230)))
    assert [(e.phase, e.level) for e in events] == [
        (Channel.L1, VoltageLevel.UNDER), (Channel.L1, VoltageLevel.MISSING), (Channel.L1, VoltageLevel.NORMAL)]


def test_voltage_levels_survive_restart(tmp_path) -> None:
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "e.db") as store:
        sup = Supervision(SupervisionSettings(voltage=FAST), store)
        starts = play(sup, clock, [(5, (230, 230, 230)), (20, (230, 230, 200))])
        sup.on_stop(clock.utc())
    with SqliteEventStore(tmp_path / "e.db") as store:
        sup = Supervision(SupervisionSettings(voltage=FAST), store)
        sup.on_start(clock.utc())
        assert sup.voltage.levels[Channel.L3] is VoltageLevel.UNDER
        later = play(sup, clock, [(10, (230, 230, 200)), (10, (230, 230, 230))])
        assert pq(sup) == [(ec.code("UNDER_VOLTAGE_L3"), starts[1]), (ec.code("VOLTAGE_NORMAL_L3"), later[1])]

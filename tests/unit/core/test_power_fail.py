"""Power cut detection, last gasp, and short/long outage accounting across restarts."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.core.errors import ConfigError
from meterd.core.event_codes import LogId
from meterd.core.power_fail import PowerFailMonitor, PowerFailSettings, PowerState
from meterd.core.reading import PhaseValues, Reading
from meterd.core.tamper import InputStates
from meterd.services.supervision import Supervision, SupervisionSettings
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 2, 1, 6, 0, tzinfo=dt.UTC)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def reading(mono: float, volts=(230.0, 230.0, 230.0)) -> Reading:
    return Reading(mono_s=mono, phases=tuple(PhaseValues(voltage_v=v) for v in volts), energy={})


def test_voltage_loss_on_all_phases_starts_and_ends_outage() -> None:
    m = PowerFailMonitor(PowerFailSettings(long_failure_s=180.0))
    assert m.update(at(0), 0.0, reading(0.0), InputStates()).down_utc is None
    assert m.update(at(1), 1.0, reading(1.0, (230.0, 0.0, 0.0)), InputStates()).down_utc is None
    down = m.update(at(2), 2.0, reading(2.0, (5.0, 0.0, 0.0)), InputStates())
    assert down.down_utc == at(2) and down.save and m.in_outage
    # back above threshold but inside the hysteresis band: still out
    assert m.update(at(50), 50.0, reading(50.0, (25.0, 0.0, 0.0)), InputStates()).restored is None
    up = m.update(at(62), 62.0, reading(62.0), InputStates())
    assert up.restored is not None
    assert (up.restored.start_utc, up.restored.end_utc, up.restored.duration_s) == (at(2), at(62), 60)
    assert not up.restored.long
    assert (m.state.failures, m.state.long_failures) == (1, 0)


def test_power_fail_input_alone_triggers_and_long_boundary_is_inclusive() -> None:
    m = PowerFailMonitor(PowerFailSettings(long_failure_s=180.0))
    assert m.input_changed(at(0), 0.0, True).down_utc == at(0)
    up = m.update(at(180), 180.0, reading(180.0), InputStates(power_fail=False))
    assert up.restored is not None and up.restored.long and up.restored.duration_s == 180
    assert (m.state.failures, m.state.long_failures, m.state.long_failure_time_s) == (1, 1, 180)


def test_heartbeat_is_periodic_and_stops_during_outage() -> None:
    m = PowerFailMonitor(PowerFailSettings(heartbeat_period_s=5.0))
    saves = [m.update(at(t), float(t), reading(float(t)), InputStates()).save for t in range(11)]
    assert saves == [True] + [False] * 4 + [True] + [False] * 4 + [True]
    assert m.state.last_alive_utc == at(10)
    m.input_changed(at(11), 11.0, True)
    assert not m.update(at(20), 20.0, reading(20.0, (0.0, 0.0, 0.0)), InputStates(power_fail=True)).save


def test_start_after_clean_stop_or_first_start_is_not_an_outage() -> None:
    assert PowerFailMonitor().start(at(0)) is None
    m = PowerFailMonitor()
    m.update(at(0), 0.0, reading(0.0), InputStates())
    m.stop(at(5))
    assert PowerFailMonitor(state=m.state).start(at(500)) is None


@pytest.mark.parametrize(("off_s", "long"), [(30, False), (179, False), (180, True), (7200, True)])
def test_start_measures_outage_from_last_gasp(off_s: int, long: bool) -> None:
    m = PowerFailMonitor()
    m.update(at(0), 0.0, reading(0.0), InputStates())
    m.input_changed(at(3), 3.0, True)
    failure = PowerFailMonitor(state=PowerState.from_record(m.state.to_record())).start(at(3 + off_s))
    assert failure is not None
    assert (failure.start_utc, failure.duration_s, failure.long, failure.estimated_start) == (at(3), off_s, long, False)


def test_start_without_last_gasp_uses_heartbeat_and_flags_estimate() -> None:
    m = PowerFailMonitor(PowerFailSettings(heartbeat_period_s=1.0))
    for t in range(10):
        m.update(at(t), float(t), reading(float(t)), InputStates())
    failure = PowerFailMonitor(state=m.state).start(at(609))
    assert failure is not None
    assert (failure.start_utc, failure.duration_s, failure.long, failure.estimated_start) == (at(9), 600, True, True)


def test_clock_set_backwards_gives_zero_duration_flagged() -> None:
    m = PowerFailMonitor()
    m.input_changed(at(100), 0.0, True)
    failure = PowerFailMonitor(state=m.state).start(at(40))
    assert failure is not None and failure.duration_s == 0 and failure.clock_suspect


def test_settings_validation() -> None:
    with pytest.raises(ConfigError):
        PowerFailSettings(long_failure_s=0)
    with pytest.raises(ConfigError):
        PowerFailSettings(restore_hysteresis_v=-1)


def _run(sup: Supervision, clock: SimClock, seconds: int, volts=(230.0, 230.0, 230.0), power_fail=False):
    events = []
    for _ in range(seconds):
        events += sup.on_cycle(clock.utc(), reading(clock.mono(), volts), {"power_fail": power_fail})
        clock.advance(1.0)
    return events


@pytest.mark.parametrize(("off_s", "kind"), [(120, "SHORT_POWER_FAILURE"), (3600, "LONG_POWER_FAILURE")])
def test_outage_across_restart_with_last_gasp(tmp_path, off_s: int, kind: str) -> None:
    clock = SimClock(T0)
    gasps = []
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store, last_gasp=gasps.append)
        assert sup.on_start(clock.utc()) is None
        _run(sup, clock, 10)
        cut = clock.utc()
        events = sup.on_power_fail_input(cut, clock.mono(), True)
        assert gasps == [cut]
        assert [e.code for e in events] == [ec.code("POWER_DOWN")]
    # the meter dies; it restarts off_s seconds after the cut
    clock.set_utc(cut + dt.timedelta(seconds=off_s))
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        failure = sup.on_start(clock.utc())
        assert failure is not None and failure.duration_s == off_s
        long = kind == "LONG_POWER_FAILURE"
        std = [(e.code, e.utc) for e in sup.recorder.log(LogId.STANDARD).entries()]
        short_row = [] if long else [(ec.code(kind), clock.utc())]
        assert std == [(1, cut), (2, clock.utc()), *short_row]
        pf_log = sup.recorder.log(LogId.POWER_FAILURE).rows_by_entry(1, 0)
        assert [r.values[0] for r in pf_log] == [off_s]  # short and long, each with its duration
        assert [e.code for e in sup.recorder.log(LogId.POWER_FAILURE).entries()] == [ec.code(kind)]
        assert sup.power_counters() == {"failures": 1, "long_failures": int(long),
                                        "long_failure_time_s": off_s if long else 0}


def test_outage_without_last_gasp_is_estimated_from_heartbeat(tmp_path) -> None:
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        sup.on_start(clock.utc())
        _run(sup, clock, 30)
        last_alive = clock.utc() - dt.timedelta(seconds=1)
    clock.advance(900.0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        failure = sup.on_start(clock.utc())
        assert failure is not None and failure.estimated_start and failure.long
        assert failure.start_utc == last_alive
        down = sup.recorder.log(LogId.STANDARD).entries()[-2]
        assert (down.code, down.utc, down.detail) == (1, last_alive, {"estimated": True, "start_uncertainty_s": 1.0})
        assert sup.recorder.log(LogId.POWER_FAILURE).entries()[0].detail["duration_s"] == 901


def test_counters_accumulate_over_several_restarts(tmp_path) -> None:
    clock = SimClock(T0)
    path = tmp_path / "events.db"
    for off_s in (10, 200, 50, 400):
        with SqliteEventStore(path) as store:
            sup = Supervision(store=store)
            sup.on_start(clock.utc())
            _run(sup, clock, 5)
            sup.on_power_fail_input(clock.utc(), clock.mono(), True)
        clock.advance(float(off_s))
    with SqliteEventStore(path) as store:
        sup = Supervision(store=store)
        sup.on_start(clock.utc())
        assert sup.power_counters() == {"failures": 4, "long_failures": 2, "long_failure_time_s": 600}
        pf_log = sup.recorder.log(LogId.POWER_FAILURE)
        assert [r.values[0] for r in pf_log.rows_by_entry(1, 0)] == [10, 200, 50, 400]
        long_code = ec.code("LONG_POWER_FAILURE")
        assert [e.detail["duration_s"] for e in pf_log.entries() if e.code == long_code] == [200, 400]


def test_ride_through_cut_while_running_records_down_and_up(tmp_path) -> None:
    clock = SimClock(T0)
    gasps = []
    sup = Supervision(SupervisionSettings(), last_gasp=gasps.append)
    sup.on_start(clock.utc())
    _run(sup, clock, 5)
    cut = clock.utc()
    events = _run(sup, clock, 20, volts=(0.0, 0.0, 0.0))
    restore = clock.utc()
    events += _run(sup, clock, 5)
    assert gasps == [cut]
    assert [(e.code, e.utc) for e in events] == [(1, cut), (2, restore), (ec.code("SHORT_POWER_FAILURE"), restore)]
    assert events[-1].detail["duration_s"] == 20
    # the cut is not reported as missing voltage on each phase
    assert sup.recorder.log(LogId.POWER_QUALITY).entries_in_use() == 0


def test_voltage_gone_with_current_flowing_is_not_a_cut() -> None:
    m = PowerFailMonitor()
    dead_with_load = Reading(mono_s=1.0, phases=tuple(PhaseValues(voltage_v=0.0, current_a=6.0) for _ in range(3)),
                             energy={})
    assert m.update(at(1), 1.0, dead_with_load, InputStates()).down_utc is None
    assert not m.in_outage


def test_first_cycle_without_on_start_still_accounts_the_outage(tmp_path) -> None:
    clock = SimClock(T0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        _run(sup, clock, 10)
    clock.advance(300.0)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(store=store)
        _run(sup, clock, 3)
        assert sup.power_counters()["long_failures"] == 1
        assert sup.recorder.log(LogId.POWER_FAILURE).entries()[0].detail["duration_s"] == 301

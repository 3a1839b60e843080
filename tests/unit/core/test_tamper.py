"""Tamper detectors: thresholds, minimum durations, one start and one end per episode."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core import event_codes as ec
from meterd.core.errors import ConfigError
from meterd.core.reading import Channel, PhaseValues, Reading
from meterd.core.tamper import (
    ALL_TAMPERS,
    TAMPER_CODES,
    InputStates,
    Persistence,
    Qualifier,
    Tamper,
    TamperKind,
    TamperMonitor,
    TamperSettings,
)

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
FAST = {k: Persistence(5.0, 3.0) for k in TamperKind}


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def reading(mono: float, volts=(230.0, 230.0, 230.0), amps=(5.0, 5.0, 5.0), powers=None,
            neutral=(0.0, 0.0), status=()) -> Reading:
    powers = powers or tuple(v * i for v, i in zip(volts, amps, strict=True))
    phases = tuple(PhaseValues(voltage_v=v, current_a=i, active_power_w=p)
                   for v, i, p in zip(volts, amps, powers, strict=True))
    return Reading(mono_s=mono, phases=phases, energy={}, neutral_current_a=neutral[0],
                   neutral_current_calc_a=neutral[1], status=frozenset(status))


def run(monitor: TamperMonitor, timeline, inputs_of=lambda t: InputStates()):
    """Feed one cycle per second; ``timeline(t)`` gives the reading at second t."""
    events = []
    for t in range(0, 60):
        events += monitor.update(at(t), 1000.0 + t, timeline(1000.0 + t, t), inputs_of(t))
    return events


def test_qualifier_stamps_onset_and_restoration() -> None:
    q = Qualifier(Persistence(3.0, 2.0))
    edges = [q.update(c, float(t), at(t)) for t, c in enumerate([0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0])]
    got = [(e.active, e.utc) for e in edges if e is not None]
    assert got == [(True, at(4)), (False, at(10))]
    assert not q.active


def test_qualifier_zero_persistence_is_immediate() -> None:
    q = Qualifier(Persistence())
    assert q.update(True, 0.0, at(0)) is not None
    assert q.update(False, 0.5, at(0.5)) is not None


@pytest.mark.parametrize(("tamper", "bad"), [
    (Tamper(TamperKind.REVERSE_CURRENT, Channel.L2),
     lambda m: reading(m, powers=(1150.0, -1150.0, 1150.0))),
    (Tamper(TamperKind.NEUTRAL_MISMATCH), lambda m: reading(m, neutral=(4.0, 0.2))),
    (Tamper(TamperKind.MISSING_POTENTIAL, Channel.L3), lambda m: reading(m, volts=(230.0, 231.0, 3.0))),
    (Tamper(TamperKind.CURRENT_WITHOUT_VOLTAGE), lambda m: reading(m, volts=(1.0, 2.0, 0.0))),
    (Tamper(TamperKind.PHASE_SEQUENCE), lambda m: reading(m, status={"voltage_sequence_error"})),
    (Tamper(TamperKind.CURRENT_IMBALANCE), lambda m: reading(m, amps=(10.0, 10.0, 2.0))),
])
def test_each_electrical_tamper_gives_one_start_and_one_end(tamper, bad) -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    events = run(monitor, lambda m, t: bad(m) if 10 <= t < 30 else reading(m))
    assert [(e.tamper, e.started, e.utc) for e in events] == [(tamper, True, at(10)), (tamper, False, at(30))]
    start, end = TAMPER_CODES[tamper]
    assert [e.code for e in events] == [start, end]
    assert monitor.status() == frozenset()


def test_active_tamper_shows_in_status_while_episode_open() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    for t in range(8):
        monitor.update(at(t), float(t), reading(float(t), powers=(-900.0, 1000.0, 1000.0)), InputStates())
    assert monitor.status_names() == ["reverse_current_L1"]


def test_input_tampers_cover_and_magnet() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    events = run(monitor, lambda m, t: reading(m),
                 lambda t: InputStates(cover_open=5 <= t < 20, magnetic_field=30 <= t < 45))
    codes = [(e.code, e.utc) for e in events]
    assert codes == [(40, at(5)), (41, at(20)), (42, at(30)), (43, at(45))]


def test_chatter_below_minimum_duration_gives_nothing() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    # cover open 4 s, closed 1 s, repeatedly: never 5 s in a row
    events = run(monitor, lambda m, t: reading(m), lambda t: InputStates(cover_open=t % 5 != 4))
    assert events == []
    # reverse power flickers every other second
    events = run(TamperMonitor(TamperSettings(persistence=FAST)),
                 lambda m, t: reading(m, powers=(-500.0 if t % 2 else 500.0, 1.0, 1.0)))
    assert events == []


def test_short_interruption_inside_an_episode_does_not_end_it() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    events = run(monitor, lambda m, t: reading(m), lambda t: InputStates(cover_open=(5 <= t < 40) and t != 20))
    assert [(e.started, e.utc) for e in events] == [(True, at(5)), (False, at(40))]


def test_reverse_current_only_when_import_only_and_beyond_threshold() -> None:
    settings = TamperSettings(import_only=False, persistence=FAST)
    assert run(TamperMonitor(settings), lambda m, t: reading(m, powers=(-2000.0, 1.0, 1.0))) == []
    settings = TamperSettings(reverse_power_w=100.0, persistence=FAST)
    assert run(TamperMonitor(settings), lambda m, t: reading(m, powers=(-99.0, 1.0, 1.0))) == []


def test_missing_potential_needs_current_and_another_live_phase() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    no_current = run(monitor, lambda m, t: reading(m, volts=(230.0, 0.0, 230.0), amps=(5.0, 0.0, 5.0)))
    assert [e for e in no_current if e.tamper.kind is TamperKind.MISSING_POTENTIAL] == []
    all_dead = run(TamperMonitor(TamperSettings(persistence=FAST)),
                   lambda m, t: reading(m, volts=(0.0, 0.0, 0.0), amps=(5.0, 5.0, 5.0)))
    assert {e.tamper.kind for e in all_dead} == {TamperKind.CURRENT_WITHOUT_VOLTAGE}


def test_imbalance_ignored_below_minimum_mean_current() -> None:
    settings = TamperSettings(imbalance_min_current_a=2.0, persistence=FAST)
    assert run(TamperMonitor(settings), lambda m, t: reading(m, amps=(3.0, 0.5, 0.5))) == []
    got = run(TamperMonitor(settings), lambda m, t: reading(m, amps=(6.0, 1.0, 1.0)))
    assert [e.tamper.kind for e in got] == [TamperKind.CURRENT_IMBALANCE]
    assert got[0].detail["imbalance_pct"] == pytest.approx(125.0)


def test_missing_reading_freezes_electrical_detectors() -> None:
    monitor = TamperMonitor(TamperSettings(persistence=FAST))
    events = []
    for t in range(20):
        r = reading(1000.0 + t, powers=(-500.0, 1.0, 1.0)) if t < 3 else None
        events += monitor.update(at(t), 1000.0 + t, r, InputStates())
    assert events == []
    events = monitor.update(at(20), 1020.0, reading(1020.0), InputStates())
    assert events == []


def test_restored_active_set_ends_once_and_does_not_restart() -> None:
    cover = Tamper(TamperKind.TERMINAL_COVER)
    monitor = TamperMonitor(TamperSettings(persistence=FAST), active=[cover])
    assert monitor.status() == {cover}
    events = run(monitor, lambda m, t: reading(m), lambda t: InputStates(cover_open=t < 10))
    assert [(e.code, e.utc) for e in events] == [(41, at(10))]


def test_disabled_kind_never_starts() -> None:
    settings = TamperSettings(persistence=FAST, enabled=frozenset(TamperKind) - {TamperKind.TERMINAL_COVER})
    assert run(TamperMonitor(settings), lambda m, t: reading(m), lambda t: InputStates(cover_open=True)) == []


def test_names_codes_and_settings_validation() -> None:
    assert len({t.name for t in ALL_TAMPERS}) == len(ALL_TAMPERS) == 12
    assert all(Tamper.from_name(t.name) == t for t in ALL_TAMPERS)
    assert all(s in ec.EVENT_CODES and e in ec.EVENT_CODES for s, e in TAMPER_CODES.values())
    assert len({c for pair in TAMPER_CODES.values() for c in pair}) == 24
    with pytest.raises(ConfigError):
        TamperSettings(imbalance_pct=0)
    with pytest.raises(ConfigError):
        Persistence(-1.0, 0.0)
    assert InputStates.from_mapping({"cover_open": True, "power_fail": True}) == InputStates(True, False, True)

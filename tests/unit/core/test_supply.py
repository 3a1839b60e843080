"""Grid/solar selection: debounced loss and return, swaps, both-lost; changeover contactors."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from hw.changeover import Changeover, ChangeoverBusyError
from hw.relay import ManualScheduler
from meterd.core.clock import SimClock
from meterd.core.reading import PhaseValues, Reading
from meterd.core.supply import (
    Source,
    SupplyConfig,
    SupplyConfigError,
    SupplySelector,
    SwapReason,
    lowest_phase_voltage_v,
)

CFG = SupplyConfig(loss_voltage_v=138.0, restore_voltage_v=195.5, loss_duration_s=2.0,
                   restore_duration_s=10.0)


def run(sel: SupplySelector, start: float, stop: float, grid_v: float, solar_v: float):
    events = []
    t = start
    while t < stop:
        event = sel.update(grid_v, solar_v, t)
        if event:
            events.append(event)
        t += 0.5
    return events


def test_short_dip_does_not_swap() -> None:
    sel = SupplySelector(CFG)
    run(sel, 0, 5, 230.0, 230.0)
    assert run(sel, 5, 6.5, 50.0, 230.0) == []      # 1.5 s < 2 s
    assert run(sel, 6.5, 20, 230.0, 230.0) == []
    assert sel.active is Source.GRID


def test_grid_loss_swaps_to_solar_and_returns() -> None:
    sel = SupplySelector(CFG)
    run(sel, 0, 5, 230.0, 230.0)
    events = run(sel, 5, 10, 0.0, 230.0)
    assert len(events) == 1
    e = events[0]
    assert (e.from_source, e.to_source, e.reason, e.mono_s) == (Source.GRID, Source.SOLAR, SwapReason.LOSS, 7.0)
    assert run(sel, 10, 19.5, 200.0, 230.0) == []    # grid back, but not yet for 10 s
    back = run(sel, 19.5, 25, 200.0, 230.0)
    assert [(b.to_source, b.reason) for b in back] == [(Source.GRID, SwapReason.RETURN)]


def test_return_needs_restore_voltage_not_just_above_loss() -> None:
    sel = SupplySelector(CFG)
    run(sel, 0, 2, 230.0, 230.0)
    run(sel, 2, 6, 0.0, 230.0)
    assert run(sel, 6, 60, 160.0, 230.0) == []       # between loss and restore: hysteresis
    assert sel.active is Source.SOLAR


def test_no_auto_return_stays_on_solar() -> None:
    sel = SupplySelector(SupplyConfig(**{**CFG.__dict__, "auto_return": False}))
    run(sel, 0, 2, 230.0, 230.0)
    run(sel, 2, 6, 0.0, 230.0)
    assert run(sel, 6, 60, 230.0, 230.0) == []
    assert sel.active is Source.SOLAR


def test_both_lost_reported_once() -> None:
    sel = SupplySelector(CFG)
    run(sel, 0, 2, 230.0, 230.0)
    events = run(sel, 2, 30, 0.0, 0.0)
    assert [e.reason for e in events] == [SwapReason.BOTH_LOST]
    assert events[0].to_source is events[0].from_source
    solar_back = run(sel, 30, 45, 0.0, 230.0)
    assert [(e.to_source, e.reason) for e in solar_back] == [(Source.SOLAR, SwapReason.LOSS)]


def test_config_validation_and_helpers() -> None:
    with pytest.raises(SupplyConfigError):
        SupplyConfig(loss_voltage_v=200.0, restore_voltage_v=150.0)
    phases = (PhaseValues(voltage_v=230.0), PhaseValues(voltage_v=120.0), PhaseValues(voltage_v=231.0))
    assert lowest_phase_voltage_v(Reading(mono_s=0.0, phases=phases, energy={})) == 120.0
    assert Source.GRID.other is Source.SOLAR


@pytest.fixture
def changeover():
    clock = SimClock(start_mono=0.0)
    sched = ManualScheduler(clock)
    factory = MockFactory()
    co = Changeover.from_pins(17, 27, sched, dead_time_s=0.1, pin_factory=factory)
    yield co, sched, factory
    factory.reset()


def test_changeover_break_before_make(changeover) -> None:
    co, sched, factory = changeover
    assert co.closed("grid") and not co.closed("solar")
    done: list[str] = []
    assert co.select("solar", done.append)
    assert not co.closed("grid") and not co.closed("solar") and co.busy
    with pytest.raises(ChangeoverBusyError):
        co.select("grid")
    sched.advance(0.099)
    assert not co.closed("solar")
    sched.advance(0.002)
    assert co.closed("solar") and not co.closed("grid") and done == ["solar"] and co.swaps == 1
    assert co.select("solar") is False
    with pytest.raises(ValueError):
        co.select("diesel")


def test_solar_presence_input_is_judged_with_the_same_durations() -> None:
    sel = SupplySelector(CFG)
    assert sel.update(230.0, None, 0.0, solar_present=True) is None
    assert sel.update(0.0, None, 1.0, solar_present=True) is None     # grid low for < 2 s
    event = sel.update(0.0, None, 3.0, solar_present=True)
    assert event is not None and event.to_source is Source.SOLAR and event.reason is SwapReason.LOSS
    assert event.solar_present is True and event.solar_voltage_v is None
    sel.update(230.0, None, 4.0, solar_present=False)                 # solar goes, grid is back
    assert sel.update(230.0, None, 5.0, solar_present=False) is None  # grid not trusted yet (10 s)
    events = [e for t in range(6, 16) if (e := sel.update(230.0, None, float(t), solar_present=False))]
    # solar absent for 2 s while the grid still has to prove itself: both lost, then the grid
    assert [(e.to_source, e.reason, e.mono_s) for e in events] == [
        (Source.SOLAR, SwapReason.BOTH_LOST, 6.0), (Source.GRID, SwapReason.LOSS, 14.0)]
    absent = SupplySelector(CFG)
    absent.update(230.0, None, 0.0, solar_present=False)
    lost = [e for t in range(1, 5) if (e := absent.update(0.0, None, float(t), solar_present=False))]
    assert [e.reason for e in lost] == [SwapReason.BOTH_LOST]


def test_restored_source_and_the_preferred_one_must_prove_itself() -> None:
    sel = SupplySelector(CFG)
    sel.restore(Source.SOLAR)
    assert sel.active is Source.SOLAR and sel.healthy(Source.GRID) is False
    assert run(sel, 0.0, 9.5, 230.0, 230.0) == []
    events = run(sel, 9.5, 12.0, 230.0, 230.0)
    assert [(e.to_source, e.reason) for e in events] == [(Source.GRID, SwapReason.RETURN)]
    stays = SupplySelector(CFG)
    stays.restore(Source.GRID)
    assert stays.healthy(Source.GRID) is None and run(stays, 0.0, 5.0, 230.0, 230.0) == []

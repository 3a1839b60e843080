"""Latching relay driver on gpiozero MockFactory pins with the simulated relay: pulses,
interlock, minimum interval, feedback and fault modes. No real sleeping."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from hw.relay import (
    LatchingRelay,
    ManualScheduler,
    OperationResult,
    RelayBusyError,
    RelayFault,
    RelayInterlockError,
    RelayTiming,
    RelayTooSoonError,
    SimRelay,
    build_sim_relay,
)
from meterd.core.clock import SimClock


@pytest.fixture
def rig() -> tuple[SimClock, ManualScheduler, MockFactory]:
    clock = SimClock(start_mono=100.0)
    factory = MockFactory()
    yield clock, ManualScheduler(clock), factory
    factory.reset()


def test_close_pulse_width_and_feedback(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, initial_closed=False)
    results: list[OperationResult] = []
    relay.operate(True, results.append)
    assert relay.busy and factory.pin(23).state and not factory.pin(24).state
    sched.advance(0.049)
    assert factory.pin(23).state
    sched.advance(0.002)
    assert not factory.pin(23).state
    sched.advance(0.1)
    assert results == [OperationResult(True, True, True, 1, 100.0, pytest.approx(100.07))]
    assert sim.closed and sim.operations == 1 and relay.sensed_closed() is True
    on, off = [t for t, name, _ in sim.coil_edges if name == "set"]
    assert off - on == pytest.approx(0.050)
    assert not relay.busy


def test_custom_pulse_width(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, timing=RelayTiming(pulse_width_s=0.080))
    relay.operate(True)
    sched.advance(1.0)
    on, off = [t for t, _, _ in sim.coil_edges]
    assert off - on == pytest.approx(0.080)


def test_open_uses_reset_coil_and_coils_never_overlap(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, initial_closed=True)
    for i in range(6):
        relay.operate(i % 2 == 1)
        sched.advance(relay.timing.min_interval_s)
    assert sim.overlaps == 0
    assert [name for _, name, on in sim.coil_edges if on] == ["reset", "set"] * 3
    assert sim.operations == 6 and relay.pulses == 6
    assert not factory.pin(23).state and not factory.pin(24).state


def test_busy_and_minimum_interval(rig) -> None:
    clock, sched, factory = rig
    relay, _ = build_sim_relay(clock, sched, factory, timing=RelayTiming(min_interval_s=2.0))
    relay.operate(True)
    with pytest.raises(RelayBusyError):
        relay.operate(False)
    sched.advance(0.5)
    with pytest.raises(RelayTooSoonError) as err:
        relay.operate(False)
    assert err.value.wait_s == pytest.approx(1.5)
    assert relay.ready_in_s() == pytest.approx(1.5)
    sched.advance(1.5)
    assert relay.ready_in_s() == 0.0
    relay.operate(False)


def test_interlock_refuses_both_coils(rig) -> None:
    clock, sched, factory = rig
    relay, _ = build_sim_relay(clock, sched, factory)
    relay._reset.on()            # a stuck driver output, forced by hand
    with pytest.raises(RelayInterlockError):
        relay.operate(True)
    assert not factory.pin(23).state and not factory.pin(24).state


def test_welded_contact_reports_mismatch(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, initial_closed=True)
    sim.fault = RelayFault.WELDED
    results: list[OperationResult] = []
    relay.operate(False, results.append)
    sched.advance(0.2)
    assert results[0].ok is False and results[0].sensed_closed is True
    assert sim.closed and sim.operations == 0


def test_no_feedback_fault_freezes_aux_contact(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, initial_closed=False)
    sim.fault = RelayFault.NO_FEEDBACK
    results: list[OperationResult] = []
    relay.operate(True, results.append)
    sched.advance(0.2)
    assert sim.closed                         # the contact moved ...
    assert results[0].sensed_closed is False  # ... but the aux contact did not tell
    assert not results[0].ok


def test_pulse_shorter_than_switching_time_does_not_move_contact(rig) -> None:
    clock, sched, factory = rig
    sim = SimRelay(factory, 23, 24, 25, clock, sched, switching_time_s=0.020)
    relay = LatchingRelay.from_pins(23, 24, 25, clock, sched, RelayTiming(pulse_width_s=0.010),
                                    pin_factory=factory)
    results: list[OperationResult] = []
    relay.operate(True, results.append)
    sched.advance(0.5)
    assert not sim.closed and results[0].ok is False


def test_relay_without_feedback_cannot_verify(rig) -> None:
    clock, sched, factory = rig
    relay, sim = build_sim_relay(clock, sched, factory, feedback_pin=None)
    results: list[OperationResult] = []
    relay.operate(True, results.append)
    sched.advance(0.2)
    assert relay.sensed_closed() is None and not relay.has_feedback
    assert results[0].ok and results[0].sensed_closed is None and sim.closed


def test_sim_switching_time_is_bounded(rig) -> None:
    clock, sched, factory = rig
    with pytest.raises(ValueError):
        SimRelay(factory, 23, 24, 25, clock, sched, switching_time_s=0.025)


def test_timing_validation() -> None:
    with pytest.raises(ValueError):
        RelayTiming(pulse_width_s=0.001)
    with pytest.raises(ValueError):
        RelayTiming(pulse_width_s=0.1, min_interval_s=0.05)


def test_manual_scheduler_runs_callbacks_at_their_time() -> None:
    clock = SimClock(start_mono=0.0)
    sched = ManualScheduler(clock)
    seen: list[tuple[str, float]] = []
    sched.call_later(0.3, lambda: seen.append(("b", clock.mono())))
    sched.call_later(0.1, lambda: seen.append(("a", clock.mono())))
    timer = sched.call_later(0.2, lambda: seen.append(("x", clock.mono())))
    timer.cancel()
    sched.advance(0.25)
    assert seen == [("a", pytest.approx(0.1))] and clock.mono() == pytest.approx(0.25)
    sched.advance(1.0)
    assert [s for s, _ in seen] == ["a", "b"] and sched.pending() == 0


def test_context_manager_releases_pins(rig) -> None:
    clock, sched, factory = rig
    with LatchingRelay.from_pins(5, 6, None, clock, sched, pin_factory=factory) as relay:
        relay.operate(False)
        sched.advance(0.01)
    assert not factory.pin(5).state and not factory.pin(6).state

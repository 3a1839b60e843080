"""Timed outputs off the event loop: the deadline worker and the relay coil pulsers, on fake time
(the worker's wait moves a fake clock to the deadline; nothing sleeps)."""

from __future__ import annotations

import sys
import threading

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from hw.relay import (
    LatchingRelay,
    LgpioPulser,
    ManualScheduler,
    OperationResult,
    RelayError,
    SimRelay,
    ThreadPulser,
    coil_pulser,
)
from hw.timed_output import FINE_SWITCH_INTERVAL_S, DeadlineWorker
from meterd.core.clock import SimClock
from tests.fakes import ManualMono


class FakeTime(ManualMono):
    """A clock the worker thread's wait moves straight to the deadline (no real waiting)."""

    def wait(self, cond: threading.Condition, timeout_s: float) -> bool:
        self.t += timeout_s
        return False


def test_worker_runs_actions_in_deadline_order_without_a_thread() -> None:
    mono = ManualMono(10.0)
    worker = DeadlineWorker("test", mono, start=False)
    ran: list[str] = []
    worker.at(10.3, lambda: ran.append("c"))
    worker.at(10.1, lambda: ran.append("a"))
    worker.at(10.1, lambda: ran.append("b"))
    assert worker.run_due(10.05) == 0 and ran == []
    assert worker.run_due(10.1) == 2 and ran == ["a", "b"]
    assert worker.pending == 1
    assert worker.run_due(11.0) == 1 and ran == ["a", "b", "c"]
    worker.close()
    with pytest.raises(RuntimeError):
        worker.at(12.0, lambda: None)


def test_worker_lowers_the_switch_interval_only_while_edges_are_pending() -> None:
    before = sys.getswitchinterval()
    worker = DeadlineWorker("test", ManualMono(0.0), start=False)
    worker.at(1.0, lambda: None)
    assert sys.getswitchinterval() == pytest.approx(min(FINE_SWITCH_INTERVAL_S, before))
    worker.run_due(1.0)
    assert sys.getswitchinterval() == before
    worker.at(2.0, lambda: None)
    worker.close()
    assert sys.getswitchinterval() == before


def test_a_failing_action_does_not_stop_the_worker() -> None:
    worker = DeadlineWorker("test", ManualMono(0.0), start=False)
    ran: list[int] = []

    def boom() -> None:
        raise OSError("pin gone")

    worker.at(1.0, boom)
    worker.at(1.0, lambda: ran.append(1))
    assert worker.run_due(1.0) == 2 and ran == [1]
    worker.close()


def test_thread_pulser_ends_the_pulse_at_the_absolute_deadline_on_its_own_thread() -> None:
    fake = FakeTime(50.0)
    factory = MockFactory()
    coil = DigitalOutputDevice(23, initial_value=False, pin_factory=factory)
    worker = DeadlineWorker("coil", fake, fake.wait)
    pulser = ThreadPulser(worker, fake)
    seen: list[tuple[float, bool, str]] = []
    pin = factory.pin(23)
    pin.when_changed = None
    original = pin._change_state

    def record(value: bool) -> bool:
        seen.append((fake.t, bool(value), threading.current_thread().name))
        return bool(original(value))

    pin._change_state = record  # type: ignore[method-assign]
    pulser.pulse(coil, 0.050)
    assert worker.drain(5.0)
    assert [(t, on) for t, on, _ in seen] == [(50.0, True), (pytest.approx(50.05), False)]
    assert seen[1][2] == "coil" and seen[0][2] != "coil"
    assert not coil.value
    pulser.close()
    coil.close()
    factory.reset()


def test_relay_with_a_thread_pulser_keeps_its_rules_and_feedback() -> None:
    fake = FakeTime(100.0)
    clock = SimClock(start_mono=100.0)
    timers = ManualScheduler(clock)
    factory = MockFactory()
    sim = SimRelay(factory, 23, 24, 25, clock, timers)
    worker = DeadlineWorker("coil", fake, fake.wait)
    relay = LatchingRelay.from_pins(23, 24, 25, clock, timers, pin_factory=factory,
                                    pulser=ThreadPulser(worker, fake))
    results: list[OperationResult] = []
    relay.operate(True, results.append)
    timers.advance(0.015)                 # the contact moves 10 ms after the coil is energised
    assert worker.drain(5.0)              # the coil is switched off by the worker thread
    assert not factory.pin(23).state
    timers.advance(0.1)
    assert results and results[0].ok and results[0].sensed_closed is True
    assert sim.overlaps == 0 and relay.pulses == 1
    relay.close()
    factory.reset()


class FakeLgpio:
    def __init__(self, result: int = 10) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.result = result

    def tx_pulse(self, handle: int, gpio: int, on_us: int, off_us: int, offset: int, cycles: int) -> int:
        self.calls.append((handle, gpio, on_us, off_us, offset, cycles))
        return self.result


class _Pin:
    def __init__(self, handle: int | None, number: int) -> None:
        self.factory = type("LGPIOFactory", (), {"_handle": handle})()
        self.number = number


class _Coil:
    def __init__(self, handle: int | None, number: int) -> None:
        self.pin = _Pin(handle, number)


def test_lgpio_pulser_sends_one_hardware_timed_pulse_and_cancels_at_close() -> None:
    lg = FakeLgpio()
    pulser = LgpioPulser(lg)
    pulser.pulse(_Coil(7, 22), 0.050)  # type: ignore[arg-type]
    assert lg.calls == [(7, 22, 50_000, LgpioPulser.OFF_US, 0, 1)]
    pulser.close()
    assert lg.calls[-1] == (7, 22, 0, 0, 0, 0)


def test_lgpio_pulser_errors() -> None:
    with pytest.raises(RelayError):
        LgpioPulser(FakeLgpio()).pulse(_Coil(None, 22), 0.05)  # type: ignore[arg-type]
    with pytest.raises(RelayError):
        LgpioPulser(FakeLgpio(result=-42)).pulse(_Coil(3, 22), 0.05)  # type: ignore[arg-type]


def test_coil_pulser_picks_lgpio_on_the_lgpio_factory_else_a_thread() -> None:
    lgpio_factory = type("LGPIOFactory", (), {})()
    assert isinstance(coil_pulser(lgpio_factory, FakeLgpio()), LgpioPulser)
    pulser = coil_pulser(MockFactory())
    assert isinstance(pulser, ThreadPulser)
    pulser.close()


class StuckPulser:
    """A pulser that energises the coil and never ends the pulse (a failed timed output)."""

    def pulse(self, coil: DigitalOutputDevice, width_s: float) -> None:
        coil.on()

    def close(self) -> None:
        pass


def test_the_feedback_check_ends_a_pulse_its_pulser_failed_to_end() -> None:
    clock = SimClock(start_mono=100.0)
    timers = ManualScheduler(clock)
    factory = MockFactory()
    sim = SimRelay(factory, 23, 24, 25, clock, timers)
    relay = LatchingRelay.from_pins(23, 24, 25, clock, timers, pin_factory=factory, pulser=StuckPulser())
    relay.operate(True)
    timers.advance(0.060)
    assert factory.pin(23).state                        # still on after the 50 ms width
    timers.advance(0.015)                               # width + settle: the check ends it
    assert not factory.pin(23).state and not relay.busy
    on, off = [t for t, name, _ in sim.coil_edges if name == "set"]
    assert off - on == pytest.approx(0.070)
    relay.close()
    factory.reset()

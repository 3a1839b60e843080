"""Pulse LED on gpiozero mock pins: edges equal energy × imp/kWh exactly over a long run."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import pytest

from hw.gpio import UnknownPinFactory, button, buzzer, make_pin_factory, output_device, resolve_factory_name
from hw.pulse_led import PulseLed
from hw.sim.pins import SimPins


class FakeScheduler:
    """Collects (delay, callback) and runs them in time order on demand; no real sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.times: list[float] = []

    def __call__(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay_s, self._seq, callback))

    def run_until(self, t: float) -> None:
        while self._queue and self._queue[0][0] <= t:
            when, _, callback = heapq.heappop(self._queue)
            self.times.append(when)
            callback()
        self.now = t


def rising_edges(pin) -> int:
    states = [state for _, state in pin.states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)


def test_edges_equal_energy_times_constant(mock_pins) -> None:
    led_out = output_device(17, mock_pins)
    sched = FakeScheduler()
    led = PulseLed(led_out, imp_per_kwh=1000, pulse_ms=20, scheduler=sched)
    rng = random.Random(7)
    total_mwh = 0
    for cycle in range(3000):
        energy = rng.randrange(0, 25_000)          # up to 90 kW in a 1 s cycle
        total_mwh += energy
        led.feed(energy, 1.0)
        sched.run_until(cycle + 1.0)
    assert rising_edges(mock_pins.pin(17)) == total_mwh * 1000 // 1_000_000
    assert led.remainder_mwh == (total_mwh * 1000 % 1_000_000) / 1000
    assert not led_out.value


def test_pulses_spread_evenly_and_excess_carried(mock_pins) -> None:
    sched = FakeScheduler()
    led = PulseLed(output_device(18, mock_pins), imp_per_kwh=10000, pulse_ms=20, scheduler=sched)
    assert led.feed(400, 1.0) == 4                  # 4 pulses at 0, 0.25, 0.5, 0.75 s
    sched.run_until(1.0)
    assert sched.times[::2] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert sched.times[1::2] == pytest.approx([0.02, 0.27, 0.52, 0.77])
    assert led.feed(3000, 1.0) == 25               # at most one pulse per 40 ms
    assert led.owed_pulses == 5
    sched.run_until(2.0)
    assert led.feed(0, 1.0) == 5
    assert led.owed_pulses == 0


def test_rejects_fractional_energy(mock_pins) -> None:
    led = PulseLed(output_device(19, mock_pins), scheduler=FakeScheduler())
    with pytest.raises(ValueError):
        led.feed(1.5, 1.0)  # type: ignore[arg-type]


def test_factory_selection_order() -> None:
    env = {"GPIOZERO_PIN_FACTORY": "native"}
    assert resolve_factory_name("mock", "lgpio", env) == "mock"
    assert resolve_factory_name(None, "lgpio", env) == "lgpio"
    assert resolve_factory_name(None, None, env) == "native"
    assert resolve_factory_name(None, None, {}) == "lgpio"
    with pytest.raises(UnknownPinFactory):
        resolve_factory_name("gpiod")


def test_mock_factory_builds_devices() -> None:
    factory = make_pin_factory("mock")
    cover = button(5, factory)
    factory.pin(5).drive_low()
    assert cover.is_pressed
    pwm = make_pin_factory("mockpwm")
    from gpiozero import PWMLED
    led = PWMLED(12, pin_factory=pwm)
    led.value = 0.4
    assert pwm.pin(12).state == pytest.approx(0.4)
    factory.reset()
    pwm.reset()


def test_buzzer_is_active_high_and_starts_silent() -> None:
    factory = make_pin_factory("mock")
    device = buzzer(22, factory)
    assert factory.pin(22).state == 0
    device.on()
    assert factory.pin(22).state == 1
    device.off()
    assert factory.pin(22).state == 0
    device.close()
    factory.reset()


def test_sim_pins_drive_levels_the_input_drivers_read() -> None:
    factory = make_pin_factory("mock")
    cover = button(5, factory)  # pull-up: pressed while the pin is low
    pins = SimPins(factory)
    pins.drive(5, high=False)
    assert cover.is_pressed
    pins.drive(5, high=True)
    assert not cover.is_pressed
    pins.drive_active_low(5, True)
    assert cover.is_pressed
    pins.drive_active_low(5, False)
    assert not cover.is_pressed
    assert pins.pin(5) is factory.pin(5)
    cover.close()
    factory.reset()

"""The software pulse LED on gpiozero mock pins: pulses placed at the interpolated crossings of the
power-integrated energy, counted by the billed energy (never one invented or lost), on a simulated
clock or a fake-time deadline thread; and the GPIO back-end selection."""

from __future__ import annotations

import random
import threading

import pytest

from hw.gpio import UnknownPinFactory, button, buzzer, make_pin_factory, output_device, resolve_factory_name
from hw.pulse_led import PulseLed, PulsePlacer, ScheduledEmitter, ThreadEmitter
from hw.relay import ManualScheduler
from hw.sim.pins import SimPins
from hw.timed_output import DeadlineWorker
from meterd.core.clock import SimClock
from tests.fakes import ManualMono
from tests.led_reference import gate_errors


def rising_edges(pin) -> int:
    states = [state for _, state in pin.states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)


def sim_led(mock_pins, pin: int, imp_per_kwh: int, resolution_mwh: float, pulse_ms: int = 20,
            lag_s: float = 1.0) -> tuple[PulseLed, ManualScheduler, SimClock, list[float]]:
    """A software LED on a mock pin with its edges on a simulated clock; the rising-edge instants
    are collected as a reference standard would see them."""
    clock = SimClock(start_mono=0.0)
    timers = ManualScheduler(clock)
    led = PulseLed(PulsePlacer(imp_per_kwh, resolution_mwh, pulse_ms / 1000, lag_s),
                   ScheduledEmitter(output_device(pin, mock_pins), timers, clock.mono))
    rises: list[float] = []
    led.rise_listeners.append(rises.append)
    return led, timers, clock, rises


def run_constant_power(led, timers, clock, power_w: float, resolution_mwh: float, cycles: int,
                       cycle_s: float = 1.0, start_wh: float = 0.0) -> float:
    """Feed ``cycles`` reads of a constant load the way the chip counts it (whole register
    counts, the residue kept); returns the true energy (Wh) delivered."""
    true_mwh = start_wh * 1000
    counted = 0
    for _ in range(cycles):
        timers.advance(cycle_s)
        true_mwh += power_w * cycle_s / 3.6
        counts = int(true_mwh // resolution_mwh)
        energy = round(counts * resolution_mwh) - counted
        counted += energy
        led.feed(clock.mono(), energy, power_w)
    timers.advance(2 * cycle_s)
    return true_mwh / 1000


def test_pulses_equal_billed_energy_times_constant_over_a_long_run(mock_pins) -> None:
    led, timers, clock, rises = sim_led(mock_pins, 17, 1000, 1.0)
    rng = random.Random(7)
    for _ in range(3000):
        timers.advance(1.0)
        energy = rng.randrange(0, 25_000)                 # up to 90 kW in a 1 s cycle
        power = energy * 3.6 * rng.uniform(0.9, 1.1)      # a power that disagrees by up to 10 %
        led.feed(clock.mono(), energy, power)
    timers.advance(3.0)
    billed = led.placer.billed_mwh
    assert abs(led.pulses_emitted - billed * 1000 // 1_000_000) <= 1
    assert abs(led.placer.lead_mwh) <= 1.0
    assert rising_edges(mock_pins.pin(17)) == led.pulses_emitted == len(rises)
    assert not mock_pins.pin(17).state


def test_pulses_sit_at_the_interpolated_crossings_one_cycle_later(mock_pins) -> None:
    led, timers, clock, rises = sim_led(mock_pins, 18, 10_000, 1.0)
    run_constant_power(led, timers, clock, 3600.0, 1.0, 5)   # 1 Wh/s: 10 pulses/s
    # the first read (t = 1 s) has no interval: its 1 Wh is spread with the next one over 1…2 s
    # (20 pulses), lit one cycle later
    assert rises[:20] == pytest.approx([2.05 + 0.05 * k for k in range(20)])
    later = rises[20:]
    assert later[0] == pytest.approx(3.1)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(later, later[1:], strict=False))
    assert len(later) == 30 and led.placer.lead_mwh == pytest.approx(0.0) and led.placer.corrections == 0


def test_power_places_pulses_between_coarse_register_counts(mock_pins) -> None:
    # 1000 imp/kWh, 0.1 Wh per count: 172.5 W (5 % Ib, three phases) bills 0 or 100 mWh a second
    led, timers, clock, rises = sim_led(mock_pins, 19, 1000, 100.0)
    run_constant_power(led, timers, clock, 172.5, 100.0, 600)
    spacing = [b - a for a, b in zip(rises[1:], rises[2:], strict=False)]
    assert len(spacing) >= 20
    assert max(abs(s / (3600 / 172.5) - 1) for s in spacing) < 1e-9
    assert led.placer.corrections == 0


def test_power_without_billed_energy_invents_no_pulse(mock_pins) -> None:
    led, timers, clock, rises = sim_led(mock_pins, 20, 1000, 100.0)
    for _ in range(60):                         # a fault cycle: power reads 69 kW, nothing billed
        timers.advance(1.0)
        led.feed(clock.mono(), 0, 69_000.0)
    timers.advance(2.0)
    assert rises == [] and led.placer.lead_mwh == pytest.approx(100.0)
    assert led.placer.corrections > 0


def test_billed_energy_without_power_loses_no_pulse(mock_pins) -> None:
    led, timers, clock, _ = sim_led(mock_pins, 21, 1000, 100.0)
    for _ in range(100):                        # the power reads 0 while 10 Wh a second are billed
        timers.advance(1.0)
        led.feed(clock.mono(), 10_000, 0.0)
    timers.advance(2.0)
    assert led.pulses_emitted in (999, 1000) and led.placer.lead_mwh >= -100.0


def test_fast_pulses_shorten_to_half_the_period_and_never_overlap(mock_pins) -> None:
    led, timers, clock, rises = sim_led(mock_pins, 22, 10_000, 1.0)
    pin = mock_pins.pin(22)
    run_constant_power(led, timers, clock, 69_000.0, 1.0, 5)     # 191.7 pulses/s
    period = 3600 / 69_000 / 10
    steady = rises[400:]             # after the first two reads (their energy spread over one interval)
    assert all(b - a == pytest.approx(period) for a, b in zip(steady, steady[1:], strict=False))
    states = [state for _, state in pin.states]
    assert all(a != b for a, b in zip(states, states[1:], strict=False))   # every edge a real change
    assert rising_edges(pin) == len(rises)


def test_rejects_fractional_energy(mock_pins) -> None:
    led, _, _, _ = sim_led(mock_pins, 23, 1000, 1.0)
    with pytest.raises(ValueError):
        led.feed(1.0, 1.5, 0.0)  # type: ignore[arg-type]


class FakeTime(ManualMono):
    def wait(self, cond: threading.Condition, timeout_s: float) -> bool:
        self.t += timeout_s
        return False


def test_thread_emitter_lights_the_led_at_absolute_instants_off_the_caller_thread(mock_pins) -> None:
    fake = FakeTime(0.0)
    device = output_device(24, mock_pins)
    worker = DeadlineWorker("led", fake, fake.wait)
    led = PulseLed(PulsePlacer(10_000, 1.0, 0.02, lag_s=1.0), ThreadEmitter(device, worker, fake))
    rises: list[tuple[float, str]] = []
    led.rise_listeners.append(lambda t: rises.append((t, threading.current_thread().name)))
    led.feed(0.0, 0, 0.0)
    led.feed(1.0, 1000, 3600.0)            # 10 pulses: crossings at 0.1 … 1.0 s, lit at 1.1 … 2.0 s
    assert worker.drain(5.0)
    assert [t for t, _ in rises] == pytest.approx([1.1 + 0.1 * k for k in range(10)])
    assert {name for _, name in rises} == {"led"}
    assert led.pulses_emitted == 10 and not device.value
    led.close()


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


def test_a_power_reading_biased_against_the_registers_is_learned_from_them() -> None:
    placer = PulsePlacer(10_000, 1.0, 0.02, lag_s=1.0)
    true_mwh, counted, rises = 0.0, 0, []
    for i in range(1, 301):                               # 3450 W read 2 % high
        true_mwh += 3450 / 3.6
        energy = int(true_mwh) - counted
        counted += energy
        rises += [p.rise_mono for p in placer.place(float(i), energy, 3450 * 1.02)]
    assert placer.gain == pytest.approx(1 / 1.02, rel=2e-4)
    late = [t for t in rises if t > 100.0]
    errors = gate_errors(late, lambda t: (t - 1.0) * 3450 / 3600, 10_000, 10)   # lit one cycle late
    assert len(errors) > 100 and max(abs(e) for e in errors) < 0.1
    assert abs(placer.placed - counted / 100) <= 1


def test_the_simulated_meters_mock_pins_keep_a_bounded_history() -> None:
    from hw.gpio import MOCK_STATES_KEPT
    factory = make_pin_factory("mock")
    try:
        led = output_device(5, factory)
        for _ in range(3 * MOCK_STATES_KEPT):
            led.on()
            led.off()
        pin = factory.pin(5)
        assert MOCK_STATES_KEPT <= len(pin.states) <= 2 * MOCK_STATES_KEPT
        assert [s for _, s in pin.states][-2:] == [True, False]  # the newest changes are the ones kept
        assert not led.value
    finally:
        factory.close()

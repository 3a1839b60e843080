"""hw.inputs: cover, magnet and power-fail inputs on gpiozero mock pins, software debounce."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from hw.inputs import COVER_OPEN, MAGNETIC_FIELD, POWER_FAIL, InputConfig, InputError, MeterInputs, PushButton
from tests.fakes import ManualMono


@pytest.fixture
def rig(manual_mono):
    factory = MockFactory()
    mono = manual_mono
    inputs = MeterInputs(factory, mono)
    factory.pin(5).drive_low()      # cover closed (NC switch to GND)
    factory.pin(13).drive_high()    # no magnet
    factory.pin(6).drive_high()     # supply good
    mono.t += 1.0
    inputs.poll()
    yield factory, mono, inputs
    inputs.close()
    factory.reset()


def test_closed_cover_and_quiet_inputs_read_inactive(rig) -> None:
    _, _, inputs = rig
    assert inputs.poll() == {COVER_OPEN: False, MAGNETIC_FIELD: False, POWER_FAIL: False}


def test_cover_open_needs_stable_level_for_debounce_time(rig) -> None:
    factory, mono, inputs = rig
    changes = []
    inputs.add_listener(lambda name, active, t: changes.append((name, active, t)))
    factory.pin(5).drive_high()
    assert inputs.poll()[COVER_OPEN] is False
    mono.t += 0.06
    assert inputs.poll()[COVER_OPEN] is False
    mono.t += 0.06
    assert inputs.poll()[COVER_OPEN] is True
    assert changes == [(COVER_OPEN, True, mono.t)]


def test_bouncing_contact_gives_one_change(rig) -> None:
    factory, mono, inputs = rig
    changes = []
    inputs.add_listener(lambda name, active, t: changes.append(active), (COVER_OPEN,))
    pin = factory.pin(5)
    edges_before = inputs.inputs[COVER_OPEN].edges
    for _ in range(5):            # 5 bounces 10 ms apart: bounce_time is not applied by mock pins
        pin.drive_high()
        mono.t += 0.01
        inputs.poll()
        pin.drive_low()
        mono.t += 0.01
        inputs.poll()
    pin.drive_high()
    mono.t += 0.2
    inputs.poll()
    assert changes == [True]
    assert inputs.inputs[COVER_OPEN].edges - edges_before == 11


def test_chatter_that_returns_to_the_start_level_gives_nothing(rig) -> None:
    factory, mono, inputs = rig
    changes = []
    inputs.add_listener(lambda name, active, t: changes.append(active))
    pin = factory.pin(13)
    for _ in range(10):
        pin.drive_low()
        mono.t += 0.1
        inputs.poll()
        pin.drive_high()
        mono.t += 0.1
        inputs.poll()
    mono.t += 1.0
    inputs.poll()
    assert changes == []
    assert inputs.states()[MAGNETIC_FIELD] is False


def test_magnet_sensor_is_active_low(rig) -> None:
    factory, mono, inputs = rig
    factory.pin(13).drive_low()
    mono.t += 0.25
    assert inputs.poll()[MAGNETIC_FIELD] is True


def test_power_fail_is_reported_at_the_edge_without_polling(rig) -> None:
    factory, mono, inputs = rig
    seen = []
    inputs.add_listener(lambda name, active, t: seen.append((name, active, t)), (POWER_FAIL,))
    mono.t = 200.0
    factory.pin(6).drive_low()
    assert seen == [(POWER_FAIL, True, 200.0)]
    assert inputs.states()[POWER_FAIL] is True
    factory.pin(6).drive_high()
    assert seen[-1] == (POWER_FAIL, False, 200.0)


def test_configuration_is_checked() -> None:
    factory = MockFactory()
    with pytest.raises(InputError):
        InputConfig(5, debounce_s=-0.1)
    with pytest.raises(InputError):
        MeterInputs(factory, ManualMono(), {"door": InputConfig(7)})
    custom = MeterInputs(factory, ManualMono(), {COVER_OPEN: InputConfig(20, active_when_pressed=False, debounce_s=0)})
    factory.pin(20).drive_low()
    assert custom.states()[COVER_OPEN] is False
    factory.pin(20).drive_high()
    assert custom.states()[COVER_OPEN] is True
    custom.close()
    factory.reset()


@pytest.fixture
def button():
    factory = MockFactory()
    mono = ManualMono()
    factory.pin(26).drive_high()  # released: the pull-up holds the line high
    device = PushButton(26, factory, mono, debounce_s=0.05)
    seen: list[tuple[bool, float]] = []
    device.listener = lambda pressed, since: seen.append((pressed, since))
    yield factory, mono, device, seen
    device.close()
    factory.reset()


def test_push_button_hands_changes_over_only_in_poll_with_the_edge_time(button) -> None:
    factory, mono, device, seen = button
    mono.t = 101.0
    factory.pin(26).drive_low()  # pressed (active low)
    mono.t = 101.2
    assert seen == [] and device.pressed is False
    assert device.poll() is True
    assert seen == [(True, 101.0)] and device.pressed is True
    assert device.poll() is False and seen == [(True, 101.0)]


def test_push_button_keeps_a_press_shorter_than_a_poll_period(button) -> None:
    factory, mono, device, seen = button
    mono.t = 101.0
    factory.pin(26).drive_low()
    mono.t = 101.1  # held 100 ms, longer than the debounce, released before any poll
    factory.pin(26).drive_high()
    assert seen == []
    mono.t = 102.0
    device.poll()
    assert seen == [(True, 101.0), (False, 101.1)]
    assert device.edges == 2


def test_push_button_ignores_a_bounce_shorter_than_the_debounce(button) -> None:
    factory, mono, device, seen = button
    mono.t = 101.0
    factory.pin(26).drive_low()
    mono.t = 101.01
    factory.pin(26).drive_high()
    mono.t = 102.0
    device.poll()
    assert seen == [] and device.pressed is False


def test_push_button_with_pull_down_is_active_high() -> None:
    factory = MockFactory()
    mono = ManualMono()
    factory.pin(16).drive_low()
    detector = PushButton(16, factory, mono, debounce_s=0.05, pull_up=False, name="solar_present")
    factory.pin(16).drive_high()
    mono.t += 0.1
    detector.poll()
    assert detector.pressed is True and detector.name == "solar_present" and detector.debounce_s == 0.05
    detector.close()
    factory.reset()

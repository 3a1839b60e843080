"""CIU buzzer: low-credit and token-result patterns on the injected clock, repeat, mute by short code 81,
and the edges on a gpiozero mock pin as the CIU builds it."""

from __future__ import annotations

from ciu.app import build_buzzer, load_config
from ciu.core.buzzer import Buzzer
from ciu.core.state import CiuState
from meterd.core.clock import SimClock


class Rig:
    def __init__(self, repeat_s: float = 600.0) -> None:
        self.clock = SimClock()
        self.state = CiuState(self.clock, lambda: 1)
        self.edges: list[tuple[float, bool]] = []
        self.t0 = self.clock.mono()
        self.buzzer = Buzzer(lambda on: self.edges.append((round(self.clock.mono() - self.t0, 2), on)),
                             self.clock, repeat_s)

    def run(self, seconds: float, step_s: float = 0.02) -> None:
        for _ in range(round(seconds / step_s)):
            self.buzzer.observe(self.state.view())
            self.buzzer.tick()
            self.clock.advance(step_s)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.state.press(key)


def test_low_credit_beeps_three_times_then_repeats_while_low() -> None:
    rig = Rig(repeat_s=60.0)
    rig.run(1.0)
    assert rig.edges == []
    rig.state.on_status({"credit": "1.5", "low_credit": True})
    rig.run(2.0)
    assert rig.edges == [(1.0, True), (1.2, False), (1.4, True), (1.6, False), (1.8, True), (2.0, False)]
    rig.run(60.0)
    assert len(rig.edges) == 12 and rig.edges[6] == (61.0, True)  # again after low_credit_repeat_s
    rig.state.on_status({"credit": "20", "low_credit": False})
    rig.run(120.0)
    assert len(rig.edges) == 12  # credit back: silent


def test_token_results_accepted_one_short_rejected_two_long() -> None:
    rig = Rig()
    rig.state.on_token_result(1, {"accepted": True, "code": "accepted"})
    rig.run(1.0)
    assert rig.edges == [(0.0, True), (0.1, False)]
    rig.run(11.0)  # the result screen times out: no beep for that
    rig.state.on_token_result(2, {"accepted": False, "code": "used"})
    rig.run(2.0)
    assert rig.edges[2:] == [(12.0, True), (12.4, False), (12.56, True), (12.96, False)]


def test_short_code_81_mutes_and_unmutes() -> None:
    rig = Rig(repeat_s=60.0)
    rig.state.on_status({"credit": "1.5", "low_credit": True})
    rig.run(0.3)
    assert rig.edges == [(0.0, True), (0.2, False)]
    rig.keys("8", "1", "ENTER")  # in the middle of the alarm pattern
    assert rig.state.view().muted and rig.state.view().notice == "buzzer_off"
    rig.run(200.0)
    assert rig.edges == [(0.0, True), (0.2, False)]  # cut short, and no repeat while muted
    rig.state.on_token_result(3, {"accepted": True})
    rig.run(1.0)
    assert len(rig.edges) == 2
    rig.keys("8", "1", "ENTER")
    assert not rig.state.view().muted and rig.state.view().notice == "buzzer_on"
    rig.run(59.0)
    assert len(rig.edges) == 2  # unmuted: the alarm comes back at its next repeat, not at once
    rig.run(3.0)
    assert len(rig.edges) == 8 and rig.edges[2][1] is True


def test_mute_stops_a_sounding_beep_at_once() -> None:
    rig = Rig()
    rig.state.on_status({"low_credit": True})
    rig.run(0.1)
    assert rig.buzzer.sounding
    rig.keys("8", "1", "ENTER")
    rig.run(0.02)
    assert not rig.buzzer.sounding and rig.edges[-1] == (0.1, False)


def test_edges_on_the_mock_pin_of_the_built_buzzer() -> None:
    config = load_config(None, {})
    clock = SimClock()
    buzzer, device = build_buzzer(config["buzzer"], config["keypad"]["kind"], clock)
    assert buzzer is not None and device is not None
    try:
        pin = device.pin
        assert pin.info.name == "GPIO23" and pin.state is False
        state = CiuState(clock, lambda: 1)
        state.on_status({"low_credit": True})
        for _ in range(60):
            buzzer.observe(state.view())
            buzzer.tick()
            clock.advance(0.02)
        levels = [s for _, s in pin.states]
        assert levels == [False, True, False, True, False, True, False]
    finally:
        device.close()
    none, no_device = build_buzzer({**config["buzzer"], "pin": -1}, "sim", clock)
    assert none is None and no_device is None

"""Load control in the whole simulated meter (the daemon's own wiring): the limiter on metered
readings, the simulated contact cutting the metered current, reconnection, lockout, button,
relay faults, restart without a pulse, API routes and the services other features use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hw.relay import RelayFault
from meterd.api.server import ApiError
from meterd.app.config import ConfigError
from meterd.app.features import load_config
from meterd.core.disconnect import ControlState
from meterd.core.disconnect import DisconnectorEvent as Ev
from meterd.core.limiter import LimiterState
from meterd.runtime.load_control import LoadControlUnit
from meterd.services.load_control import LoadControl
from tests.paths import SIM_CONFIG
from tests.simmeter import SimMeter

C, R, D = ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION, ControlState.DISCONNECTED
LIMITS = {"threshold_normal": 5000.0, "min_over_threshold_s": 5.0, "min_under_threshold_s": 5.0,
          "reconnect_delay_s": 20.0, "max_reconnect_attempts": 2}


class LcMeter(SimMeter):
    """SimMeter with a ``[load_control]`` section and helpers."""

    def __init__(self, state_dir: Path, **lc: Any) -> None:
        super().__init__(state_dir, load_control=lc)
        self.closed = False

    def close(self) -> None:
        super().close()
        self.closed = True

    @property
    def f(self) -> LoadControlUnit:
        return self.service(LoadControlUnit)

    def relay(self) -> dict[str, Any]:
        """``GET /relay``."""
        return self.call("GET", "/relay")[1]

    def currents(self) -> list[float]:
        reading = self.meter.last_reading
        assert reading is not None
        return [p.current_a for p in reading.phases]

    def codes(self) -> list[int]:
        return [e["code"] for e in self.f.events.recent]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        status, payload = self.daemon.api.routes[(method, path)](body or {})
        return status, payload


@pytest.fixture
def meters(tmp_path: Path):
    made: list[LcMeter] = []

    def make(sub: str = "m", **lc: Any) -> LcMeter:
        m = LcMeter(tmp_path / sub, **lc)
        made.append(m)
        return m

    yield make
    for m in made:
        if not m.closed:
            m.close()


def run_until(m: LcMeter, predicate: Any, limit_s: int = 120) -> int:
    """Cycles (1 s) run until ``predicate()`` holds; fails after ``limit_s``."""
    for n in range(1, limit_s + 1):
        m.run(1)
        if predicate():
            return n
    raise AssertionError("condition not reached")


def test_short_overload_below_the_minimum_duration_does_not_trip(meters):
    m = meters(**LIMITS)
    m.world.set_load({"current_a": 10.0})  # 3 x 230 V x 10 A = 6.9 kW > 5 kW
    m.run(4)                                # over for 4 s < 5 s
    m.world.set_load({"current_a": 5.0})
    m.run(30)
    st = m.f.lc.status()
    assert st.control_state is C and st.output_state and st.operation_count == 0
    assert m.f.lc.limiter.state is LimiterState.ARMED
    assert min(m.currents()) == pytest.approx(5.0, rel=0.01)
    assert int(Ev.LIMITER_THRESHOLD_EXCEEDED) not in m.codes()


def test_sustained_overload_trips_and_the_metered_current_drops_to_zero(meters):
    m = meters(**LIMITS)
    m.world.set_load({"current_a": 10.0})
    m.run(1)
    assert min(m.currents()) == pytest.approx(10.0, rel=0.01)
    cycles = run_until(m, lambda: m.f.lc.control_state is R)
    assert cycles == 5  # the first over reading starts the clock; 5 s later it trips
    assert m.f.sim_relay is not None and m.f.sim_relay.operations == 0  # pulse under way
    assert min(m.currents()) > 9.9
    m.run(1)  # the contacts open 10 ms into the next cycle: its reading is 0 A
    assert m.f.sim_relay.operations == 1 and not m.f.sim_relay.closed
    assert m.currents() == [0.0, 0.0, 0.0]
    m.run(1)
    assert all(p.voltage_v > 220 for p in m.meter.last_reading.phases)  # supply side still live
    assert "relay_open" in m.meter.status_flags()
    assert m.codes()[:2] == [int(Ev.LIMITER_THRESHOLD_EXCEEDED), int(Ev.LOCAL_DISCONNECTION)]
    _, view = m.call("GET", "/relay")
    assert view["output_state"] == "disconnected" and view["limiter"]["state"] == "tripped"


def test_reconnects_after_the_delay_and_locks_out_after_the_attempt_limit(meters):
    m = meters(**LIMITS)
    m.world.set_load({"current_a": 10.0})
    run_until(m, lambda: m.f.lc.control_state is R)
    tripped_at = m.clock.mono()
    run_until(m, lambda: m.f.lc.control_state is C)
    assert m.clock.mono() - tripped_at == pytest.approx(20.0)   # reconnect_delay_s
    m.run(2)
    assert min(m.currents()) == pytest.approx(10.0, rel=0.01)   # the load is back (and still too big)
    assert m.f.lc.limiter.attempts == 1
    run_until(m, lambda: m.f.lc.control_state is R)             # trip 2
    run_until(m, lambda: m.f.lc.control_state is C)             # attempt 2
    run_until(m, lambda: m.f.lc.control_state is R)             # trip 3: attempts exhausted
    assert m.f.lc.limiter.state is LimiterState.LOCKED_OUT
    assert int(Ev.LIMITER_LOCKOUT) in m.codes()
    m.run(200)
    assert m.f.lc.control_state is R and m.currents() == [0.0, 0.0, 0.0]
    pulses = m.f.sim_relay.operations
    # a person clears the lockout with the button (the customer has lowered the load meanwhile)
    m.world.set_load({"current_a": 3.0})
    status, answer = m.call("POST", "/relay/button", {})
    assert status == 200 and answer["transition"] == "e"
    m.run(3)
    assert m.f.lc.limiter.state is LimiterState.ARMED and m.f.lc.limiter.attempts == 0
    assert m.currents() == pytest.approx([3.0, 3.0, 3.0], rel=0.01)
    assert m.f.sim_relay.operations == pulses + 1


def test_lockout_and_attempts_survive_a_restart_without_a_pulse(meters, tmp_path):
    lim = {**LIMITS, "max_reconnect_attempts": 0}
    m = meters("a", **lim)
    m.world.set_load({"current_a": 10.0})
    run_until(m, lambda: m.f.lc.limiter.state is LimiterState.LOCKED_OUT)
    m.run(2)
    count = m.f.lc.status().operation_count
    m.close()
    m2 = meters("a", **lim)
    m2.run(60)
    assert m2.f.lc.limiter.state is LimiterState.LOCKED_OUT and m2.f.lc.control_state is R
    assert m2.f.sim_relay.coil_edges == [] and m2.f.lc.status().operation_count == count
    assert m2.currents() == [0.0, 0.0, 0.0]


def test_restart_puts_the_relay_back_without_an_extra_pulse(meters):
    m = meters("b")
    status, answer = m.call("POST", "/relay", {"action": "remote_disconnect"})
    assert status == 200 and answer["transition"] == "b"
    m.run(2)
    assert m.currents() == [0.0, 0.0, 0.0]
    before = m.f.lc.status()
    m.close()
    m2 = meters("b")
    m2.run(5)
    after = m2.f.lc.status()
    assert after.control_state is D and not after.output_state
    assert after.operation_count == before.operation_count == 1
    assert after.last_change_utc == before.last_change_utc
    assert m2.f.sim_relay.coil_edges == []
    assert m2.currents() == [0.0, 0.0, 0.0] and "relay_open" in m2.meter.status_flags()
    m2.call("POST", "/relay", {"action": "remote_reconnect"})  # mode 5: d, then the customer presses
    m2.run(2)
    assert m2.f.lc.control_state is R and m2.currents() == [0.0, 0.0, 0.0]
    m2.call("POST", "/relay/button", {})
    m2.run(2)
    assert m2.currents() == pytest.approx([5.0, 5.0, 5.0], rel=0.01)


def test_feedback_mismatch_logs_failures_and_stops_after_the_retries(meters):
    m = meters(max_retries=2)
    assert m.f.sim_relay is not None
    m.f.sim_relay.fault = RelayFault.WELDED
    m.call("POST", "/relay", {"action": "remote_disconnect"})
    m.run(30)
    st = m.f.lc.status()
    assert st.relay_fault and st.output_state  # welded: still conducting, reported as such
    assert m.codes().count(int(Ev.DISCONNECT_RECONNECT_FAILURE)) == 3
    assert m.codes().count(int(Ev.RELAY_FAULT_RETRIES_EXHAUSTED)) == 1
    on_edges = [e for e in m.f.sim_relay.coil_edges if e[2]]
    assert len(on_edges) == 3 and st.operation_count == 3
    m.run(120)
    assert len([e for e in m.f.sim_relay.coil_edges if e[2]]) == 3  # no endless pulsing
    assert m.f.sim_relay.overlaps == 0
    assert min(m.currents()) == pytest.approx(5.0, rel=0.01)  # welded contacts still carry the load


def test_missing_feedback_is_a_mismatch_too(meters):
    m = meters(max_retries=1)
    m.f.sim_relay.fault = RelayFault.NO_FEEDBACK
    m.call("POST", "/relay", {"action": "remote_disconnect"})
    m.run(20)
    assert m.f.lc.status().relay_fault
    assert m.codes().count(int(Ev.DISCONNECT_RECONNECT_FAILURE)) == 2
    assert m.f.sim_relay.closed is False and m.currents() == [0.0, 0.0, 0.0]  # contacts did open


def test_button_on_the_gpio_through_a_scenario_signal(meters):
    m = meters(long_press_s=3.0)
    scenario = """
[[events]]
at_s = 2
signal = "button"
value = true
[[events]]
at_s = 7
signal = "button"
value = false
[[events]]
at_s = 20
signal = "button"
value = true
[[events]]
at_s = 21
signal = "button"
value = false
"""
    m.world.load_scenario(scenario, "button.toml")
    m.run(10)   # held 5 s: long press = manual disconnection (f)
    assert m.f.lc.control_state is R and m.currents() == [0.0, 0.0, 0.0]
    pin = m.world.input_pins["button"]
    for _ in range(3):  # contact bounce: edges closer together than the debounce time
        m.world.drive_input(pin, True)
        m.world.drive_input(pin, False)
    m.run(5)
    assert m.f.lc.control_state is R and m.f.button.presses == 1
    assert m.f.button.device is not None and m.f.button.device.edges >= 8
    m.run(10)   # short press: manual reconnection (e)
    assert m.f.lc.control_state is C and m.f.button.presses == 2
    assert m.currents() == pytest.approx([5.0, 5.0, 5.0], rel=0.01)
    assert [e.get("transition") for e in m.f.events.recent if "transition" in e] == ["f", "e"]


def test_load_changes_while_open_come_back_on_closing(meters):
    m = meters()
    m.call("POST", "/relay", {"action": "disconnect"})  # manual (f)
    m.run(2)
    m.world.set_load({"phase": "A", "current_a": 20.0})
    m.world.load_scenario('[[events]]\nat_s = 1\nphase = "L3"\ncurrent_a = 7.0\nvoltage_v = 225.0\n', "s.toml")
    m.run(3)
    assert m.currents() == [0.0, 0.0, 0.0]
    assert m.meter.last_reading.phases[2].voltage_v == pytest.approx(225.0, rel=0.01)
    m.world.set_load({"phase": "B", "current_a": 0.0})
    m.call("POST", "/relay", {"action": "reconnect"})
    m.run(3)
    assert m.currents() == pytest.approx([20.0, 0.0, 7.0], abs=0.05)


def test_services_for_credit_and_the_sts_power_limit(meters):
    m = meters(min_over_threshold_s=5.0, reconnect_delay_s=5.0, min_under_threshold_s=1.0)
    lc = m.service(LoadControl)
    assert lc.credit_disconnect().accepted
    m.run(2)
    assert m.currents() == [0.0, 0.0, 0.0] and lc.status().local_causes == {"credit"}
    assert m.call("POST", "/relay/button", {})[0] == 409  # credit still exhausted: button refused
    assert lc.credit_reconnect().transition == "h"
    m.run(2)
    assert m.currents() == pytest.approx([5.0, 5.0, 5.0], rel=0.01)
    lc.set_max_power_w(3000.0)  # 3.45 kW metered > 3 kW
    run_until(m, lambda: lc.control_state is R, 10)
    assert m.f.lc.limiter.trip_cause.value == "max_power"
    assert int(Ev.LIMITER_THRESHOLD_CHANGED) in m.codes()


def test_routes_and_status(meters):
    m = meters()
    with pytest.raises(ApiError):
        m.call("POST", "/relay", {"action": "explode"})
    with pytest.raises(ApiError):
        m.call("POST", "/relay", {"control_mode": 9})
    assert m.call("POST", "/relay", {"control_mode": 0})[0] == 200
    status, answer = m.call("POST", "/relay", {"action": "remote_disconnect"})
    assert status == 409 and answer["refusal"] == "not enabled in this control_mode"
    extra = m.daemon.status_extras["relay"]()
    for key in ("output_state", "control_state", "control_mode", "operation_count", "last_change_utc", "limiter"):
        assert key in extra
    assert extra["control_mode"] == 0 and m.f.lc.status().control_state is C


def test_config_section_is_validated(tmp_path):
    text = SIM_CONFIG.read_text()
    path = tmp_path / "c.toml"
    path.write_text(text + "\n[load_control]\nset_pin = 5\nreset_pin = 5\n")
    with pytest.raises(ConfigError):
        load_config(path)
    path.write_text(text + "\n[load_control]\nthreshold_normal = 4000\nmonitored = \"current\"\n")
    section = load_config(path).feature("load_control")
    assert section.limiter.threshold_normal == 4000.0 and section.limiter.monitored.name == "CURRENT"

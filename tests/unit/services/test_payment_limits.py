"""STS class 2 limits on the whole simulated meter (real payment and load-control features): the
maximum power limit and the maximum phase power unbalance limit are applied, survive a restart
(where the token itself cannot be entered again), and 0 removes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.disconnect import ControlState
from meterd.core.disconnect import DisconnectorEvent as Ev
from meterd.core.sts.outcome import TokenOutcome
from meterd.core.sts.vending import max_phase_unbalance_limit_token, max_power_limit_token
from meterd.runtime.load_control import LoadControlUnit
from meterd.services.load_control import LoadControl
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests.simmeter import SimMeter

R, C = ControlState.READY_FOR_RECONNECTION, ControlState.CONNECTED
LOAD_CONTROL = {"min_over_threshold_s": 5.0, "min_under_threshold_s": 2.0, "reconnect_delay_s": 10.0}


def cipher() -> Any:
    return sts_cipher_factory(7, sim_key_register(PaymentSection()).key)


def meter(state_dir: Path) -> SimMeter:
    return SimMeter(state_dir, load_control=LOAD_CONTROL)


def submit(m: SimMeter, token: str) -> TokenOutcome:
    return m.service(PaymentService).submit_token(token, "keypad")  # type: ignore[no-any-return]


def relay(m: SimMeter) -> dict[str, Any]:
    return m.daemon.api.routes[("GET", "/relay")]({})[1]  # type: ignore[no-any-return]


def test_max_power_limit_token_survives_a_restart(tmp_path: Path) -> None:
    m = meter(tmp_path)
    token = max_power_limit_token(cipher(), 800, 3000)        # 3 kW < the 3.45 kW default load
    assert submit(m, token).result == "Accept"
    m.close()
    m = meter(tmp_path)
    try:
        assert relay(m)["limiter"]["max_power_w"] == 3000.0
        assert submit(m, token).result == "UsedError"       # it cannot be entered again
        m.run(7)
        lc = m.service(LoadControl)
        assert lc.control_state is R and lc.limiter.trip_cause.value == "max_power"
    finally:
        m.close()


def test_phase_unbalance_token_trips_only_after_the_minimum_duration(tmp_path: Path) -> None:
    m = meter(tmp_path)
    try:
        lc = m.service(LoadControl)
        assert submit(m, max_phase_unbalance_limit_token(cipher(), 801, 1500)).result == "Accept"
        assert relay(m)["limiter"]["max_phase_unbalance_w"] == 1500.0
        m.world.set_load({"phase": "A", "current_a": 15.0})   # A 3.45 kW, B and C 1.15 kW: 2.3 kW spread
        m.run(3)                                              # over for less than 5 s
        m.world.set_load({"phase": "A", "current_a": 5.0})
        m.run(10)
        assert lc.control_state is C
        m.world.set_load({"phase": "A", "current_a": 15.0})
        m.run(7)                                              # over for more than 5 s
        assert lc.control_state is R and lc.limiter.trip_cause.value == "unbalance"
        trip = [e for e in m.service(LoadControlUnit).events.recent
                if e["code"] == int(Ev.LIMITER_THRESHOLD_EXCEEDED)]
        assert trip[-1]["cause"] == "unbalance" and trip[-1]["value"] == pytest.approx(2300.0, rel=0.02)
        assert relay(m)["local_causes"] == ["limiter"]
        m.world.set_load({"phase": "A", "current_a": 5.0})    # the customer balances the load
        m.run(15)
        assert lc.control_state is C
    finally:
        m.close()


def test_phase_unbalance_limit_survives_a_restart_and_zero_removes_it(tmp_path: Path) -> None:
    m = meter(tmp_path)
    assert submit(m, max_phase_unbalance_limit_token(cipher(), 802, 1500)).result == "Accept"
    m.close()
    m = meter(tmp_path)
    try:
        assert relay(m)["limiter"]["max_phase_unbalance_w"] == 1500.0
        assert submit(m, max_phase_unbalance_limit_token(cipher(), 803, 0)).result == "Accept"
        assert relay(m)["limiter"]["max_phase_unbalance_w"] is None
        m.world.set_load({"phase": "A", "current_a": 30.0})
        m.run(10)
        assert m.service(LoadControl).control_state is C
    finally:
        m.close()

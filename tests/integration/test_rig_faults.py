"""Rig faults through the whole simulated meter: ``POST /sim/fault`` (or a scenario's ``fault``
signal) changes the world around the meter, the meter's own detection records the events a real
fault would, and clearing the fault (``/sim/fault-clear`` or its duration) ends them.

Each case: a meter with fast supervision, the fault injected through the API, run, the start
events checked, the fault cleared, run, the end events checked; nothing is written to the logs
by the fault code itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hw.relay import RelayFault
from meterd.app.sim_faults import KINDS
from meterd.runtime.load_control import LoadControlUnit
from meterd.services.metering import STATUS_BITS
from tests.simmeter import SimMeter

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
FAST = {"cover_min_s": 2.0, "magnet_min_s": 2.0, "reverse_current_min_s": 10.0, "neutral_mismatch_min_s": 10.0,
        "missing_potential_min_s": 10.0, "phase_sequence_min_s": 10.0, "current_without_voltage_min_s": 10.0,
        "imbalance_min_s": 10.0, "import_only": True}


def open_meter(state_dir: Path, pq: bool = False, relay: bool = False) -> SimMeter:
    sections: dict[str, dict[str, Any]] = {"sim": {"start_utc": START.isoformat(), "current_a": 8.0},
                                           "display": {"kind": "dummy"}, "power_quality": {"enabled": pq},
                                           "supervision": FAST}
    if relay:
        sections["load_control"] = {"max_retries": 1}
    return SimMeter(state_dir, **sections)


def call(meter: SimMeter, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    return asyncio.run(meter.daemon.api.dispatch(method, path, body or {}))


def event_names(meter: SimMeter) -> list[str]:
    status, body = call(meter, "POST", "/events", {"limit": 500})
    assert status == 200
    return [e["name"] for e in body["events"]][::-1]


def new_names(meter: SimMeter, before: int) -> list[str]:
    return event_names(meter)[before:]


def inject(meter: SimMeter, body: dict[str, Any]) -> None:
    status, answer = call(meter, "POST", "/sim/fault", body)
    assert status == 200, answer
    active = call(meter, "GET", "/sim/faults")[1]["active"]
    assert body["kind"] in [a["kind"] for a in active]


def clear(meter: SimMeter, kind: str) -> None:
    status, answer = call(meter, "POST", "/sim/fault-clear", {"kind": kind})
    assert status == 200 and answer["cleared"] == [kind]
    assert kind not in [a["kind"] for a in call(meter, "GET", "/sim/faults")[1]["active"]]


# kind, parameters, seconds on, events while on, seconds after clearing, events after clearing
SUPERVISED = {
    "terminal_cover_open": ({}, 10, ["TERMINAL_COVER_REMOVED"], 10, ["TERMINAL_COVER_CLOSED"]),
    "magnet": ({}, 10, ["STRONG_DC_FIELD"], 10, ["NO_STRONG_DC_FIELD"]),
    "reversed_ct": ({"phase": "L2"}, 30, ["REVERSE_CURRENT_L2"], 30, ["REVERSE_CURRENT_END_L2"]),
    "phase_sequence": ({}, 30, ["PHASE_SEQUENCE_REVERSAL"], 30, ["PHASE_SEQUENCE_NORMAL"]),
    "unbalance": ({"phase": "L3", "current_pct": 10}, 30, ["PHASE_ASYMMETRY"], 30, ["PHASE_ASYMMETRY_END"]),
    "swapped_phases": ({"phase": "L1", "other": "L2"}, 30,
                       ["PHASE_SEQUENCE_REVERSAL", "REVERSE_CURRENT_L1", "REVERSE_CURRENT_L2"], 30,
                       ["PHASE_SEQUENCE_NORMAL", "REVERSE_CURRENT_END_L1", "REVERSE_CURRENT_END_L2"]),
    "power_cut": ({}, 20, ["POWER_DOWN"], 10, ["POWER_UP", "SHORT_POWER_FAILURE"]),
}


@pytest.mark.parametrize("kind", sorted(SUPERVISED))
def test_fault_gives_its_events_and_clears(tmp_path: Path, kind: str) -> None:
    params, on_s, on_events, off_s, off_events = SUPERVISED[kind]
    meter = open_meter(tmp_path)
    try:
        meter.run(10)
        before = len(event_names(meter))
        grid_before = meter.world.grid.state
        inject(meter, {"kind": kind, **params})
        meter.run(on_s)
        assert sorted(set(new_names(meter, before))) == sorted(on_events)
        clear(meter, kind)
        assert meter.world.grid.state.phases == grid_before.phases  # the world is as it was
        meter.run(off_s)
        names = new_names(meter, before)
        assert sorted(set(names)) == sorted(on_events + off_events)
        assert all(names.count(n) == 1 for n in on_events + off_events), names
    finally:
        meter.close()


def test_missing_neutral_shifts_the_star_point_of_an_unbalanced_load(tmp_path: Path) -> None:
    meter = open_meter(tmp_path)
    try:
        for phase, amps in (("A", 16.0), ("B", 8.0), ("C", 2.0)):
            meter.world.set_load({"phase": phase, "current_a": amps})
        meter.run(10)
        before = len(event_names(meter))
        inject(meter, {"kind": "missing_neutral"})
        volts = [p.voltage_v for p in meter.world.grid.state.phases]
        assert volts[0] == pytest.approx(140.3, abs=1.0) and volts[2] > 300  # most load: lowest voltage
        assert meter.world.grid.state.neutral_rms_a() == pytest.approx(0.0, abs=1e-6)  # nothing in the neutral
        meter.run(130)
        on = new_names(meter, before)
        assert "UNDER_VOLTAGE_L1" in on and "OVER_VOLTAGE_L3" in on
        clear(meter, "missing_neutral")
        meter.run(130)
        after = new_names(meter, before)[len(on):]
        assert "VOLTAGE_NORMAL_L1" in after and "VOLTAGE_NORMAL_L3" in after
        assert [p.voltage_v for p in meter.world.grid.state.phases] == [230.0, 230.0, 230.0]
    finally:
        meter.close()


def test_power_cut_without_last_gasp_is_found_by_the_voltages(tmp_path: Path) -> None:
    meter = open_meter(tmp_path)
    try:
        meter.run(10)
        before = len(event_names(meter))
        t0 = meter.clock.utc()
        inject(meter, {"kind": "power_cut_no_last_gasp", "duration_s": 30})
        meter.run(5)
        assert meter.hardware.inputs.states()["power_fail"] is False  # the input never warned
        meter.run(35)
        assert call(meter, "GET", "/sim/faults")[1]["active"] == []  # its duration ended it
        meter.run(10)
        status, body = call(meter, "POST", "/events", {"limit": 500})
        events = [(e["name"], e["utc"]) for e in body["events"]][::-1][before:]
        assert [n for n, _ in events] == ["POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE"]
        assert dt.datetime.fromisoformat(events[0][1]) - t0 < dt.timedelta(seconds=5)
    finally:
        meter.close()


PQ_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "voltage_dip": ({"phase": "L2", "residual_pct": 50}, "VOLTAGE_DIP"),
    "voltage_swell": ({"phase": "all", "magnitude_pct": 120}, "VOLTAGE_SWELL"),
    "interruption": ({"phase": "all"}, "SHORT_INTERRUPTION"),
}


@pytest.mark.parametrize("kind", sorted(PQ_CASES))
def test_grid_events_of_the_power_quality_chain(tmp_path: Path, kind: str) -> None:
    params, name = PQ_CASES[kind]
    meter = open_meter(tmp_path, pq=True)
    try:
        meter.run(3)
        before = len(event_names(meter))
        inject(meter, {"kind": kind, "duration_s": 2, **params})
        meter.run(6)
        names = new_names(meter, before)
        assert names.count(name) == 1, names  # one event, recorded when the condition ended
        assert call(meter, "GET", "/sim/faults")[1]["active"] == []
    finally:
        meter.close()


def test_harmonics_flicker_and_frequency_reach_the_measurements_and_go(tmp_path: Path) -> None:
    meter = open_meter(tmp_path, pq=True)
    try:
        meter.run(3)
        inject(meter, {"kind": "harmonics", "phase": "L1", "order": 5, "magnitude_pct": 8})
        inject(meter, {"kind": "frequency", "frequency_hz": 49.5})
        inject(meter, {"kind": "flicker", "phase": "L3", "f_mod_hz": 8.8, "delta_u_pct": 2.0})
        meter.run(4)
        pq = meter.daemon.status_extras["power_quality"]
        assert pq()["thd_pct"]["U1"] == pytest.approx(8.0, rel=0.02)
        reading = meter.meter.last_reading
        assert reading is not None and reading.frequency_hz == pytest.approx(49.5, abs=0.02)
        assert meter.world.grid.state.phases[2].flicker is not None
        call(meter, "POST", "/sim/fault-clear", {})
        meter.run(4)
        assert pq()["thd_pct"]["U1"] < 0.1
        assert meter.meter.last_reading.frequency_hz == pytest.approx(50.0, abs=0.02)  # type: ignore[union-attr]
        assert meter.world.grid.state.phases[2].flicker is None
    finally:
        meter.close()


RELAY = {"relay_welded": RelayFault.WELDED, "relay_no_feedback": RelayFault.NO_FEEDBACK}


@pytest.mark.parametrize("kind", ["relay_welded", "relay_no_feedback", "relay_coil_open"])
def test_relay_faults_fail_an_open_command(tmp_path: Path, kind: str) -> None:
    meter = open_meter(tmp_path, relay=True)
    try:
        unit = meter.service(LoadControlUnit)
        sim = unit.sim_relay
        assert sim is not None and sim.closed
        meter.run(2)
        before = len(event_names(meter))
        inject(meter, {"kind": kind})
        assert sim.fault is RELAY.get(kind, RelayFault.NONE)
        assert call(meter, "POST", "/relay", {"action": "remote_disconnect"})[0] == 200
        meter.run(30)
        names = new_names(meter, before)
        assert "DISCONNECT_FAILURE" in names and names.count("RELAY_FAULT_RETRIES_EXHAUSTED") == 1
        assert sim.closed is (kind != "relay_no_feedback")  # only the feedback-less relay moved
        clear(meter, kind)
        assert sim.fault is RelayFault.NONE
        if kind != "relay_no_feedback":
            assert unit.relay.sensed_closed() is True  # the auxiliary contact tells the truth again
    finally:
        meter.close()


def test_relay_coil_open_then_cleared_lets_the_relay_move(tmp_path: Path) -> None:
    meter = open_meter(tmp_path, relay=True)
    try:
        sim = meter.service(LoadControlUnit).sim_relay
        assert sim is not None
        inject(meter, {"kind": "relay_coil_open"})
        clear(meter, "relay_coil_open")
        call(meter, "POST", "/relay", {"action": "remote_disconnect"})
        meter.run(5)
        assert sim.closed is False and sim.operations == 1
    finally:
        meter.close()


def test_rtc_battery_low_is_recorded_by_the_battery_watch(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, power_quality={"enabled": False},
                     display={"kind": "dummy", "battery_check_s": 5.0})
    try:
        meter.run(6)
        before = len(event_names(meter))
        inject(meter, {"kind": "rtc_battery_low"})
        meter.run(12)
        assert new_names(meter, before).count("BATTERY_VOLTAGE_LOW") == 1
        clear(meter, "rtc_battery_low")
        meter.run(12)
        assert new_names(meter, before).count("BATTERY_VOLTAGE_LOW") == 1
    finally:
        meter.close()


def test_a_scenario_injects_and_clears_faults(tmp_path: Path) -> None:
    meter = open_meter(tmp_path)
    try:
        meter.run(10)
        before = len(event_names(meter))
        meter.world.load_scenario('[[events]]\nat_s = 5\nsignal = "fault"\nvalue = { kind = "magnet" }\n'
                                  '[[events]]\nat_s = 20\nsignal = "fault_clear"\nvalue = "magnet"\n'
                                  '[[events]]\nat_s = 25\nsignal = "fault"\n'
                                  'value = { kind = "reversed_ct", phase = "L3", duration_s = 30 }\n', "rig")
        meter.run(90)
        assert new_names(meter, before) == ["STRONG_DC_FIELD", "NO_STRONG_DC_FIELD", "REVERSE_CURRENT_L3",
                                            "REVERSE_CURRENT_END_L3"]
    finally:
        meter.close()


BAD: list[tuple[dict[str, Any], str]] = [
    ({"kind": "lightning"}, "expected one of"),
    ({"kind": "voltage_dip", "residual_pct": 0}, "out of range"),
    ({"kind": "voltage_dip", "depth": 50}, "unknown key(s) depth"),
    ({"kind": "magnet", "phase": "L1"}, "unknown parameter(s) ['phase']"),
    ({"kind": "reversed_ct", "phase": "all"}, "choose from"),
    ({"kind": "magnet", "duration_s": -1}, "duration_s"),
    ({"kind": "swapped_phases", "phase": "L1", "other": "L1"}, "must differ"),
    ({"kind": "frequency", "frequency_hz": "50"}, "must be a number"),
]


@pytest.mark.parametrize(("body", "reason"), BAD, ids=[str(b) for b, _ in BAD])
def test_bad_fault_requests_are_refused_and_change_nothing(tmp_path: Path, body: dict[str, Any], reason: str) -> None:
    meter = open_meter(tmp_path)
    try:
        state = meter.world.grid.state
        status, answer = call(meter, "POST", "/sim/fault", body)
        assert status == 400 and reason in answer["error"], answer
        assert meter.world.grid.state is state and meter.world.active == {}
        assert call(meter, "POST", "/sim/fault-clear", {"kind": "lightning"})[0] == 400
    finally:
        meter.close()


def test_every_kind_is_listed_with_its_group_and_parameters(tmp_path: Path) -> None:
    meter = open_meter(tmp_path)
    try:
        status, view = call(meter, "GET", "/sim/faults")
        assert status == 200
        kinds = {k["kind"]: k for k in view["kinds"]}
        assert set(kinds) == set(KINDS)
        assert {k["group"] for k in kinds.values()} == {"grid", "wiring", "relay", "supply", "tamper", "rtc", "time",
                                                         "links", "chip"}
        assert [p["name"] for p in kinds["voltage_dip"]["params"]] == ["phase", "residual_pct"]
        inject(meter, {"kind": "miso_high", "duration_s": 5})  # the chip's faults share the API
        assert [a["kind"] for a in call(meter, "GET", "/sim/faults")[1]["active"]] == ["miso_high"]
    finally:
        meter.close()


def test_rtc_battery_lost_makes_the_clock_invalid_until_a_clock_set_or_the_faults_end(tmp_path: Path) -> None:
    """The RTC reads DATA_INVALID: the meter's own battery watch flags its clock invalid (status
    bit ``clock_invalid``, CLOCK_INVALID once); a clock set (the DLMS write's path) writes the RTC
    and makes it valid; clearing the fault (a new battery, the RTC set again) does too."""
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, power_quality={"enabled": False},
                     display={"kind": "dummy", "battery_check_s": 5.0})
    metering = meter.meter
    invalid_bit = 1 << STATUS_BITS["clock_invalid"]
    try:
        meter.run(6)
        before = len(event_names(meter))
        assert "clock_invalid" not in metering.status_flags()
        inject(meter, {"kind": "rtc_battery_lost"})
        meter.run(2)
        assert "clock_invalid" in metering.status_flags() and metering.status_word() & invalid_bit
        assert new_names(meter, before).count("CLOCK_INVALID") == 1
        assert new_names(meter, before).count("BATTERY_VOLTAGE_LOW") == 1
        meter.run(12)  # still invalid, recorded once
        assert "clock_invalid" in metering.status_flags()
        assert new_names(meter, before).count("CLOCK_INVALID") == 1

        metering.set_clock(metering.now_utc(), "dlms:test")  # a clock set writes the RTC
        meter.run(1)
        assert "clock_invalid" not in metering.status_flags() and not metering.status_word() & invalid_bit
        meter.run(12)
        assert "clock_invalid" not in metering.status_flags()  # the RTC holds a time again
        clear(meter, "rtc_battery_lost")

        inject(meter, {"kind": "rtc_battery_lost"})  # a second loss is a second occurrence
        meter.run(2)
        assert "clock_invalid" in metering.status_flags()
        assert new_names(meter, before).count("CLOCK_INVALID") == 2
        clear(meter, "rtc_battery_lost")
        meter.run(2)
        assert "clock_invalid" not in metering.status_flags()
        meter.run(12)
        assert new_names(meter, before).count("CLOCK_INVALID") == 2
    finally:
        meter.close()


@pytest.mark.parametrize("cut", ["power_cut", "power_cut_no_last_gasp"])
def test_rtc_battery_lost_at_the_next_supply_loss(tmp_path: Path, cut: str) -> None:
    """``when = power_cut``: the battery is gone at once (BATTERY_VOLTAGE_LOW) but the RTC keeps its
    time while the supply holds; the supply's loss stops it, and the meter then finds its clock
    invalid; the fault's end gives it a battery and a time again."""
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, power_quality={"enabled": False},
                     display={"kind": "dummy", "battery_check_s": 5.0})
    metering = meter.meter
    try:
        meter.run(6)
        before = len(event_names(meter))
        inject(meter, {"kind": "rtc_battery_lost", "when": "power_cut"})
        meter.run(12)
        assert new_names(meter, before).count("BATTERY_VOLTAGE_LOW") == 1
        assert "CLOCK_INVALID" not in new_names(meter, before)
        assert "clock_invalid" not in metering.status_flags()
        inject(meter, {"kind": cut})
        meter.run(2)
        clear(meter, cut)
        meter.run(6)
        assert new_names(meter, before).count("CLOCK_INVALID") == 1
        assert "clock_invalid" in metering.status_flags()
        clear(meter, "rtc_battery_lost")
        meter.run(2)
        assert "clock_invalid" not in metering.status_flags()
    finally:
        meter.close()

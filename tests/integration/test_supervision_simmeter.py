"""Supervision through the whole simulated meter: scenario → grid/pins → chip → meter cycle → events.

Each tamper condition is injected by a scenario file (grid changes or the world signals
``cover_open`` / ``magnetic_field``) into a :class:`SimMeter` built with the daemon's own wiring;
the fraud log must hold exactly one start and one end event, stamped when the condition appeared
and when it went away. Also: power cut and restoration, clock-set events, alarms and status,
API routes, and the logs surviving a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.event_codes import LogId
from meterd.services.supervision import Supervision
from tests.simmeter import SimMeter

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
FAST = {"cover_min_s": 2.0, "magnet_min_s": 2.0, "reverse_current_min_s": 10.0, "neutral_mismatch_min_s": 10.0,
        "missing_potential_min_s": 10.0, "phase_sequence_min_s": 10.0, "current_without_voltage_min_s": 10.0,
        "imbalance_min_s": 10.0, "import_only": True}


def open_meter(state_dir: Path, **supervision: object) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat(), "current_a": 8.0},
                    display={"kind": "dummy"}, power_quality={"enabled": False},
                    supervision={**FAST, **supervision})


# condition on (TOML lines of one event at ON_S), condition off (at OFF_S), start and end code names
ON_S, OFF_S, END_S = 30, 150, 220
CASES = {
    "terminal_cover": ('signal = "cover_open"\nvalue = true', 'signal = "cover_open"\nvalue = false',
                       "TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"),
    "magnet": ('signal = "magnetic_field"\nvalue = true', 'signal = "magnetic_field"\nvalue = false',
               "STRONG_DC_FIELD", "NO_STRONG_DC_FIELD"),
    "reverse_current_L3": ('phase = "L3"\npf = -1.0', 'phase = "L3"\npf = 1.0',
                           "REVERSE_CURRENT_L3", "REVERSE_CURRENT_END_L3"),
    "neutral_mismatch": ("neutral_extra_a = 6.0", "neutral_extra_a = 0.0", "NEUTRAL_MISMATCH",
                         "NEUTRAL_MISMATCH_END"),
    "missing_potential_L1": ('phase = "L1"\nvoltage_v = 0.0', 'phase = "L1"\nvoltage_v = 230.0',
                             "MISSING_POTENTIAL_L1", "MISSING_POTENTIAL_END_L1"),
    "current_without_voltage": ('phase = "all"\nvoltage_v = 0.0', 'phase = "all"\nvoltage_v = 230.0',
                                "CURRENT_WITHOUT_VOLTAGE", "CURRENT_WITHOUT_VOLTAGE_END"),
    "phase_sequence": ('phase = "L2"\nvoltage_angle_deg = 120.0\n[[events]]\nat_s = 30\nphase = "L3"\n'
                       'voltage_angle_deg = -120.0',
                       'phase = "L2"\nvoltage_angle_deg = -120.0\n[[events]]\nat_s = 150\nphase = "L3"\n'
                       'voltage_angle_deg = 120.0',
                       "PHASE_SEQUENCE_REVERSAL", "PHASE_SEQUENCE_NORMAL"),
    "imbalance": ('phase = "L1"\ncurrent_a = 16.0\n[[events]]\nat_s = 30\nphase = "L3"\ncurrent_a = 1.0',
                  'phase = "L1"\ncurrent_a = 8.0\n[[events]]\nat_s = 150\nphase = "L3"\ncurrent_a = 8.0',
                  "PHASE_ASYMMETRY", "PHASE_ASYMMETRY_END"),
}

# the alarm bit each tamper sets (besides "fraud attempt")
ALARM_OF = {"terminal_cover": ("TERMINAL_COVER",), "magnet": ("MAGNETIC_FIELD",),
            "reverse_current_L3": ("REVERSE_CURRENT",), "neutral_mismatch": ("NEUTRAL_MISMATCH",),
            "missing_potential_L1": ("MISSING_POTENTIAL",), "current_without_voltage": ("CURRENT_WITHOUT_VOLTAGE",),
            "phase_sequence": ("PHASE_SEQUENCE",), "imbalance": ("CURRENT_IMBALANCE",)}


def call(api: object, method: str, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    return asyncio.run(api.dispatch(method, path, body))  # type: ignore[attr-defined]


def scenario(on: str, off: str) -> str:
    return f"[[events]]\nat_s = {ON_S}\n{on}\n[[events]]\nat_s = {OFF_S}\n{off}\n"


def fraud(meter: SimMeter) -> list[tuple[str, dt.datetime]]:
    log = meter.service(Supervision).recorder.log(LogId.FRAUD)
    return [(ec.lookup(e.code).name, e.utc) for e in log.entries()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_tamper_from_a_scenario_gives_one_start_and_one_end(tmp_path: Path, name: str) -> None:
    on, off, start_name, end_name = CASES[name]
    meter = open_meter(tmp_path)
    try:
        meter.run(10)
        t0 = meter.clock.utc()
        meter.world.load_scenario(scenario(on, off), name)
        meter.run(ON_S + 60)
        assert meter.daemon.status_extras["tamper"]() != []
        assert "tamper" in meter.meter.status_flags()
        meter.run(END_S - ON_S - 60)
        assert fraud(meter) == [(start_name, t0 + dt.timedelta(seconds=ON_S)),
                                (end_name, t0 + dt.timedelta(seconds=OFF_S))]
        assert meter.daemon.status_extras["tamper"]() == []
        alarms = meter.daemon.status_extras["alarms"]()
        assert "fraud_attempt" in alarms["active"]
        assert {kind.lower() for kind in ALARM_OF[name]} <= set(alarms["active"])
    finally:
        meter.close()


def test_chatter_below_the_minimum_duration_gives_nothing(tmp_path: Path) -> None:
    meter = open_meter(tmp_path, cover_min_s=5.0)
    try:
        events = "".join(f'[[events]]\nat_s = {t}\nsignal = "cover_open"\nvalue = {str(t % 6 == 0).lower()}\n'
                         for t in range(6, 120, 3))
        meter.world.load_scenario(events, "chatter")
        meter.run(150)
        assert fraud(meter) == []
    finally:
        meter.close()


def test_power_cut_clock_set_alarms_api_and_restart(tmp_path: Path) -> None:
    meter = open_meter(tmp_path)
    try:
        meter.run(10)
        t0 = meter.clock.utc()
        meter.world.load_scenario('[[events]]\nat_s = 5\nsignal = "power_fail"\nvalue = true\n'
                                  '[[events]]\nat_s = 205\nsignal = "power_fail"\nvalue = false\n'
                                  '[[events]]\nat_s = 220\nsignal = "cover_open"\nvalue = true\n', "cut")
        meter.run(240)
        new = meter.clock.utc() + dt.timedelta(seconds=30)
        old = meter.clock.utc()
        meter.meter.set_clock(new, "test")
        api = meter.daemon.api
        status, body = call(api, "POST", "/events", {"limit": 200})
        assert status == 200
        names = [(e["name"], e["utc"]) for e in body["events"]][::-1]
        assert ("POWER_DOWN", (t0 + dt.timedelta(seconds=5)).isoformat()) in names
        up = [n for n in names if n[0] == "POWER_UP"]
        assert len(up) == 1 and 205 <= (dt.datetime.fromisoformat(up[0][1]) - t0).total_seconds() <= 206
        assert ("LONG_POWER_FAILURE" in [n for n, _ in names])
        assert names[-2:] == [("CLOCK_ADJUSTED_OLD", old.isoformat()), ("CLOCK_ADJUSTED_NEW", new.isoformat())]
        sup = meter.service(Supervision)
        assert sup.alarm_register() & Alarm.LONG_POWER_FAILURE.mask
        assert sup.alarm_register() & Alarm.TERMINAL_COVER.mask
        assert sup.power_counters()["long_failures"] == 1
        status, cleared = call(api, "POST", "/alarms/clear", {})
        assert status == 200 and cleared["register"] == "0x00000000"
        status, fraud_only = call(api, "POST", "/events", {"limit": 5, "log": "fraud"})
        assert [e["name"] for e in fraud_only["events"]] == ["TERMINAL_COVER_REMOVED"]
        before = sup.recent_events(100)
    finally:
        meter.close()
    again = open_meter(tmp_path)
    try:
        sup = again.service(Supervision)
        assert sup.recent_events(100) == before  # a clean stop: no outage recorded at the restart
        assert sup.tamper_status() == ["terminal_cover_open"]
        again.run(10)
        # the simulated cover starts closed: the episode open across the restart ends once
        assert [n for n, _ in fraud(again)] == ["TERMINAL_COVER_REMOVED", "TERMINAL_COVER_CLOSED"]
        assert sup.alarm_register() == 0
    finally:
        again.close()


def test_cover_opened_while_unpowered_is_read_from_the_rtc_latch_once(tmp_path):
    """The RTC's battery-backed timestamp input latched a cover opening during an outage; the
    cover is closed again when the meter starts: one "removed" at the latched time, one "closed"
    at start, nothing more (not at a second read of the latch, not after a restart)."""
    import datetime as _dt

    from meterd.runtime.rtc_tamper import read_rtc_tamper_latch

    latch = tmp_path / "timestamp0"
    opened = _dt.datetime(2025, 12, 31, 23, 10, 5, tzinfo=_dt.UTC)
    latch.write_text(f"{int(opened.timestamp())}\n")
    meter = SimMeter(tmp_path / "state", display={"kind": "dummy"}, supervision={"rtc_tamper_file": str(latch)})
    try:
        started = meter.clock.utc()
        supervision = meter.service(Supervision)
        assert fraud(meter) == [("TERMINAL_COVER_REMOVED", opened), ("TERMINAL_COVER_CLOSED", started)]
        assert latch.read_text() == "0"  # cleared
        latch.write_text(f"{int(opened.timestamp())}\n")  # a driver that cannot clear it
        read_rtc_tamper_latch(latch, supervision, meter.clock.utc(), False)
        meter.run(30)
        assert len(fraud(meter)) == 2  # not recorded twice
        assert supervision.tamper_status() == []
    finally:
        meter.close()
    meter = SimMeter(tmp_path / "state", display={"kind": "dummy"}, supervision={"rtc_tamper_file": str(latch)})
    try:
        meter.run(5)
        assert len(fraud(meter)) == 2
    finally:
        meter.close()

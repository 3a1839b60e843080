"""A meter wired single-phase two-wire (``[meter] wiring = "1P2W"``) through the whole simulated meter.

An hour of meter time on a 1P2W supply (L2 and L3 dark) with a dip, an under-voltage and an
outage on L1: supervision watches L1 alone, so no log holds an event of L2 or L3 and the alarm
register has no missing-voltage bit, while the dip, the under-voltage and the outage of L1 are
seen as on any meter (a power failure and its restoration recorded once); metering is unchanged.
A configuration whose ``[power_quality] phases`` contradicts the wiring is refused at start. The
tamper checks and chip status flags of a single-phase supply under both rule sets, in-process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest

from meterd.api.views import status_table
from meterd.app.daemon import Daemon
from meterd.app.features import load_config
from meterd.app.features.supervision import SupervisionSection
from meterd.app.wiring import meter_wiring
from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.energy import Quantity
from meterd.core.errors import ConfigError
from meterd.core.event_codes import LogId
from meterd.core.reading import PHASES, Channel, PhaseValues, Reading
from meterd.core.tamper import THREE_PHASE_KINDS, InputStates, TamperMonitor
from meterd.services.metering import wired_flag
from meterd.services.supervision import Supervision
from meterd.ui.meter_display import MeterDisplay
from tests.simmeter import SimMeter, sim_config

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)

# L1: an 8 s dip to 150 V, 120 s at 195 V (under-voltage), then a 240 s outage (long: > 180 s)
SCENARIO = """
[[events]]
at_s = 600
phase = "L1"
voltage_v = 150.0
[[events]]
at_s = 608
phase = "L1"
voltage_v = 230.0
[[events]]
at_s = 1200
phase = "L1"
voltage_v = 195.0
[[events]]
at_s = 1320
phase = "L1"
voltage_v = 230.0
[[events]]
at_s = 1800
phase = "L1"
voltage_v = 0.0
current_a = 0.0
[[events]]
at_s = 2040
phase = "L1"
voltage_v = 230.0
current_a = 8.0
"""


def _names(supervision: Supervision) -> dict[LogId, list[tuple[str, dt.datetime]]]:
    return {log_id: [(ec.lookup(e.code).name, e.utc) for e in log.entries()]
            for log_id, log in supervision.recorder.logs.items()}


def test_an_hour_of_a_single_phase_meter_gives_no_event_of_l2_or_l3(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, meter={"wiring": "1P2W", "cycle_s": 4.0}, sim={"start_utc": START.isoformat(), "current_a": 8.0},
                     display={"kind": "dummy"}, power_quality={"enabled": False})
    try:
        grid = meter.world.grid
        assert grid.phases == 1 and [p.on for p in grid.state.phases] == [True, False, False]
        supervision = meter.service(Supervision)
        assert supervision.voltage.settings.phases == (Channel.L1,)
        assert not supervision.tamper.settings.enabled & THREE_PHASE_KINDS
        meter.world.load_scenario(SCENARIO, "1p2w")
        meter.run(3600, cycle_s=4.0)  # every change above falls on a 4-s cycle
        logs = _names(supervision)
        every = [name for entries in logs.values() for name, _ in entries]
        assert not [n for n in every if n.endswith(("_L2", "_L3"))], every
        assert every.count("POWER_DOWN") == 1 and every.count("POWER_UP") == 1
        assert every.count("LONG_POWER_FAILURE") == 1 and "SHORT_POWER_FAILURE" not in every
        down = START + dt.timedelta(seconds=1800)
        assert ("POWER_DOWN", down) in logs[LogId.STANDARD] + logs[LogId.POWER_FAILURE]
        assert [n for n, _ in logs[LogId.POWER_QUALITY]] == ["UNDER_VOLTAGE_L1", "VOLTAGE_NORMAL_L1"]
        assert logs[LogId.FRAUD] == []  # neither the dark phases nor the outage look like tampering
        alarms = supervision.alarm_register()
        assert not alarms & (Alarm.MISSING_VOLTAGE.mask | Alarm.FRAUD_ATTEMPT.mask | Alarm.PHASE_SEQUENCE.mask |
                             Alarm.MISSING_POTENTIAL.mask | Alarm.CURRENT_IMBALANCE.mask)
        assert alarms & Alarm.LONG_POWER_FAILURE.mask and alarms & Alarm.UNDER_VOLTAGE.mask
        reading = meter.meter.last_reading
        assert reading is not None and reading.phase(Channel.L1).voltage_v == pytest.approx(230.0, abs=1.0)
        assert all(reading.phase(ch).voltage_v == 0.0 and reading.phase(ch).current_a == 0.0
                   for ch in (Channel.L2, Channel.L3))
        # metering unchanged: the registers of L2 and L3 exist and stay at 0
        energy = meter.meter.snapshot()
        assert energy.energy(Quantity.ACTIVE_IMPORT, Channel.L1) > 0
        assert energy.energy(Quantity.ACTIVE_IMPORT, Channel.L2) == energy.energy(Quantity.ACTIVE_IMPORT, Channel.L3) == 0
        # the display and the status list L1 alone
        display = meter.service(MeterDisplay)
        shown = [i.ident for i in display.lcd.items]
        assert "voltage_l1" in shown and not [i for i in shown if i.endswith(("_l2", "_l3"))]
        assert display.data().phases == 1
        status = asyncio.run(meter.daemon.api.dispatch("GET", "/status", {}))[1]
        assert list(status["phases"]) == ["L1"] and set(status["energy"]) == {"total", "L1", "L2", "L3"}
        table = status_table(status)
        rows = [line.split()[0] for line in table.splitlines() if line.startswith(("L1", "L2", "L3"))]
        assert rows == ["L1"] and any(line.split() == ["Energy", "total", "L1"] for line in table.splitlines())
        assert not {"sag", "phase_loss", "voltage_sequence_error"} & set(status["status_flags"])  # the dark phases
        assert not meter.meter.status_word() & 0b1110  # no sag, phase loss, voltage sequence bit (0-0:96.5.0.255)
    finally:
        meter.close()


def _sim_toml(meter_lines: str, pq_lines: str) -> str:
    """config/sim.toml without its ``wiring`` line, with ``meter_lines`` and ``pq_lines`` added."""
    text = re.sub(r'(?m)^wiring = "3P4W".*\n', "", (Path(__file__).resolve().parents[2] / "config" / "sim.toml").read_text())
    return text.replace("[meter]\n", f"[meter]\n{meter_lines}", 1).replace(
        "[power_quality]\n", f"[power_quality]\n{pq_lines}", 1)


def test_phases_that_contradict_the_wiring_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "meterd.toml"
    path.write_text(_sim_toml('wiring = "1P2W"\n', "phases = 3\n"))
    with pytest.raises(ConfigError, match=r'power_quality\.phases: 3 contradicts \[meter\] wiring = "1P2W"'):
        load_config(path)
    cfg = sim_config(tmp_path / "state", meter={"wiring": "1P2W"}, power_quality={"phases": 3})
    with pytest.raises(ConfigError, match="contradicts"):  # also when the sections are built in code
        Daemon(cfg).build()
    path.write_text(_sim_toml('wiring = "2P3W"\n', ""))
    with pytest.raises(ConfigError, match=r"meter\.wiring: '2P3W' is not one of '3P4W', '1P2W'"):
        load_config(path)


@pytest.mark.parametrize(("meter_lines", "pq_lines", "wiring", "pq_phases"), [
    ("", "", "3P4W", 3),                        # the default
    ('wiring = "1P2W"\n', "", "1P2W", 1),       # phases follows the wiring
    ('wiring = "1P2W"\n', "phases = 1\n", "1P2W", 1),
    ("", "phases = 1\n", "1P2W", 1),            # the older spelling makes the meter 1P2W
    ("", "phases = 3\n", "3P4W", 3),
])
def test_the_wiring_and_the_phases_of_power_quality(tmp_path: Path, meter_lines: str, pq_lines: str,
                                                   wiring: str, pq_phases: int) -> None:
    path = tmp_path / "meterd.toml"
    path.write_text(_sim_toml(meter_lines, pq_lines))
    cfg = load_config(path)
    resolved = meter_wiring(cfg)
    assert resolved.name == wiring and len(resolved.phases) == pq_phases
    section = cfg.feature("power_quality")
    assert section.pq_settings(230.0, 50.0, len(resolved.phases)).phases == pq_phases


def _single_phase_reading(mono_s: float, l1_power_w: float, status: frozenset[str]) -> Reading:
    """L1 at 230 V carrying 8 A (``l1_power_w`` W), L2 and L3 absent (0 V, 0 A)."""
    l1 = PhaseValues(voltage_v=230.0, current_a=8.0, active_power_w=l1_power_w)
    return Reading(mono_s, (l1, PhaseValues(), PhaseValues()), {}, neutral_current_a=8.0,
                   neutral_current_calc_a=8.0, status=status)


@pytest.mark.parametrize(("phases", "expected"), [
    # three-phase rules on a single-phase supply: every comparison of phases fires
    (PHASES, {"current_imbalance", "phase_sequence", "reverse_current_L1"}),
    # 1P2W: only the reverse current of L1, which is a tamper on any import-only supply
    ((Channel.L1,), {"reverse_current_L1"}),
])
def test_tamper_checks_of_a_single_phase_supply(phases: tuple[Channel, ...], expected: set[str]) -> None:
    section = SupervisionSection(reverse_current_min_s=0.0, phase_sequence_min_s=0.0, imbalance_min_s=0.0,
                                 missing_potential_min_s=0.0, current_without_voltage_min_s=0.0,
                                 neutral_mismatch_min_s=0.0, import_only=True)
    monitor = TamperMonitor(section.settings(phases).tamper)
    flags = frozenset({"voltage_sequence_error", "sag", "phase_loss", "sag_L2", "phase_loss_L3"})
    events = monitor.update(START, 0.0, _single_phase_reading(0.0, -1840.0, flags), InputStates())
    assert {e.tamper.name for e in events if e.started} == expected


def test_status_flags_of_the_phases_wired() -> None:
    flags = ["sag", "phase_loss", "voltage_sequence_error", "current_sequence_error", "sag_L1", "sag_L2",
             "phase_loss_L3", "rev_p_L2", "checksum_error_cs0", "neutral_overcurrent"]
    assert [f for f in flags if wired_flag(f, (Channel.L1,))] == ["sag_L1", "checksum_error_cs0",
                                                                   "neutral_overcurrent"]
    assert [f for f in flags if wired_flag(f, PHASES)] == flags

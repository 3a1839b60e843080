"""``[sim] scenario``: the file named in the config plays from the meter's first cycle, with the
grid events and the world signals (cover, magnet) that ``meterctl sim scenario`` would give."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meterd.core.event_codes import LogId
from meterd.services.supervision import Supervision
from tests.simmeter import SimMeter

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
SCENARIO = """
[[events]]
at_s = 0
phase = "L3"
current_a = 12.0

[[events]]
at_s = 5
signal = "cover_open"
value = true

[[events]]
at_s = 20
phase = "all"
voltage_v = 200.0
"""


def open_meter(state_dir: Path, scenario: str) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": START.isoformat(), "current_a": 5.0, "scenario": scenario},
                    display={"kind": "dummy"}, supervision={"cover_min_s": 2.0})


def test_config_scenario_plays_from_the_first_cycle(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO)
    meter = open_meter(tmp_path / "state", str(path))
    try:
        meter.run(2)
        reading = meter.meter.last_reading
        assert reading is not None
        currents = [p.current_a for p in reading.phases]
        assert currents[2] == pytest.approx(12.0, rel=1e-3) and currents[0] == pytest.approx(5.0, rel=1e-3)
        assert meter.daemon.status_extras["tamper"]() == []
        meter.run(10)  # the cover signal at 5 s reaches the supervision's input pin
        assert meter.daemon.status_extras["tamper"]() == ["terminal_cover_open"]
        log = meter.service(Supervision).recorder.log(LogId.FRAUD)
        assert [e.utc - START for e in log.entries()] == [dt.timedelta(seconds=6)]
        meter.run(10)
        assert meter.meter.last_reading.phases[0].voltage_v == pytest.approx(200.0, rel=1e-3)
    finally:
        meter.close()


def test_without_a_scenario_the_grid_stays_as_configured(tmp_path):
    meter = open_meter(tmp_path / "state", "")
    try:
        meter.run(25)
        assert meter.world.scenario is None
        assert [round(p.current_a, 2) for p in meter.meter.last_reading.phases] == [5.0, 5.0, 5.0]
        assert meter.daemon.status_extras["tamper"]() == []
    finally:
        meter.close()


def test_a_malformed_scenario_stops_the_build(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[events]]\nat_s = "soon"\n')
    with pytest.raises(Exception, match="sim.scenario"):
        open_meter(tmp_path / "state", str(path))

"""Grid/solar changeover in the whole simulated meter with the solar voltage-detect input
(``solar_present_pin``, active high, debounced): a grid failure swaps to solar with one event and
the meter swaps back when the grid returns; without solar present a grid failure is "both lost";
the selected source survives a restart; the pin is validated with the section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterd.app.config import ConfigError
from meterd.app.features import load_config
from meterd.core.disconnect import DisconnectorEvent as Ev
from tests.paths import SIM_CONFIG
from tests.unit.app.test_load_control_feature import LcMeter

CHANGEOVER = {"changeover_grid_pin": 20, "changeover_solar_pin": 21, "solar_present_pin": 16,
              "supply_loss_s": 2.0, "supply_restore_s": 5.0}
SOLAR_PRESENT = '[[events]]\nat_s = 0\nsignal = "solar_present"\nvalue = true\n'


@pytest.fixture
def meters(tmp_path: Path):
    made: list[LcMeter] = []

    def make(sub: str = "m", **lc: Any) -> LcMeter:
        m = LcMeter(tmp_path / sub, **{**CHANGEOVER, **lc})
        made.append(m)
        return m

    yield make
    for m in made:
        if not m.closed:
            m.close()


def swaps(m: LcMeter) -> list[int]:
    supply = {int(Ev.SUPPLY_SWAP_TO_SOLAR), int(Ev.SUPPLY_SWAP_TO_GRID), int(Ev.SUPPLY_BOTH_LOST)}
    return [c for c in m.codes() if c in supply]


def test_grid_failure_swaps_to_solar_once_and_back_when_the_grid_returns(meters) -> None:
    m = meters()
    m.world.load_scenario(SOLAR_PRESENT, "solar.toml")
    m.run(8)                                         # solar present long enough to be trusted
    co = m.f.changeover
    assert co is not None and co.closed("grid") and m.relay()["supply"] == "grid"
    assert m.relay()["solar_present"] is True and swaps(m) == []
    m.world.set_load({"voltage_v": 0.0})             # the grid fails
    m.run(1)
    assert co.closed("grid")                         # not before loss_duration_s
    m.run(4)
    assert co.closed("solar") and not co.closed("grid") and m.relay()["supply"] == "solar"
    assert swaps(m) == [int(Ev.SUPPLY_SWAP_TO_SOLAR)]
    assert m.f.store.load().supply_source == "solar"
    m.world.set_load({"voltage_v": 230.0})           # the grid returns
    m.run(4)
    assert co.closed("solar")                        # it must stay for restore_duration_s first
    m.run(4)
    assert co.closed("grid") and not co.closed("solar") and m.relay()["supply"] == "grid"
    assert swaps(m) == [int(Ev.SUPPLY_SWAP_TO_SOLAR), int(Ev.SUPPLY_SWAP_TO_GRID)]
    event = next(e for e in m.f.events.recent if e["code"] == int(Ev.SUPPLY_SWAP_TO_SOLAR))
    assert event["solar_present"] is True and event["solar_v"] is None and event["grid_v"] < 1.0


def test_without_solar_present_a_grid_failure_is_both_lost(meters) -> None:
    m = meters()
    m.run(3)
    assert m.relay()["solar_present"] is False
    m.world.set_load({"voltage_v": 0.0})
    m.run(6)
    assert m.f.changeover.closed("grid") and swaps(m) == [int(Ev.SUPPLY_BOTH_LOST)]


def test_a_bouncing_detect_output_does_not_count(meters) -> None:
    m = meters()
    m.run(2)
    pin = m.world.pins.pin(16)
    for _ in range(5):                               # edges closer together than the debounce time
        pin.drive_high()
        pin.drive_low()
    m.run(2)
    assert m.relay()["solar_present"] is False and m.f.solar_input.edges >= 10


def test_the_selected_source_survives_a_restart(meters) -> None:
    m = meters("r")
    m.world.load_scenario(SOLAR_PRESENT, "solar.toml")
    m.run(8)
    m.world.set_load({"voltage_v": 0.0})
    m.run(5)
    assert m.relay()["supply"] == "solar"
    m.close()
    m2 = meters("r")
    assert m2.f.changeover.closed("solar") and not m2.f.changeover.closed("grid")
    m2.world.pins.pin(16).drive_high()               # the solar detect output is still high
    m2.run(3)                                        # the grid is live again (fresh simulated world)
    assert m2.relay()["supply"] == "solar"          # but must stay healthy restore_duration_s first
    m2.run(5)
    assert m2.relay()["supply"] == "grid" and swaps(m2) == [int(Ev.SUPPLY_SWAP_TO_GRID)]


def test_solar_present_pin_is_validated(tmp_path: Path) -> None:
    text = SIM_CONFIG.read_text()
    path = tmp_path / "c.toml"
    path.write_text(text + "\n[load_control]\nsolar_present_pin = 16\n")   # no changeover
    with pytest.raises(ConfigError):
        load_config(path)
    path.write_text(text + "\n[load_control]\nchangeover_grid_pin = 20\nchangeover_solar_pin = 21\n"
                    "solar_present_pin = 26\n")                         # the button's pin
    with pytest.raises(ConfigError):
        load_config(path)
    path.write_text(text + "\n[load_control]\nchangeover_grid_pin = 20\nchangeover_solar_pin = 21\n"
                    "solar_present_pin = 16\nsolar_present_debounce_s = 0.1\n")
    assert load_config(path).feature("load_control").solar_present_pin == 16

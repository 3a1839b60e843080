"""The meter LCD feature inside a whole simulated meter: live values, scroll list from config, button, battery mode."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from meterd.app.features.display import DisplaySection
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.services.payment import PaymentService
from meterd.ui.display_data import DisplayData
from meterd.ui.live_values import live_values
from meterd.ui.meter_display import MeterDisplay, resolve_items
from meterd.ui.screens import render_item
from tests.simmeter import SimMeter


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = SimMeter(tmp_path)
    yield m
    m.close()


def api(meter: SimMeter, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    return asyncio.run(meter.daemon.api.dispatch(method, path, body or {}))


def test_screen_png_follows_the_live_meter_and_frames_only_on_change(meter: SimMeter, tmp_path: Path) -> None:
    display = meter.service(MeterDisplay)
    meter.run(3)
    first = display.lcd.current
    screen = tmp_path / "lcd" / "screen.png"
    drawn = Image.open(screen)
    assert drawn.size == (128, 64)
    expected = render_item(first, display_data(meter), display.lcd.lang, False)
    assert drawn.convert("1").tobytes() == expected.tobytes()
    frames = display.lcd.frames
    meter.run(3)  # steady load, same item, energy below the next displayed digit: few or no frames
    assert display.lcd.frames - frames <= 3
    data = display_data(meter)
    reading = meter.meter.last_reading
    assert reading is not None
    assert data.voltage_v[0] == pytest.approx(reading.phases[0].voltage_v)
    assert data.active_power_w == pytest.approx(reading.total_active_power_w)
    meter.meter.persist()  # the display shows the last committed registers
    data = display_data(meter)
    assert data.import_energy_kwh == meter.meter.registers.get(Quantity.ACTIVE_IMPORT) / 1e6 > 0


def display_data(meter: SimMeter) -> DisplayData:
    """What the meter LCD shows now."""
    return meter.service(MeterDisplay).data()  # type: ignore[no-any-return]


def with_feature(monkeypatch: pytest.MonkeyPatch, name: str, section: object) -> None:
    """SimMeter's overrides cover the core sections only: put a feature section in its config."""
    import tests.simmeter as simmeter

    plain = simmeter.sim_config

    def patched(state_dir: Path, **sections: dict) -> object:
        cfg = plain(state_dir, **sections)
        return dataclasses.replace(cfg, features={**cfg.features, name: section})

    monkeypatch.setattr(simmeter, "sim_config", patched)


def test_scroll_list_from_obis_codes_and_button_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_feature(monkeypatch, "display", DisplaySection(items=("1-0:1.8.0.255", "voltage_l2", "0-0:1.0.0.255"),
                                                        scroll_s=5.0))
    meter = SimMeter(tmp_path)
    try:
        lcd = meter.service(MeterDisplay).lcd
        assert [i.ident for i in lcd.items] == ["import", "voltage_l2", "time"]
        meter.run(5)
        assert lcd.current.ident == "voltage_l2"  # auto-scroll after 5 s
        code, view = api(meter, "POST", "/display/button", {"button": "next"})
        assert code == 200, view
        assert view["item"] == "time" and view["obis"] == "0-0:1.0.0.255"
        meter.run(10)
        assert lcd.current.ident == "time"  # the button pauses auto-scroll (30 s)
        code, view = api(meter, "POST", "/display/show", {"item": "1-0:1.8.0.255"})
        assert view["item"] == "import"
        assert api(meter, "POST", "/display/lang", {"lang": "ar"})[1]["lang"] == "ar"
        assert api(meter, "POST", "/display/button", {"button": "sideways"})[0] == 400
    finally:
        meter.close()


def test_unknown_items_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match="1-0:99.9.9.255"):
        DisplaySection(items=("credit", "1-0:99.9.9.255"))
    assert [i.ident for i in resolve_items(["1-0:32.7.0.255"])] == ["voltage_l1"]


def test_power_cut_switches_to_the_battery_list_and_scenario_button(meter: SimMeter) -> None:
    lcd = meter.service(MeterDisplay).lcd
    meter.run(2)
    assert not lcd.on_battery
    meter.world.power_cut(True)
    meter.run(2)
    assert lcd.on_battery and all(i.on_battery for i in lcd.items)
    meter.world.power_cut(False)
    meter.run(2)
    assert not lcd.on_battery
    before = lcd.current.ident
    meter.world.load_scenario('[[events]]\nat_s = 1\nsignal = "display_button"\nvalue = true\n', "button")
    meter.run(2)
    assert lcd.current.ident != before


def test_live_values_carry_credit_relay_and_tamper(meter: SimMeter) -> None:
    meter.run(2)
    values = live_values(meter.service(MeterDisplay).sources)
    assert values["power_w"] == pytest.approx(meter.meter.last_reading.total_active_power_w, abs=0.1)
    assert isinstance(values["relay"], bool) and values["tamper"] is False
    if PaymentService in meter.daemon.registry:
        assert values["unit"] == ("kWh (postpaid)" if values["mode"] == "postpaid" else "kWh")
        assert "credit" in [i.ident for i in meter.service(MeterDisplay).lcd.items]


def battery_events(meter: SimMeter) -> list[object]:
    from meterd.core import event_codes
    from meterd.core.event_codes import LogId

    code = event_codes.code("BATTERY_VOLTAGE_LOW")
    return [e for e in meter.service(EventRecorder).log(LogId.STANDARD).entries() if e.code == code]


def battery_scenario(*changes: tuple[float, bool]) -> str:
    return "".join(f'[[events]]\nat_s = {at}\nsignal = "battery_low"\nvalue = {str(v).lower()}\n\n' for at, v in changes)


def test_rtc_battery_low_shows_on_the_lcd_and_logs_one_event_per_occurrence(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    try:
        display = meter.service(MeterDisplay)
        lcd = display.lcd
        lcd.show_item("battery")
        meter.run(2)
        assert display_data(meter).battery_low is False and display.view()["rtc_battery"] == "ok"
        meter.world.load_scenario(battery_scenario((1, True)), "battery")
        meter.run(62)  # flags are read every battery_check_s = 60 s
        lcd.show_item("battery")
        lcd.tick()
        data = display_data(meter)
        assert data.battery_low and display.view()["rtc_battery"] == "low"
        from meterd.ui.screens import screen_key

        assert screen_key(lcd.current, data, "en", False)[-1] == ("LOW", "replace", "استبدال")
        drawn = Image.open(tmp_path / "lcd" / "screen.png").convert("1")
        assert drawn.tobytes() == render_item(lcd.current, data, "en", False).tobytes()
        assert drawn.tobytes() != render_item(lcd.current, dataclasses.replace(data, battery_low=False)).tobytes()
        meter.run(180)  # still low: no second event
        assert len(battery_events(meter)) == 1
        meter.world.load_scenario(battery_scenario((1, False), (100, True)), "battery again")
        meter.run(200)  # good, then low again: a new occurrence
        assert len(battery_events(meter)) == 2
    finally:
        meter.close()
    meter = SimMeter(tmp_path)  # a restart with the battery still low is the same occurrence
    try:
        meter.world.load_scenario(battery_scenario((0, True)), "still low")
        meter.run(3)
        assert meter.service(MeterDisplay).battery.low is True
        assert len(battery_events(meter)) == 2
    finally:
        meter.close()


def test_gpio_scroll_button_is_debounced_and_steps_the_list(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, display={"button_pin": 16, "button_debounce_s": 0.05})
    try:
        display = meter.service(MeterDisplay)
        pin = meter.hardware.pin_factory.pin(16)
        meter.run(1)
        start = display.lcd.current.ident
        idents = [i.ident for i in display.lcd.items]
        for _ in range(3):  # contact bounce: many edges at one instant, then held down
            pin.drive_low()
            pin.drive_high()
        pin.drive_low()
        meter.run(1)
        assert display.presses == 1 and display.lcd.current.ident == idents[(idents.index(start) + 1) % len(idents)]
        meter.run(10)
        assert display.presses == 1  # held: one press; the button paused auto-scroll (6 s)
        pin.drive_high()
        meter.run(1)
        pin.drive_low()  # a glitch shorter than the debounce time is not a press
        pin.drive_high()
        meter.run(1)
        assert display.presses == 1
        pin.drive_low()
        meter.run(1)
        pin.drive_high()
        meter.run(1)
        assert display.presses == 2 and display.view()["button_presses"] == 2
    finally:
        meter.close()

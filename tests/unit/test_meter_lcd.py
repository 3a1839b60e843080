"""Meter LCD controller: scroll list, auto-scroll and button, battery mode, language, frames to a luma device."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from luma.core.device import dummy

from meterd.core.clock import SimClock
from meterd.ui.display_data import DisplayData
from meterd.ui.meter_lcd import MeterLcd
from meterd.ui.screens import DEFAULT_ITEMS, items_from_ids, render_item


def make(**kw) -> tuple[SimClock, dummy, MeterLcd]:
    clock = SimClock()
    device = dummy(width=128, height=64, mode="1")
    return clock, device, MeterLcd(device, clock, **kw)


def test_auto_scroll_and_frames() -> None:
    clock, device, lcd = make(items=items_from_ids(["credit", "import", "time"]), scroll_s=5)
    assert lcd.tick() and lcd.current.ident == "credit"
    assert not lcd.tick()  # nothing changed: no frame
    clock.advance(5)
    assert lcd.tick() and lcd.current.ident == "import"
    assert device.image.tobytes() == render_item(lcd.current, DisplayData()).tobytes()
    for _ in range(2):
        clock.advance(5)
        lcd.tick()
    assert lcd.current.ident == "credit"  # wrapped around


def test_button_scroll_pauses_auto_scroll() -> None:
    clock, _, lcd = make(items=items_from_ids(["credit", "import", "export"]), scroll_s=5, button_pause_s=30)
    lcd.button_next()
    assert lcd.current.ident == "import"
    clock.advance(20)
    lcd.tick()
    assert lcd.current.ident == "import"
    clock.advance(11)
    lcd.tick()
    assert lcd.current.ident == "export"
    lcd.button_previous()
    lcd.show_item("credit")
    assert lcd.current.ident == "credit"


def test_battery_mode_keeps_last_values_and_shows_battery_items_only() -> None:
    clock, device, lcd = make()
    data = DisplayData(credit=42.0, local_time=dt.datetime(2026, 5, 1, 12, 0, 0))
    lcd.update(data)
    lcd.show_item("voltage_l1")
    lcd.set_mains(False)
    assert all(i.on_battery for i in lcd.items) and lcd.current.ident == "credit"
    lcd.update(dataclasses.replace(data, credit=0.0, local_time=dt.datetime(2026, 5, 1, 12, 0, 5)))
    lcd.tick()
    assert device.image.tobytes() == render_item(lcd.current, dataclasses.replace(
        data, local_time=dt.datetime(2026, 5, 1, 12, 0, 5)), on_battery=True).tobytes()
    lcd.set_mains(True)
    assert len(lcd.items) == len(DEFAULT_ITEMS)


def test_language_and_configuration_errors() -> None:
    _, device, lcd = make()
    lcd.tick()
    english = device.image.tobytes()
    lcd.set_language("ar")
    lcd.tick()
    assert device.image.tobytes() != english
    with pytest.raises(ValueError):
        lcd.set_language("fr")
    with pytest.raises(KeyError):
        items_from_ids(["credit", "nope"])
    with pytest.raises(ValueError):
        DisplayData.from_mapping({"credit": 1.0, "creditt": 2.0})
    assert DisplayData.from_mapping({"voltage_v": [1.0, 2.0, 3.0]}).voltage_v == (1.0, 2.0, 3.0)


def test_every_item_renders_and_obis_codes_are_unique() -> None:
    obis = [i.obis for i in DEFAULT_ITEMS]
    assert len(set(obis)) == len(obis)
    for item in DEFAULT_ITEMS:
        for lang in ("en", "ar"):
            image = render_item(item, DisplayData(), lang)
            assert image.getbbox() is not None


def test_pairing_overlay_replaces_and_returns_to_the_scroll_list() -> None:
    from meterd.ui.screens import render_pairing

    _, device, lcd = make()
    lcd.show_pairing("12345678")
    assert lcd.tick()
    assert device.image.tobytes() == render_pairing("12345678", None).tobytes()
    lcd.show_pairing("12345678", "654321")
    assert lcd.tick()
    lcd.end_pairing()
    lcd.tick()
    assert device.image.tobytes() == render_item(lcd.current, DisplayData()).tobytes()

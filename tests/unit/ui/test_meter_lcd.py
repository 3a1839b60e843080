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


def _glyph(font: object, ch: str) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("1", (40, 40), 0)
    ImageDraw.Draw(image).text((5, 5), ch, font=font, fill=1)  # type: ignore[arg-type]
    return image.tobytes()


def test_every_tamper_id_has_labels_that_fit_and_have_glyphs() -> None:
    from hw.lcd import load_font, text_width
    from meterd.core.tamper import ALL_TAMPERS
    from meterd.ui.screens import tamper_label

    names = [t.name for t in ALL_TAMPERS] + ["tamper"]
    arabic_font = load_font(12, arabic=True)
    missing = _glyph(arabic_font, "\ue000")  # a private-use code point: the font's "no glyph" box
    assert _glyph(arabic_font, "+") == missing  # why the count is drawn in the Latin font
    for name in names:
        en, ar = tamper_label(name, "en"), tamper_label(name, "ar")
        assert (en == "Tamper") == (name == "tamper"), name  # every detector has its own label
        assert "_" not in en and text_width(en + " +9", 11) <= 127, en
        assert text_width(ar, 12) + text_width("+9", 11) + 4 <= 127, ar
        assert all(_glyph(arabic_font, ch) != missing for ch in ar if not ch.isspace()), ar
    assert tamper_label("reverse_current_L2", "en") == "Reverse I L2"
    assert tamper_label("reverse_current_L2", "ar").endswith("ف2")


def test_tamper_screen_shows_the_first_item_and_a_count() -> None:
    from meterd.ui.screens import ITEMS_BY_ID, screen_key

    data = DisplayData(magnet=True, tamper_other=("phase_sequence", "current_imbalance"))
    assert screen_key(ITEMS_BY_ID["tamper"], data, "en", False)[-1] == ("ALARM", "Magnet +2", "مجال مغناطيسي +2")
    one = DisplayData(tamper_other=("neutral_mismatch",))
    assert screen_key(ITEMS_BY_ID["tamper"], one, "en", False)[-1] == ("ALARM", "Neutral fault", "خلل المحايد")

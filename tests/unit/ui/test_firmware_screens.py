"""The software identification screens: a long identifier shrinks to fit, the checksum splits."""

from __future__ import annotations

from meterd.ui.display_data import DisplayData
from meterd.ui.screens import ITEMS_BY_ID, _value, render_item


def test_a_long_identifier_is_shrunk_not_clipped() -> None:
    data = DisplayData(firmware_id="PMM-CORE 10.12.3")
    for lang in ("en", "ar"):
        image = render_item(ITEMS_BY_ID["firmware"], data, lang)
        value_rows = image.crop((0, 26, 128, 44))
        assert value_rows.getbbox() is not None
        assert all(value_rows.getpixel((0, y)) == 0 for y in range(value_rows.height))  # nothing cut at the left


def test_checksum_first_digits_large_next_on_the_unit_line() -> None:
    data = DisplayData(firmware_checksum="0123abcd" * 8)
    assert _value(ITEMS_BY_ID["firmware_sig"], data) == ("0123ABCD", "0123ABCD0123ABCD", "0123ABCD0123ABCD")
    assert _value(ITEMS_BY_ID["firmware"], DisplayData())[0] == "--"

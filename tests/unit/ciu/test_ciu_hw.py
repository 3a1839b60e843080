"""LCD back ends and text drawing (hw.lcd), serial helpers (hw.serial_link), CIU app configuration."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import hw.lcd as lcd
from ciu.app import CiuConfigError, load_config, read_pair_key, write_pair_key
from hw.serial_link import PacedWriter, SimWire, char_time_s
from tests.paths import REPO


class FakeSpi:
    """Records what luma writes, like spidev.SpiDev would send it."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.mode = 0
        self.max_speed_hz = 0

    def open(self, bus: int, device: int) -> None:
        pass

    def writebytes(self, data) -> None:
        self.writes.append(list(data))

    writebytes2 = writebytes

    def close(self) -> None:
        pass


def test_st7567_through_gpiozero_pins(mock_pins) -> None:
    spi = FakeSpi()
    device = lcd.make_device("st7567", spi=spi, gpio_dc=24, gpio_rst=25, gpio_light=18, pin_factory=mock_pins)
    init_bytes = sum(len(w) for w in spi.writes)
    device.display(Image.new("1", (128, 64), 1))
    assert sum(len(w) for w in spi.writes) - init_bytes >= 128 * 64 // 8
    rst = [state for _, state in mock_pins.pin(25).states]
    assert rst[-2:] == [False, True]  # reset pulsed low then released
    assert mock_pins.pin(18).state  # backlight on
    assert len(mock_pins.pin(24).states) > 2  # data/command line toggled


def test_capture_device_writes_png_frames(tmp_path: Path) -> None:
    device = lcd.make_device("capture", 240, 240, "RGB", capture_dir=tmp_path)
    device.display(Image.new("RGB", (240, 240), (255, 0, 0)))
    frames = list(tmp_path.glob("frame_*.png"))
    assert len(frames) == 1 and Image.open(frames[0]).size == (240, 240)
    with pytest.raises(lcd.LcdError):
        lcd.make_device("hd44780")


def test_arabic_fallback_without_raqm_draws_shaped_text(monkeypatch) -> None:
    text = "الرصيد"

    def draw(use_raqm: bool) -> Image.Image:
        monkeypatch.setattr(lcd, "raqm_available", lambda: use_raqm)
        lcd.load_font.cache_clear()
        image = Image.new("L", (120, 30), 0)
        lcd.draw_text(ImageDraw.Draw(image), (119, 2), text, 20, 255, anchor="ra")
        return image

    fallback = draw(False)
    assert fallback.getbbox() is not None
    if lcd.features.check("raqm"):
        shaped = draw(True)
        # both are joined and right-to-left: nearly the same ink in nearly the same place
        box_a, box_b = fallback.getbbox(), shaped.getbbox()
        assert abs(box_a[0] - box_b[0]) <= 3 and abs(box_a[2] - box_b[2]) <= 3
    lcd.load_font.cache_clear()
    assert lcd.is_arabic(text) and not lcd.is_arabic("kWh 12.5")


def test_sim_wire_paces_bytes_and_paced_writer_sleeps_per_character() -> None:
    now = [0.0]
    wire = SimWire(lambda: now[0], baud=9600)
    wire.a.write(b"abc")
    assert wire.b.read() == b""
    now[0] = 2 * char_time_s(9600) + 1e-9
    assert wire.b.read() == b"ab"
    now[0] = 1.0
    assert wire.b.read() == b"c"
    sleeps: list[float] = []
    sink = bytearray()

    class Sink:
        def write(self, data: bytes) -> int:
            sink.extend(data)
            return len(data)

    PacedWriter(Sink(), 1200, sleep=sleeps.append).write(b"xyz")
    assert sink == b"xyz" and sleeps == [10 / 1200] * 3


def test_ciu_config_is_strict_and_key_file_is_private(tmp_path: Path) -> None:
    cfg = tmp_path / "ciu.toml"
    cfg.write_text('[link]\nbaud = 19200\n[display]\nkind = "dummy"\n')
    config = load_config(str(cfg), {"ui": {"lang": "ar"}})
    assert config["link"]["baud"] == 19200 and config["display"]["kind"] == "dummy" and config["ui"]["lang"] == "ar"
    cfg.write_text("[link]\nbaudrate = 19200\n")
    with pytest.raises(CiuConfigError, match="link.baudrate"):
        load_config(str(cfg), {})
    with pytest.raises(CiuConfigError):
        load_config(None, {"link": {"baud": "fast"}})
    key_path = tmp_path / "state" / "pair.key"
    assert read_pair_key(key_path) is None
    write_pair_key(key_path, bytes(range(32)))
    assert read_pair_key(key_path) == bytes(range(32))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_buzzer_may_not_share_a_keypad_line() -> None:
    with pytest.raises(CiuConfigError, match="buzzer.pin: GPIO17 is a keypad line"):
        load_config(None, {"keypad": {"kind": "matrix", "rows": [5, 6, 16, 17], "cols": [19, 20, 21, 26]},
                           "buzzer": {"pin": 17}})
    image = REPO / "image" / "variants" / "ciu" / "etc" / "ciu" / "ciu.toml"
    assert load_config(str(image), {})["buzzer"]["pin"] == 23  # the image's pins are all distinct


def test_a_missing_display_or_keypad_is_switched_off_with_one_line(caplog) -> None:
    import logging

    from ciu.app import build_display, interface_or_none
    from hw.keypad import NoKeypad

    display_cfg = {"kind": "st7789", "width": 240, "height": 240, "spi_port": 6, "spi_device": 3, "gpio_dc": 24,
                   "gpio_rst": 25, "gpio_light": 18}
    with caplog.at_level(logging.INFO):
        display = interface_or_none("display", lambda: build_display(display_cfg),
                                    lambda: lcd.make_device("dummy", 240, 240, "RGB"))
    assert display.size == (240, 240)  # a dummy: the CIU runs on
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "display is off" in errors[0].getMessage() and "/dev/spidev6.3" in errors[0].getMessage()

    def no_gpio() -> object:
        from hw.keypad import KeypadError

        raise KeypadError("keypad on GPIO rows [5], columns [12] unavailable: no GPIO chip")

    keypad = interface_or_none("keypad", no_gpio, NoKeypad)
    assert isinstance(keypad, NoKeypad) and "keypad is off" in caplog.records[-1].getMessage()

"""LCD back ends (luma.lcd on SPI, luma's dummy and capture devices) and the text drawing they share.

- :func:`make_device` builds a luma device: ``"dummy"`` (in memory), ``"capture"`` (one PNG per
  frame in a directory), ``"gif"`` (animated GIF), ``"png"`` (:class:`PngDevice`: the current
  screen as ``screen.png`` plus a bounded ring of the last frames, for long simulator runs), or a real controller ``"st7567"`` (128x64
  mono meter LCD) / ``"st7789"`` (240x240 colour CIU LCD) on SPI, with its DC/RST/backlight lines
  driven through gpiozero (:class:`GpioZeroAdapter`), so neither RPi.GPIO nor rpi-lgpio is needed.
- :func:`draw_text` draws Latin text with DejaVu Sans (basic layout) and Arabic with Noto Sans
  Arabic UI, shaped and right-to-left (Pillow raqm, or arabic-reshaper + python-bidi when raqm
  is missing). Fonts come from ``assets/fonts`` (``PMM_FONT_DIR`` overrides).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, features

from hw.errors import HwError

_log = logging.getLogger("hw.lcd")

DEVICE_KINDS = ("dummy", "capture", "gif", "png", "st7567", "st7789")


class LcdError(HwError):
    """Base of the errors of the LCD back ends."""


# ---------------------------------------------------------------------------------------------
# Fonts and text
# ---------------------------------------------------------------------------------------------


def font_dir() -> Path:
    """Directory of the shipped TTF files."""
    override = os.environ.get("PMM_FONT_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "assets" / "fonts"


def is_arabic(text: str) -> bool:
    """True when ``text`` contains Arabic letters (U+0600-U+06FF, presentation forms)."""
    return any("\u0600" <= ch <= "\u06ff" or "\ufb50" <= ch <= "\ufeff" for ch in text)


def raqm_available() -> bool:
    return bool(features.check("raqm"))


@functools.lru_cache(maxsize=64)
def load_font(size_px: int, bold: bool = False, arabic: bool = False) -> ImageFont.FreeTypeFont:
    """The shipped font for a script at ``size_px`` pixels (cached)."""
    if arabic:
        name = "NotoSansArabicUI-Bold.ttf" if bold else "NotoSansArabicUI-Regular.ttf"
        layout = ImageFont.Layout.RAQM if raqm_available() else ImageFont.Layout.BASIC
    else:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        layout = ImageFont.Layout.BASIC
    path = font_dir() / name
    if not path.is_file():
        raise LcdError(f"font {path} is missing")
    return ImageFont.truetype(str(path), size_px, layout_engine=layout)


def _visual_order(text: str) -> str:
    """Arabic in display order for the basic layout (no raqm): reshape, then bidi reorder."""
    import arabic_reshaper
    from bidi import get_display

    return str(get_display(arabic_reshaper.reshape(text)))


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size_px: int,
              fill: Any = 255, anchor: str = "la", bold: bool = False) -> tuple[int, int, int, int]:
    """Draw ``text`` at ``xy`` (Arabic shaped, right-to-left); returns the bounding box drawn."""
    arabic = is_arabic(text)
    font = load_font(size_px, bold, arabic)
    if not arabic:
        draw.text(xy, text, font=font, fill=fill, anchor=anchor)
        return tuple(int(v) for v in draw.textbbox(xy, text, font=font, anchor=anchor))  # type: ignore[return-value]
    if raqm_available():
        draw.text(xy, text, font=font, fill=fill, anchor=anchor, direction="rtl", language="ar")
        box = draw.textbbox(xy, text, font=font, anchor=anchor, direction="rtl", language="ar")
        return tuple(int(v) for v in box)  # type: ignore[return-value]
    visual = _visual_order(text)
    draw.text(xy, visual, font=font, fill=fill, anchor=anchor)
    return tuple(int(v) for v in draw.textbbox(xy, visual, font=font, anchor=anchor))  # type: ignore[return-value]


def text_width(text: str, size_px: int, bold: bool = False) -> int:
    """Advance width (px) of ``text`` as :func:`draw_text` would draw it."""
    arabic = is_arabic(text)
    font = load_font(size_px, bold, arabic)
    if arabic and raqm_available():
        return int(font.getlength(text, direction="rtl", language="ar"))
    return int(font.getlength(_visual_order(text) if arabic else text))


# ---------------------------------------------------------------------------------------------
# GPIO adapter and device factory
# ---------------------------------------------------------------------------------------------


class GpioZeroAdapter:
    """The RPi.GPIO surface luma uses (setup/output/cleanup), mapped onto gpiozero output devices."""

    OUT = 0
    IN = 1
    LOW = 0
    HIGH = 1
    BCM = 11
    PUD_OFF = 20

    def __init__(self, pin_factory: Any = None) -> None:
        self._factory = pin_factory
        self._outputs: dict[int, Any] = {}

    def setmode(self, mode: int) -> None:
        """BCM numbering is the only one used."""

    def setwarnings(self, flag: bool) -> None:
        """gpiozero reports its own warnings."""

    def setup(self, pin: int | list[int], direction: int, **_: Any) -> None:
        from gpiozero import DigitalOutputDevice

        for number in pin if isinstance(pin, list) else [pin]:
            if number not in self._outputs:
                self._outputs[number] = DigitalOutputDevice(number, pin_factory=self._factory)

    def output(self, pin: int, value: int | bool) -> None:
        self._outputs[pin].value = 1 if value else 0

    def cleanup(self, pin: int | None = None) -> None:
        numbers = [pin] if pin is not None else list(self._outputs)
        for number in numbers:
            device = self._outputs.pop(number, None)
            if device is not None:
                device.close()


def make_device(kind: str = "dummy", width: int = 128, height: int = 64, mode: str = "1", rotate: int = 0,
                capture_dir: str | Path | None = None, spi: Any = None, spi_port: int = 1, spi_device: int = 0,
                gpio_dc: int = 24, gpio_rst: int = 25, gpio_light: int | None = None,
                bus_speed_hz: int = 4_000_000, pin_factory: Any = None) -> Any:
    """Build a luma device of ``kind`` (see :data:`DEVICE_KINDS`).

    Real controllers use SPI ``spi_port``.``spi_device`` (or the spidev-like object ``spi``) and
    BCM pins ``gpio_dc``, ``gpio_rst`` and optionally ``gpio_light`` (backlight, active high).
    """
    if kind == "dummy":
        from luma.core.device import dummy

        return dummy(width=width, height=height, rotate=rotate, mode=mode)
    if kind in ("capture", "gif"):
        return _emulator(kind, width, height, mode, rotate, capture_dir)
    if kind == "png":
        return PngDevice(Path(capture_dir or "."), width, height, mode)
    if kind in ("st7567", "st7789"):
        return _real(kind, width, height, rotate, spi, spi_port, spi_device, gpio_dc, gpio_rst, gpio_light,
                     bus_speed_hz, pin_factory)
    raise LcdError(f"unknown LCD kind {kind!r}; expected one of {', '.join(DEVICE_KINDS)}")


class PngDevice:
    """A display that writes each frame as ``screen.png`` (atomically replaced) and keeps the last
    ``keep`` frames as ``frame_NNNNNN.png``, so a simulator running for days does not fill the disk."""

    def __init__(self, directory: Path, width: int = 128, height: int = 64, mode: str = "1", keep: int = 32) -> None:
        self.directory = directory
        self.width, self.height, self.mode = width, height, mode
        self.size = (width, height)
        self.keep = keep
        self.frames = 0
        self.failures = 0  # frames not saved (a full disk)
        self.image: Image.Image | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def screen_path(self) -> Path:
        return self.directory / "screen.png"

    def display(self, image: Image.Image) -> None:
        """Store ``image`` as the current screen and as the newest frame of the ring."""
        if image.size != self.size:
            raise LcdError(f"frame is {image.size}, the display is {self.size}")
        self.image = image.copy()
        tmp = self.directory / ".screen.tmp.png"
        try:
            image.save(tmp, format="PNG")
            os.replace(tmp, self.screen_path)
            if self.keep > 0:
                image.save(self._frame_path(self.frames), format="PNG")
        except OSError as exc:  # a full or failing disk: the picture waits, the meter goes on
            if not self.failures:
                _log.warning("LCD image not saved in %s: %s (tried again with every frame)", self.directory,
                             exc.strerror or exc)
            self.failures += 1
            tmp.unlink(missing_ok=True)
        if self.keep > 0 and self.frames >= self.keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._frame_path(self.frames - self.keep))
        self.frames += 1

    def _frame_path(self, number: int) -> str:
        """The ring file of frame ``number``, as a ``str``: a :class:`~pathlib.Path` would intern
        every new file name (``sys.intern``) for the life of the process, some 20 000 a day."""
        return os.path.join(self.directory, f"frame_{number:06d}.png")

    def cleanup(self) -> None:
        """Nothing to release (luma device interface)."""


def _emulator(kind: str, width: int, height: int, mode: str, rotate: int, capture_dir: str | Path | None) -> Any:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    from luma.emulator.device import capture, gifanim

    directory = Path(capture_dir or ".")
    directory.mkdir(parents=True, exist_ok=True)
    common = {"width": width, "height": height, "rotate": rotate, "mode": mode, "transform": "none", "scale": 1}
    if kind == "capture":
        return capture(file_template=str(directory / "frame_{0:06}.png"), **common)
    return gifanim(filename=str(directory / "display.gif"), duration=0.5, **common)


def _real(kind: str, width: int, height: int, rotate: int, spi: Any, port: int, device: int, gpio_dc: int,
          gpio_rst: int, gpio_light: int | None, bus_speed_hz: int, pin_factory: Any) -> Any:
    from luma.core.error import Error as LumaError
    from luma.core.interface.serial import spi as luma_spi
    from luma.lcd.device import st7567, st7789

    if spi is None and not Path(f"/dev/spidev{port}.{device}").exists():
        raise LcdError(f"SPI device /dev/spidev{port}.{device} missing (is SPI{port} enabled in config.txt?)")
    gpio = GpioZeroAdapter(pin_factory)
    try:
        serial = luma_spi(spi=spi, gpio=gpio, port=port, device=device, gpio_DC=gpio_dc, gpio_RST=gpio_rst,
                          bus_speed_hz=bus_speed_hz)
    except (OSError, LumaError, ImportError) as exc:  # no spidev module, no device, no permission
        raise LcdError(f"SPI {port}.{device}: {exc}") from exc
    light: dict[str, Any] = {"gpio": gpio}
    if gpio_light is None:
        light["backlight"] = lambda on: None  # no backlight line wired
    else:
        light["gpio_LIGHT"] = gpio_light
    if kind == "st7567":
        return st7567(serial, rotate=rotate, **light)
    return st7789(serial, width=width, height=height, rotate=rotate, **light)

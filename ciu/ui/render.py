"""CIU display rendering: a :class:`~ciu.core.state.View` in, a 240x240 RGB picture out (pure, deterministic).

Layout: a status bar (meter link, low-credit alarm, time), a body per screen (home with credit,
token entry with the 20 digits in 4-digit groups, waiting, result, information page, pairing)
and a key-hint bar. English is laid out left to right, Arabic right to left.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from PIL import Image, ImageDraw

from ciu.core.state import Screen, View
from ciu.ui.texts import text
from hw.lcd import draw_text, text_width
from meterd.proto.ciu_link import parse_time_fields

WIDTH = 240
HEIGHT = 240
BG = (0, 0, 0)
FG = (255, 255, 255)
DIM = (150, 150, 150)
GREEN = (40, 200, 80)
RED = (230, 50, 40)
AMBER = (255, 180, 0)
BAR = (30, 50, 90)


class _Canvas:
    """Draws texts at logical positions, mirrored for right-to-left languages."""

    def __init__(self, lang: str) -> None:
        self.image = Image.new("RGB", (WIDTH, HEIGHT), BG)
        self.draw = ImageDraw.Draw(self.image)
        self.rtl = lang == "ar"
        self.lang = lang

    def line(self, y: int, value: str, size: int, fill: Any = FG, bold: bool = False) -> None:
        """Text starting at the reading edge (left for English, right for Arabic)."""
        x, anchor = (WIDTH - 8, "ra") if self.rtl else (8, "la")
        draw_text(self.draw, (x, y), value, size, fill, anchor=anchor, bold=bold)

    def center(self, y: int, value: str, size: int, fill: Any = FG, bold: bool = False) -> None:
        draw_text(self.draw, (WIDTH // 2, y), value, size, fill, anchor="ma", bold=bold)

    def t(self, text_id: str) -> str:
        return text(text_id, self.lang)


def render(view: View) -> Image.Image:
    """The picture for ``view``."""
    canvas = _Canvas(view.lang)
    _status_bar(canvas, view)
    body = {
        Screen.HOME: _home,
        Screen.ENTRY: _entry,
        Screen.WAITING: _waiting,
        Screen.RESULT: _result,
        Screen.INFO: _info,
        Screen.PAIR_ENTRY: _pair_entry,
        Screen.PAIR_RESULT: _pair_result,
    }[view.screen]
    body(canvas, view)
    _hints(canvas, view)
    return canvas.image


def _status_bar(c: _Canvas, view: View) -> None:
    c.draw.rectangle((0, 0, WIDTH - 1, 27), fill=BAR)
    ok = view.link_up and view.paired
    dot_x = WIDTH - 14 if c.rtl else 6
    c.draw.ellipse((dot_x, 8, dot_x + 9, 17), fill=GREEN if ok else RED)
    label = "link_ok" if ok else ("link_down" if view.paired else "not_paired")
    x, anchor = (WIDTH - 20, "ra") if c.rtl else (20, "la")
    draw_text(c.draw, (x, 5), c.t(label), 13, FG, anchor=anchor)
    if view.local_s is not None:  # the meter's legal time; a v1 meter sends UTC only: say so
        clock = dt.datetime.fromtimestamp(view.local_s, tz=dt.UTC).strftime("%H:%M")
        if view.utc_offset_s is None:
            clock += " UTC"
        x, anchor = (6, "la") if c.rtl else (WIDTH - 6, "ra")
        draw_text(c.draw, (x, 6), clock, 13, FG, anchor=anchor, bold=True)


def _credit_block(c: _Canvas, status: Any, y: int) -> None:
    c.line(y, c.t("credit"), 18, DIM)
    credit = str(status.get("credit", "--"))
    unit = str(status.get("unit", ""))
    c.center(y + 28, credit, 40, FG, bold=True)
    c.center(y + 74, unit, 16, DIM)


def _home(c: _Canvas, view: View) -> None:
    _credit_block(c, view.status, 38)
    if view.alarm:
        c.draw.rectangle((0, 148, WIDTH - 1, 174), fill=RED)
        c.center(151, c.t("low_credit"), 18, FG, bold=True)
    elif "relay" in view.status:
        c.center(152, c.t("relay_on" if view.status["relay"] else "relay_off"), 16, GREEN if view.status["relay"] else RED)
    c.center(182, _notice(c, view) or c.t("enter_token"), 17, AMBER if view.notice else FG)


def _notice(c: _Canvas, view: View) -> str:
    return c.t(view.notice) if view.notice else ""


def _entry_lines(entry: str) -> tuple[str, str]:
    """20 digits in 5 groups over two lines: 3 groups, then 2."""
    groups = entry.split(" ") if entry else []
    return " ".join(groups[:3]), " ".join(groups[3:])


def fit_size(value: str, size_px: int, width_px: int, bold: bool = False, min_px: int = 10) -> int:
    """The largest font size up to ``size_px`` at which ``value`` is at most ``width_px`` wide."""
    while size_px > min_px and text_width(value, size_px, bold) > width_px:
        size_px -= 1
    return size_px


ENTRY_BOX = (4, 66, WIDTH - 5, 142)


def _entry(c: _Canvas, view: View) -> None:
    c.line(36, c.t("enter_token"), 18, DIM)
    first, second = _entry_lines(view.entry)
    c.draw.rectangle(ENTRY_BOX, outline=DIM)
    # both lines at the size at which a full first line (3 groups of 4) fits inside the box
    size = fit_size("0000 0000 0000", 26, ENTRY_BOX[2] - ENTRY_BOX[0] - 12, bold=True)
    c.center(75, first or "_", size, FG, bold=True)
    c.center(108, second, size, FG, bold=True)
    count = len(view.entry.replace(" ", ""))
    c.center(150, f"{count}/20", 16, GREEN if count == 20 else DIM)
    if view.notice:
        c.center(178, _notice(c, view), 16, AMBER)


def _waiting(c: _Canvas, view: View) -> None:
    first, second = _entry_lines(view.entry)
    c.center(50, first, 20, DIM)
    c.center(76, second, 20, DIM)
    c.center(120, c.t("pairing" if view.notice == "pairing" else "sending"), 18, FG)
    if view.notice == "queued":
        c.center(150, c.t("queued"), 17, AMBER)


def _result(c: _Canvas, view: View) -> None:
    result = view.result
    accepted = bool(result.get("accepted", False))
    c.draw.rectangle((0, 34, WIDTH - 1, 70), fill=GREEN if accepted else RED)
    c.center(42, c.t("accepted" if accepted else "rejected"), 22, FG, bold=True)
    if accepted:
        if "amount" in result:
            c.line(86, c.t("added"), 16, DIM)
            c.center(106, f"+{_text(result['amount'])} {_text(result.get('unit', ''))}".strip(), 26, GREEN, bold=True)
        if "credit" in result:
            c.line(146, c.t("new_credit"), 16, DIM)
            c.center(166, f"{_text(result['credit'])} {_text(result.get('unit', ''))}".strip(), 24, FG, bold=True)
    else:
        c.center(100, c.t(f"code_{_text(result.get('code', 'rejected'))}"), 22, FG)


def _text(value: object) -> str:
    """A link field as text (octets, which no display field carries, as hex)."""
    return value.hex() if isinstance(value, bytes) else str(value)


def _info(c: _Canvas, view: View) -> None:
    info = view.info
    code = int(info.get("code", 0))
    c.line(36, c.t(f"info_{code}"), 20, DIM, bold=True)
    if code == 7:
        _energy(c, info)
        return
    for i, value in enumerate(_info_lines(c, code, info)[:4]):
        c.center(72 + 34 * i, value, 22 if i == 0 else 17, FG, bold=i == 0)


def _energy(c: _Canvas, info: Any) -> None:
    """Short code 7: each label above its value (import 1-0:1.8.0, export 1-0:2.8.0, kWh)."""
    for i, (label, key) in enumerate((("import", "import_kwh"), ("export", "export_kwh"))):
        y = 70 + 64 * i
        c.line(y, c.t(label), 16, DIM)
        value = f"{info.get(key, '--')} kWh"
        c.center(y + 22, value, fit_size(value, 22, WIDTH - 16, bold=True), FG, bold=True)


def _info_lines(c: _Canvas, code: int, info: Any) -> list[str]:
    unit = str(info.get("unit", ""))
    if code == 1:
        lines = [f"{info.get('credit', '--')} {unit}".strip()]
        return lines + ([c.t("low_credit")] if info.get("low_credit") else [])
    if code == 2:
        digits = str(info.get("last_token", ""))
        groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
        return [" ".join(groups[:3]), " ".join(groups[3:]), c.t(f"code_{info.get('last_token_code', 'rejected')}")]
    if code == 3:
        return [f"{info.get('power_w', '--')} W"]
    if code == 4:
        return [c.t("tamper_yes" if info.get("tamper") else "tamper_none")]
    if code == 5:
        if "utc_s" not in info:
            return ["--"]
        utc_s, offset_s = parse_time_fields(info)
        moment = dt.datetime.fromtimestamp(utc_s + (offset_s or 0), tz=dt.UTC)
        return [moment.strftime("%H:%M:%S"), moment.strftime("%Y-%m-%d"), _utc_offset_text(offset_s)]
    if code == 6:
        return [c.t("relay_on" if info.get("relay") else "relay_off")]
    return [str(info.get("error", "--"))]


def _utc_offset_text(offset_s: int | None) -> str:
    """"UTC+02:00" for the legal time's offset, "UTC" when the meter sent none."""
    if offset_s is None:
        return "UTC"
    sign = "-" if offset_s < 0 else "+"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _pair_entry(c: _Canvas, view: View) -> None:
    c.line(36, c.t("pair_title"), 20, FG, bold=True)
    c.line(70, c.t("pair_prompt"), 16, DIM)
    c.draw.rectangle((20, 100, WIDTH - 21, 140), outline=DIM)
    c.center(106, view.entry or "_", 26, FG, bold=True)


def _pair_result(c: _Canvas, view: View) -> None:
    ok = view.notice == "paired"
    c.draw.rectangle((0, 34, WIDTH - 1, 70), fill=GREEN if ok else RED)
    c.center(42, c.t("paired" if ok else "pair_failed"), 22, FG, bold=True)
    if ok:
        c.center(96, c.t("pair_check"), 17, DIM)
        c.center(124, str(view.info.get("fingerprint", "")), 34, FG, bold=True)


def _hints(c: _Canvas, view: View) -> None:
    """Key hints at the bottom: key symbol (Latin font) and its word in the current language."""
    if view.screen not in (Screen.ENTRY, Screen.PAIR_ENTRY, Screen.HOME):
        return
    c.draw.line((0, 208, WIDTH - 1, 208), fill=DIM)
    pairs = (("*", "back"), ("C", "clear"), ("#", "enter"))
    slot = WIDTH // 3
    for i, (key, word) in enumerate(pairs):
        index = 2 - i if c.rtl else i
        x0 = index * slot
        draw_text(c.draw, (x0 + 8, 214), key, 17, AMBER, anchor="la", bold=True)
        draw_text(c.draw, (x0 + 24, 216), c.t(word), 14, FG, anchor="la")

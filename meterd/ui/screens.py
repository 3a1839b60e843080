"""Meter LCD screens (128x64 mono): one display item per screen, with OBIS code, status symbols, English/Arabic.

Every screen has the same frame: a header with the item's OBIS code on the left and the status
symbols on the right (power direction, relay, battery, tamper), a label line (English left to
right, Arabic right to left), a value line (at least 9 digits for energy) and a unit line. The
phasor screen draws the vector diagram instead. :func:`render_item` is pure: same inputs, same
pixels, which the golden-image tests rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

from hw.lcd import draw_text, text_width
from meterd.ui.display_data import DisplayData

WIDTH = 128
HEIGHT = 64
INK = 1  # mode "1": 1 = dark segment


@dataclass(frozen=True)
class DisplayItem:
    """One entry of the scroll list: identifier, OBIS code, labels, whether shown on battery."""

    ident: str
    obis: str
    label_en: str
    label_ar: str
    phase: str = ""  # "L1".."L3" for per-phase items
    on_battery: bool = False


# value text, unit text (English), unit text (Arabic)
ValueFn = Callable[[DisplayData], tuple[str, str, str]]


def _phase_index(item: DisplayItem) -> int:
    return int(item.phase[1]) - 1


def _fmt_energy(kwh: float) -> str:
    return f"{kwh:010.3f}"  # 9 digits and a point: 000123.456


def _value(item: DisplayItem, d: DisplayData) -> tuple[str, str, str]:
    ident = item.ident
    if ident == "credit":
        return f"{d.credit:9.2f}".strip(), d.credit_unit, _AR_UNITS.get(d.credit_unit, d.credit_unit)
    if ident == "import":
        return _fmt_energy(d.import_energy_kwh), "kWh", "kWh"
    if ident == "export":
        return _fmt_energy(d.export_energy_kwh), "kWh", "kWh"
    if ident == "max_demand":
        when = d.max_demand_time.strftime("%d-%m %H:%M") if d.max_demand_time else "--"
        return f"{d.max_demand_kw:.3f}", f"kW {when}", f"kW {when}"
    if ident == "power":
        return f"{abs(d.active_power_w) / 1000:.3f}", "kW", "kW"
    if ident == "frequency":
        return f"{d.frequency_hz:.2f}", "Hz", "Hz"
    if ident.startswith("voltage"):
        return f"{d.voltage_v[_phase_index(item)]:.1f}", "V", "V"
    if ident.startswith("current"):
        return f"{d.current_a[_phase_index(item)]:.2f}", "A", "A"
    if ident.startswith("pf"):
        return f"{d.power_factor[_phase_index(item)]:.3f}", "", ""
    if ident == "time":
        return d.local_time.strftime("%H:%M:%S"), d.local_time.strftime("%Y-%m-%d"), d.local_time.strftime("%Y-%m-%d")
    if ident == "relay":
        return ("ON", "closed", "موصول") if d.relay_closed else ("OFF", "open", "مفصول")
    if ident == "battery":
        if not d.battery_known:
            return "--", "unknown", "غير معروف"
        return ("LOW", "replace", "استبدال") if d.battery_low else ("OK", "", "")
    if ident == "tamper":
        return _tamper_text(d)
    if ident == "firmware":
        return d.firmware_id or "--", "", ""
    if ident == "ciu_firmware":  # the identifier, the first 16 hex digits of its SHA-256 below
        text = d.ciu_firmware_checksum.upper()
        return d.ciu_firmware_id or "--", text[:16], text[:16]
    if ident == "firmware_sig":  # the first 8 hex digits large, the next 16 on the unit line
        text = d.firmware_checksum.upper()
        return (text[:8] or "--"), text[8:24], text[8:24]
    raise KeyError(f"no value for display item {ident!r}")


# tamper id (``meterd.core.tamper`` status names, per-phase ones without their ``_Ln`` suffix)
# -> short English and Arabic labels that fit the 128-px unit line with a "+N" count
TAMPER_LABELS: dict[str, tuple[str, str]] = {
    "terminal_cover_open": ("Cover open", "الغطاء مفتوح"),
    "magnetic_field": ("Magnet", "مجال مغناطيسي"),
    "reverse_current": ("Reverse I", "تيار عكسي"),
    "neutral_mismatch": ("Neutral fault", "خلل المحايد"),
    "missing_potential": ("No voltage", "فقد الجهد"),
    "phase_sequence": ("Phase order", "تتابع الأطوار"),
    "current_without_voltage": ("I without U", "تيار بلا جهد"),
    "current_imbalance": ("I imbalance", "عدم اتزان التيار"),
    "tamper": ("Tamper", "عبث"),
    "metrology_fault": ("Meter fault", "عطل القياس"),
}


def tamper_label(name: str, lang: str) -> str:
    """Short label of one tamper id, e.g. ``reverse_current_L2`` -> "Reverse I L2" / "تيار عكسي ف2".

    Arabic has no Latin letters in its font, so the phase is written "ف" (phase) and its digit."""
    base, phase = name, ""
    if len(name) > 3 and name[-3:-1] == "_L" and name[-1] in "123":
        base, phase = name[:-3], name[-1]
    en, ar = TAMPER_LABELS.get(base, TAMPER_LABELS["tamper"])
    if lang == "ar":
        return f"{ar} ف{phase}" if phase else ar
    return f"{en} L{phase}" if phase else en


def tamper_ids(d: DisplayData) -> list[str]:
    """The active tampers as ids: cover, magnet, then the others in detector order."""
    ids = [n for n, on in (("terminal_cover_open", d.cover_open), ("magnetic_field", d.magnet)) if on]
    return ids + list(d.tamper_other)


def _tamper_text(d: DisplayData) -> tuple[str, str, str]:
    """"ALARM" and the first tamper's label, with "+N" when N more are active."""
    ids = tamper_ids(d)
    if not ids:
        return "NONE", "", ""
    more = f" +{len(ids) - 1}" if len(ids) > 1 else ""
    return "ALARM", tamper_label(ids[0], "en") + more, tamper_label(ids[0], "ar") + more


_AR_UNITS = {"kWh": "kWh", "EGP": "ج.م", "USD": "$"}


def _item(ident: str, obis: str, en: str, ar: str, phase: str = "", battery: bool = False) -> DisplayItem:
    return DisplayItem(ident, obis, en, ar, phase, battery)


DEFAULT_ITEMS: tuple[DisplayItem, ...] = (
    _item("credit", "0-0:19.10.0.255", "Credit", "الرصيد", battery=True),
    _item("import", "1-0:1.8.0.255", "Import energy", "الطاقة المستوردة", battery=True),
    _item("export", "1-0:2.8.0.255", "Export energy", "الطاقة المصدرة", battery=True),
    _item("max_demand", "1-0:1.6.0.255", "Max demand", "أقصى طلب", battery=True),
    _item("power", "1-0:1.7.0.255", "Active power", "القدرة الفعالة"),
    *(_item(f"voltage_l{n}", f"1-0:{c}.7.0.255", "Voltage", "الجهد", f"L{n}") for n, c in ((1, 32), (2, 52), (3, 72))),
    *(_item(f"current_l{n}", f"1-0:{c}.7.0.255", "Current", "التيار", f"L{n}") for n, c in ((1, 31), (2, 51), (3, 71))),
    *(_item(f"pf_l{n}", f"1-0:{c}.7.0.255", "Power factor", "معامل القدرة", f"L{n}") for n, c in ((1, 33), (2, 53), (3, 73))),
    _item("frequency", "1-0:14.7.0.255", "Frequency", "التردد"),
    _item("phasor", "1-0:81.7.0.255", "Phasors", "المتجهات"),
    _item("time", "0-0:1.0.0.255", "Time and date", "الوقت والتاريخ", battery=True),
    _item("relay", "0-0:96.3.10.255", "Relay", "المرحل", battery=True),
    _item("battery", "0-0:96.6.3.255", "Battery", "البطارية", battery=True),
    _item("tamper", "0-0:96.11.1.255", "Tamper", "العبث", battery=True),
    # legal metrology's software identification: the metrology software's identifier and checksum
    _item("firmware", "1-0:0.2.0.255", "Software id", "إصدار البرنامج"),
    _item("firmware_sig", "1-0:0.2.8.255", "Software checksum", "المجموع الاختباري"),
)

#: Items a feature adds to the scroll list when it has their value: the CIU's software
#: identification (the CIU update adds it, docs/firmware.md "The CIU").
CIU_FIRMWARE_ITEM = _item("ciu_firmware", "1-1:0.2.0.255", "CIU software", "برنامج وحدة العميل")

ITEMS_BY_ID = {item.ident: item for item in (*DEFAULT_ITEMS, CIU_FIRMWARE_ITEM)}


def items_for_phases(items: tuple[DisplayItem, ...], phases: int) -> tuple[DisplayItem, ...]:
    """The scroll list of a meter with ``phases`` phases (1 for 1P2W): the per-phase items of
    phases the supply does not have (voltage, current, power factor of L2 and L3) left out."""
    return tuple(i for i in items if not i.phase or _phase_index(i) < phases)


def items_from_ids(idents: list[str]) -> tuple[DisplayItem, ...]:
    """The scroll list from configuration (a list of item identifiers); unknown ones raise KeyError."""
    missing = [i for i in idents if i not in ITEMS_BY_ID]
    if missing:
        raise KeyError(f"unknown display items: {', '.join(missing)}")
    return tuple(ITEMS_BY_ID[i] for i in idents)


def screen_key(item: DisplayItem, data: DisplayData, lang: str, on_battery: bool) -> tuple[object, ...]:
    """What decides the pixels of ``render_item``: equal keys draw equal images, so a controller
    redraws only when the visible text or symbols change, not on every new measurement."""
    header = (data.tampered, data.battery_low and data.battery_known, data.relay_closed,
              _direction(data.active_power_w))
    if item.ident == "phasor":
        body: tuple[object, ...] = (data.phases,
            tuple(round(a) for a in data.voltage_angle_deg), tuple(round(a) for a in data.current_angle_deg),
            tuple(round(i, 1) for i in data.current_a))
    else:
        body = _value(item, data)
    return (item, lang, on_battery, header, body)


def _direction(power_w: float) -> int:
    """0 idle (under 1 W), 1 import, -1 export: the header arrow."""
    if abs(power_w) < 1.0:
        return 0
    return 1 if power_w > 0 else -1


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def render_item(item: DisplayItem, data: DisplayData, lang: str = "en", on_battery: bool = False) -> Image.Image:
    """Draw one display item into a new 128x64 mode-"1" image."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    _header(draw, item, data, on_battery)
    if item.ident == "phasor":
        _phasor(draw, data, lang)
        return image
    _label(draw, item, lang)
    value, unit_en, unit_ar = _value(item, data)
    size = fit_size(value, 17, bold=True) if item.ident in _FITTED else 17
    draw_text(draw, (WIDTH - 1, 42), value, size, INK, anchor="rs", bold=True)
    unit = unit_ar if lang == "ar" else unit_en
    if unit:
        _unit_line(draw, unit, lang)
    return image


_FITTED = frozenset({"firmware", "ciu_firmware"})  # items whose value text may be longer than the line: shrunk to fit


def _unit_line(draw: ImageDraw.ImageDraw, unit: str, lang: str) -> None:
    """The bottom line, right-aligned and shrunk to fit; in Arabic a trailing count "+N" is drawn
    at the left end in the Latin font (the Arabic font has no "+")."""
    count = ""
    if lang == "ar" and " +" in unit and unit.rpartition(" +")[2].isdigit():
        unit, _, number = unit.rpartition(" +")
        count = f"+{number}"
        draw_text(draw, (1, HEIGHT - 1), count, 11, INK, anchor="ld")
    width = WIDTH - 1 - (text_width(count, 11) + 4 if count else 0)
    draw_text(draw, (WIDTH - 1, HEIGHT - 1), unit, fit_size(unit, 11 if lang == "en" else 12, width), INK, anchor="rd")


def fit_size(text: str, size_px: int, width_px: int = WIDTH - 1, min_px: int = 8, bold: bool = False) -> int:
    """The largest font size up to ``size_px`` at which ``text`` fits ``width_px``."""
    while size_px > min_px and text_width(text, size_px, bold) > width_px:
        size_px -= 1
    return size_px


def _label(draw: ImageDraw.ImageDraw, item: DisplayItem, lang: str) -> None:
    if lang == "ar":
        draw_text(draw, (WIDTH - 1, 11), item.label_ar, 13, INK, anchor="ra")
        if item.phase:
            draw_text(draw, (1, 13), item.phase, 10, INK, anchor="la", bold=True)
    else:
        text = f"{item.label_en} {item.phase}".strip()
        draw_text(draw, (1, 13), text, 11, INK, anchor="la")


def _header(draw: ImageDraw.ImageDraw, item: DisplayItem, data: DisplayData, on_battery: bool) -> None:
    draw_text(draw, (0, 0), item.obis, 8, INK, anchor="la")
    x = WIDTH - 1
    if data.tampered:
        x = _tamper_symbol(draw, x)
    x = _battery_symbol(draw, x, data.battery_low and data.battery_known, on_battery)
    x = _relay_symbol(draw, x, data.relay_closed)
    _direction_symbol(draw, x, data.active_power_w)
    draw.line((0, 10, WIDTH - 1, 10), fill=INK)


def _tamper_symbol(draw: ImageDraw.ImageDraw, right: int) -> int:
    left = right - 8
    draw.polygon([(left, 8), (right, 8), ((left + right) // 2, 0)], outline=INK)
    draw.line(((left + right) // 2, 3, (left + right) // 2, 5), fill=INK)
    return left - 3


def _battery_symbol(draw: ImageDraw.ImageDraw, right: int, low: bool, on_battery: bool) -> int:
    left = right - 12
    draw.rectangle((left + 2, 1, right, 7), outline=INK, fill=INK if on_battery else 0)
    draw.rectangle((left, 3, left + 1, 5), fill=INK)
    if not low and not on_battery:
        draw.rectangle((left + 4, 3, right - 2, 5), fill=INK)
    return left - 3


def _relay_symbol(draw: ImageDraw.ImageDraw, right: int, closed: bool) -> int:
    left = right - 11
    draw.line((left, 6, left + 3, 6), fill=INK)
    draw.line((right - 3, 6, right, 6), fill=INK)
    draw.line((left + 3, 6, right - 3, 6 if closed else 1), fill=INK)
    return left - 3


def _direction_symbol(draw: ImageDraw.ImageDraw, right: int, power_w: float) -> int:
    left = right - 8
    direction = _direction(power_w)
    if direction == 0:
        draw.rectangle((left + 2, 2, right - 2, 6), outline=INK)
    elif direction > 0:  # import: arrow into the house (right)
        draw.polygon([(left, 0), (right, 4), (left, 8)], fill=INK)
    else:  # export: arrow out to the grid (left)
        draw.polygon([(right, 0), (left, 4), (right, 8)], fill=INK)
    return left - 3


def _phasor(draw: ImageDraw.ImageDraw, data: DisplayData, lang: str) -> None:
    """Vector diagram: voltages full radius, currents scaled to the largest current (60-100 %);
    the phases of the meter's wiring only (L1 alone for 1P2W)."""
    cx, cy, radius = 103, 38, 19
    draw.ellipse((cx - 1, cy - 1, cx + 1, cy + 1), fill=INK)
    draw.arc((cx - radius, cy - radius, cx + radius, cy + radius), 0, 360, fill=INK)
    phases = range(data.phases)
    i_max = max(max(data.current_a[n] for n in phases), 1e-9)
    for n in phases:
        _vector(draw, cx, cy, radius, data.voltage_angle_deg[n], f"U{n + 1}", head=False)
        length = radius * (0.35 + 0.35 * data.current_a[n] / i_max)
        _vector(draw, cx, cy, length, data.current_angle_deg[n], "", head=True)
    title = "المتجهات" if lang == "ar" else "Phasors"
    if lang == "ar":
        draw_text(draw, (70, 11), title, 12, INK, anchor="ra")
    else:
        draw_text(draw, (1, 13), title, 10, INK, anchor="la")
    for n in phases:
        phi = (data.voltage_angle_deg[n] - data.current_angle_deg[n] + 180) % 360 - 180
        draw_text(draw, (1, 33 + 10 * n), f"φ{n + 1} {phi:+.0f}°", 9, INK, anchor="la")


def _vector(draw: ImageDraw.ImageDraw, cx: int, cy: int, length: float, angle_deg: float, name: str, head: bool) -> None:
    a = math.radians(angle_deg)
    x, y = cx + length * math.cos(a), cy - length * math.sin(a)
    draw.line((cx, cy, round(x), round(y)), fill=INK)
    if head:
        for side in (-1, 1):
            b = a + math.pi + side * math.radians(25)
            draw.line((round(x), round(y), round(x + 4 * math.cos(b)), round(y - 4 * math.sin(b))), fill=INK)
    if name:
        tx, ty = cx + (length + 5) * math.cos(a), cy - (length + 5) * math.sin(a)
        draw_text(draw, (round(tx), round(ty)), name[1], 8, INK, anchor="mm")


def render_pairing(code: str, fingerprint: str | None, lang: str = "en") -> Image.Image:
    """Pairing screens: the code the installer types on the CIU, then the fingerprint to compare."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    if fingerprint is None:
        title, value = ("رمز الاقتران", code) if lang == "ar" else ("CIU pairing code", code)
    else:
        title, value = ("تم الاقتران، البصمة", fingerprint) if lang == "ar" else ("Paired, fingerprint", fingerprint)
    if lang == "ar":
        draw_text(draw, (WIDTH - 1, 0), title, 13, INK, anchor="ra")
    else:
        draw_text(draw, (1, 2), title, 11, INK, anchor="la")
    draw.line((0, 19, WIDTH - 1, 19), fill=INK)
    draw_text(draw, (WIDTH // 2, 42), value, 20, INK, anchor="mm", bold=True)
    return image

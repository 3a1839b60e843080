"""The meter LCD controller fed from the live meter once per cycle: scroll list, button, language,
battery mode, and the RTC backup battery.

:class:`MeterDisplay` takes one :func:`~meterd.ui.live_values.display_data` snapshot per cycle,
follows the power-fail input (battery mode), polls the scroll button and the battery watch, and
answers the display routes (``GET /display``, ``POST /display/button|show|lang``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from meterd.ui.battery import BatteryWatch
from meterd.ui.display_data import DisplayData
from meterd.ui.live_values import LiveSources, display_data
from meterd.ui.meter_lcd import MeterLcd
from meterd.ui.screens import CIU_FIRMWARE_ITEM, ITEMS_BY_ID, DisplayItem


class ScrollButton(Protocol):
    """A debounced push button polled once per cycle; ``listener(pressed, since_mono_s)`` on a change."""

    listener: Callable[[bool, float], None] | None

    def poll(self) -> None: ...

    def close(self) -> None: ...


def resolve_items(entries: tuple[str, ...] | list[str]) -> tuple[DisplayItem, ...]:
    """Display items from ids or OBIS codes (ValueError naming the unknown ones)."""
    by_obis = {item.obis: item for item in ITEMS_BY_ID.values()}
    found: list[DisplayItem] = []
    unknown: list[str] = []
    for entry in map(str, entries):
        item = ITEMS_BY_ID.get(entry) or by_obis.get(entry)
        if item is None:
            unknown.append(entry)
        else:
            found.append(item)
    if unknown:
        raise ValueError(f"unknown display items: {', '.join(unknown)} (known: {', '.join(ITEMS_BY_ID)})")
    if not found:
        raise ValueError("the display list is empty")
    return tuple(found)


class MeterDisplay:
    """The LCD controller fed from the live meter once per cycle.

    ``on_mains()`` is False while the power-fail input is active (battery mode).
    """

    def __init__(self, sources: LiveSources, lcd: MeterLcd, device: Any, on_mains: Callable[[], bool],
                 battery: BatteryWatch | None = None, button: ScrollButton | None = None) -> None:
        self.sources = sources
        self.lcd = lcd
        self.device = device
        self._on_mains = on_mains
        self.battery = battery
        self.scroll_button = button
        self.presses = 0
        if button is not None:
            button.listener = self._on_button

    def add_identification(self, firmware: Callable[[], tuple[str, str]]) -> None:
        """Show the running software's identification: ``firmware()`` gives (identifier,
        checksum hex) of the legally relevant software (items ``firmware``, ``firmware_sig``)."""
        self.sources = dataclasses.replace(self.sources, firmware=firmware)

    def add_ciu_identification(self, firmware: Callable[[], tuple[str, str]], append: bool = True) -> None:
        """Show the CIU's software identification, ``firmware()`` = (identifier, SHA-256 hex), in
        the item ``ciu_firmware`` (1-1:0.2.0.255), appended to the scroll list when ``append`` (the
        default list; a list the operator configured shows it only where it names it)."""
        self.sources = dataclasses.replace(self.sources, ciu_firmware=firmware)
        if append:
            self.lcd.add_item(CIU_FIRMWARE_ITEM)

    def _on_button(self, pressed: bool, _since_mono: float) -> None:
        """A debounced press (not the release) of the scroll button: next item."""
        if pressed:
            self.presses += 1
            self.lcd.button_next()

    def data(self) -> DisplayData:
        """The values the LCD shows now."""
        if self.battery is None:
            return display_data(self.sources)
        return display_data(self.sources, self.battery.low)

    def on_cycle(self, _result: Any = None) -> None:
        """Take this cycle's values, follow the power-fail input, scroll if due, draw if changed."""
        if self.scroll_button is not None:
            self.scroll_button.poll()
        if self.battery is not None:
            self.battery.poll()
        self.lcd.set_mains(self._on_mains())
        self.lcd.update(self.data())
        self.lcd.tick()

    def view(self) -> dict[str, Any]:
        """Current item, language, battery mode, frames drawn, and the capture file when any."""
        screen = getattr(self.device, "screen_path", None)
        battery = None if self.battery is None or self.battery.low is None else \
            ("low" if self.battery.low else "ok")
        return {"item": self.lcd.current.ident, "obis": self.lcd.current.obis, "lang": self.lcd.lang,
                "on_battery": self.lcd.on_battery, "rtc_battery": battery, "frames": self.lcd.frames,
                "button_presses": self.presses,
                "screen": str(screen) if screen is not None else None}

    def button(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /display/button`` ``{"button": "next"|"previous"}``."""
        which = str(body.get("button", "next"))
        if which not in ("next", "previous"):
            raise ValueError("button must be next or previous")
        (self.lcd.button_next if which == "next" else self.lcd.button_previous)()
        self.lcd.tick()
        return 200, self.view()

    def show(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /display/show`` ``{"item": id-or-OBIS}``."""
        item = resolve_items([str(body.get("item", ""))])[0]
        self.lcd.show_item(item.ident)
        self.lcd.tick()
        return 200, self.view()

    def set_lang(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /display/lang`` ``{"lang": "en"|"ar"}``."""
        self.lcd.set_language(str(body.get("lang", "")))
        self.lcd.tick()
        return 200, self.view()

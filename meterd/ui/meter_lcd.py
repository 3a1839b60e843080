"""Meter LCD controller: the scroll list (auto-scroll and button), language, battery mode, frames to a luma device.

The device is any luma device (``hw.lcd.make_device``: dummy in sim, st7567 on the Pi). Time is
the injected clock's monotonic seconds. On mains loss (:meth:`MeterLcd.set_mains`) the display
keeps the last measured values, shows only the items marked ``on_battery`` and fills the
battery symbol; measurement updates are then ignored except the time of day.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PIL import Image

from meterd.core.ports import MonoClock
from meterd.ui.display_data import DisplayData
from meterd.ui.screens import DEFAULT_ITEMS, DisplayItem, render_item, render_pairing, screen_key


class MeterLcd:
    """Shows one display item at a time and steps through the configured list."""

    def __init__(self, device: Any, clock: MonoClock, items: tuple[DisplayItem, ...] = DEFAULT_ITEMS,
                 lang: str = "en", scroll_s: float = 6.0, button_pause_s: float = 30.0) -> None:
        if not items:
            raise ValueError("the display list is empty")
        if lang not in ("en", "ar"):
            raise ValueError(f"language {lang!r} is not en or ar")
        self._device = device
        self._clock = clock
        self._items = items
        self.lang = lang
        self._scroll_s = scroll_s
        self._button_pause_s = button_pause_s
        self._index = 0
        self._next_scroll_mono = clock.mono() + scroll_s
        self._data = DisplayData()
        self.on_battery = False
        self._shown: tuple[object, ...] | None = None
        self._pairing: tuple[str, str | None] | None = None
        self.frames = 0

    def add_item(self, item: DisplayItem) -> None:
        """Append ``item`` to the scroll list (once)."""
        if item not in self._items:
            self._items = (*self._items, item)

    @property
    def items(self) -> tuple[DisplayItem, ...]:
        """Items in the current scroll list (battery mode shows only the ``on_battery`` ones)."""
        if self.on_battery:
            kept = tuple(i for i in self._items if i.on_battery)
            return kept or self._items
        return self._items

    @property
    def current(self) -> DisplayItem:
        return self.items[self._index % len(self.items)]

    def update(self, data: DisplayData) -> None:
        """New values from the metering cycle (in battery mode only the time of day is taken)."""
        if self.on_battery:
            self._data = dataclasses.replace(self._data, local_time=data.local_time)
        else:
            self._data = data

    def set_mains(self, present: bool) -> None:
        """Mains present or lost; on loss the last values stay and the battery list is shown."""
        if self.on_battery == (not present):
            return
        ident = self.current.ident
        self.on_battery = not present
        idents = [i.ident for i in self.items]
        self._index = idents.index(ident) if ident in idents else 0

    def set_language(self, lang: str) -> None:
        if lang not in ("en", "ar"):
            raise ValueError(f"language {lang!r} is not en or ar")
        self.lang = lang

    def button_next(self) -> None:
        """Scroll button: next item; auto-scroll pauses for ``button_pause_s``."""
        self._step(1, self._button_pause_s)

    def button_previous(self) -> None:
        self._step(-1, self._button_pause_s)

    def show_item(self, ident: str) -> None:
        """Jump to the item ``ident`` (e.g. from a DLMS or API request)."""
        idents = [i.ident for i in self.items]
        self._index = idents.index(ident)
        self._next_scroll_mono = self._clock.mono() + self._button_pause_s

    def show_pairing(self, code: str, fingerprint: str | None = None) -> None:
        """Show the CIU pairing code (then, once paired, the fingerprint) instead of the scroll list."""
        self._pairing = (code, fingerprint)

    def end_pairing(self) -> None:
        self._pairing = None

    def tick(self) -> bool:
        """Auto-scroll when due and send a frame if the picture changed; True when a frame was sent."""
        if self._clock.mono() >= self._next_scroll_mono:
            self._step(1, self._scroll_s)
        key = (self._pairing, self.lang) if self._pairing else screen_key(self.current, self._data, self.lang,
                                                                             self.on_battery)
        if key == self._shown:
            return False
        self._device.display(self.render())
        self._shown = key
        self.frames += 1
        return True

    def render(self) -> Image.Image:
        """The current screen as a 128x64 mode-"1" image."""
        if self._pairing is not None:
            image = render_pairing(*self._pairing, lang=self.lang)
        else:
            image = render_item(self.current, self._data, self.lang, self.on_battery)
        mode = getattr(self._device, "mode", "1")
        return image if mode == "1" else image.convert(mode)

    def _step(self, delta: int, pause_s: float) -> None:
        self._index = (self._index + delta) % len(self.items)
        self._next_scroll_mono = self._clock.mono() + pause_s

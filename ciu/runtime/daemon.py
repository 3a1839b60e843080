"""The CIU's main loop step: keypad keys in, link pumped, buzzer fed, display refreshed when the view changed.

The clock on the screen shows hours and minutes, so the seconds of the view do not cause frames."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from ciu.core.buzzer import Buzzer
from ciu.core.state import KEYMAP, View
from ciu.runtime.client import CiuLinkClient
from ciu.ui.render import render


class Keypad(Protocol):
    def poll(self) -> list[str]: ...


class CiuLoop:
    """One iteration per :meth:`step`; the app calls it every 20 ms, tests call it with a SimClock."""

    def __init__(self, client: CiuLinkClient, keypad: Keypad, device: Any, buzzer: Buzzer | None = None) -> None:
        self.client = client
        self._keypad = keypad
        self._device = device
        self.buzzer = buzzer
        self._shown: tuple[View, int | None] | None = None
        self.frames = 0

    def step(self) -> bool:
        """Handle keys and link traffic; returns True when a new frame was sent to the display."""
        for legend in self._keypad.poll():
            key = KEYMAP.get(legend)
            if key is not None:
                self.client.press(key)
        self.client.pump()
        view = self.client.state.view()
        if self.buzzer is not None:
            self.buzzer.observe(view)
            self.buzzer.tick()
        minute = None if view.local_s is None else view.local_s // 60
        shown = (replace(view, utc_s=None), minute)  # the screen shows hours and minutes only
        if shown == self._shown:
            return False
        image = render(view)
        mode = getattr(self._device, "mode", "RGB")
        self._device.display(image if mode == "RGB" else image.convert(mode))
        self._shown = shown
        self.frames += 1
        if self.client.link.talking_allowed:  # the meter's poll came before the drawing: answer now
            self.client.pump()
        return True

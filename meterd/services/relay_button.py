"""The relay push button: a press reconnects, a long press disconnects (class 70 local triggers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from meterd.core.disconnect import Outcome
from meterd.services.load_control import LoadControl


class ButtonInput(Protocol):
    """A debounced button that hands confirmed changes over in ``poll`` (``hw.inputs.PushButton`` fits)."""

    listener: Callable[[bool, float], None] | None

    def poll(self) -> bool: ...


class RelayButton:
    """Button presses into class 70 triggers: a press reconnects (e) when ready for
    reconnection; holding it at least ``long_press_s`` (s) disconnects (f)."""

    def __init__(self, lc: LoadControl, long_press_s: float, device: ButtonInput | None = None) -> None:
        self._lc = lc
        self.long_press_s = long_press_s
        self.device = device
        self._down_since: float | None = None
        self.presses = 0
        self.last_outcome: Outcome | None = None
        if device is not None:
            device.listener = self._changed

    def _changed(self, pressed: bool, mono_s: float) -> None:
        if pressed:
            self._down_since = mono_s
            return
        if self._down_since is None:
            return
        held_s = mono_s - self._down_since
        self._down_since = None
        self.press(long_press=held_s >= self.long_press_s)

    def press(self, long_press: bool = False) -> Outcome:
        """One completed press (from the pin or the API)."""
        self.presses += 1
        self.last_outcome = self._lc.button_pressed(long_press=long_press)
        return self.last_outcome

    def poll(self) -> None:
        """Confirm debounced levels (each cycle)."""
        if self.device is not None:
            self.device.poll()

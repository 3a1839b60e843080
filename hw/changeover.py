"""Driver for the grid/solar changeover: two contactor outputs with break-before-make.

Each source has its own contactor driven by a gpiozero ``DigitalOutputDevice`` (high = closed).
:meth:`Changeover.select` opens the active contactor, waits ``dead_time_s`` (s, lets the arc
clear and keeps the two sources from ever being paralleled), then closes the other one. Timing
goes through an injected scheduler (``call_later``), so tests run without sleeping. The two
outputs are never on together (interlock). This module imports nothing from ``meterd``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gpiozero import DigitalOutputDevice

from hw.errors import HwError

SOURCES = ("grid", "solar")


class ChangeoverError(HwError):
    """Base of changeover driver errors."""


class ChangeoverBusyError(ChangeoverError):
    """A changeover is still in its dead time."""


class Scheduler(Protocol):
    """Runs a callback after a delay (s); an asyncio loop fits."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class Changeover:
    """Grid/solar changeover contactors with break-before-make and an interlock."""

    def __init__(self, grid_contactor: DigitalOutputDevice, solar_contactor: DigitalOutputDevice,
                 scheduler: Scheduler, dead_time_s: float = 0.100, initial: str = "grid") -> None:
        if dead_time_s <= 0:
            raise ValueError("dead_time_s must be > 0 s")
        _check_source(initial)
        self._outputs = {"grid": grid_contactor, "solar": solar_contactor}
        self._scheduler = scheduler
        self.dead_time_s = dead_time_s
        self._busy = False
        self.swaps = 0
        self._outputs[_other(initial)].off()
        self._outputs[initial].on()
        self._selected = initial

    @classmethod
    def from_pins(cls, grid_pin: int | str, solar_pin: int | str, scheduler: Scheduler,
                  dead_time_s: float = 0.100, initial: str = "grid",
                  pin_factory: Any = None) -> Changeover:
        """Build from BCM pin numbers; ``pin_factory`` None uses gpiozero's default."""
        grid = DigitalOutputDevice(grid_pin, initial_value=False, pin_factory=pin_factory)
        solar = DigitalOutputDevice(solar_pin, initial_value=False, pin_factory=pin_factory)
        return cls(grid, solar, scheduler, dead_time_s, initial)

    @property
    def selected(self) -> str:
        """The source whose contactor is (or is about to be) closed: "grid" or "solar"."""
        return self._selected

    @property
    def busy(self) -> bool:
        """True during the dead time of a changeover."""
        return self._busy

    def closed(self, source: str) -> bool:
        """True when the contactor of ``source`` is closed now."""
        _check_source(source)
        return bool(self._outputs[source].value)

    def select(self, source: str, on_done: Callable[[str], None] | None = None) -> bool:
        """Switch to ``source``; returns False when it is already selected (nothing done)."""
        _check_source(source)
        if self._busy:
            raise ChangeoverBusyError("changeover in progress")
        if source == self._selected:
            return False
        self._outputs[self._selected].off()
        self._busy = True
        self._selected = source
        self._scheduler.call_later(self.dead_time_s, self._make, source, on_done)
        return True

    def _make(self, source: str, on_done: Callable[[str], None] | None) -> None:
        other = self._outputs[_other(source)]
        if other.value:
            other.off()
            self._busy = False
            raise ChangeoverError("interlock: the other contactor is still closed")
        self._outputs[source].on()
        self._busy = False
        self.swaps += 1
        if on_done is not None:
            on_done(source)

    def close(self) -> None:
        """Release the pins (contactors keep their hardware default)."""
        for device in self._outputs.values():
            device.close()


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")


def _other(source: str) -> str:
    return "solar" if source == "grid" else "grid"

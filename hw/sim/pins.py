"""The outside world's hand on a simulated meter's input pins (gpiozero mock pins).

On a bench a switch, a supply supervisor or a voltage-detect module sets the level of an input
pin; in simulation :class:`SimPins` does the same on the pins of the ``"mock"`` pin factory
(:func:`hw.gpio.make_pin_factory`), which the meter's input drivers read like real pins.
"""

from __future__ import annotations

from typing import Any, Protocol


class MockPin(Protocol):
    """What :class:`SimPins` uses of a gpiozero ``MockPin``."""

    def drive_high(self) -> None: ...

    def drive_low(self) -> None: ...


class SimPins:
    """Drives input levels on the pins of a gpiozero ``MockFactory`` (BCM numbers)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def pin(self, number: int) -> MockPin:
        """The mock pin ``number`` (created on first use), to drive directly."""
        pin: MockPin = self.factory.pin(number)
        return pin

    def drive(self, number: int, high: bool) -> None:
        """Set the level the outside world puts on pin ``number``: high (True) or low (False)."""
        pin = self.pin(number)
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    def drive_active_low(self, number: int, active: bool) -> None:
        """An active-low signal on pin ``number``: active pulls it low, inactive lets it go high."""
        self.drive(number, high=not active)

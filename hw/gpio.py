"""GPIO back-end selection on gpiozero: pick the pin factory and build devices on it.

Selection order: an explicit argument, then the configured name, then the environment variable
``GPIOZERO_PIN_FACTORY``, then ``default`` (``"lgpio"``, the factory that works on Pi 3/4/5).
``"mock"`` builds a gpiozero ``MockFactory`` (``"mockpwm"``: one whose pins support PWM) for
simulation and tests. Factory modules are imported only when chosen, so a PC never loads lgpio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hw.errors import HwError

ENV_VAR = "GPIOZERO_PIN_FACTORY"
FACTORY_NAMES = ("lgpio", "rpigpio", "pigpio", "native", "mock", "mockpwm")


class GpioError(HwError):
    """Base of the GPIO back-end errors."""


class UnknownPinFactory(GpioError, ValueError):
    """The requested pin-factory name is not one of :data:`FACTORY_NAMES`."""


def resolve_factory_name(explicit: str | None = None, configured: str | None = None,
                         environ: Mapping[str, str] | None = None, default: str = "lgpio") -> str:
    """The pin-factory name to use: explicit > configured > $GPIOZERO_PIN_FACTORY > default."""
    env = os.environ if environ is None else environ
    name = explicit or configured or env.get(ENV_VAR) or default
    name = name.strip().lower()
    if name not in FACTORY_NAMES:
        raise UnknownPinFactory(f"pin factory {name!r} unknown; choose one of {', '.join(FACTORY_NAMES)}")
    return name


MOCK_STATES_KEPT = 1000
"""State changes a simulated pin keeps (its newest; gpiozero's mock pins keep every one)."""


def _bounded_history(pin_class: Any) -> Any:
    """``pin_class`` (a gpiozero mock pin) keeping at most about 2 × :data:`MOCK_STATES_KEPT` of
    its state changes in ``states``: gpiozero's own keep every change for ever, so the simulated
    meter's test LED (an edge every fraction of a second) and relay grew meterd without bound,
    about 0.7 MiB per simulated hour."""

    class BoundedHistoryPin(pin_class):  # type: ignore[misc,valid-type]
        def _change_state(self, value: bool) -> bool:
            changed: bool = super()._change_state(value)
            if len(self.states) > 2 * MOCK_STATES_KEPT:
                del self.states[:-MOCK_STATES_KEPT]
            return changed

    BoundedHistoryPin.__name__ = BoundedHistoryPin.__qualname__ = f"BoundedHistory{pin_class.__name__}"
    return BoundedHistoryPin


def make_pin_factory(name: str) -> Any:
    """Build the gpiozero pin factory called ``name`` (see :data:`FACTORY_NAMES`); the mock
    factories' pins keep a bounded history of their states (:func:`_bounded_history`)."""
    name = resolve_factory_name(explicit=name)
    if name in ("mock", "mockpwm"):
        from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
        return MockFactory(pin_class=_bounded_history(MockPWMPin if name == "mockpwm" else MockPin))
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory
        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory
        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory
        return PiGPIOFactory()
    from gpiozero.pins.native import NativeFactory
    return NativeFactory()


def output_device(pin: int | str, factory: Any, *, active_high: bool = True, initial_value: bool = False) -> Any:
    """A ``gpiozero.DigitalOutputDevice`` on ``pin`` built on ``factory``."""
    from gpiozero import DigitalOutputDevice
    return DigitalOutputDevice(pin, active_high=active_high, initial_value=initial_value, pin_factory=factory)


def button(pin: int | str, factory: Any, *, pull_up: bool | None = True, bounce_time: float | None = None) -> Any:
    """A ``gpiozero.Button`` on ``pin`` built on ``factory`` (debounce belongs in our code, see platform §1)."""
    from gpiozero import Button
    return Button(pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=factory)


def buzzer(pin: int | str, factory: Any | None = None) -> Any:
    """A ``gpiozero.Buzzer`` (active high, starts silent) on ``pin``; ``factory`` None is gpiozero's
    default factory ($GPIOZERO_PIN_FACTORY, else lgpio)."""
    from gpiozero import Buzzer
    return Buzzer(pin, active_high=True, initial_value=False, pin_factory=factory)

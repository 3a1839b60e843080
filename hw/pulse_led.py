"""The metrology pulse LED: owed pulses spread evenly over each metering cycle, no energy lost.

Each cycle the owner calls :meth:`PulseLed.feed` with the active energy counted in that cycle
(integer mWh) and the cycle length (s). The LED owes ``energy × imp_per_kwh / 1e6`` pulses; the
fraction of a pulse is carried exactly in an integer remainder (units of mWh·imp/kWh). Pulses are
spread evenly over the cycle through an injected scheduler ``schedule(delay_s, callback)``
(``asyncio`` ``loop.call_later`` fits; tests pass a fake and never sleep). At most one pulse per
``2 × pulse_ms`` fits in a cycle; any excess stays owed and is emitted in later cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Scheduler = Callable[[float, Callable[[], None]], Any]

_MWH_PER_KWH = 1_000_000


class OutputDevice(Protocol):
    """What the LED needs of a ``gpiozero.DigitalOutputDevice``."""

    def on(self) -> None:
        """Drive the LED on."""
        ...

    def off(self) -> None:
        """Drive the LED off."""
        ...


class PulseLed:
    """Pulse output with meter constant ``imp_per_kwh`` (imp/kWh) and pulse width ``pulse_ms`` (ms)."""

    def __init__(self, output_device: OutputDevice, imp_per_kwh: int = 1000, pulse_ms: int = 20, *,
                 scheduler: Scheduler) -> None:
        if imp_per_kwh <= 0 or pulse_ms <= 0:
            raise ValueError("imp_per_kwh and pulse_ms must be positive")
        self.device = output_device
        self.imp_per_kwh = imp_per_kwh
        self.pulse_s = pulse_ms / 1000
        self._schedule = scheduler
        self._remainder = 0      # mWh·(imp/kWh) not yet worth a pulse, always < 1e6
        self.owed_pulses = 0     # whole pulses earned but not yet scheduled
        self.pulses_scheduled = 0

    @property
    def remainder_mwh(self) -> float:
        """Energy (mWh) counted towards the next pulse (for display and tests)."""
        return self._remainder / self.imp_per_kwh

    def feed(self, energy_mwh: int, cycle_s: float) -> int:
        """Account ``energy_mwh`` for a cycle of ``cycle_s`` seconds; schedule pulses; return how many."""
        if not isinstance(energy_mwh, int) or energy_mwh < 0:
            raise ValueError(f"energy_mwh must be a non-negative integer, got {energy_mwh!r}")
        if cycle_s <= 0:
            raise ValueError("cycle_s must be positive")
        earned, self._remainder = divmod(self._remainder + energy_mwh * self.imp_per_kwh, _MWH_PER_KWH)
        self.owed_pulses += earned
        n = min(self.owed_pulses, int(cycle_s / (2 * self.pulse_s)))
        spacing_s = cycle_s / n if n else 0.0
        for k in range(n):
            self._schedule(k * spacing_s, self._pulse_on)
            self._schedule(k * spacing_s + self.pulse_s, self.device.off)
        self.owed_pulses -= n
        self.pulses_scheduled += n
        return n

    def _pulse_on(self) -> None:
        self.device.on()

"""The chip's CF1 energy pulses read back on a GPIO and checked against the billed energy.

On the Pi the ATM90E36's CF1 output drives the test LED in hardware and also reaches a GPIO input
(``[hardware] led_pin``, ``[led] cf_sense = true``). :class:`CfPulseCounter` counts its rising
edges (gpiozero calls back on its own thread; the count is kept under a lock) and compares the
count with the active energy billed over the same time: CF1 gives one pulse per ``1e6 /
imp_per_kwh`` mWh, so the two may differ by one pulse (the phases of the chip's CF accumulator
and of the registers) plus what the read of the current cycle has not yet billed; a larger
difference means a broken CF1 track, a wrong meter constant or energy the registers did not
count, and is logged once per excursion.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("hw.cf_counter")

_MWH_PER_KWH = 1_000_000


class CfPulseCounter:
    """Rising edges of CF1 on ``pin`` against billed energy at ``imp_per_kwh`` (imp/kWh).

    ``tolerance_pulses``: the difference (pulses) beyond which the check fails; the default 2 is
    the one-pulse phase difference plus one pulse of energy billed a cycle later."""

    def __init__(self, pin: int, factory: Any, imp_per_kwh: int, tolerance_pulses: int = 2) -> None:
        from gpiozero import DigitalInputDevice

        if imp_per_kwh <= 0 or tolerance_pulses < 1:
            raise ValueError("imp_per_kwh and tolerance_pulses must be positive")
        self.imp_per_kwh = imp_per_kwh
        self.tolerance_pulses = tolerance_pulses
        self._lock = threading.Lock()
        self._pulses = 0
        self._billed_mwh = 0
        self.failed = False
        self._device = DigitalInputDevice(pin, pull_up=False, pin_factory=factory)
        self._device.when_activated = self._edge

    @property
    def pulses(self) -> int:
        """CF1 pulses counted since the counter was built."""
        with self._lock:
            return self._pulses

    def _edge(self) -> None:
        with self._lock:
            self._pulses += 1

    def deviation_pulses(self) -> float:
        """Counted minus expected pulses (expected: billed energy × imp_per_kwh / 1e6)."""
        return self.pulses - self._billed_mwh * self.imp_per_kwh / _MWH_PER_KWH

    def check(self, energy_mwh: int) -> bool:
        """Account a cycle's billed active energy (mWh, import plus export) and compare; True
        while CF1 and the registers agree. Logs the start and the end of a disagreement."""
        self._billed_mwh += energy_mwh
        deviation = self.deviation_pulses()
        failed = abs(deviation) > self.tolerance_pulses
        if failed and not self.failed:
            log.warning("CF1 pulses and energy registers disagree: %d pulses counted, %+.1f against the "
                        "billed energy", self.pulses, deviation)
        elif self.failed and not failed:
            log.info("CF1 pulses agree with the energy registers again")
        self.failed = failed
        return not failed

    def close(self) -> None:
        """Release the input."""
        self._device.close()

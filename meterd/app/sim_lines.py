"""The simulated meter's serial lines as the simulated world holds them: each line's
:class:`hw.serial_link.CableFaults` (a cut, noise), known once the line is open, set by scenario
signals and rig faults. One type per line so the feature registry tells them apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hw.serial_link import CableFaults


@dataclass
class SimLine:
    """One simulated line's faults (None until the line is open)."""

    name: str
    faults: CableFaults | None = None

    def set(self, what: str, value: Any) -> None:
        """``cut`` (true/false) or ``noise`` (the probability of a byte with a bit flipped, 0..1)."""
        if self.faults is None:
            raise ValueError(f"the simulated {self.name} is not open")
        if what == "cut":
            self.faults.cut = bool(value)
        elif what == "noise":
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"noise rate {rate} out of range 0..1")
            self.faults.corrupt_rate = rate
        else:
            raise ValueError(f"unknown line fault {what!r}")


class SimCiuCable(SimLine):
    """The MCU–CIU RS-485 cable (a paced pty pair)."""


class SimHdlcLine(SimLine):
    """The DLMS HDLC RS-485 line (a pty)."""

"""The exception tree of the ATM90E36 driver and simulator."""

from __future__ import annotations

from hw.errors import HwError


class Atm90e36Error(HwError):
    """Base of every error raised by the ATM90E36 driver."""


class ChipNotResponding(Atm90e36Error):
    """The chip does not answer: MISO reads all ones/zeros or reset values are wrong."""


class ChecksumError(Atm90e36Error):
    """A CS0–CS3 checksum does not match, or the chip flags CSxErr in SysStatus0."""


class SpiIntegrityError(Atm90e36Error):
    """LastSPIData never confirmed a transfer after the bounded number of retries."""

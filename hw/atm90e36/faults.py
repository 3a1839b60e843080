"""The faults a real ATM90E36 board has, as the simulator can be forced into them.

Each :class:`ChipFault` is injected into :class:`hw.atm90e36.sim.Atm90e36Sim` with
:meth:`~hw.atm90e36.sim.Atm90e36Sim.inject` and ends with
:meth:`~hw.atm90e36.sim.Atm90e36Sim.clear` (the simulated world times it in meter seconds):

* ``brown_out``: the chip's supply dips: it is unpowered while the fault lasts (no metering, SDO
  not driven: every byte reads 0x00, writes are lost) and powers on at the end with every
  register at its power-on default (configuration lost, energy accumulators cleared);
* ``miso_high`` / ``miso_low``: the SDO line is stuck: every byte reads 0xFF / 0x00 (so a read
  returns 0xFFFF / 0x0000, LastSPIData too); the chip itself keeps metering and still executes
  the frames it receives (a read of a read-to-clear register clears it);
* ``bit_flips``: each SDO bit of a read frame's data is flipped with probability ``rate``
  (seeded, reproducible); the chip's registers and LastSPIData stay right;
* ``checksum``: a configuration register of block 0 is corrupted inside the chip: CS0 no longer
  matches, CS0Err is latched and metering stops until the block is programmed again;
* ``spi_timeout``: every transfer fails with :class:`hw.spi.SpiTimeout` (the bus does not
  complete; on a Pi a spidev ``ETIMEDOUT``);
* ``late_cycle``: the chip is fine, the meter's cycle does not run while the fault lasts (a
  stalled metering loop); the energy accumulates in the chip until the next read.
"""

from __future__ import annotations

import enum


class ChipFault(enum.Enum):
    """A fault of the metering IC or its SPI link, by its name in scenarios and the API."""

    BROWN_OUT = "brown_out"
    MISO_HIGH = "miso_high"
    MISO_LOW = "miso_low"
    BIT_FLIPS = "bit_flips"
    CHECKSUM = "checksum"
    SPI_TIMEOUT = "spi_timeout"
    LATE_CYCLE = "late_cycle"

    @classmethod
    def parse(cls, name: str) -> ChipFault:
        """The fault called ``name``; ValueError naming the choices otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown chip fault {name!r}; choose from {[f.value for f in cls]}") from None

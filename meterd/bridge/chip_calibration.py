"""Calibration registers to and from the ATM90E36 of a running meter.

:func:`calibrated_config` is the driver configuration with a board's calibration: the front end
uses it in every start and restart of the chip (the chip forgets its registers in a reset or a
brown-out; the supervision's restart writes them again). :class:`ChipCalibration` writes a new
calibration into a running chip without a soft reset (so the energy the chip holds is kept): for
each calibration block (CalStart 0x40 … CS1 0x4D, AdjStart 0x60 … CS3 0x6F; ``atm90e36.md`` §5)
it enters calibration mode (0x5678), writes every register, writes the checksum the driver
computes, returns to operation (0x8765) and reads back every register, the chip's own checksum
and the CSxErr bit: anything that differs is a :class:`~meterd.core.calibration.CalibrationRejected`.
"""

from __future__ import annotations

import dataclasses

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36Config
from hw.errors import HwError
from meterd.bridge.frontend import Atm90e36FrontEnd
from meterd.core.calibration import CalibrationRejected, CalibrationValues

_CALIBRATION_BLOCKS = (1, 3)
"""Energy calibration (GainX, PhiX, Poffset, Qoffset) and measurement calibration (Ugain, Igain,
Uoffset, Ioffset)."""


def calibrated_config(base: Atm90e36Config, values: CalibrationValues) -> Atm90e36Config:
    """``base`` (the nameplate configuration) with ``values`` as its calibration registers."""
    return dataclasses.replace(base, u_gain=values.u_gain, i_gain=values.i_gain, u_offset=values.u_offset,
                               i_offset=values.i_offset, energy_gain=values.energy_gain,
                               phase_delay=values.phase_delay, p_offset=values.p_offset, q_offset=values.q_offset)


def values_of(config: Atm90e36Config) -> CalibrationValues:
    """The calibration registers of a driver configuration."""
    return CalibrationValues(u_gain=config.u_gain, i_gain=config.i_gain, u_offset=config.u_offset,
                             i_offset=config.i_offset, energy_gain=config.energy_gain,
                             phase_delay=config.phase_delay, p_offset=config.p_offset, q_offset=config.q_offset)


class ChipCalibration:
    """The calibration of the chip behind ``frontend`` (``base``: the configuration without it)."""

    def __init__(self, frontend: Atm90e36FrontEnd, base: Atm90e36Config) -> None:
        self.frontend = frontend
        self.base = base

    def use(self, values: CalibrationValues) -> None:
        """Make ``values`` the configuration of every later (re)start; no register is written."""
        self.frontend.reconfigure(calibrated_config(self.base, values))

    def write(self, values: CalibrationValues) -> CalibrationValues:
        """Write ``values`` into the running chip, verify, and use them from now on; returns what
        the chip reads back. CalibrationRejected when a register or a checksum does not match."""
        config = calibrated_config(self.base, values)
        driver = self.frontend.driver
        try:
            for index in _CALIBRATION_BLOCKS:
                block = rm.BLOCKS[index]
                wanted = config.block_values(index)
                driver.write_register(block.start_addr, rm.START_CALIBRATE)
                for address in block.addrs:
                    driver.write_register(address, wanted[address])
                expected_cs = rm.checksum(wanted[a] for a in block.addrs)
                driver.write_register(block.cs_addr, expected_cs)
                driver.write_register(block.start_addr, rm.START_OPERATE)
                self._verify(block, wanted, expected_cs)
        except HwError as exc:
            raise CalibrationRejected(f"writing the calibration to the metering IC failed: {exc}") from exc
        finally:
            self.frontend.reconfigure(config)
        return self.read_back()

    def _verify(self, block: rm.ChecksumBlock, wanted: dict[int, int], expected_cs: int) -> None:
        driver = self.frontend.driver
        wrong = [f"0x{a:02X} reads 0x{driver.read_register(a):04X}, wrote 0x{v:04X}"
                 for a, v in wanted.items() if driver.read_register(a) != v]
        chip_cs = driver.read_register(block.cs_addr)
        status = driver.read_register(rm.SYS_STATUS0)
        if wrong or chip_cs != expected_cs or status >> block.err_bit & 1:
            raise CalibrationRejected(f"calibration block CS{block.index} not verified: "
                                      + "; ".join([*wrong, f"CS{block.index} chip 0x{chip_cs:04X} "
                                                  f"driver 0x{expected_cs:04X}, SysStatus0 0x{status:04X}"]))
        if driver.read_register(block.start_addr) != rm.START_OPERATE:
            raise CalibrationRejected(f"start register 0x{block.start_addr:02X} did not stay at 0x8765")

    def read_back(self) -> CalibrationValues:
        """The calibration registers as the chip holds them now."""
        d = self.frontend.driver

        def triple(addrs: tuple[int, ...], signed: bool) -> tuple[int, int, int]:
            raw = [d.read_register(a) for a in addrs]
            v = [rm.to_signed16(x) if signed else x for x in raw]
            return (v[0], v[1], v[2])

        try:
            return CalibrationValues(
                u_gain=triple(rm.UGAIN, False), i_gain=triple(rm.IGAIN, False),
                u_offset=triple(rm.UOFFSET, True), i_offset=triple(rm.IOFFSET, True),
                energy_gain=triple(rm.GAIN, True), phase_delay=triple(rm.PHI, False),
                p_offset=triple(rm.POFFSET, True), q_offset=triple(rm.QOFFSET, True))
        except HwError as exc:
            raise CalibrationRejected(f"reading the calibration back from the metering IC failed: {exc}") from exc

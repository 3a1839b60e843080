"""Injected faults of the simulated ATM90E36, seen through the driver."""

from __future__ import annotations

import pytest

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36
from hw.atm90e36.errors import ChecksumError, ChipNotResponding
from hw.atm90e36.faults import ChipFault
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev, SpiTimeout
from meterd.core.clock import SimClock


def rig() -> tuple[SimClock, Atm90e36Sim, Atm90e36]:
    clock = SimClock()
    grid = Grid(clock.mono)
    grid.set_all_phases(voltage_v=230.0, current_a=10.0, phi_deg=0.0)
    sim = Atm90e36Sim(grid, clock.mono)
    drv = Atm90e36(SimSpiDev(sim), sleep=clock.advance)
    drv.start()
    return clock, sim, drv


def test_brown_out_unpowers_then_powers_on_with_defaults() -> None:
    clock, sim, drv = rig()
    clock.advance(2.0)
    sim.inject(ChipFault.BROWN_OUT)
    clock.advance(5.0)
    assert drv.read_register(rm.CAL_START) == 0x0000            # unpowered: SDO not driven
    sim.clear(ChipFault.BROWN_OUT)
    assert not drv.configuration_ok()
    assert drv.read_register(rm.CAL_START) == rm.START_POWER_UP
    clock.advance(5.0)
    assert drv.read_energy().counts["T"].active_import == 0      # not metering until configured
    drv.start()
    clock.advance(1.0)
    assert drv.read_energy().counts["T"].active_import > 0


@pytest.mark.parametrize(("kind", "word"), [(ChipFault.MISO_HIGH, 0xFFFF), (ChipFault.MISO_LOW, 0x0000)])
def test_stuck_miso_reads_one_word_but_the_chip_keeps_metering(kind: ChipFault, word: int) -> None:
    clock, sim, drv = rig()
    sim.inject(kind)
    clock.advance(3.0)
    assert drv.read_register(rm.CAL_START) == word and drv.read_register(rm.LAST_SPI_DATA) == word
    sim.clear(kind)
    assert drv.configuration_ok()
    # mWh, within one count (100 mWh at 1000 imp/kWh and 0.1 CF)
    assert drv.read_energy().milli["T"].active_import == pytest.approx(6900 * 3 / 3.6, abs=100)


def test_bit_flips_are_seeded_and_repaired_through_last_spi_data() -> None:
    def run(seed: int) -> tuple[int, int]:
        clock, sim, drv = rig()
        sim.inject(ChipFault.BIT_FLIPS, rate=0.002, seed=seed)
        clock.advance(2.0)
        count = drv.read_energy().milli["T"].active_import   # mWh
        return count, drv.stats.read_recoveries
    first = run(3)
    assert first == run(3)
    assert first[0] == pytest.approx(6900 * 2 / 3.6, abs=100)   # within one count (100 mWh)
    with pytest.raises(ValueError, match="rate"):
        rig()[1].inject(ChipFault.BIT_FLIPS, rate=0.9)


def test_a_corrupted_checksum_stops_metering_until_block_0_is_programmed_after_the_fault() -> None:
    clock, sim, drv = rig()
    sim.inject(ChipFault.CHECKSUM)
    assert drv.read_register(rm.SYS_STATUS0) >> 14 & 1
    clock.advance(2.0)
    assert drv.read_energy().counts["T"].active_import == 0
    with pytest.raises(ChecksumError):
        drv.start()
    sim.clear(ChipFault.CHECKSUM)
    drv.start()
    clock.advance(1.0)
    assert drv.read_energy().counts["T"].active_import > 0


def test_spi_timeouts_and_a_start_on_a_silent_bus() -> None:
    clock, sim, drv = rig()
    sim.inject(ChipFault.SPI_TIMEOUT)
    with pytest.raises(SpiTimeout):
        drv.read_register(rm.CAL_START)
    sim.clear(ChipFault.SPI_TIMEOUT)
    sim.inject(ChipFault.MISO_LOW)
    with pytest.raises(ChipNotResponding):
        drv.start()
    assert sim.injected == {ChipFault.MISO_LOW}
    assert ChipFault.parse("miso_low") is ChipFault.MISO_LOW
    with pytest.raises(ValueError, match="choose from"):
        ChipFault.parse("smoke")


def test_a_missing_spi_device_fails_each_transfer_until_it_appears() -> None:
    from hw.spi import ReopeningSpiDev, SpiDeviceMissing

    clock = SimClock()
    sim = Atm90e36Sim(Grid(clock.mono), clock.mono)
    present = False

    def opener() -> SimSpiDev:
        if not present:
            raise SpiDeviceMissing(2, "/dev/spidev0.0 does not exist", "/dev/spidev0.0")
        return SimSpiDev(sim)

    drv = Atm90e36(ReopeningSpiDev(opener), sleep=clock.advance)
    with pytest.raises(SpiDeviceMissing):
        drv.start()
    present = True
    drv.start()
    assert drv.configuration_ok()

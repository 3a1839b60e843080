"""The chip's DFT schedule survives a chip in fault: that DFT is dropped, the next one runs."""

from __future__ import annotations

from hw.atm90e36.driver import Atm90e36
from hw.atm90e36.faults import ChipFault
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.bridge.chip_pq import ChipPq
from meterd.core.clock import SimClock


def test_a_dft_during_a_chip_fault_is_dropped_not_raised() -> None:
    clock = SimClock()
    grid = Grid(clock.mono)
    grid.set_all_phases(voltage_v=230.0, current_a=10.0, phi_deg=0.0)
    sim = Atm90e36Sim(grid, clock.mono)
    driver = Atm90e36(SimSpiDev(sim), sleep=clock.advance)
    driver.start()
    pq = ChipPq(driver, clock, period_s=2.0)
    sim.inject(ChipFault.SPI_TIMEOUT)
    assert pq.poll() is None
    sim.clear(ChipFault.SPI_TIMEOUT)
    values = None
    for _ in range(10):
        clock.advance(1.0)
        values = pq.poll() or values
    assert values is not None

"""The front end's health facts and its recovery: resume a chip that kept its configuration,
restart one that lost it, leave one that does not answer alone."""

from __future__ import annotations

import pytest

from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.atm90e36.faults import ChipFault
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.bridge.frontend import Atm90e36FrontEnd
from meterd.core.chip_health import ChipReadError, ReadPattern, Recovery
from meterd.core.clock import SimClock
from meterd.core.reading import Channel


def rig(config: Atm90e36Config | None = None) -> tuple[SimClock, Atm90e36Sim, Atm90e36FrontEnd]:
    clock = SimClock()
    grid = Grid(clock.mono)
    grid.set_all_phases(voltage_v=230.0, current_a=10.0, phi_deg=0.0)
    sim = Atm90e36Sim(grid, clock.mono)
    fe = Atm90e36FrontEnd(Atm90e36(SimSpiDev(sim), config, sleep=clock.advance), clock, checksum_every=1)
    fe.start()
    return clock, sim, fe


def test_a_good_read_reports_healthy_facts() -> None:
    clock, _, fe = rig()
    clock.advance(1.0)
    fe.read()
    facts = fe.facts()
    assert facts.pattern is ReadPattern.NORMAL and facts.start_ok and facts.checksums_ok and not facts.error


def test_a_checksum_that_is_not_ours_is_seen_and_a_restart_puts_ours_back() -> None:
    clock, sim, fe = rig()
    other = Atm90e36FrontEnd(Atm90e36(SimSpiDev(sim), Atm90e36Config(starting_current_a=0.05),
                                      sleep=clock.advance), clock, checksum_every=1)
    other.driver.start()                      # someone else's configuration, running without error
    clock.advance(1.0)
    fe.read()
    assert fe.facts().start_ok and not fe.facts().checksums_ok
    assert fe.recover(restart=False) is Recovery.FAILED
    assert fe.recover(restart=True) is Recovery.RUNNING
    clock.advance(1.0)
    fe.read()
    assert fe.facts().checksums_ok


@pytest.mark.parametrize("kind", [ChipFault.MISO_HIGH, ChipFault.MISO_LOW, ChipFault.BROWN_OUT])
def test_a_silent_chip_is_left_alone_and_resumed_with_its_energy(kind: ChipFault) -> None:
    clock, sim, fe = rig()
    sim.inject(kind)
    clock.advance(1.0)
    fe.read()
    assert fe.facts().pattern is not ReadPattern.NORMAL
    assert fe.recover(restart=True) is Recovery.SILENT
    clock.advance(2.0)
    sim.clear(kind)
    assert fe.recover(restart=kind is ChipFault.BROWN_OUT) is Recovery.RUNNING
    clock.advance(1.0)
    total = fe.read().energy[Channel.TOTAL].active_import
    # stuck MISO: no reset, the 3 s the chip kept are delivered; brown-out: counted from the restart
    seconds = 1 if kind is ChipFault.BROWN_OUT else 3
    assert total == pytest.approx(6900 * seconds / 3.6, abs=100)   # within one count (100 mWh)


def test_a_failed_transfer_is_a_chip_read_error() -> None:
    clock, sim, fe = rig()
    sim.inject(ChipFault.SPI_TIMEOUT)
    with pytest.raises(ChipReadError, match="SpiTimeout"):
        fe.read()
    assert "SpiTimeout" in fe.facts().error
    with pytest.raises(ChipReadError, match="did not start"):
        fe.start()


def scaled_rig(current_a: float) -> tuple[SimClock, Atm90e36FrontEnd]:
    clock = SimClock()
    grid = Grid(clock.mono)
    grid.set_all_phases(voltage_v=230.0, current_a=current_a, phi_deg=0.0)
    sim = Atm90e36Sim(grid, clock.mono, current_scale=2)
    fe = Atm90e36FrontEnd(Atm90e36(SimSpiDev(sim), Atm90e36Config(current_scale=2), sleep=clock.advance), clock)
    fe.start()
    return clock, fe


@pytest.mark.parametrize(("current_a", "full_scale"), [(120.0, False), (131.0, False), (132.0, True)])
def test_the_current_full_scale_is_the_chips_times_the_current_scale(current_a: float, full_scale: bool) -> None:
    """131.07 A: the chip's 65.535 A × 2."""
    clock, fe = scaled_rig(current_a)
    clock.advance(1.0)
    reading = fe.read()
    assert fe.facts().current_full_scale is full_scale
    assert reading.phases[0].current_a == pytest.approx(min(current_a, 131.07), abs=0.01)


def test_the_facts_carry_the_capacity_of_an_energy_register() -> None:
    clock, fe = scaled_rig(10.0)
    clock.advance(1.0)
    fe.read()
    assert fe.facts().register_capacity_wh == pytest.approx(6553.5)   # 65535 × 0.1 Wh
    assert fe.facts().saturated == 0

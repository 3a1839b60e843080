"""The board's current scale k: the chip sees I/k, the driver gives back true A, W and Wh."""

from __future__ import annotations

import pytest

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.core.clock import SimClock


def rig(k: int = 2) -> tuple[SimClock, Grid, Atm90e36Sim, Atm90e36]:
    clock = SimClock()
    grid = Grid(clock.mono)
    sim = Atm90e36Sim(grid, clock.mono, current_scale=k)
    drv = Atm90e36(SimSpiDev(sim), Atm90e36Config(current_scale=k), sleep=clock.advance)
    drv.start()
    return clock, grid, sim, drv


def test_the_chip_sees_half_and_the_driver_reads_the_truth_at_120_a_and_115_pct_un() -> None:
    clock, grid, sim, drv = rig()
    grid.set_all_phases(voltage_v=264.5, current_a=120.0, pf=0.5, pf_kind="L")
    clock.advance(1.0)
    assert sim.peek(rm.IRMS[0]) == 60_000                      # 60.000 A at the chip (1 mA LSB)
    assert sim.peek(rm.PMEAN[0]) == round(264.5 * 60 * 0.5)    # 7935 W at the chip (1 W LSB)
    assert sim.peek(rm.SMEAN[0]) == round(264.5 * 60)          # 15 870 VA < 32 767
    m = drv.read_measurements()
    for phase in m.phases:
        assert phase.current_a == pytest.approx(120.0, abs=0.002)
        assert phase.active_power_w == pytest.approx(264.5 * 120 * 0.5, abs=2.0)
        assert phase.reactive_power_var == pytest.approx(264.5 * 120 * 0.75 ** 0.5, abs=2.0)
        assert phase.apparent_power_va == pytest.approx(264.5 * 120, abs=2.0)
        assert phase.power_factor == pytest.approx(0.5, abs=0.001)
    assert m.total_active_power_w == pytest.approx(3 * 264.5 * 120 * 0.5, abs=8.0)
    assert m.neutral_current_calc_a == pytest.approx(0.0, abs=0.01)


def test_without_the_scale_120_a_is_cut_at_the_register_top() -> None:
    clock, grid, sim, drv = rig(k=1)
    grid.set_all_phases(voltage_v=230.0, current_a=120.0, pf=1.0)
    clock.advance(1.0)
    assert drv.read_measurements().phases[0].current_a == pytest.approx(65.535, abs=0.001)


def test_energy_counts_stay_a_tenth_of_a_watt_hour_of_true_energy() -> None:
    clock, grid, sim, drv = rig()
    assert drv.config.pl_constant == 450_000_000_000 // 2000
    assert drv.milli_per_count == 100 and sim.milli_per_count() == pytest.approx(100)
    grid.set_all_phases(voltage_v=230.0, current_a=120.0, pf=0.8, pf_kind="C")
    start = grid.truth()
    billed = {"T": 0, "L2": 0}
    reactive = 0
    for _ in range(360):
        clock.advance(10.0)
        energy = drv.read_energy()
        billed["T"] += energy.milli["T"].active_import
        billed["L2"] += energy.milli["L2"].active_import
        reactive += energy.milli["T"].reactive_reverse
    truth = grid.truth()
    for ch, letter in (("T", "T"), ("L2", "B")):
        true_mwh = (truth[ch].active_import_wh - start[ch].active_import_wh) * 1000
        residue = sim.residue_milli(rm.energy_addr("APenergy", letter))
        assert billed[ch] + residue == pytest.approx(true_mwh, rel=1e-9)
        assert 0 <= true_mwh - billed[ch] < 100
    assert billed["T"] == pytest.approx(3 * 230 * 120 * 0.8 * 1000, abs=100)       # 66.24 kWh in the hour
    true_q = (truth["T"].reactive_reverse_varh - start["T"].reactive_reverse_varh) * 1000
    assert 0 <= true_q - reactive < 100
    # 1 count = 0.1 CF of the chip's MC × 2: 10 000 counts and so 1000 CF pulses per true kWh
    counts_per_kwh = 1_000_000 // drv.milli_per_count
    assert counts_per_kwh // 10 == drv.config.meter_constant_imp_per_kwh == 1000


def test_thresholds_are_written_for_what_the_chip_sees() -> None:
    clock, grid, sim, drv = rig()
    assert sim.peek(rm.addr("PStartTh")) == round(0.5 * 230 * 0.02 / 2 / 0.00032)
    # the starting current (20 mA true, 10 mA at the chip) counts, 8 mA does not
    grid.set_all_phases(current_a=0.008)
    clock.advance(600.0)
    assert drv.read_energy().milli["T"].active_import == 0
    grid.set_all_phases(current_a=0.02)
    clock.advance(600.0)
    assert 0 <= 230 * 0.02 * 600 / 3.6 - drv.read_energy().milli["L1"].active_import < 100


def test_a_bad_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="current_scale"):
        Atm90e36Sim(Grid(SimClock().mono), SimClock().mono, current_scale=0)

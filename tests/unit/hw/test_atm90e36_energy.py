"""Energy through driver + simulator against the grid's exact truth."""

from __future__ import annotations

import pytest

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, Atm90e36Config, ChannelCounts
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.core.clock import SimClock

CHANNEL_LETTER = {"T": "T", "L1": "A", "L2": "B", "L3": "C"}
COUNT_MWH = Atm90e36Config().milli_per_count
"""One register count at the default 1000 imp/kWh and 0.1 CF: 100 mWh (a read is short of the
truth by the sub-count residue the chip keeps, less than this)."""
QUANTUM_MWH = COUNT_MWH / 10
"""The chip's 0.01 CF accumulator quantum (10 mWh): import and export net within it."""


def rig(config: Atm90e36Config | None = None):
    clock = SimClock()
    grid = Grid(clock.mono)
    sim = Atm90e36Sim(grid, clock.mono)
    drv = Atm90e36(SimSpiDev(sim), config, sleep=clock.advance)
    drv.start()
    start = {ch: grid.truth()[ch] for ch in ("T", "L1", "L2", "L3")}
    return clock, grid, sim, drv, start


def run(clock: SimClock, drv: Atm90e36, seconds: int, step_s: float = 1.0) -> dict[str, ChannelCounts]:
    sums: dict[str, list[int]] = {ch: [0] * 9 for ch in ("T", "L1", "L2", "L3")}
    for _ in range(int(seconds / step_s)):
        clock.advance(step_s)
        energy = drv.read_energy()
        for ch, counts in energy.milli.items():
            for i, value in enumerate(vars(counts).values()):
                sums[ch][i] += value
    return {ch: ChannelCounts(*values) for ch, values in sums.items()}


def check(sim: Atm90e36Sim, grid: Grid, start: dict, totals: dict[str, ChannelCounts],
          truth_field: str, counts_field: str, stem: str) -> None:
    truth = grid.truth()
    for ch, letter in CHANNEL_LETTER.items():
        expected = (getattr(truth[ch], truth_field) - getattr(start[ch], truth_field)) * 1000
        measured = getattr(totals[ch], counts_field) + sim.residue_milli(rm.energy_addr(stem, letter))
        assert measured == pytest.approx(expected, rel=1e-6, abs=1e-6), (ch, counts_field)


def test_unity_pf_one_hour_matches_truth() -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_all_phases(voltage_v=230, current_a=5, pf=1.0)
    totals = run(clock, drv, 3600)
    check(sim, grid, start, totals, "active_import_wh", "active_import", "APenergy")
    check(sim, grid, start, totals, "apparent_vah", "apparent", "SAenergy")
    assert totals["T"].active_import == pytest.approx(3 * 1150_000, abs=1)
    assert totals["L1"].active_export == totals["L1"].reactive_forward == 0


@pytest.mark.parametrize(("pf", "kind", "q_truth", "q_field", "q_stem"), [
    (0.5, "L", "reactive_forward_varh", "reactive_forward", "RPenergy"),
    (0.8, "C", "reactive_reverse_varh", "reactive_reverse", "RNenergy"),
])
def test_reactive_loads(pf: float, kind: str, q_truth: str, q_field: str, q_stem: str) -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_all_phases(current_a=5, pf=pf, pf_kind=kind)
    totals = run(clock, drv, 600)
    check(sim, grid, start, totals, "active_import_wh", "active_import", "APenergy")
    check(sim, grid, start, totals, q_truth, q_field, q_stem)
    assert 0 <= 230 * 5 * pf * 600 / 3.6 - totals["L2"].active_import < COUNT_MWH


def test_export_counts_reverse_registers() -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_all_phases(current_a=8, pf=-0.9)
    totals = run(clock, drv, 900)
    check(sim, grid, start, totals, "active_export_wh", "active_export", "ANenergy")
    assert totals["T"].active_import == 0
    assert totals["T"].active_export > 0


def test_signed_total_nets_import_against_export() -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_phase(1, current_a=10, pf=1.0)
    grid.set_phase(2, current_a=4, pf=-1.0)
    totals = run(clock, drv, 300)
    check(sim, grid, start, totals, "active_import_wh", "active_import", "APenergy")
    check(sim, grid, start, totals, "active_export_wh", "active_export", "ANenergy")
    assert totals["T"].active_import == pytest.approx(230 * 6 * 300 / 3.6, abs=1)


def test_below_starting_current_nothing_counts() -> None:
    clock, grid, sim, drv, _ = rig()
    grid.set_all_phases(current_a=0.008)           # 1.84 W < 2.3 W threshold
    totals = run(clock, drv, 600, step_s=10)
    assert all(c == ChannelCounts() for c in totals.values())
    assert "noload_total_p" in drv.read_measurements().status
    grid.set_all_phases(current_a=0.02)            # the starting current counts
    totals = run(clock, drv, 600, step_s=10)
    assert 0 <= 230 * 0.02 * 600 / 3.6 - totals["L1"].active_import < COUNT_MWH


def test_load_steps_and_direction_change_flag() -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_all_phases(current_a=3)
    run(clock, drv, 100)
    clock.advance(0.25)
    grid.set_phase(1, current_a=6, pf=-1.0)
    totals = run(clock, drv, 100, step_s=0.5)
    assert "rev_p_L1" in drv.read_measurements().status
    grid_truth = grid.truth()["L1"]
    export_mwh = (grid_truth.active_export_wh - start["L1"].active_export_wh) * 1000
    # the import residue in the chip's bidirectional accumulator at the change nets against export
    assert totals["L1"].active_export + sim.residue_milli(0x85) == pytest.approx(export_mwh, abs=QUANTUM_MWH)


def test_fine_lsb_and_other_meter_constant() -> None:
    cfg = Atm90e36Config(meter_constant_imp_per_kwh=10000, energy_lsb_cf=0.01)   # 1 mWh per count
    clock, grid, sim, drv, start = rig(cfg)
    assert drv.milli_per_count == 1 and sim.milli_per_count() == pytest.approx(1)
    grid.set_all_phases(current_a=5, pf=0.5)
    totals = run(clock, drv, 1800)
    check(sim, grid, start, totals, "active_import_wh", "active_import", "APenergy")
    assert totals["L1"].active_import == pytest.approx(230 * 5 * 0.5 * 1800 / 3.6, abs=1)


def test_default_lsb_counts_whole_tenths_of_a_watt_hour() -> None:
    clock, grid, sim, drv, start = rig()
    assert drv.milli_per_count == 100 and sim.milli_per_count() == pytest.approx(100)
    grid.set_all_phases(current_a=5, pf=0.5)
    totals = run(clock, drv, 1800)
    check(sim, grid, start, totals, "active_import_wh", "active_import", "APenergy")
    assert totals["L1"].active_import % 100 == 0


def test_energy_gain_calibration_applies() -> None:
    cfg = Atm90e36Config(energy_gain=(3277, 0, 0))      # +10.0006 %
    clock, grid, sim, drv, start = rig(cfg)
    grid.set_all_phases(current_a=5)
    totals = run(clock, drv, 360)
    assert totals["L1"].active_import == pytest.approx(115_000 * (1 + 3277 / 32768), abs=1)
    assert totals["L2"].active_import == pytest.approx(115_000, abs=1)


def test_harmonic_and_fundamental_energy() -> None:
    clock, grid, sim, drv, start = rig()
    grid.set_phase(1, current_a=5, u_harmonics=[(5, 0.1, 0)], i_harmonics=[(5, 0.2, 0)])
    totals = run(clock, drv, 360)
    truth = grid.truth()["L1"]
    assert totals["L1"].fundamental_import + sim.residue_milli(0xA1) == pytest.approx(
        (truth.fundamental_import_wh - start["L1"].fundamental_import_wh) * 1000, rel=1e-9)
    assert totals["L1"].harmonic_import == pytest.approx(230 * 5 * 0.02 * 360 / 3.6, abs=1)


def test_saturation_loses_counts_visibly() -> None:
    clock, grid, sim, drv, _ = rig()
    grid.set_all_phases(current_a=60)              # 13.8 kW per phase = 3.83 Wh/s
    clock.advance(1800)                            # 6900 Wh > 6553.5 Wh register range
    energy = drv.read_energy()
    assert energy.counts["L1"].active_import == 0xFFFF
    assert sim.overflow_counts(0x81) > 0

"""The full current range: billed error at the IEC 62053-22 points from 1 % Ib to 120 A.

The ATM90E36 driver with the shipped constants (1000 imp/kWh, 0.1 CF, board current scale 2)
meters one simulated hour per point (three phases, 230 V, 10 s reads) against the register-exact
simulator. Per point it prints the billed active import against the grid's true energy (the
register quantisation: the chip holds back less than one 0.1 Wh count), the same with the chip's
sub-count residue added (what is lost: nothing), and the error of the current the driver reads.
Then the saturation arithmetic of the shipped constants. Prints ``name: value unit`` lines.
Run from the repo root: ``.venv/bin/python bench/bench_range.py``.
"""

from __future__ import annotations

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.core import register_range
from tests.fakes import ManualMono

IB_A = 5.0
IMAX_A = 100.0
CURRENTS_A = (0.01 * IB_A, 0.05 * IB_A, IB_A, IMAX_A, 1.2 * IMAX_A)
POWER_FACTORS = ((1.0, "L"), (0.5, "L"), (0.8, "C"))
CURRENT_SCALE = 2
SECONDS = 3600
READ_EVERY_S = 10.0


def point(current_a: float, pf: float, kind: str) -> tuple[float, float, float]:
    """(billed error %, billed + residue error %, current read error %) after an hour."""
    clock = ManualMono(0.0)
    grid = Grid(clock)
    sim = Atm90e36Sim(grid, clock, current_scale=CURRENT_SCALE)
    drv = Atm90e36(SimSpiDev(sim), Atm90e36Config(current_scale=CURRENT_SCALE), sleep=clock.advance)
    drv.start()
    grid.set_all_phases(voltage_v=230.0, current_a=current_a, pf=pf, pf_kind=kind)
    start_wh = grid.truth()["T"].active_import_wh
    billed_mwh = 0
    for _ in range(round(SECONDS / READ_EVERY_S)):
        clock.advance(READ_EVERY_S)
        billed_mwh += drv.read_energy().milli["T"].active_import
    true_mwh = (grid.truth()["T"].active_import_wh - start_wh) * 1000
    residue = sim.residue_milli(rm.energy_addr("APenergy", "T"))
    current_read = drv.read_measurements().phases[0].current_a
    return (100 * (billed_mwh - true_mwh) / true_mwh, 100 * (billed_mwh + residue - true_mwh) / true_mwh,
            100 * (current_read - current_a) / current_a)


def main() -> None:
    worst_billed = 0.0
    for current_a in CURRENTS_A:
        for pf, kind in POWER_FACTORS:
            billed, with_residue, current = point(current_a, pf, kind)
            worst_billed = max(worst_billed, abs(billed)) if current_a >= IB_A else worst_billed
            label = f"{current_a:g}A_pf{pf:g}{kind if pf < 1 else ''}"
            print(f"billed_error_{label}: {billed:+.4f} %")
            print(f"billed_plus_chip_residue_error_{label}: {with_residue:+.2e} %")
            print(f"current_read_error_{label}: {current:+.4f} %")
    print(f"worst_billed_error_from_ib_to_120a: {worst_billed:.4f} %")
    milli = register_range.milli_per_count(1000, 0.1)
    capacity = register_range.capacity_wh(milli)
    power = register_range.worst_case_power_w(230.0, IMAX_A)
    print(f"energy_per_count: {float(milli) / 1000:g} Wh")
    print(f"register_capacity: {capacity:g} Wh")
    print(f"worst_case_power_3x1.15Unx1.2Imax: {power:.0f} W")
    print(f"total_register_hold_time: {register_range.hold_time_s(capacity, power):.1f} s")
    print(f"phase_register_hold_time: {register_range.hold_time_s(capacity, power / 3):.1f} s")
    print(f"current_full_scale: {65.535 * CURRENT_SCALE:.2f} A")


if __name__ == "__main__":
    main()

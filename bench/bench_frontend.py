"""Front-end cost: the ATM90E36 driver against the register-exact simulator, and the grid waveforms.

Prints ``name: value unit`` lines. Run from the repo root: ``.venv/bin/python bench/bench_frontend.py``.
"""

from __future__ import annotations

import time

from hw.atm90e36.driver import Atm90e36
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev


class Clock:
    """Minimal monotonic sim clock (s)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt_s: float) -> None:
        self.t += dt_s


def bench_cycles(cycles: int, fault: str | None = None) -> tuple[float, int]:
    clock = Clock()
    grid = Grid(clock)
    sim = Atm90e36Sim(grid, clock, fault=fault)
    spi = SimSpiDev(sim, record=True)
    drv = Atm90e36(spi, sleep=clock.advance)
    drv.start()
    grid.set_all_phases(current_a=5, pf=0.9, u_harmonics=[(5, 0.04, 0)], i_harmonics=[(3, 0.2, 0)])
    spi.frames.clear()
    spi.record = False
    start = time.process_time()
    for _ in range(cycles):
        clock.advance(1.0)
        drv.read_measurements()
        drv.read_energy()
    elapsed = time.process_time() - start
    spi.record = True
    clock.advance(1.0)
    drv.read_measurements()
    drv.read_energy()
    return elapsed, len(spi.frames)


def bench_waveform(seconds: int) -> float:
    clock = Clock()
    grid = Grid(clock)
    grid.set_all_phases(current_a=5, pf=0.9, u_harmonics=[(h, 0.01, 0) for h in range(2, 51)])
    start = time.process_time()
    for k in range(seconds * 5):
        grid.waveform_block(k * 1600, 1600)
    return time.process_time() - start


def main() -> None:
    cpu_s, frames = bench_cycles(1000)
    print(f"driver_cycle_cpu_per_1000_cycles: {cpu_s:.3f} s")
    print(f"spi_frames_per_cycle: {frames} frames")
    print(f"sim_cpu_per_frame: {cpu_s / 1000 / frames * 1e6:.2f} us")
    cpu_s, _ = bench_cycles(1000, fault="corrupt_read")
    print(f"driver_cycle_cpu_per_1000_cycles_corrupt_read: {cpu_s:.3f} s")
    cpu_s = bench_waveform(60)
    print(f"waveform_cpu_per_simulated_second_50_harmonics: {cpu_s / 60 * 1000:.2f} ms")


if __name__ == "__main__":
    main()

"""The simulated board's analogue front end: reproducible errors, the chip's registers undo them."""

from __future__ import annotations

import dataclasses

from hw.atm90e36.analog import AnalogBoard, ChannelErrors, phi_shift_rad, seen_powers
from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid, PhaseState, phi_from_pf
from hw.spi import SimSpiDev
from meterd.core import calibration as cal
from meterd.core.clock import SimClock


def test_seed_zero_is_the_ideal_board_and_changes_nothing() -> None:
    board = AnalogBoard.from_seed(0)
    assert board.ideal
    pw = PhaseState(current_a=5.0, phi_deg=60.0).powers
    assert seen_powers(board, 0, pw, 0.0) is pw


def test_a_seed_gives_the_same_board_every_time_and_seeds_differ() -> None:
    assert AnalogBoard.from_seed(7) == AnalogBoard.from_seed(7)
    assert AnalogBoard.from_seed(7) != AnalogBoard.from_seed(8)
    assert not AnalogBoard.from_seed(7).ideal


def test_ct_phase_error_and_phi_compensation_cancel() -> None:
    board = AnalogBoard(seed=1, phases=(ChannelErrors(phase_deg=0.3), ChannelErrors(), ChannelErrors()))
    pw = PhaseState(current_a=5.0, phi_deg=60.0).powers
    off = seen_powers(board, 0, pw, 0.0)
    assert off.p_w / pw.p_w - 1 < -0.008          # 0.3° at PF 0.5: about −0.9 %
    error = off.p_w / pw.p_w - 1
    phi = cal.phase_delay(0, error, 50.0)
    assert phi & 0x8000                            # the current lags: delay the voltage
    fixed = seen_powers(board, 0, pw, phi_shift_rad(phi, 50.0))
    assert abs(fixed.p_w / pw.p_w - 1) < 2e-4


def _rig(seed: int) -> tuple[SimClock, Grid, Atm90e36Sim, Atm90e36]:
    clock = SimClock()
    grid = Grid(clock.mono)
    sim = Atm90e36Sim(grid, clock.mono, board=AnalogBoard.from_seed(seed))
    driver = Atm90e36(SimSpiDev(sim), Atm90e36Config(), sleep=lambda _s: None)
    driver.start()
    return clock, grid, sim, driver


def _measure(clock: SimClock, driver: Atm90e36) -> tuple[cal.PhaseReading, ...]:
    clock.advance(1.0)
    m = driver.read_measurements()
    return tuple(cal.PhaseReading(p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var)
                 for p in m.phases)


def _truth(grid: Grid) -> tuple[cal.PhaseReading, ...]:
    return tuple(cal.PhaseReading(pw.urms_v, pw.irms_a, pw.p_w, pw.q_var) for pw in grid.state.phase_powers)


def _errors(clock: SimClock, grid: Grid, driver: Atm90e36) -> list[float]:
    meter, truth = _measure(clock, driver), _truth(grid)
    return [m.active_power_w / t.active_power_w - 1 for m, t in zip(meter, truth, strict=True)]


def test_an_uncalibrated_seeded_board_is_out_of_class_and_the_an_procedure_brings_it_in() -> None:
    clock, grid, _sim, driver = _rig(seed=16)
    grid.set_all_phases(voltage_v=230.0, current_a=5.0, phi_deg=phi_from_pf(0.5, "L"))
    assert max(abs(e) for e in _errors(clock, grid, driver)) > 0.006   # class 0.5S at PF 0.5 L: ±0.6 %
    values = cal.CalibrationValues()
    grid.set_all_phases(voltage_v=0.0, current_a=0.0, phi_deg=0.0)
    no_voltage = _measure(clock, driver)
    grid.set_all_phases(voltage_v=230.0, current_a=0.0)
    no_current = _measure(clock, driver)
    values = cal.offsets_step(values, no_voltage, no_current)
    for step in ("gains", "phase"):
        driver.config = dataclasses.replace(driver.config, **_config_fields(values))
        driver.start()
        if step == "gains":
            grid.set_all_phases(voltage_v=230.0, current_a=5.0, phi_deg=0.0)
            values = cal.gains_step(values, _measure(clock, driver), _truth(grid))
        else:
            grid.set_all_phases(voltage_v=230.0, current_a=5.0, phi_deg=phi_from_pf(0.5, "L"))
            values = cal.phase_step(values, _measure(clock, driver), _truth(grid), 50.0)
    cal.check_plausible(values)
    driver.config = dataclasses.replace(driver.config, **_config_fields(values))
    driver.start()
    for current, pf, kind in ((5.0, 1.0, "L"), (5.0, 0.5, "L"), (5.0, 0.8, "C"), (0.25, 1.0, "L"), (100.0, 1.0, "L")):
        grid.set_all_phases(voltage_v=230.0, current_a=current, phi_deg=phi_from_pf(pf, kind))  # type: ignore[arg-type]
        assert max(abs(e) for e in _errors(clock, grid, driver)) < 0.0005, (current, pf, kind)
    grid.set_all_phases(voltage_v=230.0, current_a=50.0, phi_deg=0.0)
    m = _measure(clock, driver)
    assert all(abs(p.voltage_v - 230.0) < 0.01 and abs(p.current_a - 50.0) < 0.005 for p in m), m


def _config_fields(values: cal.CalibrationValues) -> dict[str, tuple[int, int, int]]:
    return {"u_gain": values.u_gain, "i_gain": values.i_gain, "u_offset": values.u_offset,
            "i_offset": values.i_offset, "energy_gain": values.energy_gain, "phase_delay": values.phase_delay,
            "p_offset": values.p_offset, "q_offset": values.q_offset}

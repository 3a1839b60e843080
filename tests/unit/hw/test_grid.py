"""The grid model: exact truth over segments, continuous waveforms, steps at sample indices, scenarios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hw.sim.grid import Flicker, Grid, GridError, phi_from_pf
from hw.sim.scenario import Scenario, ScenarioError
from meterd.core.clock import SimClock


def make() -> tuple[SimClock, Grid]:
    clock = SimClock()
    return clock, Grid(clock.mono)


def test_truth_piecewise_and_quadrants() -> None:
    clock, grid = make()
    grid.set_phase(1, current_a=10, pf=1.0)
    clock.advance(1800)
    grid.set_phase(1, current_a=10, pf=-0.5, pf_kind="C")      # export, Q < 0: quadrant III
    clock.advance(900)
    grid.set_phase(1, current_a=4, pf=0.8, pf_kind="C")        # import, Q < 0: quadrant IV
    clock.advance(450)
    t = grid.truth()["L1"]
    assert t.active_import_wh == pytest.approx(2300 * 0.5 + 736 * 0.125, rel=1e-12)
    assert t.active_export_wh == pytest.approx(1150 * 0.25, rel=1e-12)
    assert t.reactive_q3_varh == pytest.approx(2300 * math.sin(math.acos(0.5)) * 0.25, rel=1e-12)
    assert t.reactive_q4_varh == pytest.approx(920 * 0.6 * 0.125, rel=1e-12)
    assert t.reactive_q1_varh == t.reactive_q2_varh == 0
    assert t.apparent_vah == pytest.approx(2300 * 0.75 + 920 * 0.125, rel=1e-12)
    total = grid.truth()["T"]
    assert total.active_import_wh == pytest.approx(t.active_import_wh, rel=1e-12)


def test_truth_at_past_time_and_signed_total() -> None:
    clock, grid = make()
    grid.set_phase(1, current_a=10)
    grid.set_phase(2, current_a=4, pf=-1)
    clock.advance(3600)
    truth = grid.truth()
    assert truth["T"].active_import_wh == pytest.approx(230 * 6, rel=1e-12)
    assert truth["T"].active_export_wh == 0
    assert truth["L2"].active_export_wh == pytest.approx(920, rel=1e-12)
    assert grid.truth(grid.t0 + 1800)["L1"].active_import_wh == pytest.approx(1150, rel=1e-12)


def test_waveform_rms_rows_and_neutral() -> None:
    _, grid = make()
    grid.set_all_phases(current_a=5, pf=0.8)
    grid.set_phase(1, u_harmonics=[(5, 0.1, 30.0)], i_harmonics=[(3, 0.4, 0.0)])
    block = grid.waveform_block(0, 8000)
    rms = np.sqrt(np.mean(block ** 2, axis=1))
    assert rms[0] == pytest.approx(230 * math.sqrt(1.01), rel=1e-9)
    assert rms[1] == pytest.approx(5 * math.sqrt(1.16), rel=1e-9)
    assert rms[2] == pytest.approx(230, rel=1e-9)
    np.testing.assert_allclose(block[6], block[1] + block[3] + block[5], atol=1e-9)
    assert rms[6] == pytest.approx(grid.state.neutral_rms_a(), rel=1e-9)
    p = np.mean(block[0] * block[1])
    assert p == pytest.approx(grid.state.phase_powers[0].p_w, rel=1e-9)
    assert grid.state.phase_powers[0].q_var == pytest.approx(230 * 5 * 0.6, rel=1e-12)


def test_waveform_blocks_are_continuous() -> None:
    clock, grid = make()
    grid.set_all_phases(current_a=3, u_harmonics=[(7, 0.05, 10)])
    grid.set_frequency(49.7, at_s=grid.sample_time(1234))
    grid.set_phase(2, voltage_v=100, at_s=grid.sample_time(3000))
    whole = grid.waveform_block(0, 6000)
    parts = np.concatenate([grid.waveform_block(a, b - a) for a, b in ((0, 17), (17, 1500), (1500, 6000))], axis=1)
    np.testing.assert_array_equal(whole, parts)
    # phase-continuous at the frequency step: no jump larger than the normal slope
    u1 = whole[0]
    max_step = 2 * math.pi * 50 / 8000 * 230 * math.sqrt(2) * 1.4
    assert np.max(np.abs(np.diff(u1))) < max_step


def test_step_at_exact_sample_index() -> None:
    _, grid = make()
    grid.set_phase(1, voltage_v=230)
    grid.set_phase(1, voltage_v=0.0, at_s=grid.sample_time(4000))
    grid.set_phase(1, voltage_v=115.0, at_s=grid.sample_time(4800))
    block = grid.waveform_block(3990, 1000)
    assert np.all(block[0][10:810] == 0)
    assert block[0][9] != 0
    assert np.max(np.abs(block[0][810:])) == pytest.approx(115 * math.sqrt(2), rel=1e-3)


def test_flicker_modulation_depth() -> None:
    _, grid = make()
    grid.set_phase(1, flicker=Flicker("rect", 4.0, 2.0))
    block = grid.waveform_block(0, 8000)[0]
    cycles = block.reshape(50, 160)
    peaks = np.max(np.abs(cycles), axis=1)
    assert peaks.max() / peaks.min() == pytest.approx(1.01 / 0.99, rel=1e-3)
    assert grid.state.phase_powers[0].urms_v == 230  # truth keeps the unmodulated value


def test_interruption_and_neutral_extra() -> None:
    _, grid = make()
    grid.set_all_phases(current_a=5)
    grid.set_neutral_extra(2.0, 90.0)
    grid.set_phase(3, on=False)
    block = grid.waveform_block(0, 1600)
    assert not block[4].any() and not block[5].any()
    expected = abs(5 + 5 * complex(math.cos(math.radians(-120)), math.sin(math.radians(-120))) + 2j)
    assert grid.state.neutral_rms_a() == pytest.approx(expected, rel=1e-12)
    assert np.sqrt(np.mean(block[6] ** 2)) == pytest.approx(expected, rel=1e-9)


def test_history_is_never_rewritten() -> None:
    clock, grid = make()
    grid.set_phase(1, current_a=10)
    clock.advance(10)
    before = grid.truth()["L1"].active_import_wh
    with pytest.raises(GridError):
        grid.set_phase(1, current_a=1, at_s=grid.t0 - 1)
    effective = grid.set_phase(1, current_a=0, at_s=grid.t0 + 5)  # before the observed horizon
    assert effective == grid.t0 + 10
    assert grid.truth()["L1"].active_import_wh == before


def test_validation() -> None:
    _, grid = make()
    with pytest.raises(GridError):
        grid.set_phase(4, current_a=1)
    with pytest.raises(GridError):
        grid.set_phase(1, amps=1)
    with pytest.raises(GridError):
        phi_from_pf(1.2)
    assert phi_from_pf(0.5, "C") == pytest.approx(-60)


SCENARIO = """
[[events]]
at_s = 0
phase = "all"
current_a = 5.0
pf = 0.5
pf_kind = "L"

[[events]]
at_s = 10
phase = "L2"
voltage_v = 100.0
u_harmonics = [[5, 0.05, 0.0]]

[[events]]
at_s = 20
frequency_hz = 49.5
neutral_extra_a = 1.5
signal = "cover_open"
value = true

[[events]]
at_s = 30
power_cut = true
"""


def test_scenario_applies_events_in_time() -> None:
    clock, grid = make()
    seen: list[object] = []
    scenario = Scenario.from_text(SCENARIO, grid, handlers={"cover_open": seen.append})
    assert scenario.next_due_s() == grid.t0
    assert len(scenario.apply_due(clock.mono())) == 1
    assert grid.state.phases[0].phi_deg == pytest.approx(60)
    clock.advance(25)
    applied = scenario.apply_due(clock.mono())
    assert [e.at_s for e in applied] == [10, 20]
    assert seen == [True]
    assert grid.state.phases[1].voltage_v == 100 and grid.state.frequency_hz == 49.5
    assert grid.state_at(grid.t0 + 15).phases[1].voltage_v == 100      # dated at the event time
    assert grid.state.neutral_extra_a == 1.5
    clock.advance(10)
    scenario.apply_due(clock.mono())
    assert not any(ph.on for ph in grid.state.phases)
    assert scenario.next_due_s() is None


@pytest.mark.parametrize("bad", [
    "[[events]]\nat_s = 1\nvoltage_v = 200\n",                 # phase missing
    "[[events]]\nat_s = -1\nfrequency_hz = 50\n",
    "[[events]]\nat_s = 1\nphase = \"L1\"\nvolts = 3\n",
    "[[events]]\nat_s = 1\nphase = \"L1\"\nflicker = { shape = \"saw\", f_mod_hz = 1, delta_u_pct = 1 }\n",
    "[grid]\nfrequency_hz = 50\n",
])
def test_scenario_rejects_bad_files(bad: str) -> None:
    _, grid = make()
    with pytest.raises(ScenarioError, match="<string>"):
        Scenario.from_text(bad, grid)


def test_scenario_file(tmp_path) -> None:
    path = tmp_path / "sag.toml"
    path.write_text("[[events]]\nat_s = 0.5\nphase = \"L1\"\nvoltage_v = 150\n", encoding="utf-8")
    clock, grid = make()
    scenario = Scenario.load(path, grid)
    clock.advance(1)
    scenario.apply_due(clock.mono())
    assert grid.state.phases[0].voltage_v == 150


@pytest.mark.parametrize("frequency_hz", [50.0, 60.0])
def test_blocks_from_the_cycle_table_follow_the_formula(frequency_hz: float) -> None:
    from hw.sim.grid import _fill_segment

    clock, grid = make()
    grid.set_frequency(frequency_hz)
    grid.set_all_phases(current_a=5, u_harmonics=[(5, 0.04, 30)], i_harmonics=[(3, 0.2, 0)])
    seg = grid._segments[-1]
    for start, n in ((0, 8000), (37, 159), (12345, 8000), (999, 20000), (70001, 1)):
        got = grid.waveform_block(start, n)
        expected = np.zeros((7, n))
        _fill_segment(expected, seg, grid.t0 + np.arange(start, start + n) / grid.sample_rate_hz, grid.t0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # µV, µA: float rounding of the phase
    assert grid._cycle_table(seg)._samples.nbytes <= 2 * 7 * 400 * 8  # two periods, not a second

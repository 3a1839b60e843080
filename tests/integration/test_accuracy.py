"""Accuracy at the IEC 62053-22 test points: the software adds no error of its own.

The simulated ATM90E36 integrates the grid model's exact power with the chip's own quantisation
(1 count = 0.1 Wh: 1000 imp/kWh at 0.1 CF) and keeps the sub-count residue internally. After one
simulated hour the meter's registers must equal the grid's true energy within 0.01 % — or, at
the smallest loads where one count is more than 0.01 % of an hour's energy, within that
one-count quantum — and registers plus the chip's residue must equal the truth exactly: whatever
the meter shows comes from the chip, counted once, lost nowhere.

The points run from 1 % Ib to Imax and on to the 120 A over-current setting (Imax + 20 %): the
board's current scale (the chip sees I/2) keeps them all inside the chip's registers.

``make test`` runs a pairwise subset of the 72 points (:data:`QUICK`, 18 hours of meter time):
every current at every power factor once, with the direction and the layout (balanced or one
phase) chosen so that every pair of values of any two of current, power factor, direction and
layout occurs, and the one-phase points land on all three phases. An error of the software at
a point comes from one of these values or the meeting of two (a sign at export, a phase's
channel mapping, quantisation at the smallest currents); the subset meets each of those, and
``make soak`` (``slow``) runs the whole matrix and every one-phase point on the other phases.
"""

from __future__ import annotations

import itertools

import pytest

from hw.atm90e36 import regmap as rm
from meterd.app.sim_world import parse_power_factor
from meterd.core.energy import Derived, Quantity
from meterd.core.reading import Channel
from tests.simmeter import SimMeter

IB_A = 5.0
IMAX_A = 100.0
CURRENTS_A = [0.01 * IB_A, 0.05 * IB_A, 0.1 * IB_A, IB_A, IMAX_A, 1.2 * IMAX_A]
COUNT_MWH = 100
"""One register count (mWh) at the shipped 1000 imp/kWh and 0.1 CF."""
POWER_FACTORS = ["1", "0.5L", "0.8C"]
LETTER = {Channel.TOTAL: "T", Channel.L1: "A", Channel.L2: "B", Channel.L3: "C"}
TRUTH_NAME = {Channel.TOTAL: "T", Channel.L1: "L1", Channel.L2: "L2", Channel.L3: "L3"}


def cycle_for(total_w: float) -> float:
    """Longest poll (s, ≤ 10) that keeps every 16-bit energy register far from overflow (a tenth
    of its 6553.5 Wh)."""
    return float(max(1, min(10, int(655_350 * 3.6 / max(total_w, 1.0)))))


def check_against_truth(sm: SimMeter, r0, t0_truth, duration_s: float) -> None:
    truth1 = sm.world.grid.truth(sm.clock.mono())
    regs = sm.meter.registers
    chip = sm.world.chip
    for ch in Channel:
        name = TRUTH_NAME[ch]
        before, after = t0_truth[name], truth1[name]

        def true_delta(field: str, after=after, before=before) -> float:
            return (getattr(after, field) - getattr(before, field)) * 1000.0  # milli-units

        def meas(q: Quantity | Derived, ch=ch) -> int:
            return regs.get(q, ch) - r0.get(q, ch)

        pairs = [
            (meas(Quantity.ACTIVE_IMPORT), true_delta("active_import_wh"), "APenergy"),
            (meas(Quantity.ACTIVE_EXPORT), true_delta("active_export_wh"), "ANenergy"),
            (meas(Derived.REACTIVE_IMPORT), true_delta("reactive_q1_varh") + true_delta("reactive_q2_varh"),
             "RPenergy"),
            (meas(Derived.REACTIVE_EXPORT), true_delta("reactive_q3_varh") + true_delta("reactive_q4_varh"),
             "RNenergy"),
            (meas(Quantity.APPARENT_IMPORT) + meas(Quantity.APPARENT_EXPORT), true_delta("apparent_vah"),
             "SAenergy"),
        ]
        for measured, truth, stem in pairs:
            residue = chip.residue_milli(rm.energy_addr(stem, LETTER[ch]))
            assert measured + residue == pytest.approx(truth, rel=1e-9, abs=1e-6), (ch, stem)
            assert abs(measured - truth) <= max(1e-4 * truth, COUNT_MWH), (ch, stem, measured, truth)
        # quadrant split follows the power direction
        for q in (Quantity.REACTIVE_Q1, Quantity.REACTIVE_Q2, Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4):
            field = {Quantity.REACTIVE_Q1: "reactive_q1_varh", Quantity.REACTIVE_Q2: "reactive_q2_varh",
                     Quantity.REACTIVE_Q3: "reactive_q3_varh", Quantity.REACTIVE_Q4: "reactive_q4_varh"}[q]
            if true_delta(field) == 0.0:
                assert meas(q) == 0, (ch, q)
    assert duration_s == pytest.approx(3600.0)


PHASE_NAMES = ["L1", "L2", "L3"]


def single_phase_for(current_a: float, pf: str, direction: str) -> str:
    """The phase a single-phase point loads: a Latin-square rotation, so that every phase sees
    every current, every power factor and both directions, at the cost of one phase per point."""
    rank = CURRENTS_A.index(current_a) + POWER_FACTORS.index(pf) + ["import", "export"].index(direction)
    return PHASE_NAMES[rank % 3]


def quick_point(current_a: float, pf: str) -> tuple[str, str]:
    """The direction and layout of the ``make test`` point at ``current_a`` and ``pf``: the
    direction alternates with the sum of the two indices, and one power factor in three (the
    current's index modulo 3) is loaded on one phase (its rotated phase), the others balanced."""
    ci, pi = CURRENTS_A.index(current_a), POWER_FACTORS.index(pf)
    direction = ["import", "export"][(ci + pi) % 2]
    layout = f"single-{single_phase_for(current_a, pf, direction)}" if pi == ci % 3 else "balanced"
    return direction, layout


QUICK = [(current, pf, *quick_point(current, pf)) for current in CURRENTS_A for pf in POWER_FACTORS]
"""The points ``make test`` runs (see the module notes); the rest are ``slow``."""

POINTS = [
    pytest.param(current, pf, direction, layout,
                 id=f"{current:g}A-pf{pf}-{direction}-{layout}",
                 marks=() if (current, pf, direction, layout) in QUICK else pytest.mark.slow)
    for current, pf, direction, layout in itertools.product(
        CURRENTS_A, POWER_FACTORS, ["import", "export"],
        ["balanced", "single-L1", "single-L2", "single-L3"])
    if not layout.startswith("single") or layout == f"single-{single_phase_for(current, pf, direction)}"
]


def measure_an_hour(tmp_path, current_a: float, pf: str, direction: str, loaded: list[str]) -> None:
    """Load the ``loaded`` phases at ``current_a`` (A), 230 V and ``pf`` for one simulated hour
    and compare every register of every channel with the grid's true energy."""
    sm = SimMeter(tmp_path, sim={"current_a": 0.0})
    try:
        phi = parse_power_factor(("-" if direction == "export" else "") + pf)
        for phase in loaded:
            sm.world.grid.set_phase(phase, voltage_v=230.0, current_a=current_a, phi_deg=phi)
        t0_truth = sm.world.grid.truth(sm.clock.mono())
        r0 = sm.meter.registers.snapshot()
        from meterd.core.energy import EnergyRegisters

        cycle_s = cycle_for(230.0 * current_a * len(loaded))
        sm.run(3600.0, cycle_s)
        check_against_truth(sm, EnergyRegisters(r0), t0_truth, 3600.0)
        assert sm.meter.registers.get(Derived.ACTIVE_ABSOLUTE) > 0
        for phase in PHASE_NAMES:  # the energy lands on the loaded phases only
            channel = Channel(phase)
            assert (sm.meter.registers.get(Derived.ACTIVE_ABSOLUTE, channel) > 0) == (phase in loaded), phase
    finally:
        sm.close()


@pytest.mark.parametrize(("current_a", "pf", "direction", "layout"), POINTS)
def test_registers_equal_true_energy_after_an_hour(tmp_path, current_a, pf, direction, layout):
    loaded = PHASE_NAMES if layout == "balanced" else [layout.removeprefix("single-")]
    measure_an_hour(tmp_path, current_a, pf, direction, loaded)


def test_single_phase_points_cover_every_phase():
    singles = [p.values for p in POINTS if p.values[3].startswith("single")]
    assert len(singles) == len(CURRENTS_A) * len(POWER_FACTORS) * 2
    for index, values in ((0, CURRENTS_A), (1, POWER_FACTORS), (2, ["import", "export"])):
        for value in values:
            assert {s[3] for s in singles if s[index] == value} == {"single-L1", "single-L2", "single-L3"}, value


def test_quick_points_meet_every_pair_of_values():
    factors = [CURRENTS_A, POWER_FACTORS, ["import", "export"], ["balanced", "single"]]
    quick = [(c, pf, d, layout.split("-")[0]) for c, pf, d, layout in QUICK]
    assert len(QUICK) == 18 and all(p in [q.values for q in POINTS] for p in QUICK)
    for i, j in itertools.combinations(range(4), 2):
        assert {(q[i], q[j]) for q in quick} == set(itertools.product(factors[i], factors[j])), (i, j)
    assert {layout for *_, layout in QUICK if layout != "balanced"} == {"single-L1", "single-L2", "single-L3"}
    unmarked = [p for p in POINTS if not p.marks]
    assert sorted(p.values for p in unmarked) == sorted(QUICK)


OTHER_PHASES = [
    pytest.param(current, pf, direction, phase, id=f"{current:g}A-pf{pf}-{direction}-{phase}")
    for current, pf, direction, phase in itertools.product(CURRENTS_A, POWER_FACTORS, ["import", "export"],
                                                           PHASE_NAMES)
    if phase != single_phase_for(current, pf, direction)
]


@pytest.mark.slow
@pytest.mark.parametrize(("current_a", "pf", "direction", "phase"), OTHER_PHASES)
def test_every_single_phase_point_on_the_other_phases(tmp_path, current_a, pf, direction, phase):
    """The full product (``make soak``); ``make test`` runs each point on its rotated phase."""
    measure_an_hour(tmp_path, current_a, pf, direction, [phase])


def test_below_starting_current_nothing_registers(tmp_path):
    sm = SimMeter(tmp_path, sim={"current_a": 0.0})
    try:
        sm.world.grid.set_all_phases(voltage_v=264.5, current_a=0.015, phi_deg=0.0)  # 0.3 % Ib at 115 % Un
        sm.run(3600.0, 10.0)
        assert all(v == 0 for v in sm.meter.registers.snapshot().values())
        sm.world.grid.set_all_phases(voltage_v=264.5, current_a=0.0)
        sm.run(600.0, 10.0)  # no-load creep: voltage only
        assert all(v == 0 for v in sm.meter.registers.snapshot().values())
    finally:
        sm.close()

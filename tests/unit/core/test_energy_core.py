"""Four-quadrant accounting, the starting-current rule and register consistency."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterd.core.energy import (
    ALL_KEYS,
    CreepRule,
    Derived,
    EnergyRegisters,
    Quantity,
    cycle_deltas,
    obis_c,
)
from meterd.core.reading import PHASES, Channel, ChannelEnergy, PhaseValues, Reading


def reading(p_w: float, current_a: float, energy: ChannelEnergy, total_p_w: float | None = None) -> Reading:
    phase = PhaseValues(voltage_v=230.0, current_a=current_a, active_power_w=p_w)
    energies = {ch: energy for ch in PHASES}
    energies[Channel.TOTAL] = ChannelEnergy(
        active_import=energy.active_import * 3, active_export=energy.active_export * 3,
        reactive_forward=energy.reactive_forward * 3, reactive_reverse=energy.reactive_reverse * 3,
        apparent=energy.apparent * 3)
    return Reading(mono_s=0.0, phases=(phase, phase, phase), energy=energies,
                   total_active_power_w=3 * p_w if total_p_w is None else total_p_w)


@pytest.mark.parametrize(
    ("p_w", "fwd", "rev", "expect"),
    [
        (100.0, 7, 0, Quantity.REACTIVE_Q1),
        (-100.0, 7, 0, Quantity.REACTIVE_Q2),
        (-100.0, 0, 7, Quantity.REACTIVE_Q3),
        (100.0, 0, 7, Quantity.REACTIVE_Q4),
    ],
)
def test_reactive_goes_to_the_quadrant_of_the_power_direction(p_w, fwd, rev, expect):
    e = ChannelEnergy(active_import=5 if p_w > 0 else 0, active_export=5 if p_w < 0 else 0,
                      reactive_forward=fwd, reactive_reverse=rev, apparent=9)
    deltas = cycle_deltas(reading(p_w, 1.0, e), CreepRule())
    for ch in Channel:
        assert deltas[(expect, ch)] == (7 if ch is not Channel.TOTAL else 21)
        others = {Quantity.REACTIVE_Q1, Quantity.REACTIVE_Q2, Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4} - {expect}
        assert all((q, ch) not in deltas for q in others)
    apparent = Quantity.APPARENT_IMPORT if p_w > 0 else Quantity.APPARENT_EXPORT
    assert deltas[(apparent, Channel.L1)] == 9


def test_below_starting_current_nothing_registers():
    e = ChannelEnergy(active_import=3, reactive_forward=1, apparent=3)
    assert cycle_deltas(reading(4.0, 0.019, e), CreepRule(start_current_a=0.02)) == {}
    assert cycle_deltas(reading(4.6, 0.020, e), CreepRule(start_current_a=0.02))


def test_derived_registers_are_exact_sums():
    regs = EnergyRegisters()
    regs.add({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 10, (Quantity.ACTIVE_EXPORT, Channel.TOTAL): 4,
              (Quantity.REACTIVE_Q1, Channel.L2): 3, (Quantity.REACTIVE_Q2, Channel.L2): 5,
              (Quantity.REACTIVE_Q3, Channel.L2): 7, (Quantity.REACTIVE_Q4, Channel.L2): 11})
    assert regs.get(Derived.ACTIVE_ABSOLUTE) == 14
    assert regs.get(Derived.REACTIVE_IMPORT, Channel.L2) == 8
    assert regs.get(Derived.REACTIVE_EXPORT, Channel.L2) == 18


def test_registers_refuse_to_go_backwards():
    regs = EnergyRegisters()
    regs.add({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 10})
    with pytest.raises(ValueError, match="backwards"):
        regs.restore({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 9})
    with pytest.raises(ValueError, match="negative"):
        regs.add({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): -1})
    assert regs.get(Quantity.ACTIVE_IMPORT) == 10


def test_obis_codes_per_channel():
    assert obis_c(Quantity.ACTIVE_IMPORT, Channel.TOTAL) == 1
    assert obis_c(Quantity.ACTIVE_IMPORT, Channel.L2) == 41
    assert obis_c(Quantity.ACTIVE_EXPORT, Channel.L3) == 62
    assert obis_c(Derived.ACTIVE_ABSOLUTE, Channel.L1) == 35
    assert len(ALL_KEYS) == 32


@given(st.lists(st.tuples(st.floats(-5e3, 5e3), st.integers(0, 10**6), st.integers(0, 10**6),
                          st.integers(0, 10**6), st.integers(0, 10**6)), max_size=40))
def test_import_export_and_absolute_stay_consistent(cycles):
    regs = EnergyRegisters()
    total_active = 0
    for p_w, a, r_f, r_r, s in cycles:
        e = ChannelEnergy(active_import=a if p_w >= 0 else 0, active_export=0 if p_w >= 0 else a,
                          reactive_forward=r_f, reactive_reverse=r_r, apparent=s)
        regs.add(cycle_deltas(reading(p_w, 1.0, e), CreepRule()))
        total_active += a
    for ch in PHASES:
        assert regs.get(Derived.ACTIVE_ABSOLUTE, ch) == total_active
        assert (regs.get(Quantity.ACTIVE_IMPORT, ch) + regs.get(Quantity.ACTIVE_EXPORT, ch)
                == regs.get(Derived.ACTIVE_ABSOLUTE, ch))
        assert (regs.get(Derived.REACTIVE_IMPORT, ch) + regs.get(Derived.REACTIVE_EXPORT, ch)
                == sum(c[2] + c[3] for c in cycles))

"""The application note's calibration formulas, with its worked examples, and the plausibility limits."""

from __future__ import annotations

import pytest

from meterd.core import calibration as cal


def test_rms_gain_an_example() -> None:
    # AN: reference 220.00 V, the chip reads 234.563 V at Ugain 52800 -> 49522 = 0xC172
    assert cal.rms_gain(52800, 220.0, 234.563) == 0xC172


def test_energy_gain_an_example_and_refinement() -> None:
    # AN: error -13.78 % -> GainA 0x1475
    assert cal.energy_gain(0, -0.1378) == 0x1475
    # a second pass with the first value in force converges on the same factor
    first = cal.energy_gain(0, 0.02)
    residual = (1 + first / 32768) * 1.02 - 1
    assert abs(cal.energy_gain(first, residual) - first) <= 1


def test_phase_an_example_and_signs() -> None:
    # AN: Gphase 3763.739 at 50 Hz (3136.449 at 60 Hz); error +0.95 % at PF 0.5 L -> PhiA 0x24
    assert cal.phase_gain(50.0) == pytest.approx(3763.739, abs=1e-3)
    assert cal.phase_gain(60.0) == pytest.approx(3136.449, abs=1e-3)
    assert cal.phase_delay(0, 0.0095, 50.0) == 0x24
    # a negative result sets bit 15 with the magnitude in bits 9:0
    assert cal.phase_delay(0, -0.0095, 50.0) == 0x8024
    assert cal.phi_to_signed(0x8024) == -0x24
    assert cal.phase_delay(0x24, -0.0095, 50.0) == 0
    with pytest.raises(cal.CalibrationRejected):
        cal.phi_from_signed(1024)


def test_offsets_from_readings_and_from_raw_registers() -> None:
    # 0.1 V of noise at no voltage is -5120 LSB of 0.0195 mV
    assert cal.rms_offset(0, 0.1, cal.U_OFFSET_V_PER_LSB) == -5120
    assert cal.rms_offset(-5120, 0.0, cal.U_OFFSET_V_PER_LSB) == -5120
    # raw32 of 0.1 V is 0.1 / 0.01 × 65536 = 655360; >> 7 = 5120, negated in 16 bits
    assert cal.rms_offset_from_raw(655360) == (-5120) & 0xFFFF
    # 0.256 W at no current: -100 LSB of 0.00256 W
    assert cal.power_offset(0, 0.256) == -100
    # raw32 of 0.256 W (1 W MSW): 0.256 × 65536 = 16777 -> × 100000/65536 >> 8 = 99
    assert cal.power_offset_from_raw(16777) == (-99) & 0xFFFF


def test_values_round_trip_and_phase_update() -> None:
    values = cal.CalibrationValues().with_phase(1, u_gain=50000, phase_delay=0x8010)
    assert values.u_gain == (52800, 50000, 52800)
    assert cal.CalibrationValues.from_dict(values.as_dict()) == values
    with pytest.raises(ValueError, match="u_gain"):
        cal.CalibrationValues.from_dict({**values.as_dict(), "u_gain": [1, 2]})


def test_plausibility_refuses_with_the_register_and_phase_named() -> None:
    cal.check_plausible(cal.CalibrationValues())
    bad = cal.CalibrationValues().with_phase(2, i_gain=40000)   # +33 %: a wrong CT or reference
    with pytest.raises(cal.CalibrationRejected, match="Igain L3"):
        cal.check_plausible(bad)
    with pytest.raises(cal.CalibrationRejected, match="Phi L1"):
        cal.check_plausible(cal.CalibrationValues().with_phase(0, phase_delay=400))   # ~3.5°
    with pytest.raises(cal.CalibrationRejected, match="no load"):
        cal.energy_error(10.0, 0.0)


def test_offsets_are_written_in_the_chips_units_with_a_current_scale() -> None:
    zero = cal.PhaseReading(0.1, 0.0, 0.0, 0.0)
    no_current = cal.PhaseReading(230.0, 0.004, 0.512, -0.256)
    one = cal.offsets_step(cal.CalibrationValues(), (zero,) * 3, (no_current,) * 3)
    two = cal.offsets_step(cal.CalibrationValues(), (zero,) * 3, (no_current,) * 3, current_scale=2.0)
    assert one.u_offset == two.u_offset == (-5120,) * 3
    assert one.p_offset == (-200,) * 3 and two.p_offset == (-100,) * 3
    assert one.q_offset == (100,) * 3 and two.q_offset == (50,) * 3
    assert one.i_offset == (-2048,) * 3 and two.i_offset == (-1024,) * 3

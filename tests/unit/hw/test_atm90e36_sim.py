"""The ATM90E36 simulator at frame level: framing, read-to-clear, aliasing, start registers, status."""

from __future__ import annotations

import math

import pytest

from hw.atm90e36 import regmap as rm
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from meterd.core.clock import SimClock


def rig(**kw: object) -> tuple[SimClock, Grid, Atm90e36Sim]:
    clock = SimClock()
    grid = Grid(clock.mono)
    return clock, grid, Atm90e36Sim(grid, clock.mono, **kw)  # type: ignore[arg-type]


def read(sim: Atm90e36Sim, address: int) -> int:
    rx = sim.transfer(bytes([0x80 | (address >> 8) & 3, address & 0xFF, 0, 0]))
    assert rx[:2] == b"\xff\xff"
    return (rx[2] << 8) | rx[3]


def write(sim: Atm90e36Sim, address: int, value: int) -> None:
    sim.transfer(bytes([(address >> 8) & 3, address & 0xFF, value >> 8, value & 0xFF]))


def test_reset_values_and_last_spi_data() -> None:
    _, _, sim = rig()
    assert read(sim, 0x30) == 0x6886
    assert read(sim, 0x0F) == 0x6886
    assert read(sim, 0x0E) == 0x7E44
    assert read(sim, 0x3B) == 0x421C
    assert read(sim, 0x6F) == 0x8EBE
    assert read(sim, 0x95) == 0xF000
    write(sim, 0x03, 0x00C0)
    assert read(sim, 0x0F) == 0x00C0
    assert read(sim, 0x03) == 0x00C0


def test_write_needs_exactly_32_clocks() -> None:
    _, _, sim = rig()
    sim.transfer(bytes([0x00, 0x03, 0x12]))           # 24 clocks: discarded
    sim.transfer(bytes([0x00, 0x03, 0x12, 0x34, 0x00]))  # 40 clocks: discarded
    assert read(sim, 0x03) == 0
    sim.transfer(bytes([0x00, 0x03, 0x12, 0x34]))
    assert read(sim, 0x03) == 0x1234


def test_address_aliases_to_ten_bits() -> None:
    _, _, sim = rig()
    write(sim, 0x03, 0x0042)
    # bits 14..10 of the address word are ignored: 0x7C03 aliases 0x003
    assert (lambda rx: (rx[2] << 8) | rx[3])(sim.transfer(bytes([0x80 | 0x7C, 0x03, 0, 0]))) == 0x0042


def _metering_rig() -> tuple[SimClock, Grid, Atm90e36Sim]:
    clock, grid, sim = rig()
    write(sim, 0x30, rm.START_CALIBRATE)
    write(sim, 0x33, 0x0287)  # 0.01 CF LSB
    write(sim, 0x40, rm.START_CALIBRATE)
    grid.set_all_phases(current_a=10)
    return clock, grid, sim


def test_read_clears_energy_and_aborted_read_still_clears() -> None:
    clock, _, sim = _metering_rig()
    clock.advance(10)
    first = read(sim, 0x81)
    assert first > 0
    assert read(sim, 0x81) == 0
    clock.advance(10)
    rx = sim.transfer(bytes([0x80, 0x81, 0x00]))  # 24 clocks: latched at 16, cut short
    assert len(rx) == 3
    assert read(sim, 0x0F) == first               # survives only in LastSPIData
    assert read(sim, 0x81) == 0


def test_fifteen_clock_read_latches_nothing() -> None:
    clock, _, sim = _metering_rig()
    clock.advance(10)
    sim.transfer(bytes([0x80]))
    assert read(sim, 0x81) > 0


def test_metering_off_while_calstart_power_up() -> None:
    clock, grid, sim = rig()
    grid.set_all_phases(current_a=10)
    clock.advance(100)
    assert read(sim, 0x80) == 0
    write(sim, 0x40, rm.START_CALIBRATE)
    clock.advance(100)
    assert read(sim, 0x80) > 0


def test_calibrate_resets_block_and_wrong_checksum_sets_cserr() -> None:
    _, _, sim = rig()
    write(sim, 0x61, 0x1234)                  # not writable at 0x6886
    assert read(sim, 0x61) == 0xCE40
    write(sim, 0x60, rm.START_CALIBRATE)
    write(sim, 0x61, 0x1234)
    assert read(sim, 0x61) == 0x1234
    write(sim, 0x60, rm.START_CALIBRATE)      # every 0x5678 resets the block
    assert read(sim, 0x61) == 0xCE40
    write(sim, 0x61, 0xC000)
    computed = read(sim, 0x6F)
    assert computed == rm.block_checksum(rm.BLOCKS[3], {**rm.default_block_values(rm.BLOCKS[3]), 0x61: 0xC000})
    write(sim, 0x6F, computed ^ 0x0100)
    write(sim, 0x60, rm.START_OPERATE)
    assert read(sim, 0x01) & (1 << 8)
    assert sim.warn_out
    write(sim, 0x60, rm.START_CALIBRATE)
    write(sim, 0x6F, read(sim, 0x6F))
    write(sim, 0x60, rm.START_OPERATE)
    read(sim, 0x01)
    assert read(sim, 0x01) & (1 << 8) == 0
    assert not sim.warn_out


def test_soft_reset_restores_defaults() -> None:
    _, _, sim = rig()
    write(sim, 0x30, rm.START_CALIBRATE)
    write(sim, 0x33, 0x1087)
    write(sim, 0x08, 0x1000)
    write(sim, 0x00, rm.SOFT_RESET_CODE)
    assert read(sim, 0x30) == 0x6886
    assert read(sim, 0x33) == 0x0087
    assert read(sim, 0x08) == 0


def test_measurement_encoding_signed_and_pairs() -> None:
    clock, grid, sim = rig()
    grid.set_phase(1, voltage_v=234.563, current_a=2.5, pf=-0.5, pf_kind="C")
    clock.advance(1)
    assert read(sim, 0xD9) == 23456
    assert read(sim, 0xE9) >> 8 == round(0.003 * 256 / 0.01)
    p = (read(sim, 0xB1) << 16) | read(sim, 0xC1)
    p_w = rm.to_signed32(p) / 65536
    assert p_w == pytest.approx(-0.5 * 234.563 * 2.5, abs=1 / 256)
    assert read(sim, 0xC1) & 0xFF == 0
    assert rm.to_signed16(read(sim, 0xBD)) == -500
    assert rm.to_signed16(read(sim, 0xF9)) == -1200   # φ = −120° (export, capacitive)
    assert rm.to_signed16(read(sim, 0xFE)) == -1200   # UangleB
    assert read(sim, 0xF8) == 5000


def test_power_saturates_at_16_bits() -> None:
    clock, grid, sim = rig()
    grid.set_phase(1, voltage_v=400, current_a=100)
    clock.advance(1)
    assert read(sim, 0xB1) == 0x7FFF
    assert read(sim, 0xDD) == 0xFFFF  # 100 A > 65.535 A


def test_status_sag_sequence_and_neutral() -> None:
    clock, grid, sim = rig()
    write(sim, 0x08, 7873)       # 78 % of 230 V
    write(sim, 0x09, 1009)       # 10 %
    write(sim, 0x0B, 1000)       # neutral 1 A
    grid.set_all_phases(current_a=5)
    grid.set_phase(2, voltage_v=150)
    grid.set_phase(3, voltage_angle_deg=-120)
    grid.set_phase(2, voltage_angle_deg=120)
    grid.set_neutral_extra(2.0)
    clock.advance(1)
    assert read(sim, 0x96) == 0x20               # sag on B only, no phase loss
    sys0 = read(sim, 0x01)
    assert sys0 & 0x08 and sys0 & 0x80 and not sys0 & 0x04
    assert read(sim, 0x01) & 0x88 == 0           # cleared by the read
    assert read(sim, 0x02) & 0x8000              # INOv1 (sampled neutral)
    assert read(sim, 0xD8) == 2000
    assert read(sim, 0xDC) == 0
    grid.set_phase(3, on=False)
    clock.advance(1)
    assert read(sim, 0x96) == 0x10 | 0x20 | 0x01


def test_frequency_falls_back_to_nominal_when_all_phases_in_sag() -> None:
    clock, grid, sim = rig()
    write(sim, 0x08, 7873)
    grid.set_frequency(49.5)
    clock.advance(1)
    assert read(sim, 0xF8) == 4950
    grid.set_all_phases(on=False)
    clock.advance(1)
    assert read(sim, 0xF8) == 5000


def test_no_chip_and_corrupt_read_faults() -> None:
    _, _, sim = rig(fault="no_chip")
    assert sim.transfer(bytes([0x80, 0x30, 0, 0])) == b"\xff" * 4
    _, _, sim = rig(fault="corrupt_read", corrupt_every=3)
    values = [read(sim, 0x30) for _ in range(6)]
    assert values.count(0x6886) == 4
    assert all(bin(v ^ 0x6886).count("1") <= 1 for v in values)


def test_dft_one_shot() -> None:
    clock, grid, sim = rig()
    grid.set_phase(1, u_harmonics=[(5, 0.06, 0)], current_a=5, i_harmonics=[(3, 0.5, 0)])
    write(sim, 0x1D1, 1)
    clock.advance(0.2)
    assert read(sim, 0x1D1) == 1
    clock.advance(0.4)
    assert read(sim, 0x1D1) == 0
    assert read(sim, 0x02) & 0x0200
    assert read(sim, 0x163) == round(0.06 * 16384)     # AV_HR5
    assert read(sim, 0x101) == round(0.5 * 16384)      # AI_HR3
    assert read(sim, 0x17F) == round(0.06 * 16384)     # AV_THD


def test_thd_registers() -> None:
    clock, grid, sim = rig()
    grid.set_phase(1, u_harmonics=[(3, 0.03, 0), (5, 0.04, 0)])
    clock.advance(1)
    assert read(sim, 0xF1) == 500
    assert read(sim, 0xD9) == round(230 * math.sqrt(1 + 0.0025) * 100 - 0.5)

"""The ATM90E36 driver against the simulator, frame by frame."""

from __future__ import annotations

import cmath
import math
from fractions import Fraction

import pytest

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.atm90e36.errors import ChecksumError, ChipNotResponding, SpiIntegrityError
from hw.atm90e36.sim import Atm90e36Sim
from hw.sim.grid import Grid
from hw.spi import SimSpiDev
from meterd.core.clock import SimClock


def rig(fault: str | None = None, config: Atm90e36Config | None = None, **kw: object):
    clock = SimClock()
    grid = Grid(clock.mono)
    sim = Atm90e36Sim(grid, clock.mono, fault=fault, **kw)  # type: ignore[arg-type]
    spi = SimSpiDev(sim, record=True)
    return clock, grid, sim, spi, Atm90e36(spi, config, sleep=clock.advance)


def writes(spi: SimSpiDev) -> list[tuple[int, int]]:
    return [(((tx[0] & 3) << 8) | tx[1], (tx[2] << 8) | tx[3]) for tx, _ in spi.frames if not tx[0] & 0x80]


def test_startup_writes_blocks_with_computed_checksums() -> None:
    clock, _, sim, spi, drv = rig()
    drv.start()
    w = writes(spi)
    assert w[0] == (0x00, 0x789A)
    cfg = drv.config
    for block in rm.BLOCKS:
        values = cfg.block_values(block.index)
        expected = rm.checksum(values[a] for a in block.addrs)
        i = w.index((block.start_addr, rm.START_CALIBRATE))
        j = w.index((block.start_addr, rm.START_OPERATE))
        assert (block.cs_addr, expected) in w[i:j]
        assert sim.peek(block.start_addr) == rm.START_OPERATE
        assert sim.peek(block.cs_addr) == expected
    assert (0x33, 0x0087) in w                      # 0.1 CF LSB, 3P4W, 50 Hz
    assert (0x31, 0x1AD2) in w and (0x32, 0x7480) in w   # PL_constant for 1000 imp/kWh (reference §8.1)
    assert not sim.warn_out
    assert drv.configuration_ok()
    # every write confirmed by a LastSPIData read right after it
    frames = spi.frames
    for k, (tx, _) in enumerate(frames[1:-1], start=1):
        if not tx[0] & 0x80:
            assert frames[k + 1][0] == bytes([0x80, 0x0F, 0, 0])


def test_wrong_checksum_sets_cserr_and_driver_raises() -> None:
    _, _, sim, _, drv = rig(fault="checksum")
    with pytest.raises(ChecksumError, match="CS0"):
        drv.start()
    assert sim.warn_out
    assert sim.peek(0x01) & (1 << 14)


def test_missing_chip_is_reported() -> None:
    *_, drv = rig(fault="no_chip")
    with pytest.raises(ChipNotResponding, match="0xFFFF"):
        drv.start()


def test_write_not_confirmed_raises_after_bounded_retries() -> None:
    class Deaf:
        def transfer(self, tx: bytes) -> bytes:
            return b"\xff\xff\x12\x34"[: len(tx)]
    drv = Atm90e36(SimSpiDev(Deaf()), sleep=lambda s: None, max_retries=2)
    with pytest.raises(SpiIntegrityError):
        drv.write_register(0x03, 0x0001)
    assert drv.stats.write_retries == 2


def test_corrupted_read_of_energy_register_recovered_without_loss() -> None:
    clock, grid, sim, spi, drv = rig(fault="corrupt_read", corrupt_every=3)
    drv.start()
    grid.set_all_phases(current_a=7.3, pf=0.9)
    total = 0
    for _ in range(300):
        clock.advance(1.0)
        total += drv.read_energy().milli["L1"].active_import
    truth_mwh = grid.truth()["L1"].active_import_wh * 1000
    assert drv.stats.read_recoveries > 100
    assert total + sim.residue_milli(0x81) == pytest.approx(truth_mwh, rel=1e-9)


def test_recovery_uses_last_spi_data_not_a_reread() -> None:
    clock, grid, sim, spi, drv = rig()
    drv.start()
    grid.set_phase(1, current_a=10)
    clock.advance(5)
    expected = sim.peek(0x81)
    sim.fault, sim.corrupt_every, sim._frames_read = "corrupt_read", 3, 2   # next read frame is corrupted
    spi.frames.clear()
    assert drv.read_register(0x81) == expected
    addresses = [((tx[0] & 3) << 8) | tx[1] for tx, _ in spi.frames]
    assert addresses == [0x81, 0x0F, 0x0F]


class ClockBumper:
    """Wraps the simulator: advances the clock after a chosen frame (a refresh between reads)."""

    def __init__(self, sim: Atm90e36Sim, clock: SimClock, after_frame: int, dt: float) -> None:
        self.sim, self.clock, self.after, self.dt, self.n = sim, clock, after_frame, dt, 0

    def transfer(self, tx: bytes) -> bytes:
        rx = self.sim.transfer(tx)
        self.n += 1
        if self.n == self.after:
            self.clock.advance(self.dt)
        return rx


def test_msw_lsw_straddle_is_retried() -> None:
    clock = SimClock()
    grid = Grid(clock.mono)
    sim = Atm90e36Sim(grid, clock.mono)
    grid.set_phase(1, voltage_v=230.0)
    clock.advance(1)
    grid.set_phase(1, voltage_v=240.5)
    bumper = ClockBumper(sim, clock, after_frame=2, dt=0.5)   # after MSW + its LastSPIData check
    drv = Atm90e36(SimSpiDev(bumper), sleep=lambda s: None)
    assert drv.read_pair(0xD9) == pytest.approx(240.5, abs=0.01 / 256)
    assert drv.stats.straddle_retries == 1


def test_measurements_signed_and_status() -> None:
    cfg = Atm90e36Config(neutral_warn_a=1.0)
    clock, grid, _, _, drv = rig(config=cfg)
    drv.start()
    grid.set_phase(1, current_a=5, pf=-0.8, pf_kind="C")     # export, capacitive
    grid.set_phase(2, current_a=2, pf=0.5)
    grid.set_phase(3, voltage_v=100)                          # 43 % Un: sag
    grid.set_neutral_extra(3.0)
    clock.advance(1)
    m = drv.read_measurements()
    l1, l2, l3 = m.phases
    assert l1.active_power_w == pytest.approx(-920.0, abs=0.01)
    assert l1.reactive_power_var == pytest.approx(-690.0, abs=0.01)
    assert l1.power_factor == pytest.approx(-0.8)
    assert l1.angle_deg == pytest.approx(-143.1, abs=0.05)
    assert l2.angle_deg == pytest.approx(60.0)
    assert l2.voltage_angle_deg == pytest.approx(-120.0)
    assert l3.voltage_v == pytest.approx(100.0, abs=0.001)
    assert m.total_active_power_w == pytest.approx(-920 + 230, abs=0.05)
    assert m.frequency_hz == pytest.approx(50.0)
    assert m.temperature_c == 25
    calc = abs(cmath.rect(5, math.acos(-0.8)) + cmath.rect(2, math.radians(-180)))
    assert m.neutral_current_calc_a == pytest.approx(calc, abs=0.001)
    assert m.neutral_current_a == pytest.approx(abs(cmath.rect(5, math.acos(-0.8)) - 2 + 3), abs=0.001)
    assert {"sag", "sag_L3", "neutral_overcurrent"} <= m.status
    assert "sag_L1" not in m.status and "phase_loss_L3" not in m.status
    clock.advance(1)
    assert "sag" in drv.read_measurements().status      # re-latched while it lasts


def test_phase_sequence_flags() -> None:
    clock, grid, _, _, drv = rig()
    drv.start()
    grid.set_all_phases(current_a=1)
    grid.set_phase(2, voltage_angle_deg=120)
    grid.set_phase(3, voltage_angle_deg=-120)
    clock.advance(1)
    status = drv.read_measurements().status
    assert {"voltage_sequence_error", "current_sequence_error"} <= status


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="not an integer"):
        Atm90e36Config(meter_constant_imp_per_kwh=3200)   # 31.25 mWh per count
    assert Atm90e36Config().milli_per_count == 100
    assert Atm90e36Config(meter_constant_imp_per_kwh=10000).milli_per_count == 10
    assert Atm90e36Config(energy_lsb_cf=0.01).milli_per_count == 10
    assert Atm90e36Config(energy_lsb_cf=Fraction(1, 100)).mmode0() == 0x0287
    assert Atm90e36Config(energy_lsb_cf=Fraction(1, 10)).mmode0() == 0x0087
    with pytest.raises(ValueError):
        Atm90e36Config(energy_lsb_cf=0.05)
    cfg = Atm90e36Config()
    assert cfg.voltage_threshold_reg(78) == 7873        # reference §7 example
    assert cfg.block_values(0)[0x38] == round(0.5 * 230 * 0.02 / 0.00032)
    # current scale 2: the chip counts MC × 2 per kWh of what it sees, one count stays 100 mWh
    scaled = Atm90e36Config(current_scale=2, neutral_warn_a=10.0)
    assert scaled.chip_meter_constant == 2000 and scaled.pl_constant == 225_000_000
    block0 = scaled.block_values(0)
    assert (block0[0x31], block0[0x32]) == (0x0D69, 0x3A40)   # 225 000 000
    assert scaled.milli_per_count == 100
    assert scaled.block_values(0)[0x38] == round(0.5 * 230 * 0.02 / 2 / 0.00032)   # the chip sees half the power
    assert scaled.special_registers()[rm.IN_WARN_TH1] == 5000                       # 10 A is 5 A at the chip
    with pytest.raises(ValueError, match="PL_constant"):
        Atm90e36Config(current_scale=7)                 # 450e9 / 7000 is not an integer
    with pytest.raises(ValueError, match="current_scale"):
        Atm90e36Config(current_scale=0)
    assert Atm90e36Config(mains_frequency_hz=60).mmode0() & 0x1000
    with pytest.raises(ValueError, match="start-up threshold"):
        Atm90e36Config(starting_current_a=1.0)
    assert Atm90e36Config(voltage_pga=(2, 2, 2), current_pga=(4, 4, 4, 1), current_dpga=2).mmode1() == 0x5 << 12 | 0x5 << 8 | 0x2A | 0x4000


def test_chip_reset_detected() -> None:
    clock, _, sim, _, drv = rig()
    drv.start()
    sim.transfer(bytes([0x00, 0x00, 0x78, 0x9A]))    # brown-out style reset
    assert not drv.configuration_ok()
    drv.start()
    assert drv.configuration_ok()

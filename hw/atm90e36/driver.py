"""The ATM90E36A driver: start-up, verified register access, measurements and energy counts.

It talks only to an :class:`hw.spi.SpiDevice` (real spidev on a Pi, :class:`hw.spi.SimSpiDev`
over the simulator in tests), so the same code runs in both. Every read is confirmed through
LastSPIData (``atm90e36.md`` §2.4) — the only safe way to recover a read-to-clear register whose
transfer was corrupted — and every write is verified the same way with bounded retries.

Energy: with the default meter constant 1000 imp/kWh and a register LSB of 0.1 CF
(MMode0.001LSB = 0) one count is exactly 0.1 Wh (100 mWh, mvarh, mVAh) and a 16-bit register
holds 6553.5 Wh: about 247 s at 3 × 1.15 × 230 V × 120 A (``docs/architecture.md``, "Energy
register saturation"). :meth:`Atm90e36.read_energy` reads every energy register exactly once per
call; no other code path reads them.

Current scale k (``current_scale``): the board presents I/k to the chip so that Imax plus
headroom stays inside the 16-bit result registers (Irms 65.535 A, per-phase Pmean 32.767 kW).
The driver multiplies every current and power it reads by k, divides the thresholds it writes
(start-up power, neutral current) by k, and programs PL_constant for a chip meter constant of
MC × k: one chip count is LSB / (MC × k) kWh of what the chip sees, that is LSB / MC kWh of true
energy, so the CF pulses stay MC imp/kWh and one count stays ``1e6 × LSB / MC`` milli-units.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction

from hw.atm90e36 import regmap as rm
from hw.atm90e36.errors import ChecksumError, ChipNotResponding, SpiIntegrityError
from hw.spi import SpiDevice

_PGA_CODES = {1: 0, 2: 1, 4: 2}
_DPGA_CODES = {1: 0, 2: 1, 4: 2, 8: 3}
_THRESHOLD_W_PER_LSB = 0.00032
_PHASES = ("L1", "L2", "L3")


def _int16(value: int, name: str) -> int:
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"{name}={value} does not fit a signed 16-bit register")
    return value & 0xFFFF


def _uint16(value: int, name: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name}={value} does not fit an unsigned 16-bit register")
    return value


@dataclass(frozen=True)
class Atm90e36Config:
    """Chip configuration and calibration; defaults are the datasheet reset values.

    meter_constant_imp_per_kwh (MC, imp/kWh of true energy); current_scale (k, the board's
    current divider: PL_constant = 450e9 / (MC × k)); energy_lsb_cf (0.01 or 0.1 CF per
    register count); mains_frequency_hz (50/60);
    nominal_voltage_v (Un, V) and starting_current_a (A) give the start-up thresholds
    (``startup_threshold_fraction × Un × I_start`` W per phase and for the total);
    sag/phase_loss_threshold_pct (% of Un, §7 formula); PGA gains (1/2/4, DPGA 1/2/4/8);
    calibration: u_gain/i_gain (unsigned, 52800/30000), u_offset/i_offset, energy_gain
    (factor 1 + g/32768), phase_delay (raw PhiX), p_offset/q_offset (0.00256 W/LSB),
    fundamental gains/offsets, neutral gain/offset; warning thresholds in A and %.
    """

    meter_constant_imp_per_kwh: int = 1000
    energy_lsb_cf: Fraction | float = Fraction(1, 10)
    current_scale: int = 1
    mains_frequency_hz: int = 50
    nominal_voltage_v: float = 230.0
    starting_current_a: float = 0.02
    startup_threshold_fraction: float = 0.5
    sag_threshold_pct: float = 78.0
    phase_loss_threshold_pct: float = 10.0
    voltage_pga: tuple[int, int, int] = (1, 1, 1)
    current_pga: tuple[int, int, int, int] = (1, 1, 1, 1)
    current_dpga: int = 1
    u_gain: tuple[int, int, int] = (52800, 52800, 52800)
    i_gain: tuple[int, int, int] = (30000, 30000, 30000)
    u_offset: tuple[int, int, int] = (0, 0, 0)
    i_offset: tuple[int, int, int] = (0, 0, 0)
    n_gain: int = 30000
    n_offset: int = 0
    energy_gain: tuple[int, int, int] = (0, 0, 0)
    phase_delay: tuple[int, int, int] = (0, 0, 0)
    p_offset: tuple[int, int, int] = (0, 0, 0)
    q_offset: tuple[int, int, int] = (0, 0, 0)
    fundamental_gain: tuple[int, int, int] = (0, 0, 0)
    fundamental_p_offset: tuple[int, int, int] = (0, 0, 0)
    enabled_phases: tuple[bool, bool, bool] = (True, True, True)
    absolute_active_total: bool = False
    absolute_reactive_total: bool = False
    func_en0: int = 0
    func_en1: int = 0
    zx_config: int = 0x0001
    neutral_warn_calc_a: float | None = None
    neutral_warn_a: float | None = None
    thd_u_warn_pct: float | None = None
    thd_i_warn_pct: float | None = None
    soft_reset_wait_s: float = 0.04

    def __post_init__(self) -> None:
        lsb = Fraction(str(self.energy_lsb_cf)) if isinstance(self.energy_lsb_cf, float) else self.energy_lsb_cf
        if lsb not in (Fraction(1, 100), Fraction(1, 10)):
            raise ValueError(f"energy_lsb_cf must be 0.01 or 0.1 CF, got {self.energy_lsb_cf}")
        object.__setattr__(self, "energy_lsb_cf", lsb)
        if self.current_scale < 1:
            raise ValueError(f"current_scale {self.current_scale}: expected a whole factor >= 1")
        chip_mc = self.meter_constant_imp_per_kwh * self.current_scale
        if self.meter_constant_imp_per_kwh <= 0 or 450_000_000_000 % chip_mc:
            raise ValueError(f"meter constant {self.meter_constant_imp_per_kwh} imp/kWh × current scale "
                             f"{self.current_scale}: 450e9 / {chip_mc} must be an integer PL_constant")
        milli = Fraction(10**6) * lsb / self.meter_constant_imp_per_kwh
        if milli.denominator != 1:
            raise ValueError(f"one energy count = 1e6 × {lsb} / {self.meter_constant_imp_per_kwh} = {float(milli)} "
                             "milli-units, not an integer: choose a meter constant that divides 1e6 × LSB")
        if self.mains_frequency_hz not in (50, 60):
            raise ValueError("mains_frequency_hz must be 50 or 60")
        for pga in (*self.voltage_pga, *self.current_pga):
            if pga not in _PGA_CODES:
                raise ValueError(f"PGA gain {pga} invalid; use 1, 2 or 4")
        if self.current_dpga not in _DPGA_CODES:
            raise ValueError(f"DPGA gain {self.current_dpga} invalid; use 1, 2, 4 or 8")
        self.block_values(0)  # validates thresholds
        self.special_registers()

    # ---- derived values -------------------------------------------------------------------
    @property
    def milli_per_count(self) -> int:
        """True milli-units (mWh, mvarh, mVAh) per energy-register count:
        1e6 × LSB × k / (MC × k) = 1e6 × LSB / MC."""
        return int(Fraction(10**6) * Fraction(self.energy_lsb_cf) * self.current_scale / self.chip_meter_constant)

    @property
    def chip_meter_constant(self) -> int:
        """The meter constant the chip is programmed for (imp/kWh of what it sees): MC × k."""
        return self.meter_constant_imp_per_kwh * self.current_scale

    @property
    def pl_constant(self) -> int:
        """PL_constant = 450 000 000 000 / (MC × k)."""
        return 450_000_000_000 // self.chip_meter_constant

    @property
    def startup_threshold_w(self) -> float:
        """Start-up threshold (true W, var, VA) per phase and for the total."""
        return self.startup_threshold_fraction * self.nominal_voltage_v * self.starting_current_a

    def mmode0(self) -> int:
        """MMode0: frequency, energy LSB (001LSB for 0.01 CF), CF2 = varh, absolute totals, enabled phases."""
        value = 0x0080
        value |= 0x1000 if self.mains_frequency_hz == 60 else 0
        value |= 0x0200 if self.energy_lsb_cf == Fraction(1, 100) else 0
        value |= 0x0010 if self.absolute_reactive_total else 0
        value |= 0x0008 if self.absolute_active_total else 0
        for bit, enabled in zip((2, 1, 0), self.enabled_phases, strict=True):
            value |= (1 << bit) if enabled else 0
        return value

    def mmode1(self) -> int:
        """MMode1: DPGA (bits 15:14) and the analog PGA pairs V3..V1, I4..I1."""
        v1, v2, v3 = (_PGA_CODES[g] for g in self.voltage_pga)
        i1, i2, i3, i4 = (_PGA_CODES[g] for g in self.current_pga)
        return (_DPGA_CODES[self.current_dpga] << 14 | v3 << 12 | v2 << 10 | v1 << 8
                | i4 << 6 | i3 << 4 | i2 << 2 | i1)

    def _threshold_reg(self) -> int:
        chip_w = self.startup_threshold_w / self.current_scale   # the chip sees 1/k of the power
        return _uint16(round(chip_w / _THRESHOLD_W_PER_LSB), "start-up threshold (0.00032 W/LSB)")

    def voltage_threshold_reg(self, pct: float) -> int:
        """SagTh/PhaseLossTh for ``pct`` % of Un: Vth × 100 × √2 / (2 × max Ugain / 32768)."""
        v_th = self.nominal_voltage_v * pct / 100
        return _uint16(round(v_th * 100 * math.sqrt(2) / (2 * max(self.u_gain) / 32768)), f"threshold {pct} %")

    def special_registers(self) -> dict[int, int]:
        """FuncEn0/1, ZXConfig, SagTh, PhaseLossTh, INWarnTh0/1, THDNUTh/THDNITh by address."""
        def limit(value: float | None, lsb: float, name: str) -> int:
            return 0xFFFF if value is None else _uint16(round(value / lsb), name)
        k = self.current_scale
        return {
            rm.FUNC_EN0: _uint16(self.func_en0, "func_en0"), rm.FUNC_EN1: _uint16(self.func_en1, "func_en1"),
            rm.ZX_CONFIG: _uint16(self.zx_config, "zx_config"),
            rm.SAG_TH: self.voltage_threshold_reg(self.sag_threshold_pct),
            rm.PHASE_LOSS_TH: self.voltage_threshold_reg(self.phase_loss_threshold_pct),
            rm.IN_WARN_TH0: limit(self.neutral_warn_calc_a, 0.001 * k, "neutral_warn_calc_a"),
            rm.IN_WARN_TH1: limit(self.neutral_warn_a, 0.001 * k, "neutral_warn_a"),
            rm.THDNU_TH: limit(self.thd_u_warn_pct, 0.01, "thd_u_warn_pct"),
            rm.THDNI_TH: limit(self.thd_i_warn_pct, 0.01, "thd_i_warn_pct"),
        }

    def block_values(self, index: int) -> dict[int, int]:
        """The protected registers of checksum block ``index`` (0 config … 3 measurement)."""
        if index == 0:
            th = self._threshold_reg()
            pl = self.pl_constant
            return {rm.PL_CONST_H: pl >> 16, rm.PL_CONST_L: pl & 0xFFFF, rm.MMODE0: self.mmode0(),
                    rm.MMODE1: self.mmode1(), **dict.fromkeys(rm.START_THRESHOLDS, th)}
        if index == 1:
            values: dict[int, int] = {}
            for i in range(3):
                values[rm.POFFSET[i]] = _int16(self.p_offset[i], "p_offset")
                values[rm.QOFFSET[i]] = _int16(self.q_offset[i], "q_offset")
            for i in range(3):
                values[rm.GAIN[i]] = _int16(self.energy_gain[i], "energy_gain")
                values[rm.PHI[i]] = _uint16(self.phase_delay[i], "phase_delay")
            return values
        if index == 2:
            values = {rm.POFFSET_F[i]: _int16(self.fundamental_p_offset[i], "fundamental_p_offset") for i in range(3)}
            values.update({rm.PGAIN_F[i]: _int16(self.fundamental_gain[i], "fundamental_gain") for i in range(3)})
            return values
        values = {}
        for i in range(3):
            values[rm.UGAIN[i]] = _uint16(self.u_gain[i], "u_gain")
            values[rm.IGAIN[i]] = _uint16(self.i_gain[i], "i_gain")
            values[rm.UOFFSET[i]] = _int16(self.u_offset[i], "u_offset")
            values[rm.IOFFSET[i]] = _int16(self.i_offset[i], "i_offset")
        values[rm.IGAIN_N] = _uint16(self.n_gain, "n_gain")
        values[rm.IOFFSET_N] = _int16(self.n_offset, "n_offset")
        return values


@dataclass(frozen=True)
class PhaseMeasurement:
    """One phase: V, A, W, var, VA, PF (−1…1), angle voltage→current (°, + lagging),
    voltage angle vs L1 (°), THD+N of U and I (%)."""

    voltage_v: float
    current_a: float
    active_power_w: float
    reactive_power_var: float
    apparent_power_va: float
    power_factor: float
    angle_deg: float
    voltage_angle_deg: float
    thd_u_pct: float
    thd_i_pct: float


@dataclass(frozen=True)
class Measurements:
    """Instantaneous values of one cycle (16-cycle chip averages) plus decoded status flags.

    Totals in W, var, VA; frequency_hz (Hz); temperature_c (°C); neutral_current_a (A,
    sampled I4, IrmsN1); neutral_current_calc_a (A, vector sum of phases, IrmsN0).
    """

    phases: tuple[PhaseMeasurement, PhaseMeasurement, PhaseMeasurement]
    total_active_power_w: float
    total_reactive_power_var: float
    total_apparent_power_va: float
    total_power_factor: float
    frequency_hz: float
    temperature_c: float
    neutral_current_a: float
    neutral_current_calc_a: float
    status: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ChannelCounts:
    """Energy of one channel since the previous read: forward/reverse active (Wh units),
    forward/reverse reactive (varh), apparent (VAh), fundamental and harmonic active."""

    active_import: int = 0
    active_export: int = 0
    reactive_forward: int = 0
    reactive_reverse: int = 0
    apparent: int = 0
    fundamental_import: int = 0
    fundamental_export: int = 0
    harmonic_import: int = 0
    harmonic_export: int = 0

    def scaled(self, factor: int) -> ChannelCounts:
        """Every field multiplied by ``factor`` (counts → milli-units)."""
        return ChannelCounts(*(getattr(self, f.name) * factor for f in fields(self)))


@dataclass(frozen=True)
class EnergyCounts:
    """One read of every energy register. ``counts`` are raw register counts per channel
    ("T", "L1", "L2", "L3"); ``milli`` the same in integer mWh / mvarh / mVAh."""

    counts: Mapping[str, ChannelCounts]
    milli: Mapping[str, ChannelCounts]
    apparent_vector_total: int
    apparent_vector_total_milli: int
    milli_per_count: int


_CHANNEL_REG = {"T": "T", "L1": "A", "L2": "B", "L3": "C"}
_ENERGY_FIELDS = (
    ("active_import", "APenergy", ""), ("active_export", "ANenergy", ""),
    ("reactive_forward", "RPenergy", ""), ("reactive_reverse", "RNenergy", ""), ("apparent", "SAenergy", ""),
    ("fundamental_import", "APenergy", "F"), ("fundamental_export", "ANenergy", "F"),
    ("harmonic_import", "APenergy", "H"), ("harmonic_export", "ANenergy", "H"),
)

_SYS0_FLAGS = {14: "checksum_error_cs0", 12: "checksum_error_cs1", 10: "checksum_error_cs2",
               8: "checksum_error_cs3", 7: "voltage_sequence_error", 6: "current_sequence_error",
               3: "sag", 2: "phase_loss"}
_SYS1_FLAGS = {15: "neutral_overcurrent", 14: "neutral_overcurrent_calc", 11: "thd_u_over", 10: "thd_i_over",
               9: "dft_done", 7: "rev_q_total", 6: "rev_q_L1", 5: "rev_q_L2", 4: "rev_q_L3",
               3: "rev_p_total", 2: "rev_p_L1", 1: "rev_p_L2", 0: "rev_p_L3"}
_EN0_FLAGS = {15: "noload_total_q", 14: "noload_total_p", 13: "noload_total_s", 12: "noload_total_s_vector",
              3: "cf4_reverse", 2: "cf3_reverse", 1: "cf2_reverse", 0: "cf1_reverse"}
_EN1_FLAGS = {6: "sag_L1", 5: "sag_L2", 4: "sag_L3", 2: "phase_loss_L1", 1: "phase_loss_L2", 0: "phase_loss_L3"}


def decode_flags(value: int, names: Mapping[int, str]) -> set[str]:
    """Names of the bits set in ``value``."""
    return {name for bit, name in names.items() if value >> bit & 1}


@dataclass
class DriverStats:
    """Integrity events seen by the driver since it was built."""

    read_recoveries: int = 0
    write_retries: int = 0
    straddle_retries: int = 0


class Atm90e36:
    """Driver for one ATM90E36A on an SPI device; ``sleep`` waits after the soft reset (s)."""

    def __init__(self, spi: SpiDevice, config: Atm90e36Config | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, max_retries: int = 3) -> None:
        self.spi = spi
        self.config = config or Atm90e36Config()
        self.max_retries = max_retries
        self.stats = DriverStats()
        self._sleep = sleep

    @property
    def milli_per_count(self) -> int:
        """Milli-units per energy count under the configuration."""
        return self.config.milli_per_count

    # ---- frames ---------------------------------------------------------------------------
    def _raw_read(self, address: int) -> int:
        rx = self.spi.xfer2([0x80 | (address >> 8) & 0x03, address & 0xFF, 0x00, 0x00])
        return (rx[2] << 8) | rx[3]

    def _raw_write(self, address: int, value: int) -> None:
        self.spi.xfer2([(address >> 8) & 0x03, address & 0xFF, (value >> 8) & 0xFF, value & 0xFF])

    # ---- verified access ------------------------------------------------------------------
    def read_register(self, address: int) -> int:
        """Read a 16-bit register, confirmed via LastSPIData (safe for read-to-clear registers).

        If LastSPIData disagrees with the value received, LastSPIData is read until two
        consecutive reads agree, and that value is returned (the register is never re-read).
        """
        value = self._raw_read(address)
        previous = self._raw_read(rm.LAST_SPI_DATA)
        if previous == value:
            return value
        for _ in range(self.max_retries + 1):
            current = self._raw_read(rm.LAST_SPI_DATA)
            if current == previous:
                self.stats.read_recoveries += 1
                return current
            previous = current
        raise SpiIntegrityError(f"read of 0x{address:03X}: LastSPIData never settled")

    def write_register(self, address: int, value: int) -> None:
        """Write a 16-bit register; retry until LastSPIData echoes the value (bounded).

        A mismatching echo is read once more before rewriting, so a corrupted echo read does not
        repeat a write with side effects (start registers).
        """
        value &= 0xFFFF
        echo = -1
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.write_retries += 1
            self._raw_write(address, value)
            echo = self._raw_read(rm.LAST_SPI_DATA)
            if echo != value:   # a corrupted echo read? LastSPIData re-reads itself unchanged
                echo = self._raw_read(rm.LAST_SPI_DATA)
            if echo == value:
                return
        if echo in (0xFFFF, 0x0000):
            raise ChipNotResponding(f"write 0x{value:04X} to 0x{address:03X}: LastSPIData reads 0x{echo:04X}")
        raise SpiIntegrityError(f"write 0x{value:04X} to 0x{address:03X} not confirmed (LastSPIData 0x{echo:04X})")

    def read_pair(self, msw_address: int) -> float:
        """A MSW/LSW pair in the register's unit (V, A, W…): MSW, LSW, MSW again; retry on change."""
        reg = rm.REGISTERS[msw_address]
        if reg.lsb_addr is None or reg.unit is None:
            raise ValueError(f"0x{msw_address:03X} has no LSB companion register")
        msw = self.read_register(msw_address)
        for _ in range(self.max_retries + 1):
            lsw = self.read_register(reg.lsb_addr)
            again = self.read_register(msw_address)
            if again == msw:
                raw = (msw << 16) | (lsw & 0xFF00)
                value = rm.to_signed32(raw) if reg.signed else raw
                return value / 65536 * reg.unit
            self.stats.straddle_retries += 1
            msw = again
        raise SpiIntegrityError(f"pair 0x{msw_address:03X} kept changing between reads")

    def _read_scaled(self, address: int) -> float:
        reg = rm.REGISTERS[address]
        assert reg.unit is not None
        return reg.decode(self.read_register(address)) * reg.unit

    # ---- start-up -------------------------------------------------------------------------
    def start(self) -> None:
        """Soft reset, check the chip answers, program and lock all four blocks, verify CSx.

        Raises :class:`ChipNotResponding` (no chip, wrong reset values), :class:`ChecksumError`
        (a block did not take its values, or CSxErr after 0x8765), :class:`SpiIntegrityError`.
        """
        self._raw_write(rm.SOFT_RESET, rm.SOFT_RESET_CODE)
        self._sleep(self.config.soft_reset_wait_s)
        self._check_reset_values()
        for address, value in self.config.special_registers().items():
            self.write_register(address, value)
        self.read_register(rm.SYS_STATUS0)
        for block in rm.BLOCKS:
            self._program_block(block, self.config.block_values(block.index))
        self.read_register(rm.SYS_STATUS1)
        self._read_energy_counts()  # discard what accumulated before configuration

    def _check_reset_values(self) -> None:
        expected = {a: rm.REGISTERS[a].reset for a in (rm.CONFIG_START, rm.DMA_CTRL, rm.MMODE0)}
        for address, reset in expected.items():
            value = self.read_register(address)
            if value in (0xFFFF, 0x0000):
                raise ChipNotResponding(
                    f"0x{address:02X} reads 0x{value:04X}: no chip, wrong CS, DMA_CTRL high or PM pins low")
            if value != reset:
                raise ChipNotResponding(f"0x{address:02X} reads 0x{value:04X} after soft reset, expected 0x{reset:04X}")

    def _program_block(self, block: rm.ChecksumBlock, values: Mapping[int, int]) -> None:
        self.write_register(block.start_addr, rm.START_CALIBRATE)
        for address in block.addrs:
            self.write_register(address, values[address])
        expected = rm.checksum(values[a] for a in block.addrs)
        self.write_register(block.cs_addr, expected)
        self.write_register(block.start_addr, rm.START_OPERATE)
        status = self.read_register(rm.SYS_STATUS0)
        chip_cs = self.read_register(block.cs_addr)
        if status >> block.err_bit & 1 or chip_cs != expected:
            raise ChecksumError(f"CS{block.index}: driver wrote 0x{expected:04X}, chip computes 0x{chip_cs:04X}"
                                f" (SysStatus0 0x{status:04X}); metering is stopped")
        if self.read_register(block.start_addr) != rm.START_OPERATE:
            raise ChecksumError(f"start register 0x{block.start_addr:02X} did not stay at 0x8765")

    def configuration_ok(self) -> bool:
        """True while all four start registers read 0x8765 (a chip reset returns them to 0x6886)."""
        return all(self.read_register(b.start_addr) == rm.START_OPERATE for b in rm.BLOCKS)

    # ---- cycle ----------------------------------------------------------------------------
    def read_measurements(self) -> Measurements:
        """Read every measurement register and the four status registers (SysStatus0/1 clear);
        currents and powers in true A, W, var, VA (the chip's values × the current scale)."""
        k = self.config.current_scale
        phases = tuple(self._read_phase(i, k) for i in range(3))
        status = decode_flags(self.read_register(rm.SYS_STATUS0), _SYS0_FLAGS)
        status |= decode_flags(self.read_register(rm.SYS_STATUS1), _SYS1_FLAGS)
        status |= decode_flags(self.read_register(rm.EN_STATUS0), _EN0_FLAGS)
        status |= decode_flags(self.read_register(rm.EN_STATUS1), _EN1_FLAGS)
        return Measurements(
            phases=(phases[0], phases[1], phases[2]),
            total_active_power_w=self.read_pair(rm.PMEAN_T) * k,
            total_reactive_power_var=self.read_pair(rm.QMEAN_T) * k,
            total_apparent_power_va=self.read_pair(rm.SAMEAN_T) * k,
            total_power_factor=self._read_scaled(rm.PFMEAN_T),
            frequency_hz=self._read_scaled(rm.FREQ),
            temperature_c=self._read_scaled(rm.TEMP),
            neutral_current_a=self._read_scaled(rm.IRMS_N1) * k,
            neutral_current_calc_a=self._read_scaled(rm.IRMS_N0) * k,
            status=frozenset(status),
        )

    def _read_phase(self, i: int, k: int) -> PhaseMeasurement:
        return PhaseMeasurement(
            voltage_v=self.read_pair(rm.URMS[i]),
            current_a=self.read_pair(rm.IRMS[i]) * k,
            active_power_w=self.read_pair(rm.PMEAN[i]) * k,
            reactive_power_var=self.read_pair(rm.QMEAN[i]) * k,
            apparent_power_va=self.read_pair(rm.SMEAN[i]) * k,
            power_factor=self._read_scaled(rm.PFMEAN[i]),
            angle_deg=self._read_scaled(rm.PANGLE[i]),
            voltage_angle_deg=self._read_scaled(rm.UANGLE[i]),
            thd_u_pct=self._read_scaled(rm.THDNU[i]),
            thd_i_pct=self._read_scaled(rm.THDNI[i]),
        )

    def read_energy(self) -> EnergyCounts:
        """Read (and so clear) every energy register once; counts and integer milli-units."""
        counts, vector = self._read_energy_counts()
        k = self.milli_per_count
        return EnergyCounts(counts=counts, milli={ch: c.scaled(k) for ch, c in counts.items()},
                            apparent_vector_total=vector, apparent_vector_total_milli=vector * k,
                            milli_per_count=k)

    def _read_energy_counts(self) -> tuple[dict[str, ChannelCounts], int]:
        """The one code path that reads the read-to-clear energy registers."""
        counts: dict[str, ChannelCounts] = {}
        for channel, letter in _CHANNEL_REG.items():
            values = {name: self.read_register(rm.energy_addr(stem, letter, suffix))
                      for name, stem, suffix in _ENERGY_FIELDS}
            counts[channel] = ChannelCounts(**values)
        return counts, self.read_register(rm.SVENERGY_T)

    def close(self) -> None:
        """Close the SPI device."""
        self.spi.close()

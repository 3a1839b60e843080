"""The ATM90E36A register map as data, and the CS0–CS3 checksum function.

Every register of the datasheet's Table-4 (restated in ``atm90e36.md`` §4) is one
:class:`Register`: 10-bit address, name, access (R, W, R/W, R/C), reset value, signedness,
unit of one LSB (V, A, W, var, VA, Hz, °, °C, %, or counts), the companion "LSB" register of a
MSW/LSW pair, and the checksum block that protects it. The driver and the simulator both read
this table, so neither carries private address constants.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ADDRESS_MASK = 0x3FF
"""Only A9..A0 are decoded; the 1 KiB register space aliases above it."""

SOFT_RESET_CODE = 0x789A
"""Written to SoftReset (0x00): full chip reset."""

START_POWER_UP = 0x6886
"""Start-register reset value: checksum errors suppressed, metering blocks not started."""

START_CALIBRATE = 0x5678
"""Start-register command: reset the block to defaults, run without checksum checking."""

START_OPERATE = 0x8765
"""Start-register command: keep registers, compare CSx, stop the function on mismatch."""


class Access(enum.Enum):
    """How the host may access a register."""

    R = "R"
    W = "W"
    RW = "R/W"
    RC = "R/C"

    @property
    def readable(self) -> bool:
        """True unless write-only."""
        return self is not Access.W

    @property
    def writable(self) -> bool:
        """True for W and R/W registers."""
        return self in (Access.W, Access.RW)


@dataclass(frozen=True)
class Register:
    """One 16-bit register.

    ``unit`` is the value of one LSB in ``unit_name`` (e.g. 0.01 V for UrmsA); ``None`` for
    bit fields and commands. ``lsb_addr`` names the companion LSB register of a MSW/LSW pair
    (only its bits 15..8 are valid; the pair is ``(MSW << 16 | LSW) / 65536 × unit``).
    ``block`` is the checksum block (0..3) whose CSx covers this register, else ``None``.
    """

    addr: int
    name: str
    access: Access
    reset: int = 0x0000
    signed: bool = False
    unit: float | None = None
    unit_name: str = ""
    lsb_addr: int | None = None
    block: int | None = None

    def decode(self, raw: int) -> int:
        """The raw 16-bit value as an int, two's complement when the register is signed."""
        return to_signed16(raw) if self.signed else raw & 0xFFFF


@dataclass(frozen=True)
class ChecksumBlock:
    """A start-register-protected block: start register, protected range, CSx, CSxErr bit."""

    index: int
    start_addr: int
    first_addr: int
    last_addr: int
    cs_addr: int
    err_bit: int

    @property
    def addrs(self) -> range:
        """The protected register addresses (inclusive range first..last)."""
        return range(self.first_addr, self.last_addr + 1)


BLOCKS: tuple[ChecksumBlock, ...] = (
    ChecksumBlock(0, 0x30, 0x31, 0x3A, 0x3B, 14),   # ConfigStart, CS0
    ChecksumBlock(1, 0x40, 0x41, 0x4C, 0x4D, 12),   # CalStart, CS1
    ChecksumBlock(2, 0x50, 0x51, 0x56, 0x57, 10),   # HarmStart, CS2
    ChecksumBlock(3, 0x60, 0x61, 0x6E, 0x6F, 8),    # AdjStart, CS3
)


def to_signed16(raw: int) -> int:
    """Decode a 16-bit two's-complement value."""
    raw &= 0xFFFF
    return raw - 0x10000 if raw & 0x8000 else raw


def to_signed32(raw: int) -> int:
    """Decode a 32-bit two's-complement value."""
    raw &= 0xFFFFFFFF
    return raw - 0x100000000 if raw & 0x80000000 else raw


def checksum(values: Iterable[int]) -> int:
    """CSx over 16-bit register values (§5.2): high byte = XOR of all bytes, low = sum mod 256."""
    total = 0
    xor = 0
    for value in values:
        for byte in ((value >> 8) & 0xFF, value & 0xFF):
            total += byte
            xor ^= byte
    return (xor << 8) | (total & 0xFF)


def block_checksum(block: ChecksumBlock, registers: Mapping[int, int]) -> int:
    """CSx of ``block`` given its register values by address."""
    return checksum(registers[addr] for addr in block.addrs)


PHASE_LETTERS = ("A", "B", "C")
ENERGY_CHANNELS = ("T", "A", "B", "C")

_registers: list[Register] = []


def _add(addr: int, name: str, access: Access, reset: int = 0, **kw: object) -> None:
    _registers.append(Register(addr, name, access, reset, **kw))  # type: ignore[arg-type]


def _status_and_special() -> None:
    _add(0x00, "SoftReset", Access.W)
    _add(0x01, "SysStatus0", Access.RC)
    _add(0x02, "SysStatus1", Access.RC)
    _add(0x03, "FuncEn0", Access.RW)
    _add(0x04, "FuncEn1", Access.RW)
    _add(0x07, "ZXConfig", Access.RW, 0x0001)
    _add(0x08, "SagTh", Access.RW)
    _add(0x09, "PhaseLossTh", Access.RW)
    _add(0x0A, "INWarnTh0", Access.RW, 0xFFFF, unit=0.001, unit_name="A")
    _add(0x0B, "INWarnTh1", Access.RW, 0xFFFF, unit=0.001, unit_name="A")
    _add(0x0C, "THDNUTh", Access.RW, 0xFFFF, unit=0.01, unit_name="%")
    _add(0x0D, "THDNITh", Access.RW, 0xFFFF, unit=0.01, unit_name="%")
    _add(0x0E, "DMACtrl", Access.RW, 0x7E44)
    _add(0x0F, "LastSPIData", Access.R)


def _low_power() -> None:
    _add(0x10, "DetectCtrl", Access.RW)
    for i in range(3):
        _add(0x11 + i, f"DetectTh{i + 1}", Access.RW)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x14 + i, f"PMOffset{ph}", Access.RW)
    _add(0x17, "PMPGA", Access.RW)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x18 + i, f"PMIrms{ph}", Access.R)
    _add(0x1B, "PMConfig", Access.RW)
    _add(0x1C, "PMAvgSamples", Access.RW, 0x00A0)
    _add(0x1D, "PMIrmsLSB", Access.R)


def _config_block() -> None:
    _add(0x30, "ConfigStart", Access.RW, START_POWER_UP)
    _add(0x31, "PLconstH", Access.RW, 0x0861, block=0)
    _add(0x32, "PLconstL", Access.RW, 0xC468, block=0)
    _add(0x33, "MMode0", Access.RW, 0x0087, block=0)
    _add(0x34, "MMode1", Access.RW, 0x0000, block=0)
    for offset, name in enumerate(("PStartTh", "QStartTh", "SStartTh", "PPhaseTh", "QPhaseTh", "SPhaseTh")):
        unit_name = ("W", "var", "VA")[offset % 3]
        _add(0x35 + offset, name, Access.RW, 0, unit=0.00032, unit_name=unit_name, block=0)
    _add(0x3B, "CS0", Access.RW, 0x421C)


def _cal_block() -> None:
    _add(0x40, "CalStart", Access.RW, START_POWER_UP)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x41 + 2 * i, f"Poffset{ph}", Access.RW, signed=True, unit=0.00256, unit_name="W", block=1)
        _add(0x42 + 2 * i, f"Qoffset{ph}", Access.RW, signed=True, unit=0.00256, unit_name="var", block=1)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x47 + 2 * i, f"Gain{ph}", Access.RW, signed=True, block=1)
        _add(0x48 + 2 * i, f"Phi{ph}", Access.RW, block=1)
    _add(0x4D, "CS1", Access.RW, 0x0000)


def _harm_block() -> None:
    _add(0x50, "HarmStart", Access.RW, START_POWER_UP)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x51 + i, f"POffset{ph}F", Access.RW, signed=True, unit=0.00256, unit_name="W", block=2)
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x54 + i, f"PGain{ph}F", Access.RW, signed=True, block=2)
    _add(0x57, "CS2", Access.RW, 0x0000)


def _adj_block() -> None:
    _add(0x60, "AdjStart", Access.RW, START_POWER_UP)
    for i, ph in enumerate(PHASE_LETTERS):
        base = 0x61 + 4 * i
        _add(base, f"Ugain{ph}", Access.RW, 0xCE40, block=3)
        _add(base + 1, f"Igain{ph}", Access.RW, 0x7530, block=3)
        _add(base + 2, f"Uoffset{ph}", Access.RW, signed=True, block=3)
        _add(base + 3, f"Ioffset{ph}", Access.RW, signed=True, block=3)
    _add(0x6D, "IgainN", Access.RW, 0x7530, block=3)
    _add(0x6E, "IoffsetN", Access.RW, signed=True, block=3)
    _add(0x6F, "CS3", Access.RW, 0x8EBE)


ENERGY_QUANTITIES: tuple[tuple[int, str, str], ...] = (
    (0x80, "APenergy", ""), (0x84, "ANenergy", ""), (0x88, "RPenergy", ""),
    (0x8C, "RNenergy", ""), (0x90, "SAenergy", ""),
    (0xA0, "APenergy", "F"), (0xA4, "ANenergy", "F"), (0xA8, "APenergy", "H"), (0xAC, "ANenergy", "H"),
)
"""(base address, name stem, suffix) of each energy register family: channel T at the base,
A/B/C at +1..+3; suffix F = fundamental, H = harmonic (``APenergyAF``). Units: Wh (AP/AN),
varh (RP/RN), VAh (SA/SV), one count = 0.1 or 0.01 CF (MMode0.001LSB)."""


def energy_name(stem: str, channel: str, suffix: str = "") -> str:
    """Register name of an energy register, e.g. ``APenergyT`` or ``ANenergyBF``."""
    return f"{stem}{channel}{suffix}"


def _energy() -> None:
    for base, stem, suffix in ENERGY_QUANTITIES:
        unit_name = "varh" if stem.startswith("R") else "VAh" if stem.startswith("S") else "Wh"
        for i, ch in enumerate(ENERGY_CHANNELS):
            _add(base + i, energy_name(stem, ch, suffix), Access.RC, unit_name=unit_name)
    _add(0x94, "SVenergyT", Access.RC, unit_name="VAh")
    _add(0x95, "EnStatus0", Access.R, 0xF000)
    _add(0x96, "EnStatus1", Access.R)
    _add(0x98, "SVmeanT", Access.R, unit=4.0, unit_name="VA", lsb_addr=0x99)
    _add(0x99, "SVmeanTLSB", Access.R, unit=4.0 / 65536, unit_name="VA")


def _pair(msw: int, lsw: int, name: str, unit: float, unit_name: str, signed: bool) -> None:
    _add(msw, name, Access.R, signed=signed, unit=unit, unit_name=unit_name, lsb_addr=lsw)
    _add(lsw, f"{name}LSB", Access.R, unit=unit / 65536, unit_name=unit_name)


def _power() -> None:
    channels = ("T",) + PHASE_LETTERS
    for i, ch in enumerate(channels):
        scale = 4.0 if ch == "T" else 1.0
        _pair(0xB0 + i, 0xC0 + i, f"Pmean{ch}", scale, "W", True)
        _pair(0xB4 + i, 0xC4 + i, f"Qmean{ch}", scale, "var", True)
        s_name = "SAmeanT" if ch == "T" else f"Smean{ch}"
        _pair(0xB8 + i, 0xC8 + i, s_name, scale, "VA", False)
        _add(0xBC + i, f"PFmean{ch}", Access.R, signed=True, unit=0.001, unit_name="")
        _pair(0xD0 + i, 0xE0 + i, f"Pmean{ch}F", scale, "W", True)
        _pair(0xD4 + i, 0xE4 + i, f"Pmean{ch}H", scale, "W", True)


def _rms_and_misc() -> None:
    _add(0xD8, "IrmsN1", Access.R, unit=0.001, unit_name="A")
    _add(0xDC, "IrmsN0", Access.R, unit=0.001, unit_name="A")
    for i, ph in enumerate(PHASE_LETTERS):
        _pair(0xD9 + i, 0xE9 + i, f"Urms{ph}", 0.01, "V", False)
        _pair(0xDD + i, 0xED + i, f"Irms{ph}", 0.001, "A", False)
        _add(0xF1 + i, f"THDNU{ph}", Access.R, unit=0.01, unit_name="%")
        _add(0xF5 + i, f"THDNI{ph}", Access.R, unit=0.01, unit_name="%")
        _add(0xF9 + i, f"PAngle{ph}", Access.R, signed=True, unit=0.1, unit_name="deg")
        _add(0xFD + i, f"Uangle{ph}", Access.R, signed=True, unit=0.1, unit_name="deg")
    _add(0xF8, "Freq", Access.R, unit=0.01, unit_name="Hz")
    _add(0xFC, "Temp", Access.R, signed=True, unit=1.0, unit_name="degC")


def _dft() -> None:
    bases = ((0x100, "AI"), (0x120, "BI"), (0x140, "CI"), (0x160, "AV"), (0x180, "BV"), (0x1A0, "CV"))
    for base, prefix in bases:
        for order in range(2, 33):
            _add(base + order - 2, f"{prefix}_HR{order}", Access.R, unit=1 / 163.84, unit_name="%")
        _add(base + 0x1F, f"{prefix}_THD", Access.R, unit=1 / 163.84, unit_name="%")
    for i, ph in enumerate(PHASE_LETTERS):
        _add(0x1C0 + 2 * i, f"{ph}I_FUND", Access.R, unit=3.2656e-3, unit_name="A")
        _add(0x1C1 + 2 * i, f"{ph}V_FUND", Access.R, unit=3.2656e-2, unit_name="V")
    _add(0x1D0, "DFT_SCALE", Access.RW)
    _add(0x1D1, "DFT_CTRL", Access.RW)


for _build in (_status_and_special, _low_power, _config_block, _cal_block, _harm_block, _adj_block,
               _energy, _power, _rms_and_misc, _dft):
    _build()

REGISTERS: dict[int, Register] = {reg.addr: reg for reg in sorted(_registers, key=lambda r: r.addr)}
"""Every documented register by address."""

BY_NAME: dict[str, Register] = {reg.name: reg for reg in REGISTERS.values()}
"""Every documented register by datasheet name."""

assert len(REGISTERS) == len(_registers) == len(BY_NAME), "duplicate register address or name"

READ_TO_CLEAR: frozenset[int] = frozenset(a for a, r in REGISTERS.items() if r.access is Access.RC)
"""SysStatus0/1 and every energy register (0x80–0x94, 0xA0–0xAF)."""

RESET_VALUES: dict[int, int] = {a: r.reset for a, r in REGISTERS.items() if r.reset}
"""Non-zero reset values by address (everything else resets to 0)."""


def addr(name: str) -> int:
    """Address of the register called ``name`` (datasheet spelling)."""
    return BY_NAME[name].addr


def energy_addr(stem: str, channel: str, suffix: str = "") -> int:
    """Address of energy register ``stem`` (e.g. ``"APenergy"``) for channel T, A, B or C."""
    return BY_NAME[energy_name(stem, channel, suffix)].addr


def phase_addrs(pattern: str) -> tuple[int, int, int]:
    """Addresses of a per-phase register family for phases A, B, C; ``pattern`` holds ``{}`` where
    the datasheet name has the phase letter (``"Urms{}"`` → UrmsA, UrmsB, UrmsC)."""
    a, b, c = (addr(pattern.format(ph)) for ph in PHASE_LETTERS)
    return a, b, c


# ---- register addresses by datasheet name ------------------------------------------------------
# The driver and the simulator name registers only through these (or :func:`addr`).

# Status and special registers (0x00–0x0F)
SOFT_RESET = addr("SoftReset")              # write SOFT_RESET_CODE: full chip reset
SYS_STATUS0 = addr("SysStatus0")            # CSxErr, phase sequence errors, sag/phase loss (R/C)
SYS_STATUS1 = addr("SysStatus1")            # neutral/THD+N warnings, reverse flags, DFTDone (R/C)
FUNC_EN0 = addr("FuncEn0")                  # function enable 0
FUNC_EN1 = addr("FuncEn1")                  # function enable 1
ZX_CONFIG = addr("ZXConfig")                # zero-crossing configuration
SAG_TH = addr("SagTh")                      # voltage sag threshold
PHASE_LOSS_TH = addr("PhaseLossTh")         # voltage phase-loss threshold
IN_WARN_TH0 = addr("INWarnTh0")             # calculated neutral current warning threshold (1 mA)
IN_WARN_TH1 = addr("INWarnTh1")             # sampled neutral current warning threshold (1 mA)
THDNU_TH = addr("THDNUTh")                  # voltage THD+N warning threshold (0.01 %)
THDNI_TH = addr("THDNITh")                  # current THD+N warning threshold (0.01 %)
DMA_CTRL = addr("DMACtrl")                  # DMA mode interface control
LAST_SPI_DATA = addr("LastSPIData")         # payload of the last SPI read or write

# Configuration block (ConfigStart, CS0)
CONFIG_START = addr("ConfigStart")
PL_CONST_H = addr("PLconstH")               # high word of PL_constant
PL_CONST_L = addr("PLconstL")               # low word of PL_constant
MMODE0 = addr("MMode0")                     # metering mode 0 (frequency, energy LSB, abs sums)
MMODE1 = addr("MMode1")                     # metering mode 1 (PGA gains)
START_THRESHOLDS: tuple[int, ...] = tuple(addr(n) for n in (
    "PStartTh", "QStartTh", "SStartTh", "PPhaseTh", "QPhaseTh", "SPhaseTh"))
"""The start-up and phase no-load thresholds of P, Q and S (0.00032 W, var, VA per LSB)."""

# Calibration block (CalStart, CS1)
CAL_START = addr("CalStart")
POFFSET = phase_addrs("Poffset{}")          # active power offset (0.00256 W)
QOFFSET = phase_addrs("Qoffset{}")          # reactive power offset (0.00256 var)
GAIN = phase_addrs("Gain{}")                # energy gain (1 + g / 32768)
PHI = phase_addrs("Phi{}")                  # phase delay compensation

# Fundamental/harmonic block (HarmStart, CS2)
HARM_START = addr("HarmStart")
POFFSET_F = phase_addrs("POffset{}F")       # fundamental active power offset (0.00256 W)
PGAIN_F = phase_addrs("PGain{}F")           # fundamental active power gain (1 + g / 32768)

# Measurement calibration block (AdjStart, CS3)
ADJ_START = addr("AdjStart")
UGAIN = phase_addrs("Ugain{}")              # voltage RMS gain
IGAIN = phase_addrs("Igain{}")              # current RMS gain
UOFFSET = phase_addrs("Uoffset{}")          # voltage offset
IOFFSET = phase_addrs("Ioffset{}")          # current offset
IGAIN_N = addr("IgainN")                    # sampled neutral current gain
IOFFSET_N = addr("IoffsetN")                # sampled neutral current offset

# Energy status and the apparent energy of the vector sum
SVENERGY_T = addr("SVenergyT")              # total (vector sum) apparent energy (R/C)
EN_STATUS0 = addr("EnStatus0")              # no-load and CF reverse flags
EN_STATUS1 = addr("EnStatus1")              # sag and phase-loss per phase
SVMEAN_T = addr("SVmeanT")                  # vector-sum total apparent power (4 VA), LSB at SVmeanTLSB

# Measurements (MSW registers of a pair carry their LSB companion in REGISTERS[...].lsb_addr)
PMEAN_T = addr("PmeanT")                    # total active power (4 W)
QMEAN_T = addr("QmeanT")                    # total reactive power (4 var)
SAMEAN_T = addr("SAmeanT")                  # total arithmetic-sum apparent power (4 VA)
PFMEAN_T = addr("PFmeanT")                  # total power factor (0.001)
PMEAN_TF = addr("PmeanTF")                  # total fundamental active power (4 W)
PMEAN_TH = addr("PmeanTH")                  # total harmonic active power (4 W)
PMEAN = phase_addrs("Pmean{}")              # active power (1 W)
QMEAN = phase_addrs("Qmean{}")              # reactive power (1 var)
SMEAN = phase_addrs("Smean{}")              # apparent power (1 VA)
PFMEAN = phase_addrs("PFmean{}")            # power factor (0.001)
PMEAN_F = phase_addrs("Pmean{}F")           # fundamental active power (1 W)
PMEAN_H = phase_addrs("Pmean{}H")           # harmonic active power (1 W)
URMS = phase_addrs("Urms{}")                # voltage RMS (0.01 V)
IRMS = phase_addrs("Irms{}")                # current RMS (0.001 A)
IRMS_N1 = addr("IrmsN1")                    # neutral current RMS, sampled (1 mA)
IRMS_N0 = addr("IrmsN0")                    # neutral current RMS, calculated from iA+iB+iC (1 mA)
THDNU = phase_addrs("THDNU{}")              # voltage THD+N (0.01 %)
THDNI = phase_addrs("THDNI{}")              # current THD+N (0.01 %)
FREQ = addr("Freq")                         # frequency (0.01 Hz)
TEMP = addr("Temp")                         # chip temperature (1 °C)
PANGLE = phase_addrs("PAngle{}")            # voltage-to-current angle (0.1°)
UANGLE = phase_addrs("Uangle{}")            # voltage angle against phase A (0.1°)

MEASUREMENTS: frozenset[int] = frozenset(
    a for a, r in REGISTERS.items() if r.access is Access.R and PMEAN_T <= a <= UANGLE[2])
"""The measurement registers refreshed each measurement period (powers, power factors, RMS,
THD+N, frequency, temperature, angles: PmeanT 0xB0 to UangleC 0xFF)."""

# DFT / harmonic analysis
DFT_CTRL = addr("DFT_CTRL")                 # bit 0: start one DFT, self-clears when done


def harmonic_addrs(prefix: str) -> tuple[int, ...]:
    """HR2..HR32 addresses of one DFT channel (``prefix`` "AI", "BI", "CI", "AV", "BV" or "CV")."""
    return tuple(addr(f"{prefix}_HR{order}") for order in range(2, 33))


KEPT_BY_SOFT_RESET: frozenset[int] = frozenset(
    a for a, r in REGISTERS.items() if "_HR" in r.name or r.name.endswith("_THD")) | frozenset(
    addr(n) for n in ("DetectCtrl", "DetectTh1", "DetectTh2", "DetectTh3"))
"""Registers a soft reset leaves as they are: the DFT results 0x100–0x1BF and the detector
latches 0x10–0x13 (everything else returns to its reset value)."""


def block_of(address: int) -> ChecksumBlock | None:
    """The checksum block protecting ``address``, if any."""
    reg = REGISTERS.get(address)
    return BLOCKS[reg.block] if reg is not None and reg.block is not None else None


def default_block_values(block: ChecksumBlock) -> dict[int, int]:
    """Reset values of the registers protected by ``block``."""
    return {a: REGISTERS[a].reset for a in block.addrs}

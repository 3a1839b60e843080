"""A register-exact ATM90E36A simulator: an SPI slave that meters a simulated grid.

:class:`Atm90e36Sim` answers the 4-byte frames of ``atm90e36.md`` §2 exactly as the chip does and
derives every result register from a :class:`hw.sim.grid.Grid`:

Framing: a frame with fewer than 16 clocks does nothing; a read is latched at clock 16 (the value
goes to LastSPIData and read-to-clear registers are cleared even if the frame is cut short); a
write takes effect only with exactly 32 clocks; SDO bytes 0–1 are 0xFF; addresses are masked to
10 bits. LastSPIData (0x0F) holds the payload of every read or completed write.

Start registers (§5.1): 0x5678 resets the block to its reset values and runs it unchecked (the
block's registers are writable only in this state); 0x8765 compares the written CSx with the
computed one and stops the function on mismatch (CSxErr in SysStatus0 is re-latched on every
access while the error lasts); other values force an error. Reading CSx returns the computed
checksum. Metering runs only with CalStart at 0x5678/0x8765; fundamental/harmonic metering also
needs HarmStart; a CS0/CS1/CS3 error stops metering and measurement (result registers read 0).

Energy: on every access the grid is integrated from the previous access to now, piece by piece.
Per phase the powers are ``P·(1 + Gain/32768) + Poffset·0.00256 W`` (same for Q; apparent and
harmonic power use the gain only; fundamental power uses PGainXF/POffsetXF). A phase contributes
when |P|+|Q| exceeds PPhaseTh (resp. QPhaseTh, SPhaseTh) × 0.00032 W; totals are the signed (or,
per MMode0 ABSEnP/ABSEnQ, absolute) sum of the enabled phases and accumulate only above
PStartTh/QStartTh/SStartTh. Each channel has a bidirectional accumulator at 0.01 CF
(``1 CF = 1/MC kWh``, ``MC = 450e9 / PL_constant``) whose forward and reverse quanta feed the
forward/reverse registers at 0.01 or 0.1 CF (MMode0.001LSB). Sub-count residues stay inside, so
nothing is lost; :meth:`Atm90e36Sim.residue_milli` exposes them (register + residue = truth).

Board current scale (``current_scale`` k): the board's current inputs (burden, CT ratio) are set
so that the chip sees I/k, as a front end sized for Imax plus headroom needs (the 16-bit Irms
register ends at 65.535 A, per-phase Pmean at 32.767 kW). Everything current-derived is then
1/k of the truth at the chip: Irms, the neutral currents, P, Q, S (fundamental and harmonic
too), the DFT fundamental and every energy count. The driver multiplies back and programs the
chip's meter constant as MC × k, so a count (and a CF pulse) stays the same true energy.
:meth:`Atm90e36Sim.milli_per_count` and :meth:`Atm90e36Sim.residue_milli` speak of true energy.

Overflow choice: the datasheet does not say what a 16-bit energy register does past 65535; this
simulator **saturates** at 65535 and counts the lost counts in :meth:`Atm90e36Sim.overflow_counts`,
so a driver that polls too slowly shows a visible, testable loss rather than a silent wrap.

Measurements are refreshed every 16 nominal mains cycles (320 ms at 50 Hz) with the grid values at
the latest refresh instant: Urms·Ugain/52800 (+offset), Irms·Igain/30000 (+offset), P/Q/S/PF,
angles (PAngle = voltage-to-current angle, positive when the current lags), frequency (nominal
when every phase is in sag), temperature, neutral current (calculated and sampled), THD+N,
fundamental/harmonic power; MSW/LSW pairs in two's complement with LSW bits 7..0 = 0 and 16-bit
saturation. Status: sag/phase loss (peak voltage below SagTh/PhaseLossTh in sample units),
voltage/current phase sequence, neutral over-current, THD+N over threshold, RevPchg/RevQchg on a
direction change of an energy accumulator, no-load bits, CF direction flags, DFT (one-shot,
0.512 s, ratio registers and DFTDone). The board's analogue front end (``board=``,
:class:`hw.atm90e36.analog.AnalogBoard`: gain, phase and offset errors) acts on what the chip sees,
before its calibration registers; PhiX shifts the current against the voltage (bits 9:0 in
2.048 MHz cycles, bit 15 = delay the voltage). Not modelled: 3P3W mode,
I1/I3 swap, DMA mode, power modes other than Normal, hidden app-note registers.

Faults (``fault=``): ``"no_chip"`` (MISO stuck high: every byte reads 0xFF, writes lost),
``"checksum"`` (the chip computes a different CS0, so CS0Err follows 0x8765), ``"corrupt_read"``
(every ``corrupt_every``-th read frame has one SDO data bit flipped on the wire; the internal
value and LastSPIData stay correct).

Injected faults (:class:`hw.atm90e36.faults.ChipFault`, :meth:`Atm90e36Sim.inject` /
:meth:`Atm90e36Sim.clear`, timed by the simulated world): brown-out (unpowered while it lasts,
power-on defaults after), MISO stuck high / low, seeded SDO bit flips at a rate, a corrupted
configuration checksum (CS0Err, metering stopped until block 0 is programmed again after the fault
clears), SPI timeouts. ``late_cycle`` is the meter's own fault: the chip ignores it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from hw.atm90e36 import regmap as rm
from hw.atm90e36.analog import AnalogBoard, phi_shift_rad, seen_powers
from hw.atm90e36.faults import ChipFault
from hw.sim.grid import Grid, GridState, PhaseState
from hw.spi import SpiTimeout

FAULTS = (None, "no_chip", "checksum", "corrupt_read")

_NOMINAL_UGAIN = 52800
_NOMINAL_IGAIN = 30000
_THRESHOLD_W_PER_LSB = 0.00032
_OFFSET_W_PER_LSB = 0.00256
_U_OFFSET_V_PER_LSB = 0.01 * 128 / 65536
_I_OFFSET_A_PER_LSB = 0.001 * 128 / 65536
_DFT_DURATION_S = 4096 / 8000
_MWH_PER_WS = 1 / 3.6

_CS_SYS0 = {0: 14, 1: 12, 2: 10, 3: 8}
_BLOCK_OF_CS = {block.cs_addr: block for block in rm.BLOCKS}
_REV_P_BIT = {"T": 3, "A": 2, "B": 1, "C": 0}
_REV_Q_BIT = {"T": 7, "A": 6, "B": 5, "C": 4}
_CHANNELS = ("T", "A", "B", "C")
_LSB_OF = {a: r.lsb_addr for a, r in rm.REGISTERS.items() if r.lsb_addr is not None}
"""The LSB companion of each MSW register of a pair, by address."""


class _Acc:
    """A bidirectional 0.01 CF accumulator feeding a forward and (optionally) a reverse register."""

    __slots__ = ("fwd_addr", "rev_addr", "rev_bit", "acc", "pend_fwd", "pend_rev", "last_dir")

    def __init__(self, fwd_addr: int, rev_addr: int | None, rev_bit: int | None) -> None:
        self.fwd_addr = fwd_addr
        self.rev_addr = rev_addr
        self.rev_bit = rev_bit
        self.acc = 0.0          # bidirectional residue, mWh, |acc| < one 0.01 CF quantum
        self.pend_fwd = 0       # forward 0.01 CF quanta not yet worth one register count
        self.pend_rev = 0
        self.last_dir = 0

    def add(self, sim: Atm90e36Sim, energy_mwh: float, quantum_mwh: float, ratio: int) -> None:
        self.acc += energy_mwh
        if self.acc >= quantum_mwh:
            n = int(self.acc // quantum_mwh)
            self.acc -= n * quantum_mwh
            self.pend_fwd = sim._emit(self, self.fwd_addr, self.pend_fwd + n, ratio, +1)
        elif self.acc <= -quantum_mwh and self.rev_addr is not None:
            n = int(-self.acc // quantum_mwh)
            self.acc += n * quantum_mwh
            self.pend_rev = sim._emit(self, self.rev_addr, self.pend_rev + n, ratio, -1)


@dataclass(frozen=True)
class _Setup:
    """Configuration derived from the config/calibration registers (rebuilt after writes)."""

    quantum_mwh: float
    ratio: int
    current_scale: float
    enabled: tuple[bool, bool, bool]
    abs_p: bool
    abs_q: bool
    vector_pf: bool
    period_s: float
    nominal_hz: float
    gains: tuple[float, float, float]
    p_off: tuple[float, float, float]
    q_off: tuple[float, float, float]
    f_gains: tuple[float, float, float]
    f_off: tuple[float, float, float]
    th: dict[str, float]
    phi_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Flow:
    """Signed powers (W, var, VA) per accumulator for one grid state, gated as the chip does."""

    powers: dict[tuple[str, str], float]
    noload: dict[str, bool]


class Atm90e36Sim:
    """The simulated chip. ``clock()`` returns monotonic seconds (the same clock as the grid's);
    ``current_scale`` is the board's current scale k (the chip sees I/k, see the module docstring)."""

    def __init__(self, grid: Grid, clock: Callable[[], float], fault: str | None = None,
                 corrupt_every: int = 7, temperature_c: float = 25.0, current_scale: float = 1.0,
                 board: AnalogBoard | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        if not current_scale > 0:
            raise ValueError(f"current_scale {current_scale}: expected a positive factor")
        self.current_scale = float(current_scale)
        if corrupt_every < 3:
            raise ValueError("corrupt_every must be >= 3 so that LastSPIData can confirm a read")
        self.grid = grid
        self.clock = clock
        self.fault = fault
        self.corrupt_every = corrupt_every
        self.temperature_c = temperature_c
        self.board = board or AnalogBoard()
        self._regs = [0] * 1024
        self._frames_read = 0
        self._dft_start: float | None = None
        self._injected: set[ChipFault] = set()
        self._flip_rate = 0.0
        self._flip_rng = random.Random(0)
        self._unpowered = False
        self._power_on(float(clock()))

    # ---- injected faults ------------------------------------------------------------------
    @property
    def injected(self) -> frozenset[ChipFault]:
        """The injected faults in force."""
        return frozenset(self._injected)

    def inject(self, fault: ChipFault, rate: float = 1e-3, seed: int = 0) -> None:
        """Force ``fault`` from now on (see :mod:`hw.atm90e36.faults`); ``rate`` is the
        probability per SDO data bit of ``bit_flips`` (0 < rate <= 0.5), ``seed`` its generator's."""
        now = float(self.clock())
        if not self._unpowered:
            self._advance(now)
        self._injected.add(fault)
        if fault is ChipFault.BROWN_OUT:
            self._unpowered = True
        elif fault is ChipFault.CHECKSUM:
            self._block_error[0] = True   # the chip sees CS0 no longer match: metering stops
        elif fault is ChipFault.BIT_FLIPS:
            if not 0.0 < rate <= 0.5:
                raise ValueError(f"bit flip rate {rate}: expected 0 < rate <= 0.5 per bit")
            self._flip_rate = rate
            self._flip_rng = random.Random(seed)

    def clear(self, fault: ChipFault) -> None:
        """End ``fault``: a brown-out ends with a power-on reset; a corrupted checksum stays
        latched until the host programs block 0 again; the others simply stop."""
        if fault not in self._injected:
            return
        self._injected.discard(fault)
        if fault is ChipFault.BROWN_OUT:
            self._unpowered = False
            self._power_on(float(self.clock()))

    # ---- reset ----------------------------------------------------------------------------
    def _power_on(self, now: float) -> None:
        self._regs = [0] * 1024
        self._reset_registers(keep=frozenset())
        self._t_last = now
        self._refresh_base = now
        self._next_refresh = now + self._setup().period_s

    def _reset_registers(self, keep: frozenset[int]) -> None:
        for a in range(1024):
            if a not in keep:
                self._regs[a] = rm.RESET_VALUES.get(a, 0)
        self._last = 0
        self._written_cs = {b.index: rm.REGISTERS[b.cs_addr].reset for b in rm.BLOCKS}
        self._block_error = {b.index: False for b in rm.BLOCKS}
        self._accs = self._make_accumulators()
        self._overflow: dict[int, int] = {}
        self._setup_cache: _Setup | None = None
        self._flow_cache: tuple[GridState, _Setup, _Flow] | None = None
        self._dft_start = None
        self._next_refresh = math.inf

    def _soft_reset(self, now: float) -> None:
        self._reset_registers(rm.KEPT_BY_SOFT_RESET)
        self._t_last = now
        self._refresh_base = now
        self._next_refresh = now + self._setup().period_s

    @staticmethod
    def _make_accumulators() -> dict[tuple[str, str], _Acc]:
        accs: dict[tuple[str, str], _Acc] = {}
        for ch in _CHANNELS:
            accs[(ch, "P")] = _Acc(rm.energy_addr("APenergy", ch), rm.energy_addr("ANenergy", ch), _REV_P_BIT[ch])
            accs[(ch, "Q")] = _Acc(rm.energy_addr("RPenergy", ch), rm.energy_addr("RNenergy", ch), _REV_Q_BIT[ch])
            accs[(ch, "S")] = _Acc(rm.energy_addr("SAenergy", ch), None, None)
            accs[(ch, "F")] = _Acc(rm.energy_addr("APenergy", ch, "F"), rm.energy_addr("ANenergy", ch, "F"), None)
            accs[(ch, "H")] = _Acc(rm.energy_addr("APenergy", ch, "H"), rm.energy_addr("ANenergy", ch, "H"), None)
        accs[("T", "SV")] = _Acc(rm.SVENERGY_T, None, None)
        return accs

    # ---- SPI ------------------------------------------------------------------------------
    def transfer(self, tx: bytes) -> bytes:
        """One CS-low window of ``8 * len(tx)`` clocks; returns the SDO bytes."""
        rx = bytearray(b"\xff" * len(tx))
        if self.fault == "no_chip":
            return bytes(rx)
        injected = self._injected  # empty but in fault tests: skip the set look-ups
        if injected and ChipFault.SPI_TIMEOUT in injected:
            raise SpiTimeout("SPI transfer timed out")
        if self._unpowered:
            return bytes(len(tx))
        self._advance(float(self.clock()))
        if len(tx) >= 2:
            address = ((tx[0] << 8) | tx[1]) & rm.ADDRESS_MASK
            if tx[0] & 0x80:
                value = self._flip(self._wire_value(self._read(address)))
                if len(tx) >= 3:
                    rx[2] = value >> 8
                if len(tx) >= 4:
                    rx[3] = value & 0xFF
            elif len(tx) == 4:
                self._write(address, (tx[2] << 8) | tx[3])
        if injected:
            if ChipFault.MISO_HIGH in injected:
                return b"\xff" * len(tx)
            if ChipFault.MISO_LOW in injected:
                return bytes(len(tx))
        return bytes(rx)

    def _flip(self, value: int) -> int:
        """The 16 SDO data bits of a read with each bit flipped at the ``bit_flips`` rate."""
        if not self._injected or ChipFault.BIT_FLIPS not in self._injected:
            return value
        for bit in range(16):
            if self._flip_rng.random() < self._flip_rate:
                value ^= 1 << bit
        return value

    def _wire_value(self, value: int) -> int:
        if self.fault != "corrupt_read":
            return value
        self._frames_read += 1
        if self._frames_read % self.corrupt_every:
            return value
        return value ^ (1 << (self._frames_read // self.corrupt_every) % 16)

    def _read(self, address: int) -> int:
        if address == rm.LAST_SPI_DATA:
            return self._last
        value = self._register_value(address)
        self._last = value
        if address in rm.READ_TO_CLEAR:
            self._regs[address] = 0
        return value

    def _register_value(self, address: int) -> int:
        reg = rm.REGISTERS.get(address)
        if reg is None or not reg.access.readable:
            return 0
        block = _BLOCK_OF_CS.get(address)
        if block is not None:
            return self._computed_cs(block)
        if address == rm.FUNC_EN1:
            return self._regs[address] & ~0x3100 & 0xFFFF
        return self._regs[address]

    def _computed_cs(self, block: rm.ChecksumBlock) -> int:
        cs = rm.checksum(self._regs[a] for a in block.addrs)
        corrupted = self.fault == "checksum" or ChipFault.CHECKSUM in self._injected
        return cs ^ 0x0001 if corrupted and block.index == 0 else cs

    def _write(self, address: int, value: int) -> None:
        self._last = value
        now = self._t_last
        if address == rm.SOFT_RESET:
            if value == rm.SOFT_RESET_CODE:
                self._soft_reset(now)
            return
        block = next((b for b in rm.BLOCKS if address == b.start_addr), None)
        if block is not None:
            self._write_start(block, value)
            return
        cs_block = next((b for b in rm.BLOCKS if address == b.cs_addr), None)
        if cs_block is not None:
            self._written_cs[cs_block.index] = value
            return
        reg = rm.REGISTERS.get(address)
        if reg is None or not reg.access.writable:
            return
        if reg.block is not None:
            if self._regs[rm.BLOCKS[reg.block].start_addr] != rm.START_CALIBRATE:
                return
            self._setup_cache = None
        self._regs[address] = value
        if address == rm.DFT_CTRL and value & 1:
            self._dft_start = now

    def _write_start(self, block: rm.ChecksumBlock, value: int) -> None:
        self._regs[block.start_addr] = value
        self._setup_cache = None
        if value == rm.START_CALIBRATE:
            for a in block.addrs:
                self._regs[a] = rm.REGISTERS[a].reset
            self._written_cs[block.index] = rm.REGISTERS[block.cs_addr].reset
            self._block_error[block.index] = False
        elif value == rm.START_OPERATE:
            self._block_error[block.index] = self._computed_cs(block) != self._written_cs[block.index]
        else:
            self._block_error[block.index] = value != rm.START_POWER_UP

    # ---- state ----------------------------------------------------------------------------
    def _running(self, start_addr: int) -> bool:
        return self._regs[start_addr] in (rm.START_CALIBRATE, rm.START_OPERATE)

    def _measuring(self) -> bool:
        return not (self._block_error[0] or self._block_error[1] or self._block_error[3])

    def _metering(self) -> bool:
        return self._measuring() and self._running(rm.CAL_START)

    def _harmonic_metering(self) -> bool:
        return self._metering() and self._running(rm.HARM_START) and not self._block_error[2]

    def _setup(self) -> _Setup:
        if self._setup_cache is None:
            self._setup_cache = self._build_setup()
        return self._setup_cache

    def _build_setup(self) -> _Setup:
        r = self._regs
        pl = (r[rm.PL_CONST_H] << 16) | r[rm.PL_CONST_L]
        mmode0 = r[rm.MMODE0]
        s16 = rm.to_signed16
        nominal = 60.0 if mmode0 & 0x1000 else 50.0
        th = {name: (rm.BY_NAME[name].unit or 0.0) * r[rm.addr(name)]
              for name in ("PStartTh", "QStartTh", "SStartTh", "PPhaseTh", "QPhaseTh", "SPhaseTh")}
        return _Setup(
            quantum_mwh=pl / 45e6, ratio=1 if mmode0 & 0x0200 else 10, current_scale=self.current_scale,
            enabled=(bool(mmode0 & 4), bool(mmode0 & 2), bool(mmode0 & 1)),
            abs_p=bool(mmode0 & 0x08), abs_q=bool(mmode0 & 0x10), vector_pf=bool(mmode0 & 0x40),
            period_s=16 / nominal, nominal_hz=nominal,
            gains=_triple(lambda i: 1 + s16(r[rm.GAIN[i]]) / 32768),
            p_off=_triple(lambda i: s16(r[rm.POFFSET[i]]) * _OFFSET_W_PER_LSB),
            q_off=_triple(lambda i: s16(r[rm.QOFFSET[i]]) * _OFFSET_W_PER_LSB),
            f_gains=_triple(lambda i: 1 + s16(r[rm.PGAIN_F[i]]) / 32768),
            f_off=_triple(lambda i: s16(r[rm.POFFSET_F[i]]) * _OFFSET_W_PER_LSB),
            th=th, phi_rad=_triple(lambda i: phi_shift_rad(r[rm.PHI[i]], nominal)),
        )

    # ---- time -----------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        if self._unpowered:   # nothing runs; time just passes
            self._t_last = now
            return
        if now > self._t_last:
            if self._metering() and self._setup().quantum_mwh > 0:
                self._integrate(self._t_last, now)
            self._t_last = now
        if now >= self._next_refresh:
            period = self._setup().period_s
            k = math.floor((now - self._refresh_base) / period)
            if self._refresh_base + (k + 1) * period <= now:   # float rounding at a boundary
                k += 1
            self._refresh(self._refresh_base + k * period)
            self._next_refresh = self._refresh_base + (k + 1) * period
        if self._dft_start is not None and now - self._dft_start >= _DFT_DURATION_S:
            self._finish_dft()
        if True in self._block_error.values():
            for block in rm.BLOCKS:
                if self._block_error[block.index]:
                    self._regs[rm.SYS_STATUS0] |= 1 << _CS_SYS0[block.index]

    def _integrate(self, t_from: float, t_to: float) -> None:
        setup = self._setup()
        harmonic = self._harmonic_metering()
        for dt, state in self.grid.segments(t_from, t_to):
            flow = self._flow(state, setup)
            for key, power in flow.powers.items():
                if power == 0.0 or (key[1] in ("F", "H") and not harmonic):
                    continue
                self._accs[key].add(self, power * dt * _MWH_PER_WS, setup.quantum_mwh, setup.ratio)

    def _emit(self, acc: _Acc, address: int, quanta: int, ratio: int, direction: int) -> int:
        counts, pending = divmod(quanta, ratio)
        if counts:
            total = self._regs[address] + counts
            if total > 0xFFFF:
                self._overflow[address] = self._overflow.get(address, 0) + total - 0xFFFF
                total = 0xFFFF
            self._regs[address] = total
        if acc.rev_bit is not None and acc.last_dir and acc.last_dir != direction:
            self._regs[rm.SYS_STATUS1] |= 1 << acc.rev_bit
        acc.last_dir = direction
        return pending

    def _flow(self, state: GridState, setup: _Setup) -> _Flow:
        cached = self._flow_cache
        if cached is not None and cached[0] is state and cached[1] is setup:
            return cached[2]
        flow = _compute_flow(state, setup, self.board)
        self._flow_cache = (state, setup, flow)
        return flow

    # ---- measurements ---------------------------------------------------------------------
    def _refresh(self, t: float) -> None:
        state = self.grid.state_at(t)
        setup = self._setup()
        if not self._measuring():
            for a in rm.MEASUREMENTS:
                if a != rm.TEMP:
                    self._regs[a] = 0
            self._put_pair(rm.SVMEAN_T, 0.0, 4.0, signed=False)
            return
        meas = [self._phase_measurement(i, ph, setup) for i, ph in enumerate(state.phases)]
        self._store_phases(meas, state)
        self._store_totals(meas, setup)
        self._store_status(state, meas, setup)
        self._put16(rm.TEMP, self.temperature_c, 1.0, True)

    def _phase_measurement(self, i: int, ph: PhaseState, setup: _Setup) -> dict[str, float]:
        r = self._regs
        pw = seen_powers(self.board, i, ph.powers, setup.phi_rad[i])
        u = max(pw.urms_v * r[rm.UGAIN[i]] / _NOMINAL_UGAIN + rm.to_signed16(r[rm.UOFFSET[i]]) * _U_OFFSET_V_PER_LSB,
                0.0)
        k = setup.current_scale
        cur = max(pw.irms_a / k * r[rm.IGAIN[i]] / _NOMINAL_IGAIN + rm.to_signed16(r[rm.IOFFSET[i]]) * _I_OFFSET_A_PER_LSB,
                  0.0)
        p = pw.p_w / k * setup.gains[i] + setup.p_off[i]
        q = pw.q_var / k * setup.gains[i] + setup.q_off[i]
        p_fund = pw.p_fund_w / k * setup.f_gains[i] + setup.f_off[i]
        return {"u": u, "i": cur, "p": p, "q": q, "s": u * cur, "pf": p_fund, "ph": pw.p_harm_w / k * setup.gains[i],
                "thd_u": pw.thd_u_pct, "thd_i": pw.thd_i_pct, "peak": math.sqrt(2) * pw.urms_v}

    def _store_phases(self, meas: list[dict[str, float]], state: GridState) -> None:
        a_angle = state.phases[0].voltage_angle_deg
        for i, (m, ph) in enumerate(zip(meas, state.phases, strict=True)):
            self._put_pair(rm.URMS[i], m["u"], 0.01, signed=False)
            self._put_pair(rm.IRMS[i], m["i"], 0.001, signed=False)
            self._put_pair(rm.PMEAN[i], m["p"], 1.0, signed=True)
            self._put_pair(rm.QMEAN[i], m["q"], 1.0, signed=True)
            self._put_pair(rm.SMEAN[i], m["s"], 1.0, signed=False, limit=0x7FFFFF00)
            self._put_pair(rm.PMEAN_F[i], m["pf"], 1.0, signed=True)
            self._put_pair(rm.PMEAN_H[i], m["ph"], 1.0, signed=True)
            self._put16(rm.PFMEAN[i], m["p"] / m["s"] if m["s"] > 0 else 0.0, 0.001, True, limit=1000)
            live = m["u"] > 0 and m["i"] > 0
            self._put16(rm.PANGLE[i], _norm_deg(ph.phi_deg) if live else 0.0, 0.1, True)
            both_on = state.phases[0].on and ph.on and i > 0
            self._put16(rm.UANGLE[i], _norm_deg(ph.voltage_angle_deg - a_angle) if both_on else 0.0, 0.1, True)
            self._put16(rm.THDNU[i], m["thd_u"], 0.01, False)
            self._put16(rm.THDNI[i], m["thd_i"], 0.01, False)

    def _store_totals(self, meas: list[dict[str, float]], setup: _Setup) -> None:
        on = [m for m, en in zip(meas, setup.enabled, strict=True) if en]
        p_t = sum(abs(m["p"]) if setup.abs_p else m["p"] for m in on)
        q_t = sum(abs(m["q"]) if setup.abs_q else m["q"] for m in on)
        s_t = sum(m["s"] for m in on)
        s_vec = math.hypot(p_t, q_t)
        self._put_pair(rm.PMEAN_T, p_t, 4.0, signed=True)
        self._put_pair(rm.QMEAN_T, q_t, 4.0, signed=True)
        self._put_pair(rm.SAMEAN_T, s_t, 4.0, signed=False, limit=0x7FFFFF00)
        self._put_pair(rm.SVMEAN_T, s_vec, 4.0, signed=False, limit=0x7FFFFF00)
        self._put_pair(rm.PMEAN_TF, sum(m["pf"] for m in on), 4.0, signed=True)
        self._put_pair(rm.PMEAN_TH, sum(m["ph"] for m in on), 4.0, signed=True)
        s_pf = s_vec if setup.vector_pf else s_t
        self._put16(rm.PFMEAN_T, p_t / s_pf if s_pf > 0 else 0.0, 0.001, True, limit=1000)

    def _store_status(self, state: GridState, meas: list[dict[str, float]], setup: _Setup) -> None:
        r = self._regs
        sag = [_below(m["peak"], r[rm.SAG_TH]) for m in meas]
        loss = [_below(m["peak"], r[rm.PHASE_LOSS_TH]) for m in meas]
        r[rm.EN_STATUS1] = sum((1 << (6 - i)) * sag[i] + (1 << (2 - i)) * loss[i] for i in range(3))
        sys0 = (8 if any(sag) else 0) | (4 if any(loss) else 0)
        present = [ph.on and m["u"] > 0 and not lost for ph, m, lost in zip(state.phases, meas, loss, strict=True)]
        if all(present) and not _sequence_ok([ph.voltage_angle_deg for ph in state.phases]):
            sys0 |= 0x80
        if all(m["i"] > 1e-3 for m in meas) and not _sequence_ok([ph.current_angle_deg for ph in state.phases]):
            sys0 |= 0x40
        r[rm.SYS_STATUS0] |= sys0
        freq = setup.nominal_hz if all(sag) else state.frequency_hz
        self._put16(rm.FREQ, freq, 0.01, False)
        n0 = state.neutral_rms_a(include_extra=False) / setup.current_scale
        n1 = max(state.neutral_rms_a() / setup.current_scale * r[rm.IGAIN_N] / _NOMINAL_IGAIN
                 + rm.to_signed16(r[rm.IOFFSET_N]) * _I_OFFSET_A_PER_LSB, 0.0)
        self._put16(rm.IRMS_N0, n0, 0.001, False)
        self._put16(rm.IRMS_N1, n1, 0.001, False)
        sys1 = (0x8000 if r[rm.IRMS_N1] > r[rm.IN_WARN_TH1] else 0) | (0x4000 if r[rm.IRMS_N0] > r[rm.IN_WARN_TH0] else 0)
        sys1 |= 0x0800 if any(r[a] > r[rm.THDNU_TH] for a in rm.THDNU) else 0
        sys1 |= 0x0400 if any(r[a] > r[rm.THDNI_TH] for a in rm.THDNI) else 0
        r[rm.SYS_STATUS1] |= sys1
        flow = self._flow(state, setup)
        noload = flow.noload
        cf_rev = sum(1 << bit for bit, key in enumerate((("T", "P"), ("T", "Q"), ("T", "F"), ("T", "H")))
                     if self._accs[key].last_dir < 0)
        r[rm.EN_STATUS0] = ((noload["Q"] << 15) | (noload["P"] << 14) | (noload["S"] << 13) | (noload["SV"] << 12)
                   | cf_rev)

    def _finish_dft(self) -> None:
        state = self.grid.state_at(self._t_last)
        for letter, ph in zip(rm.PHASE_LETTERS, state.phases, strict=True):
            for prefix, harmonics, fund in ((f"{letter}I", ph.i_harmonics, ph.i1_a / self.current_scale / 3.2656e-3),
                                            (f"{letter}V", ph.u_harmonics, ph.u1_v / 3.2656e-2)):
                mags = {h.order: h.magnitude for h in harmonics if 2 <= h.order <= 32}
                for order, address in enumerate(rm.harmonic_addrs(prefix), start=2):
                    self._regs[address] = min(round(mags.get(order, 0.0) * 16384), 0xFFFF)
                thd = math.sqrt(sum(m * m for m in mags.values()))
                self._regs[rm.addr(f"{prefix}_THD")] = min(round(thd * 16384), 0xFFFF)
                self._regs[rm.addr(f"{prefix}_FUND")] = min(round(fund), 0xFFFF)
        self._regs[rm.DFT_CTRL] &= ~1 & 0xFFFF
        self._regs[rm.SYS_STATUS1] |= 0x0200  # DFTDone
        self._dft_start = None

    # ---- encoding -------------------------------------------------------------------------
    def _put_pair(self, msw: int, value: float, unit: float, signed: bool, limit: int | None = None) -> None:
        """Store ``value`` (in ``unit`` per MSW LSB) in a MSW/LSW pair; the LSW is the register's
        companion in the map (only its bits 15..8 carry data)."""
        lsw = _LSB_OF[msw]
        raw = round(value / unit * 256) << 8
        high = limit if limit is not None else (0x7FFFFF00 if signed else 0xFFFFFF00)
        low = -0x80000000 if signed else 0
        raw = min(max(raw, low), high) & 0xFFFFFFFF
        self._regs[msw] = raw >> 16
        self._regs[lsw] = raw & 0xFFFF

    def _put16(self, address: int, value: float, unit: float, signed: bool, limit: int | None = None) -> None:
        raw = round(value / unit)
        high = limit if limit is not None else (0x7FFF if signed else 0xFFFF)
        low = -high if limit is not None else (-0x8000 if signed else 0)
        self._regs[address] = min(max(raw, low), high) & 0xFFFF

    # ---- test access ----------------------------------------------------------------------
    def peek(self, address: int) -> int:
        """The register's current value without any side effect (no clear, no LastSPIData)."""
        self._advance(float(self.clock()))
        return self._register_value(address & rm.ADDRESS_MASK)

    def residue_milli(self, address: int) -> float:
        """True energy (milli-units) integrated towards energy register ``address`` but not yet counted.

        For a forward register: pending sub-count quanta plus the positive part of the
        bidirectional residue; for a reverse register the same with the negative part.
        """
        self._advance(float(self.clock()))
        setup = self._setup()
        for acc in self._accs.values():
            if address == acc.fwd_addr:
                return (acc.pend_fwd * setup.quantum_mwh + max(acc.acc, 0.0)) * setup.current_scale
            if address == acc.rev_addr:
                return (acc.pend_rev * setup.quantum_mwh + max(-acc.acc, 0.0)) * setup.current_scale
        raise ValueError(f"0x{address:02X} is not an energy register")

    def milli_per_count(self) -> float:
        """True milli-units (mWh, mvarh, mVAh) per energy-register count under the current config
        (the chip's own quantum × ratio × the board's current scale)."""
        setup = self._setup()
        return setup.quantum_mwh * setup.ratio * setup.current_scale

    def overflow_counts(self, address: int) -> int:
        """Counts lost to saturation of energy register ``address`` since the last reset."""
        return self._overflow.get(address, 0)

    @property
    def warn_out(self) -> bool:
        """The WarnOut pin: high while any checksum error is latched."""
        return any(self._block_error.values())


def _triple(value: Callable[[int], float]) -> tuple[float, float, float]:
    """(value(0), value(1), value(2)) for phases A, B, C."""
    return (value(0), value(1), value(2))


def _below(peak_v: float, threshold: int) -> bool:
    """True when a sample peak (V) is below ``threshold`` in SagTh units (§7 formula, inverted).

    The simulated ADC is calibrated at Ugain 52800, whatever Ugain the host writes.
    """
    if threshold == 0:
        return False
    return peak_v * 100 / (2 * _NOMINAL_UGAIN / 32768) < threshold


def _norm_deg(angle: float) -> float:
    """Angle folded into (−180, 180] degrees."""
    folded = math.fmod(angle, 360.0)
    if folded > 180.0:
        folded -= 360.0
    elif folded <= -180.0:
        folded += 360.0
    return folded


def _sequence_ok(angles_deg: list[float]) -> bool:
    """True when phase B lags A and C leads A (A→B→C rotation)."""
    return _norm_deg(angles_deg[1] - angles_deg[0]) < 0 < _norm_deg(angles_deg[2] - angles_deg[0])


def _compute_flow(state: GridState, setup: _Setup, board: AnalogBoard) -> _Flow:
    powers: dict[tuple[str, str], float] = {}
    totals = {"P": 0.0, "Q": 0.0, "S": 0.0, "F": 0.0, "H": 0.0}
    th = setup.th
    k = setup.current_scale
    for i, (ch, true_pw) in enumerate(zip(_CHANNELS[1:], state.phase_powers, strict=True)):
        pw = seen_powers(board, i, true_pw, setup.phi_rad[i])
        g = setup.gains[i]
        p = pw.p_w / k * g + setup.p_off[i]
        q = pw.q_var / k * g + setup.q_off[i]
        magnitude = abs(p) + abs(q)
        values = {"P": p if magnitude > th["PPhaseTh"] else 0.0,
                  "Q": q if magnitude > th["QPhaseTh"] else 0.0,
                  "S": pw.s_va / k * g if magnitude > th["SPhaseTh"] else 0.0,
                  "F": pw.p_fund_w / k * setup.f_gains[i] + setup.f_off[i] if magnitude > th["PPhaseTh"] else 0.0,
                  "H": pw.p_harm_w / k * g if magnitude > th["PPhaseTh"] else 0.0}
        for kind, value in values.items():
            powers[(ch, kind)] = value
            if setup.enabled[i]:
                absolute = (setup.abs_p and kind in ("P", "F", "H")) or (setup.abs_q and kind == "Q")
                totals[kind] += abs(value) if absolute else value
    p_on = abs(totals["P"]) > th["PStartTh"]
    q_on = abs(totals["Q"]) > th["QStartTh"]
    s_on = totals["S"] > th["SStartTh"]
    s_vec = math.hypot(totals["P"], totals["Q"])
    sv_on = s_vec > th["SStartTh"]
    powers[("T", "P")] = totals["P"] if p_on else 0.0
    powers[("T", "Q")] = totals["Q"] if q_on else 0.0
    powers[("T", "S")] = totals["S"] if s_on else 0.0
    powers[("T", "F")] = totals["F"] if p_on else 0.0
    powers[("T", "H")] = totals["H"] if p_on else 0.0
    powers[("T", "SV")] = s_vec if sv_on else 0.0
    return _Flow(powers, {"P": not p_on, "Q": not q_on, "S": not s_on, "SV": not sv_on})

"""The ATM90E36 driver as the core's :class:`~meterd.core.reading.FrontEnd` port.

Start-up resumes when it can: if the chip is still running with exactly this configuration
(all four start registers at 0x8765 and every CSx equal to the checksum of our values) — as
after a crash or restart of meterd while the chip stayed powered — the energy it counted in the
meantime is read and kept instead of being thrown away by a reset. Otherwise the full start-up
sequence runs (soft reset, program, verify).

Supervision: every read ends with the health reads (the four start registers every cycle, the
four checksums CS0–CS3 every ``checksum_every`` cycles: the chip flags a CSx error itself in
SysStatus0, read every cycle) and hands the core the :class:`~meterd.core.chip_health.ChipFacts`
it saw: the pattern of those reads (all 0xFFFF or all 0x0000 is a chip that does not answer),
whether the configuration is still ours, the reads the driver repaired through LastSPIData, the
energy registers found full, the capacity of one energy register (Wh) and whether a current read
at the top of its range (the chip's full scale × the board's current scale). Every hardware error becomes a core
:class:`~meterd.core.chip_health.ChipReadError`. :meth:`Atm90e36FrontEnd.recover` never resets a
chip that does not answer (a stuck MISO line would otherwise cost the configuration and the
energy the chip still holds); a chip that answers with its configuration intact is resumed as is.
"""

from __future__ import annotations

import logging

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, Atm90e36Config, ChannelCounts, EnergyCounts, Measurements
from hw.errors import HwError
from meterd.core import register_range
from meterd.core.chip_health import ChipFacts, ChipReadError, ReadPattern, Recovery
from meterd.core.clock import Clock
from meterd.core.reading import Channel, ChannelEnergy, PhaseValues, Reading

log = logging.getLogger("meterd.frontend")

_CHANNELS = {"T": Channel.TOTAL, "L1": Channel.L1, "L2": Channel.L2, "L3": Channel.L3}


def channel_energy(counts: ChannelCounts) -> ChannelEnergy:
    """Driver milli-unit counts of one channel as core energy (mWh, mvarh, mVAh)."""
    return ChannelEnergy(active_import=counts.active_import, active_export=counts.active_export,
                         reactive_forward=counts.reactive_forward, reactive_reverse=counts.reactive_reverse,
                         apparent=counts.apparent)


def to_reading(mono_s: float, m: Measurements, energy: dict[Channel, ChannelEnergy]) -> Reading:
    """Combine a measurement read and an energy read into one core reading."""
    phases = tuple(PhaseValues(voltage_v=p.voltage_v, current_a=p.current_a, active_power_w=p.active_power_w,
                               reactive_power_var=p.reactive_power_var, apparent_power_va=p.apparent_power_va,
                               power_factor=p.power_factor, angle_deg=p.angle_deg,
                               voltage_angle_deg=p.voltage_angle_deg) for p in m.phases)
    return Reading(mono_s=mono_s, phases=(phases[0], phases[1], phases[2]), energy=energy,
                   total_active_power_w=m.total_active_power_w,
                   total_reactive_power_var=m.total_reactive_power_var,
                   total_apparent_power_va=m.total_apparent_power_va,
                   total_power_factor=m.total_power_factor, frequency_hz=m.frequency_hz,
                   neutral_current_a=m.neutral_current_a, neutral_current_calc_a=m.neutral_current_calc_a,
                   temperature_c=m.temperature_c, status=m.status)


_FULL_COUNT = register_range.FULL_COUNT
_IRMS_FULL_SCALE_A = 0xFFFFFF00 / 65536 * 0.001 - 0.0005
"""A current at or above this (A, at the chip) is at the top of the Irms register pair; the true
full scale is this × the board's current scale (:func:`current_full_scale_a`)."""


def current_full_scale_a(current_scale: int) -> float:
    """The true phase current (A) at the top of the Irms register pair with current scale k."""
    return _IRMS_FULL_SCALE_A * current_scale


def _saturated(energy: EnergyCounts) -> int:
    """How many energy registers of a read were full (a lower bound of the true energy)."""
    return sum(1 for c in energy.counts.values() for value in vars(c).values() if value == _FULL_COUNT)


def _checksums(config: Atm90e36Config) -> dict[int, int]:
    """The CSx the chip computes for ``config``, by block index."""
    return {b.index: rm.checksum(config.block_values(b.index)[a] for a in b.addrs) for b in rm.BLOCKS}


def _hw_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Atm90e36FrontEnd:
    """FrontEnd over :class:`hw.atm90e36.driver.Atm90e36`."""

    def __init__(self, driver: Atm90e36, clock: Clock, checksum_every: int = 10) -> None:
        self.driver = driver
        self.checksum_every = checksum_every
        self._reads = 0
        self.clock = clock
        self.resumed = False
        self.last_measurements: Measurements | None = None
        self._facts = ChipFacts()
        self._full_scale_a = current_full_scale_a(driver.config.current_scale)
        self._capacity_wh = register_range.capacity_wh(driver.config.milli_per_count)
        self._expected_cs = _checksums(driver.config)

    def reconfigure(self, config: Atm90e36Config) -> None:
        """Use ``config`` (a new calibration) from now on: in every start and restart of the chip
        and in the checksum supervision. Writing it to a running chip is the caller's."""
        self.driver.config = config
        self._full_scale_a = current_full_scale_a(config.current_scale)
        self._capacity_wh = register_range.capacity_wh(config.milli_per_count)
        self._expected_cs = _checksums(config)

    def health(self, checksums: bool = True) -> tuple[ReadPattern, bool, bool]:
        """Read the start registers and (with ``checksums``) the checksums: (pattern, start
        registers at operate, every CSx read ours). Raises the driver's errors."""
        d = self.driver
        values: list[int] = []
        start_ok = cs_ok = True
        for block in rm.BLOCKS:
            start = d.read_register(block.start_addr)
            values.append(start)
            start_ok = start_ok and start == rm.START_OPERATE
            if checksums:
                cs = d.read_register(block.cs_addr)
                values.append(cs)
                cs_ok = cs_ok and cs == self._expected_cs[block.index]
        pattern = (ReadPattern.ALL_ONES if all(v == 0xFFFF for v in values)
                   else ReadPattern.ALL_ZEROS if not any(values) else ReadPattern.NORMAL)
        return pattern, start_ok, cs_ok

    def configured_as_ours(self) -> bool:
        """True when the chip runs with exactly our configuration (no reset needed)."""
        pattern, start_ok, cs_ok = self.health()
        return pattern is ReadPattern.NORMAL and start_ok and cs_ok

    def start(self) -> None:
        """Resume a chip that kept running with our configuration, else start it afresh;
        ChipReadError when the chip does not answer or does not take its configuration."""
        try:
            self.resumed = self.configured_as_ours()
            if self.resumed:
                log.info("metering IC still configured: resuming without reset, keeping its counts")
            else:
                self.driver.start()
        except (HwError, OSError) as exc:
            raise ChipReadError(f"metering IC did not start: {_hw_text(exc)}") from exc

    def read(self) -> Reading:
        """Energy since the last read (read-to-clear, once), the latest measurements, then the
        health reads (:meth:`facts`); ChipReadError when a transfer fails."""
        recovered = self.driver.stats.read_recoveries
        try:
            energy = self.driver.read_energy()
            m = self.driver.read_measurements()
            self._reads += 1
            pattern, start_ok, cs_ok = self.health(checksums=self._reads % self.checksum_every == 0)
        except (HwError, OSError) as exc:
            self._facts = ChipFacts.failed(_hw_text(exc))
            raise ChipReadError(f"metering IC read failed: {_hw_text(exc)}") from exc
        self._facts = ChipFacts(pattern=pattern, start_ok=start_ok, checksums_ok=cs_ok,
                                recovered_reads=self.driver.stats.read_recoveries - recovered,
                                saturated=_saturated(energy),
                                current_full_scale=any(p.current_a >= self._full_scale_a for p in m.phases),
                                register_capacity_wh=self._capacity_wh)
        self.last_measurements = m
        deltas = {_CHANNELS[name]: channel_energy(c) for name, c in energy.milli.items()}
        return to_reading(self.clock.mono(), m, deltas)

    def facts(self) -> ChipFacts:
        """What the last read saw of the chip's health."""
        return self._facts

    def recover(self, restart: bool) -> Recovery:
        """RUNNING when the chip runs with our configuration again: resumed as it was, or (with
        ``restart``) started afresh. A chip whose reads are all ones or all zeros is left alone
        (SILENT); FAILED when the restart failed or was not allowed yet."""
        try:
            pattern, start_ok, cs_ok = self.health()
            if pattern is not ReadPattern.NORMAL:
                return Recovery.SILENT
            if start_ok and cs_ok:
                log.info("metering IC answers with its configuration: resumed without reset")
                return Recovery.RUNNING
            if not restart:
                return Recovery.FAILED
            self.driver.start()
        except (HwError, OSError) as exc:
            log.info("metering IC not back yet: %s", _hw_text(exc))
            return Recovery.FAILED
        log.info("metering IC restarted")
        return Recovery.RUNNING

    def close(self) -> None:
        """Release the SPI device."""
        self.driver.close()

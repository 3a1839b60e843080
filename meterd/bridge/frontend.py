"""The ATM90E36 driver as the core's :class:`~meterd.core.reading.FrontEnd` port.

Start-up resumes when it can: if the chip is still running with exactly this configuration
(all four start registers at 0x8765 and every CSx equal to the checksum of our values) — as
after a crash or restart of meterd while the chip stayed powered — the energy it counted in the
meantime is read and kept instead of being thrown away by a reset. Otherwise the full start-up
sequence runs (soft reset, program, verify).
"""

from __future__ import annotations

import logging

from hw.atm90e36 import regmap as rm
from hw.atm90e36.driver import Atm90e36, ChannelCounts, Measurements
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


class Atm90e36FrontEnd:
    """FrontEnd over :class:`hw.atm90e36.driver.Atm90e36`."""

    def __init__(self, driver: Atm90e36, clock: Clock) -> None:
        self.driver = driver
        self.clock = clock
        self.resumed = False
        self.last_measurements: Measurements | None = None

    def configured_as_ours(self) -> bool:
        """True when the chip runs with exactly our configuration (no reset needed)."""
        d = self.driver
        for block in rm.BLOCKS:
            if d.read_register(block.start_addr) != rm.START_OPERATE:
                return False
            expected = rm.checksum(d.config.block_values(block.index)[a] for a in block.addrs)
            if d.read_register(block.cs_addr) != expected:
                return False
        return True

    def start(self) -> None:
        """Resume a chip that kept running with our configuration, else start it afresh."""
        self.resumed = self.configured_as_ours()
        if self.resumed:
            log.info("metering IC still configured: resuming without reset, keeping its counts")
        else:
            self.driver.start()

    def read(self) -> Reading:
        """Energy since the last read (read-to-clear, once) and the latest measurements."""
        energy = self.driver.read_energy()
        m = self.driver.read_measurements()
        self.last_measurements = m
        deltas = {_CHANNELS[name]: channel_energy(c) for name, c in energy.milli.items()}
        return to_reading(self.clock.mono(), m, deltas)

    def close(self) -> None:
        """Release the SPI device."""
        self.driver.close()

"""What the metering front end hands the core once per cycle.

Energy is in integer milli-units (mWh, mvarh, mVAh) at the front end's resolution; it is never
turned into floats in the core. Instantaneous values are floats in SI units.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from meterd.core.chip_health import ChipFacts, Recovery


class Channel(enum.Enum):
    """A metering channel: one phase or the all-phase total (OBIS C-group base 0/20/40/60)."""

    TOTAL = "T"
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"

    @property
    def obis_offset(self) -> int:
        """Offset added to the OBIS C code of a total quantity (0, 20, 40, 60)."""
        return {"T": 0, "L1": 20, "L2": 40, "L3": 60}[self.value]


PHASES: tuple[Channel, Channel, Channel] = (Channel.L1, Channel.L2, Channel.L3)


@dataclass(frozen=True)
class PhaseValues:
    """Instantaneous values of one phase.

    voltage_v (V RMS), current_a (A RMS), active_power_w (W, + import), reactive_power_var
    (var, + inductive), apparent_power_va (VA), power_factor (signed, −1…1), angle_deg (angle
    from voltage to current, −180…180 °), voltage_angle_deg (this phase's voltage vs L1, °).
    """

    voltage_v: float = 0.0
    current_a: float = 0.0
    active_power_w: float = 0.0
    reactive_power_var: float = 0.0
    apparent_power_va: float = 0.0
    power_factor: float = 1.0
    angle_deg: float = 0.0
    voltage_angle_deg: float = 0.0


@dataclass(frozen=True)
class ChannelEnergy:
    """Energy counted by the front end on one channel since the previous reading.

    Integers in milli-units: active_import / active_export (mWh), reactive_forward /
    reactive_reverse (mvarh), apparent (mVAh).
    """

    active_import: int = 0
    active_export: int = 0
    reactive_forward: int = 0
    reactive_reverse: int = 0
    apparent: int = 0

    def __post_init__(self) -> None:
        for name in ("active_import", "active_export", "reactive_forward", "reactive_reverse", "apparent"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    def is_zero(self) -> bool:
        """True when nothing was counted."""
        return not (self.active_import or self.active_export or self.reactive_forward
                    or self.reactive_reverse or self.apparent)


@dataclass(frozen=True)
class Reading:
    """One metering cycle's result from the front end.

    ``mono_s`` is the monotonic time (s) of the reading. Totals: total_active_power_w (W),
    total_reactive_power_var (var), total_apparent_power_va (VA), total_power_factor.
    frequency_hz (Hz), neutral_current_a (A, measured), neutral_current_calc_a (A, from the
    phase currents), temperature_c (°C). ``status`` holds flag names such as ``"sag_L1"``,
    ``"phase_loss_L2"``, ``"voltage_sequence_error"``, ``"checksum_error"``.
    """

    mono_s: float
    phases: tuple[PhaseValues, PhaseValues, PhaseValues]
    energy: Mapping[Channel, ChannelEnergy]
    total_active_power_w: float = 0.0
    total_reactive_power_var: float = 0.0
    total_apparent_power_va: float = 0.0
    total_power_factor: float = 1.0
    frequency_hz: float = 50.0
    neutral_current_a: float = 0.0
    neutral_current_calc_a: float = 0.0
    temperature_c: float = 25.0
    status: frozenset[str] = field(default_factory=frozenset)

    def phase(self, channel: Channel) -> PhaseValues:
        """The instantaneous values of phase L1, L2 or L3."""
        return self.phases[PHASES.index(channel)]


class FrontEnd(Protocol):
    """Port: the metering front end (the ATM90E36 driver in production and in simulation).

    Every hardware failure reaches the core as :class:`~meterd.core.chip_health.ChipReadError`.
    """

    def start(self) -> None:
        """Configure the chip and start metering; raises ChipReadError on a chip that does not
        answer or does not take its configuration."""
        ...

    def read(self) -> Reading:
        """Read one cycle: instantaneous values and the energy counted since the last read;
        raises ChipReadError when the chip cannot be read."""
        ...

    def facts(self) -> ChipFacts:
        """What the last :meth:`read` saw of the chip's health (start registers, checksums,
        read patterns, recovered reads)."""
        ...

    def recover(self, restart: bool) -> Recovery:
        """After a fault: RUNNING when the chip runs with our configuration again, resumed as it
        was (its energy kept) or, with ``restart``, started afresh; SILENT when it does not
        answer (nothing tried); FAILED when a restart was tried and failed (or none allowed)."""
        ...

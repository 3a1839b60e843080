"""Four-quadrant energy registers kept in integers.

Base registers per channel (total, L1, L2, L3), in milli-units:
  +A active import (mWh, OBIS C=1), −A active export (mWh, C=2),
  QI..QIV reactive per quadrant (mvarh, C=5..8), +S / −S apparent import/export (mVAh, C=9/10).
Derived, never stored, so they are exactly consistent with the base registers:
  +R = QI + QII (C=3), −R = QIII + QIV (C=4), |A| = +A + −A (C=15).

Quadrant rule: forward reactive (inductive, +Q) counts in QI while active power flows in the
import direction and in QII while it flows out; reverse reactive counts in QIV (import) or QIII
(export). Apparent energy follows the active direction into +S or −S.

Starting current and no-load creep: a phase whose current is below the starting current
(0.4 % Ib by default) registers nothing in that cycle; the total registers nothing when every
phase is below it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from meterd.core.reading import PHASES, Channel, ChannelEnergy, Reading


class Quantity(enum.Enum):
    """A stored energy quantity, valued as its OBIS C code for the total channel."""

    ACTIVE_IMPORT = 1
    ACTIVE_EXPORT = 2
    REACTIVE_Q1 = 5
    REACTIVE_Q2 = 6
    REACTIVE_Q3 = 7
    REACTIVE_Q4 = 8
    APPARENT_IMPORT = 9
    APPARENT_EXPORT = 10


class Derived(enum.Enum):
    """A quantity computed from base registers, valued as its OBIS C code (total channel)."""

    REACTIVE_IMPORT = 3
    REACTIVE_EXPORT = 4
    ACTIVE_ABSOLUTE = 15


UNITS: dict[Quantity | Derived, str] = {
    Quantity.ACTIVE_IMPORT: "Wh", Quantity.ACTIVE_EXPORT: "Wh", Derived.ACTIVE_ABSOLUTE: "Wh",
    Quantity.REACTIVE_Q1: "varh", Quantity.REACTIVE_Q2: "varh", Quantity.REACTIVE_Q3: "varh",
    Quantity.REACTIVE_Q4: "varh", Derived.REACTIVE_IMPORT: "varh", Derived.REACTIVE_EXPORT: "varh",
    Quantity.APPARENT_IMPORT: "VAh", Quantity.APPARENT_EXPORT: "VAh",
}

SHORT_NAMES: dict[Quantity | Derived, str] = {
    Quantity.ACTIVE_IMPORT: "+A", Quantity.ACTIVE_EXPORT: "-A", Quantity.REACTIVE_Q1: "QI",
    Quantity.REACTIVE_Q2: "QII", Quantity.REACTIVE_Q3: "QIII", Quantity.REACTIVE_Q4: "QIV",
    Quantity.APPARENT_IMPORT: "+S", Quantity.APPARENT_EXPORT: "-S",
    Derived.REACTIVE_IMPORT: "+R", Derived.REACTIVE_EXPORT: "-R", Derived.ACTIVE_ABSOLUTE: "|A|",
}

RegisterKey = tuple[Quantity, Channel]
ALL_KEYS: tuple[RegisterKey, ...] = tuple((q, c) for c in Channel for q in Quantity)


def obis_c(quantity: Quantity | Derived, channel: Channel) -> int:
    """OBIS C code of a quantity on a channel (e.g. +A on L2 -> 41)."""
    return int(quantity.value) + channel.obis_offset


def register_value(values: Mapping[RegisterKey, int], quantity: Quantity | Derived,
                   channel: Channel = Channel.TOTAL) -> int:
    """A base or derived register (milli-units) from a mapping of base registers."""
    if quantity is Derived.REACTIVE_IMPORT:
        return values[(Quantity.REACTIVE_Q1, channel)] + values[(Quantity.REACTIVE_Q2, channel)]
    if quantity is Derived.REACTIVE_EXPORT:
        return values[(Quantity.REACTIVE_Q3, channel)] + values[(Quantity.REACTIVE_Q4, channel)]
    if quantity is Derived.ACTIVE_ABSOLUTE:
        return values[(Quantity.ACTIVE_IMPORT, channel)] + values[(Quantity.ACTIVE_EXPORT, channel)]
    assert isinstance(quantity, Quantity)
    return values[(quantity, channel)]


def quadrant_split(energy: ChannelEnergy, importing: bool) -> dict[Quantity, int]:
    """Split one channel's cycle energy into the base quantities (milli-units).

    ``importing`` is the active-power direction of the cycle (True: P >= 0).
    """
    return {
        Quantity.ACTIVE_IMPORT: energy.active_import,
        Quantity.ACTIVE_EXPORT: energy.active_export,
        Quantity.REACTIVE_Q1: energy.reactive_forward if importing else 0,
        Quantity.REACTIVE_Q2: 0 if importing else energy.reactive_forward,
        Quantity.REACTIVE_Q3: 0 if importing else energy.reactive_reverse,
        Quantity.REACTIVE_Q4: energy.reactive_reverse if importing else 0,
        Quantity.APPARENT_IMPORT: energy.apparent if importing else 0,
        Quantity.APPARENT_EXPORT: 0 if importing else energy.apparent,
    }


@dataclass(frozen=True)
class CreepRule:
    """Starting-current rule: below ``start_current_a`` (A) a phase registers nothing."""

    start_current_a: float = 0.02

    def phase_running(self, current_a: float) -> bool:
        """True when a phase carrying ``current_a`` (A) may register energy."""
        return current_a >= self.start_current_a


class EnergyRegisters:
    """The cumulative base registers of every channel, in integer milli-units.

    Registers only ever grow: ``apply`` adds non-negative deltas; ``restore`` refuses state
    that is behind the registers already held.
    """

    def __init__(self, values: Mapping[RegisterKey, int] | None = None) -> None:
        self._values: dict[RegisterKey, int] = dict.fromkeys(ALL_KEYS, 0)
        if values:
            self.restore(values)

    def restore(self, values: Mapping[RegisterKey, int]) -> None:
        """Load persisted values; a value below the one held raises ``ValueError``."""
        for key, value in values.items():
            if key not in self._values:
                raise ValueError(f"unknown register {key!r}")
            if value < self._values[key]:
                raise ValueError(f"register {key!r} would go backwards")
        self._values.update(values)

    def get(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL) -> int:
        """A base or derived register in milli-units (mWh, mvarh, mVAh)."""
        return register_value(self._values, quantity, channel)

    def snapshot(self) -> dict[RegisterKey, int]:
        """A copy of every base register."""
        return dict(self._values)

    def items(self) -> Iterator[tuple[RegisterKey, int]]:
        """Iterate over (key, milli-units) of the base registers."""
        return iter(self._values.items())

    def add(self, deltas: Mapping[RegisterKey, int]) -> None:
        """Add non-negative deltas (milli-units)."""
        for key, delta in deltas.items():
            if delta < 0:
                raise ValueError(f"negative delta for {key!r}")
        for key, delta in deltas.items():
            self._values[key] += delta


def cycle_deltas(reading: Reading, rule: CreepRule) -> dict[RegisterKey, int]:
    """The base-register increments one reading produces, after the starting-current rule."""
    deltas: dict[RegisterKey, int] = {}
    running = [rule.phase_running(reading.phase(ch).current_a) for ch in PHASES]
    for ch, is_running in zip(PHASES, running, strict=True):
        energy = reading.energy.get(ch)
        if energy is None or not is_running:
            continue
        importing = reading.phase(ch).active_power_w >= 0.0
        for q, d in quadrant_split(energy, importing).items():
            if d:
                deltas[(q, ch)] = d
    total = reading.energy.get(Channel.TOTAL)
    if total is not None and any(running):
        importing = reading.total_active_power_w >= 0.0
        for q, d in quadrant_split(total, importing).items():
            if d:
                deltas[(q, Channel.TOTAL)] = d
    return deltas

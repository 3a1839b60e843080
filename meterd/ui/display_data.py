"""The values the meter LCD shows, as one immutable snapshot (built by the app from the meter model)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class DisplayData:
    """One snapshot of display values; units are in the names.

    Phase tuples are (L1, L2, L3). Angles are phasor angles in degrees, counter-clockwise from
    the L1 voltage (so a lagging current has a negative angle relative to its voltage).
    ``active_power_w`` is signed: positive import (+P), negative export (-P). ``phases``: 3 for a
    three-phase four-wire meter, 1 for single-phase two-wire (1P2W: the phasor diagram draws L1
    alone; the tuples still hold three values, L2 and L3 reading 0).
    """

    voltage_v: Triple = (0.0, 0.0, 0.0)
    current_a: Triple = (0.0, 0.0, 0.0)
    power_factor: Triple = (1.0, 1.0, 1.0)
    voltage_angle_deg: Triple = (0.0, -120.0, 120.0)
    current_angle_deg: Triple = (0.0, -120.0, 120.0)
    active_power_w: float = 0.0
    reactive_power_var: float = 0.0
    frequency_hz: float = 50.0
    import_energy_kwh: float = 0.0
    export_energy_kwh: float = 0.0
    max_demand_kw: float = 0.0
    max_demand_time: dt.datetime | None = None
    credit: float = 0.0
    credit_unit: str = "kWh"
    low_credit: bool = False
    local_time: dt.datetime = dt.datetime(2026, 1, 1)
    relay_closed: bool = True
    battery_low: bool = False  # the RTC backup battery is low (RTC_VL_READ BACKUP_LOW/EMPTY)
    battery_known: bool = True  # False when the RTC reports no battery flags
    cover_open: bool = False
    magnet: bool = False
    tamper_other: tuple[str, ...] = field(default_factory=tuple)
    firmware_id: str = ""  # legally relevant software identifier (1-0:0.2.0.255)
    firmware_checksum: str = ""  # its checksum, hex (1-0:0.2.8.255)
    ciu_firmware_id: str = ""  # the CIU's software identifier (1-1:0.2.0.255), empty while unknown
    ciu_firmware_checksum: str = ""  # its SHA-256, hex (1-1:0.2.8.255)
    phases: int = 3  # the meter's wiring: 3 (3P4W) or 1 (1P2W)

    @property
    def tampered(self) -> bool:
        return self.cover_open or self.magnet or bool(self.tamper_other)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DisplayData:
        """Build from a plain dict; unknown keys are refused (ValueError) so typos show up."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown display values: {', '.join(sorted(unknown))}")
        converted: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)

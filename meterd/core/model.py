"""The meter model that adapters (DLMS/COSEM, local API, displays) read and command.

One owner (the metering service) implements :class:`MeterModel`; adapters never touch the
front end, the store or each other. All calls happen on the owner's event-loop thread.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from meterd.core.energy import Derived, Quantity, RegisterKey, register_value
from meterd.core.reading import Channel, Reading


@dataclass(frozen=True)
class MeterIdentity:
    """Identification of the meter.

    serial: device ID 1 (OBIS 0-0:96.1.0.255); logical_device_name: 16 characters starting
    with the 3-letter FLAG id (0-0:42.0.0.255); firmware_version: active firmware identifier
    (1-0:0.2.0.255); firmware_signature: hex SHA-256 of the running image (1-0:0.2.8.255).
    """

    serial: str
    logical_device_name: str
    manufacturer_flag: str
    firmware_version: str
    firmware_signature: str


@dataclass(frozen=True)
class MeterSnapshot:
    """A consistent view of the meter at one instant.

    registers: base energy registers in milli-units (mWh, mvarh, mVAh); reading: the latest
    front-end cycle (None before the first); status_word: bit flags of the operating status 0-0:96.5.0.255.
    """

    utc: _dt.datetime
    reading: Reading | None
    registers: Mapping[RegisterKey, int]
    status_word: int = 0

    def energy(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL) -> int:
        """A base or derived register (milli-units)."""
        return register_value(self.registers, quantity, channel)


@dataclass(frozen=True)
class CaptureColumn:
    """One captured object of a profile: OBIS (e.g. "1.0.1.8.0.255"), class id, attribute."""

    obis: str
    class_id: int
    attribute: int = 2
    data_index: int = 0


@dataclass(frozen=True)
class ProfileRow:
    """One profile entry: capture time (UTC), one value per capture column, and the clock status
    of the capture time (0x01 invalid value, 0x02 doubtful value: the time was not trusted)."""

    utc: _dt.datetime
    values: tuple[int | float | str, ...]
    clock_status: int = 0


class ProfileBuffer(Protocol):
    """Read side of a profile generic buffer (load profile, daily profile, logs)."""

    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """The capture objects, in order; the first is the clock."""
        ...

    @property
    def capture_period_s(self) -> int:
        """Capture period (s); 0 for event-driven buffers."""
        ...

    def entries_in_use(self) -> int:
        """Number of rows held."""
        ...

    def rows_between(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> list[ProfileRow]:
        """Rows with start_utc <= time <= end_utc, oldest first."""
        ...

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        """Rows numbered first..last (1 = oldest; last 0 = up to the newest)."""
        ...


class MeterModel(Protocol):
    """What adapters may read from and ask of the meter."""

    @property
    def identity(self) -> MeterIdentity:
        """Identification data."""
        ...

    def snapshot(self) -> MeterSnapshot:
        """Registers, latest reading and status, consistent with each other."""
        ...

    def now_utc(self) -> _dt.datetime:
        """The meter clock (UTC)."""
        ...

    def set_clock(self, new_utc: _dt.datetime, source: str) -> None:
        """Set the meter clock; ``source`` names who asked (for the event log)."""
        ...

    def profile(self, obis: str) -> ProfileBuffer | None:
        """A profile buffer by OBIS code (e.g. "1.0.99.1.0.255"), or None if absent."""
        ...

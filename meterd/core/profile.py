"""Profile generic buffers (DLMS class 7): load profile 1-0:99.1.0.255 and daily 1-0:99.2.0.255.

A :class:`LoadProfile` holds its capture objects (columns), capture period and a ring of at most
``max_entries`` rows, and accumulates what a row needs between captures. The caller (the
revenue service) decides when to capture: at clock-aligned boundaries of the capture period.

Column kinds (choice documented for DLMS clients):
  * clock 0-0:1.0.0.255 — the capture instant, ``ProfileRow.utc`` (not in ``values``);
  * status 0-0:96.10.1.255 — :class:`ProfileStatus` bits;
  * interval energy 1-0:C.29.0.255 — energy of the capture period (milli-units, scaler −3);
    the default load profile uses interval values for +A, −A, QI, QII, QIII, QIV;
  * cumulative energy 1-0:C.8.0.255 (or C.8.E for rate E) — register snapshots (daily profile);
  * average voltage 1-0:32/52/72.27.0.255 — mean of the cycle voltages of the period (0.01 V).

A row's time is the clock column; ``ProfileRow.values`` holds the other columns in order
(the :class:`~meterd.core.model.ProfileBuffer` convention). Rows are strictly increasing in time. Changing the capture objects or the period clears the
buffer, as the Blue Book requires.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meterd.core.energy import Quantity, RegisterKey
from meterd.core.errors import MeterError
from meterd.core.model import CaptureColumn, ProfileRow
from meterd.core.reading import PHASES, Channel

LOAD_PROFILE_OBIS = "1.0.99.1.0.255"
DAILY_PROFILE_OBIS = "1.0.99.2.0.255"
CLOCK_OBIS = "0.0.1.0.0.255"
STATUS_OBIS = "0.0.96.10.1.255"


class ProfileError(MeterError):
    """Profile configuration is invalid or a row is out of order."""


class ProfileStatus(enum.IntFlag):
    """Profile status word 0-0:96.10.1.255 (IDIS AMR profile status, bits 0..7, plus 8..9).

    ERR critical error, CIV clock invalid, DNV data not valid, DST daylight saving active at
    capture, CAD clock adjusted in the period, PDN power down in the period; project bits:
    CLOCK_FORWARD / CLOCK_BACKWARD say which way the clock was set; CIV is set while the time is
    not trusted in the period (:mod:`meterd.core.time_trust`), with TIME_INVALID when the RTC had
    lost it (clock status 0x01 "invalid value" of the row's capture time, else 0x02 "doubtful").
    """

    ERR = 0x01
    CIV = 0x02
    DNV = 0x04
    DST = 0x08
    CAD = 0x20
    PDN = 0x80
    CLOCK_FORWARD = 0x100
    CLOCK_BACKWARD = 0x200
    TIME_INVALID = 0x400


def clock_status_of(word: int) -> int:
    """The clock status of a row's capture time from its status word: 0x01 (invalid value) with
    CIV and TIME_INVALID, 0x02 (doubtful value) with CIV alone, else 0."""
    if not word & ProfileStatus.CIV:
        return 0
    return 0x01 if word & ProfileStatus.TIME_INVALID else 0x02


class ColumnKind(enum.Enum):
    """What a profile column captures."""

    CLOCK = "clock"
    STATUS = "status"
    INTERVAL_ENERGY = "interval"
    CUMULATIVE_ENERGY = "cumulative"
    AVERAGE_VOLTAGE = "avg_voltage"


_VOLTAGE_C = {Channel.L1: 32, Channel.L2: 52, Channel.L3: 72}


@dataclass(frozen=True)
class ProfileChannel:
    """One capture object and how its value is made (quantity/channel for energy, phase for U)."""

    kind: ColumnKind
    quantity: Quantity | None = None
    channel: Channel = Channel.TOTAL

    def __post_init__(self) -> None:
        needs_quantity = self.kind in (ColumnKind.INTERVAL_ENERGY, ColumnKind.CUMULATIVE_ENERGY)
        if needs_quantity != (self.quantity is not None):
            raise ProfileError(f"column {self.kind.value}: quantity {'missing' if needs_quantity else 'unexpected'}")
        if self.kind is ColumnKind.AVERAGE_VOLTAGE and self.channel not in PHASES:
            raise ProfileError("average voltage needs a phase channel")

    @property
    def column(self) -> CaptureColumn:
        """The DLMS capture object definition."""
        if self.kind is ColumnKind.CLOCK:
            return CaptureColumn(CLOCK_OBIS, 8, 2)
        if self.kind is ColumnKind.STATUS:
            return CaptureColumn(STATUS_OBIS, 1, 2)
        if self.kind is ColumnKind.AVERAGE_VOLTAGE:
            return CaptureColumn(f"1.0.{_VOLTAGE_C[self.channel]}.27.0.255", 3, 2)
        assert self.quantity is not None
        c = self.quantity.value + self.channel.obis_offset
        d = 29 if self.kind is ColumnKind.INTERVAL_ENERGY else 8
        return CaptureColumn(f"1.0.{c}.{d}.0.255", 3, 2)

    @property
    def key(self) -> RegisterKey:
        """The energy register behind an energy column."""
        assert self.quantity is not None
        return (self.quantity, self.channel)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"kind": self.kind.value, "quantity": None if self.quantity is None else self.quantity.name,
                "channel": self.channel.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileChannel:
        """Inverse of :meth:`to_dict`."""
        q = data.get("quantity")
        return cls(ColumnKind(data["kind"]), None if q is None else Quantity[q], Channel(data.get("channel", "T")))


def default_load_profile_channels() -> tuple[ProfileChannel, ...]:
    """Clock, status, interval +A, −A, QI..QIV and average U per phase: 11 columns."""
    energy = tuple(ProfileChannel(ColumnKind.INTERVAL_ENERGY, q) for q in (
        Quantity.ACTIVE_IMPORT, Quantity.ACTIVE_EXPORT, Quantity.REACTIVE_Q1,
        Quantity.REACTIVE_Q2, Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4))
    volts = tuple(ProfileChannel(ColumnKind.AVERAGE_VOLTAGE, None, ph) for ph in PHASES)
    return (ProfileChannel(ColumnKind.CLOCK), ProfileChannel(ColumnKind.STATUS), *energy, *volts)


def capturable_channels() -> tuple[ProfileChannel, ...]:
    """Every capture object a profile of this meter can hold, clock first: status, interval and
    cumulative energy of every base quantity on every channel, average voltage per phase."""
    energy = tuple(ProfileChannel(kind, q, c) for kind in (ColumnKind.INTERVAL_ENERGY, ColumnKind.CUMULATIVE_ENERGY)
                   for q in Quantity for c in Channel)
    volts = tuple(ProfileChannel(ColumnKind.AVERAGE_VOLTAGE, None, ph) for ph in PHASES)
    return (ProfileChannel(ColumnKind.CLOCK), ProfileChannel(ColumnKind.STATUS), *energy, *volts)


def default_daily_profile_channels() -> tuple[ProfileChannel, ...]:
    """Clock, status and cumulative +A, −A, QI..QIV, +S, −S (total)."""
    return (ProfileChannel(ColumnKind.CLOCK), ProfileChannel(ColumnKind.STATUS),
            *(ProfileChannel(ColumnKind.CUMULATIVE_ENERGY, q) for q in Quantity))


@dataclass(frozen=True)
class ProfileConfig:
    """Capture objects, capture period (s; 60..3600 dividing a day, or 86400 for daily) and depth."""

    channels: tuple[ProfileChannel, ...]
    capture_period_s: int = 900
    max_entries: int = 5760

    def __post_init__(self) -> None:
        if not self.channels or self.channels[0].kind is not ColumnKind.CLOCK:
            raise ProfileError("the first capture object must be the clock")
        if self.capture_period_s != 86400 and (
                not 60 <= self.capture_period_s <= 3600 or 86400 % self.capture_period_s):
            raise ProfileError(f"capture period {self.capture_period_s} s: 1..60 min dividing a day, or 1 day")
        if self.max_entries < 1:
            raise ProfileError("max_entries must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"channels": [c.to_dict() for c in self.channels],
                "capture_period_s": self.capture_period_s, "max_entries": self.max_entries}

    def definition(self) -> str:
        """The capture definition as canonical text (capture objects and period, not the depth):
        rows made under another definition do not belong to this buffer."""
        return json.dumps({"channels": [c.to_dict() for c in self.channels],
                           "capture_period_s": self.capture_period_s}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(ProfileChannel.from_dict(c) for c in data["channels"]),
                   int(data["capture_period_s"]), int(data["max_entries"]))


class LoadProfile:
    """A profile buffer with its capture accumulators; implements ``model.ProfileBuffer``."""

    def __init__(self, obis: str, config: ProfileConfig) -> None:
        self.obis = obis
        self._configure(config)

    def _configure(self, config: ProfileConfig) -> None:
        self.config = config
        self._rows: list[ProfileRow] = []
        self._times: list[_dt.datetime] = []
        self._base: dict[RegisterKey, int] | None = None
        self._volt_phases = [PHASES.index(c.channel) for c in config.channels
                             if c.kind is ColumnKind.AVERAGE_VOLTAGE]
        self._vsum = [0.0, 0.0, 0.0]
        self._vcount = 0
        self.pending = ProfileStatus(0)
        self._status_index = next((i for i, c in enumerate(config.channels[1:]) if c.kind is ColumnKind.STATUS), None)

    # -- model.ProfileBuffer -------------------------------------------------------------
    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """Capture objects, clock first."""
        return [c.column for c in self.config.channels]

    @property
    def capture_period_s(self) -> int:
        """Capture period (s)."""
        return self.config.capture_period_s

    def entries_in_use(self) -> int:
        """Rows held."""
        return len(self._rows)

    def rows_between(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> list[ProfileRow]:
        """Rows with start_utc <= time <= end_utc, oldest first."""
        lo = bisect.bisect_left(self._times, start_utc)
        hi = bisect.bisect_right(self._times, end_utc)
        return self._rows[lo:hi]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        """Rows numbered first..last (1 = oldest; last 0 = newest)."""
        if first < 1:
            first = 1
        end = len(self._rows) if last == 0 else min(last, len(self._rows))
        return self._rows[first - 1:end]

    # -- capture -------------------------------------------------------------------------
    @property
    def last_row(self) -> ProfileRow | None:
        """The newest row."""
        return self._rows[-1] if self._rows else None

    def last_value(self, channel: ProfileChannel) -> int | None:
        """The value ``channel`` had in the newest row (None: not captured by this profile, or
        no row yet). This is what the capture object itself reads (e.g. 1-0:1.29.0.255)."""
        if channel.kind is ColumnKind.CLOCK or channel not in self.config.channels or not self._rows:
            return None
        value = self._rows[-1].values[self.config.channels.index(channel) - 1]
        return int(value)

    def add_voltages(self, volts: Sequence[float]) -> None:
        """Accumulate one cycle's phase voltages (V) for the average columns."""
        if self._volt_phases:
            s = self._vsum
            s[0] += volts[0]
            s[1] += volts[1]
            s[2] += volts[2]
            self._vcount += 1

    def start(self, totals: Mapping[RegisterKey, int]) -> None:
        """Set the interval base (cumulative registers at the last capture)."""
        self._base = {c.key: totals.get(c.key, 0) for c in self.config.channels
                      if c.kind is ColumnKind.INTERVAL_ENERGY}

    def capture(self, utc: _dt.datetime, totals: Mapping[RegisterKey, int], status: ProfileStatus) -> ProfileRow:
        """Make, store and return the row for ``utc``; ``status`` is ORed with pending flags."""
        if self._times and utc <= self._times[-1]:
            raise ProfileError(f"{self.obis}: capture at {utc} not after the last row {self._times[-1]}")
        if self._base is None:
            self.start(totals)
        assert self._base is not None
        word = int(status | self.pending)
        values = tuple(self._value(c, totals, word) for c in self.config.channels[1:])
        self.start(totals)
        self._vsum = [0.0, 0.0, 0.0]
        self._vcount = 0
        self.pending = ProfileStatus(0)
        row = ProfileRow(utc, values)
        self.append(row)
        return row

    def _value(self, ch: ProfileChannel, totals: Mapping[RegisterKey, int], word: int) -> int | str:
        kind = ch.kind
        if kind is ColumnKind.INTERVAL_ENERGY:
            assert self._base is not None
            return totals.get(ch.key, 0) - self._base[ch.key]
        if kind is ColumnKind.CUMULATIVE_ENERGY:
            return totals.get(ch.key, 0)
        if kind is ColumnKind.AVERAGE_VOLTAGE:
            n = self._vcount
            return round(self._vsum[PHASES.index(ch.channel)] * 100 / n) if n else 0
        return word

    def append(self, row: ProfileRow) -> None:
        """Store a row (also used to reload persisted rows); keeps at most ``max_entries``. The
        row's clock status follows its status word (:func:`clock_status_of`)."""
        if self._times and row.utc <= self._times[-1]:
            raise ProfileError(f"{self.obis}: row at {row.utc} out of order")
        if self._status_index is not None and not row.clock_status:
            status = clock_status_of(int(row.values[self._status_index]))
            if status:
                row = ProfileRow(row.utc, row.values, status)
        self._rows.append(row)
        self._times.append(row.utc)
        excess = len(self._rows) - self.config.max_entries
        if excess > 0:
            del self._rows[:excess]
            del self._times[:excess]

    def reconfigure(self, config: ProfileConfig) -> None:
        """Write capture objects / period / depth: the buffer and accumulators are cleared."""
        self._configure(config)

    def clear(self) -> None:
        """Empty the buffer (class 7 method reset); accumulators restart at the next capture."""
        self._rows.clear()
        self._times.clear()

    def _interval_keys(self) -> list[RegisterKey]:
        return [c.key for c in self.config.channels if c.kind is ColumnKind.INTERVAL_ENERGY]

    def state_dict(self) -> dict[str, Any]:
        """Accumulator state, compact (rows are persisted separately): interval bases in column
        order, voltage sums (V) and count, pending status bits."""
        base = None if self._base is None else [self._base[k] for k in self._interval_keys()]
        return {"base": base, "v": [*self._vsum, self._vcount] if self._volt_phases else None,
                "p": int(self.pending)}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (raises :class:`ProfileError` for state of other capture
        objects)."""
        base = state.get("base")
        keys = self._interval_keys()
        if base is not None and len(base) != len(keys):
            raise ProfileError(f"{self.obis}: saved interval bases do not match the capture objects")
        self._base = None if base is None else {k: int(v) for k, v in zip(keys, base, strict=True)}
        volts = state.get("v")
        self._vsum = [0.0, 0.0, 0.0] if volts is None else [float(v) for v in volts[:3]]
        self._vcount = 0 if volts is None else int(volts[3])
        self.pending = ProfileStatus(int(state["p"]))

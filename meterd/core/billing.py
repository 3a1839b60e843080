"""End of billing period: snapshots of registers and maximum demand, billing profile 0-0:98.1.0.255.

At the scheduled end of a billing period (default: monthly, local midnight of the 1st; the
single-action schedule 0-0:15.0.0.255) or on command (MD reset), the meter stores a snapshot of
every cumulative register, every rate register and every maximum demand, then resets the maximum
demands. The billing period counter is 0-0:0.1.0.255 and the time of the last billing
0-0:0.1.2.255. At least 12 periods are kept (oldest dropped first).
"""

from __future__ import annotations

import bisect
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meterd.core.demand import DemandQuantity, DemandRegisters, MaxDemand
from meterd.core.energy import Quantity, RegisterKey
from meterd.core.errors import MeterError
from meterd.core.model import CaptureColumn, ProfileRow
from meterd.core.reading import Channel
from meterd.core.tariff import TariffRegisters

BILLING_PROFILE_OBIS = "0.0.98.1.0.255"
BILLING_COUNTER_OBIS = "0.0.0.1.0.255"
MIN_PERIODS_KEPT = 12


class BillingError(MeterError):
    """Billing configuration or state is invalid."""


@dataclass(frozen=True)
class BillingSchedule:
    """Monthly end of billing at local ``day``/``hour``:``minute`` (day 1..28)."""

    day: int = 1
    hour: int = 0
    minute: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.day <= 28 and 0 <= self.hour <= 23 and 0 <= self.minute <= 59):
            raise BillingError(f"billing schedule {self!r} out of range (day 1..28)")

    def next_after(self, wall: _dt.datetime) -> _dt.datetime:
        """The first scheduled local time strictly after naive ``wall``."""
        year, month = wall.year, wall.month
        while True:
            candidate = _dt.datetime(year, month, self.day, self.hour, self.minute)
            if candidate > wall:
                return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def to_dict(self) -> dict[str, int]:
        """Plain dict."""
        return {"day": self.day, "hour": self.hour, "minute": self.minute}


def _key_text(key: RegisterKey) -> str:
    return f"{key[0].value}:{key[1].value}"


def _text_key(text: str) -> RegisterKey:
    q, c = text.split(":")
    return (Quantity(int(q)), Channel(c))


@dataclass(frozen=True)
class BillingSnapshot:
    """One closed billing period.

    counter: billing period counter after closing; utc: end of the period; reason: "schedule"
    or "command"; registers: base registers (milli-units); rate_registers: {rate: {key: milli}};
    max_demand: {(quantity, rate 0..n): MaxDemand} as it stood before the reset; clock_status:
    the status bits of ``utc`` when the time was not trusted (0x01 invalid, 0x02 doubtful).
    """

    counter: int
    utc: _dt.datetime
    reason: str
    registers: Mapping[RegisterKey, int]
    rate_registers: Mapping[int, Mapping[RegisterKey, int]]
    max_demand: Mapping[tuple[DemandQuantity, int], MaxDemand]
    clock_status: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (``clock_status`` only when set)."""
        out: dict[str, Any] = {
            "counter": self.counter, "utc": self.utc.isoformat(), "reason": self.reason,
            "registers": {_key_text(k): v for k, v in self.registers.items()},
            "rate_registers": {str(r): {_key_text(k): v for k, v in vals.items()}
                               for r, vals in self.rate_registers.items()},
            "max_demand": [[q.name, r, m.to_dict()] for (q, r), m in self.max_demand.items()],
        }
        if self.clock_status:
            out["clock_status"] = self.clock_status
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BillingSnapshot:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(data["counter"]), _dt.datetime.fromisoformat(data["utc"]), str(data["reason"]),
            {_text_key(k): int(v) for k, v in data["registers"].items()},
            {int(r): {_text_key(k): int(v) for k, v in vals.items()} for r, vals in data["rate_registers"].items()},
            {(DemandQuantity[q], int(r)): MaxDemand.from_dict(m) for q, r, m in data["max_demand"]},
            int(data.get("clock_status", 0)),
        )


_BILLED_MD = (DemandQuantity.ACTIVE_IMPORT, DemandQuantity.ACTIVE_EXPORT, DemandQuantity.APPARENT_IMPORT)


class BillingPeriods:
    """Closed billing periods (a ring of ``max_periods``) and the billing profile buffer."""

    def __init__(self, max_periods: int = MIN_PERIODS_KEPT, rates: int = 4) -> None:
        if max_periods < MIN_PERIODS_KEPT:
            raise BillingError(f"at least {MIN_PERIODS_KEPT} billing periods must be kept")
        self.max_periods = max_periods
        self.rates = rates
        self.counter = 0
        self.last_billing_utc: _dt.datetime | None = None
        self._snapshots: list[BillingSnapshot] = []
        self.clock_status: Callable[[], int] | None = None  # the time trust's clock status bits

    @property
    def snapshots(self) -> Sequence[BillingSnapshot]:
        """Held snapshots, oldest first."""
        return tuple(self._snapshots)

    def close_period(self, utc: _dt.datetime, reason: str, registers: Mapping[RegisterKey, int],
                     rates: TariffRegisters, demand: DemandRegisters) -> BillingSnapshot:
        """End the billing period at ``utc``: snapshot everything, reset MD, count."""
        rate_values = {r: {k: v for k, v in _rate_values(rates, r).items() if v}
                       for r in range(1, rates.rates + 1)}
        status = self.clock_status() if self.clock_status is not None else 0
        snap = BillingSnapshot(self.counter + 1, utc, reason, dict(registers), rate_values, demand.all_max(), status)
        demand.reset_max()
        self.add(snap)
        return snap

    def add(self, snap: BillingSnapshot) -> None:
        """Store a snapshot (also used to reload persisted ones)."""
        if self._snapshots and snap.counter <= self._snapshots[-1].counter:
            raise BillingError(f"billing snapshot {snap.counter} is not newer than the last")
        self._snapshots.append(snap)
        del self._snapshots[:-self.max_periods]
        self.counter = snap.counter
        self.last_billing_utc = snap.utc

    # -- model.ProfileBuffer for 0-0:98.1.0.255 ---------------------------------------------
    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """Clock, counter, total registers, +A/−A per rate, MD value and time per rate."""
        cols = [CaptureColumn("0.0.1.0.0.255", 8), CaptureColumn(BILLING_COUNTER_OBIS, 1)]
        cols += [CaptureColumn(f"1.0.{q.value}.8.0.255", 3) for q in Quantity]
        for q in (Quantity.ACTIVE_IMPORT, Quantity.ACTIVE_EXPORT):
            cols += [CaptureColumn(f"1.0.{q.value}.8.{r}.255", 3) for r in range(1, self.rates + 1)]
        for dq in _BILLED_MD:
            for r in range(self.rates + 1):
                cols.append(CaptureColumn(f"1.0.{dq.value}.6.{r}.255", 4, 2))
                cols.append(CaptureColumn(f"1.0.{dq.value}.6.{r}.255", 4, 5))
        return cols

    @property
    def capture_period_s(self) -> int:
        """Event-driven: 0."""
        return 0

    def entries_in_use(self) -> int:
        """Periods held."""
        return len(self._snapshots)

    def row(self, snap: BillingSnapshot) -> ProfileRow:
        """The billing profile row of a snapshot (MD in milli-units, rounded; time ISO or "")."""
        values: list[int | float | str] = [snap.counter]
        values += [snap.registers.get((q, Channel.TOTAL), 0) for q in Quantity]
        for q in (Quantity.ACTIVE_IMPORT, Quantity.ACTIVE_EXPORT):
            values += [snap.rate_registers.get(r, {}).get((q, Channel.TOTAL), 0) for r in range(1, self.rates + 1)]
        for dq in _BILLED_MD:
            for r in range(self.rates + 1):
                md = snap.max_demand.get((dq, r), MaxDemand())
                values.append(round(md.value_milli))
                values.append("" if md.capture_utc is None else md.capture_utc.isoformat())
        return ProfileRow(snap.utc, tuple(values), snap.clock_status)

    def rows_between(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> list[ProfileRow]:
        """Rows with start_utc <= time <= end_utc, oldest first."""
        times = [s.utc for s in self._snapshots]
        lo, hi = bisect.bisect_left(times, start_utc), bisect.bisect_right(times, end_utc)
        return [self.row(s) for s in self._snapshots[lo:hi]]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        """Rows numbered first..last (1 = oldest; last 0 = newest)."""
        end = len(self._snapshots) if last == 0 else min(last, len(self._snapshots))
        return [self.row(s) for s in self._snapshots[max(first, 1) - 1:end]]


def _rate_values(rates: TariffRegisters, rate: int) -> dict[RegisterKey, int]:
    return {(q, c): rates.get(q, c, rate) for q, c in rates.keys}

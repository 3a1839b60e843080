"""Demand registers (DLMS class 5, e.g. 1-0:1.4.0.255) and maximum demand (class 4, 1-0:1.6.E.255).

Block demand is the special case of a sliding window with one subperiod. Every subperiod of
``period_s`` seconds closes at a clock-aligned boundary (the caller decides the boundaries);
the window is the last ``number_of_periods`` subperiods. Demand is exact: energy in milli-units
over the window, demand_mw = energy_mwh * 3600 / window_s (mW, mvar, mVA) kept as a
``Fraction``. At startup the window is filled with zero-energy subperiods.

Maximum demand is kept for the total (rate 0, 1-0:C.6.0.255) and per rate (1-0:C.6.E.255):
a window's demand counts for the rate in force when it closes. A window that contains a
subperiod during which the clock was set is not used for maximum demand (its length is not the
nominal one). An MD reset (end of billing) clears all maxima.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from meterd.core.energy import Quantity, RegisterKey
from meterd.core.errors import MeterError
from meterd.core.reading import Channel


class DemandError(MeterError):
    """Demand configuration or state is invalid."""


class DemandQuantity(enum.Enum):
    """A demand quantity, valued as its OBIS C code (total channel)."""

    ACTIVE_IMPORT = 1
    ACTIVE_EXPORT = 2
    REACTIVE_IMPORT = 3
    REACTIVE_EXPORT = 4
    APPARENT_IMPORT = 9
    APPARENT_EXPORT = 10


_PARTS: dict[DemandQuantity, tuple[Quantity, ...]] = {
    DemandQuantity.ACTIVE_IMPORT: (Quantity.ACTIVE_IMPORT,),
    DemandQuantity.ACTIVE_EXPORT: (Quantity.ACTIVE_EXPORT,),
    DemandQuantity.REACTIVE_IMPORT: (Quantity.REACTIVE_Q1, Quantity.REACTIVE_Q2),
    DemandQuantity.REACTIVE_EXPORT: (Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4),
    DemandQuantity.APPARENT_IMPORT: (Quantity.APPARENT_IMPORT,),
    DemandQuantity.APPARENT_EXPORT: (Quantity.APPARENT_EXPORT,),
}


def demand_energy(totals: Mapping[RegisterKey, int], quantity: DemandQuantity) -> int:
    """Cumulative total-channel energy (milli-units) behind a demand quantity."""
    return sum(totals.get((q, Channel.TOTAL), 0) for q in _PARTS[quantity])


@dataclass(frozen=True)
class DemandConfig:
    """Subperiod length ``period_s`` (s, divides a day), window length in subperiods, rate count."""

    period_s: int = 900
    number_of_periods: int = 1
    rates: int = 4

    def __post_init__(self) -> None:
        if not 60 <= self.period_s <= 3600 or 86400 % self.period_s:
            raise DemandError(f"demand period {self.period_s} s must divide a day, 60..3600 s")
        if not 1 <= self.number_of_periods <= 60:
            raise DemandError(f"number of periods {self.number_of_periods} outside 1..60")
        if not 1 <= self.rates <= 8:
            raise DemandError(f"rates {self.rates} outside 1..8")

    @property
    def window_s(self) -> int:
        """Window length (s)."""
        return self.period_s * self.number_of_periods


@dataclass(frozen=True)
class MaxDemand:
    """A maximum demand: value (milli-W / mvar / mVA, exact) and its capture time (UTC)."""

    value_milli: Fraction = Fraction(0)
    capture_utc: _dt.datetime | None = None

    @property
    def value_w(self) -> float:
        """Value in W (var, VA) for display."""
        return float(self.value_milli) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: value as "num/den", time as ISO text."""
        return {"value_milli": str(self.value_milli),
                "capture_utc": None if self.capture_utc is None else self.capture_utc.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaxDemand:
        """Inverse of :meth:`to_dict`."""
        when = data.get("capture_utc")
        return cls(Fraction(str(data["value_milli"])),
                   None if when is None else _dt.datetime.fromisoformat(when))


class DemandRegisters:
    """Current / last average demand and maximum demand for all :class:`DemandQuantity`."""

    def __init__(self, config: DemandConfig | None = None) -> None:
        self.config = config or DemandConfig()
        n = self.config.number_of_periods
        self._window: dict[DemandQuantity, list[int]] = {q: [0] * n for q in DemandQuantity}
        self._start_energy: dict[DemandQuantity, int] | None = None
        self.start_utc: _dt.datetime | None = None
        self._last_avg: dict[DemandQuantity, Fraction] = dict.fromkeys(DemandQuantity, Fraction(0))
        self.last_capture_utc: _dt.datetime | None = None
        self._max: dict[tuple[DemandQuantity, int], MaxDemand] = {}
        self._disturbed_left = 0

    def begin(self, utc: _dt.datetime, totals: Mapping[RegisterKey, int]) -> None:
        """Start the current subperiod at ``utc`` with the cumulative ``totals``."""
        self.start_utc = utc
        self._start_energy = {q: demand_energy(totals, q) for q in DemandQuantity}

    @property
    def started(self) -> bool:
        """True once :meth:`begin` was called."""
        return self._start_energy is not None

    def mark_disturbed(self) -> None:
        """The clock was set during the current subperiod: windows holding it skip MD."""
        self._disturbed_left = self.config.number_of_periods

    def close(self, end_utc: _dt.datetime, totals: Mapping[RegisterKey, int], rate: int) -> None:
        """Close the subperiod at ``end_utc``; update last average and maximum demand."""
        if self._start_energy is None:
            raise DemandError("demand subperiod closed before it began")
        window_s = self.config.window_s
        disturbed = self._disturbed_left > 0
        for q in DemandQuantity:
            now = demand_energy(totals, q)
            energies = self._window[q]
            energies.pop(0)
            energies.append(now - self._start_energy[q])
            avg = Fraction(sum(energies) * 3600, window_s)
            self._last_avg[q] = avg
            if not disturbed:
                self._update_max(q, 0, avg, end_utc)
                self._update_max(q, rate, avg, end_utc)
        if disturbed:
            self._disturbed_left -= 1
        self.last_capture_utc = end_utc
        self.begin(end_utc, totals)

    def _update_max(self, q: DemandQuantity, rate: int, avg: Fraction, utc: _dt.datetime) -> None:
        held = self._max.get((q, rate))
        if avg > 0 and (held is None or avg > held.value_milli):
            self._max[(q, rate)] = MaxDemand(avg, utc)

    def current_average(self, quantity: DemandQuantity, totals: Mapping[RegisterKey, int]) -> Fraction:
        """Running demand (milli-units/h): window so far incl. the open subperiod, over the window."""
        if self._start_energy is None:
            return Fraction(0)
        partial = demand_energy(totals, quantity) - self._start_energy[quantity]
        closed = sum(self._window[quantity][1:])
        return Fraction((closed + partial) * 3600, self.config.window_s)

    def last_average(self, quantity: DemandQuantity) -> Fraction:
        """Demand of the last closed window (milli-units/h)."""
        return self._last_avg[quantity]

    def max_demand(self, quantity: DemandQuantity, rate: int = 0) -> MaxDemand:
        """Maximum demand since the last reset, total (rate 0) or per rate."""
        return self._max.get((quantity, rate), MaxDemand())

    def all_max(self) -> dict[tuple[DemandQuantity, int], MaxDemand]:
        """Every maximum demand held, keyed by (quantity, rate 0..n)."""
        return {(q, r): self.max_demand(q, r) for q in DemandQuantity for r in range(self.config.rates + 1)}

    def reconfigured(self, config: DemandConfig) -> DemandRegisters:
        """Registers for a new period / number of periods / rate count: the windows restart (not
        begun: the caller begins the first subperiod); maximum demands recorded so far are kept
        for the total and for the rates that still exist."""
        regs = DemandRegisters(config)
        regs._max = {(q, r): m for (q, r), m in self._max.items() if r <= config.rates}
        return regs

    def reset_max(self) -> None:
        """MD reset: clear all maximum demands."""
        self._max.clear()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of configuration and state."""
        return {
            "period_s": self.config.period_s,
            "number_of_periods": self.config.number_of_periods,
            "rates": self.config.rates,
            "window": {q.name: list(v) for q, v in self._window.items()},
            "start_energy": None if self._start_energy is None
            else {q.name: v for q, v in self._start_energy.items()},
            "start_utc": None if self.start_utc is None else self.start_utc.isoformat(),
            "last_avg": {q.name: str(v) for q, v in self._last_avg.items()},
            "last_capture_utc": None if self.last_capture_utc is None else self.last_capture_utc.isoformat(),
            "max": [[q.name, r, m.to_dict()] for (q, r), m in self._max.items()],
            "disturbed_left": self._disturbed_left,
        }

    def to_compact(self) -> list[Any]:
        """Compact checkpoint form: times as POSIX seconds, maxima as window energy (milli-units·h
        over the window), last averages left out (they follow from the window)."""
        quantities = list(DemandQuantity)
        window_s = self.config.window_s
        maxima = []
        for (q, r), m in self._max.items():
            energy = m.value_milli * window_s / 3600
            value: int | str = int(energy) if energy.denominator == 1 else str(m.value_milli)
            maxima.append([quantities.index(q), r, value, _ep(m.capture_utc)])
        start = self._start_energy
        return [self.config.period_s, self.config.number_of_periods, self.config.rates,
                [self._window[q] for q in quantities],
                None if start is None else [start[q] for q in quantities],
                _ep(self.start_utc), _ep(self.last_capture_utc), maxima, self._disturbed_left]

    @classmethod
    def from_compact(cls, data: Sequence[Any]) -> DemandRegisters:
        """Inverse of :meth:`to_compact`."""
        period_s, n, rates, window, start, start_utc, last_utc, maxima, disturbed = data
        regs = cls(DemandConfig(int(period_s), int(n), int(rates)))
        quantities = list(DemandQuantity)
        if len(window) != len(quantities) or any(len(w) != regs.config.number_of_periods for w in window):
            raise DemandError("demand window does not match the configuration")
        regs._window = {q: [int(v) for v in w] for q, w in zip(quantities, window, strict=True)}
        if start is not None:
            regs._start_energy = {q: int(v) for q, v in zip(quantities, start, strict=True)}
        regs.start_utc, regs.last_capture_utc = _from_ep(start_utc), _from_ep(last_utc)
        window_s = regs.config.window_s
        if regs.last_capture_utc is not None:
            regs._last_avg = {q: Fraction(sum(w) * 3600, window_s) for q, w in regs._window.items()}
        for qi, r, value, when in maxima:
            milli = Fraction(value) if isinstance(value, str) else Fraction(int(value) * 3600, window_s)
            regs._max[(quantities[int(qi)], int(r))] = MaxDemand(milli, _from_ep(when))
        regs._disturbed_left = int(disturbed)
        return regs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemandRegisters:
        """Inverse of :meth:`to_dict`."""
        regs = cls(DemandConfig(int(data["period_s"]), int(data["number_of_periods"]), int(data["rates"])))
        for name, values in data["window"].items():
            if len(values) != regs.config.number_of_periods:
                raise DemandError("demand window length does not match the configuration")
            regs._window[DemandQuantity[name]] = [int(v) for v in values]
        start = data.get("start_energy")
        if start is not None:
            regs._start_energy = {DemandQuantity[k]: int(v) for k, v in start.items()}
        regs.start_utc = _iso(data.get("start_utc"))
        regs._last_avg = {DemandQuantity[k]: Fraction(v) for k, v in data["last_avg"].items()}
        regs.last_capture_utc = _iso(data.get("last_capture_utc"))
        regs._max = {(DemandQuantity[q], int(r)): MaxDemand.from_dict(m) for q, r, m in data["max"]}
        regs._disturbed_left = int(data.get("disturbed_left", 0))
        return regs


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _ep(utc: _dt.datetime | None) -> int | float | None:
    """POSIX seconds (int when whole) of an aware datetime, for compact state."""
    if utc is None:
        return None
    delta = utc - _EPOCH
    if delta.microseconds:
        return delta.total_seconds()
    return delta.days * 86400 + delta.seconds


def _from_ep(value: float | None) -> _dt.datetime | None:
    return None if value is None else _EPOCH + _dt.timedelta(seconds=value)


def _iso(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(text)

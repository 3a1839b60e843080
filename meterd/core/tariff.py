"""Per-rate energy registers (1-0:C.8.E.255, E = rate 1..8) for every base quantity and channel.

Values are integer milli-units like :mod:`meterd.core.energy` (mWh, mvarh, mVAh). Each cycle's
deltas go to exactly one rate, so the rate registers of a quantity always sum exactly to the
total register that received the same deltas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterd.core.calendar import MAX_RATE
from meterd.core.energy import ALL_KEYS, Derived, Quantity, RegisterKey
from meterd.core.errors import MeterError, StateError
from meterd.core.reading import Channel


class TariffError(MeterError):
    """A rate number is out of range or tariff state is inconsistent."""


_DERIVED_PARTS: dict[Derived, tuple[Quantity, Quantity]] = {
    Derived.REACTIVE_IMPORT: (Quantity.REACTIVE_Q1, Quantity.REACTIVE_Q2),
    Derived.REACTIVE_EXPORT: (Quantity.REACTIVE_Q3, Quantity.REACTIVE_Q4),
    Derived.ACTIVE_ABSOLUTE: (Quantity.ACTIVE_IMPORT, Quantity.ACTIVE_EXPORT),
}


class TariffRegisters:
    """Energy per rate (1..``rates``), per base quantity and channel, in milli-units."""

    def __init__(self, rates: int = 4) -> None:
        if not 1 <= rates <= MAX_RATE:
            raise TariffError(f"number of rates {rates} outside 1..{MAX_RATE}")
        self.rates = rates
        self._values: list[dict[RegisterKey, int]] = [dict.fromkeys(ALL_KEYS, 0) for _ in range(rates + 1)]

    def _check_rate(self, rate: int) -> None:
        if not 1 <= rate <= self.rates:
            raise TariffError(f"rate {rate} outside 1..{self.rates}")

    def apply(self, deltas: Mapping[RegisterKey, int], rate: int) -> None:
        """Add one cycle's non-negative deltas (milli-units) to rate ``rate``."""
        if not 1 <= rate <= self.rates:
            self._check_rate(rate)
        target = self._values[rate]
        for key, delta in deltas.items():
            if delta < 0:
                raise TariffError(f"negative delta for {key!r}")
            target[key] += delta

    def get(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL, rate: int = 1) -> int:
        """Energy of ``quantity`` on ``channel`` in rate ``rate`` (milli-units)."""
        self._check_rate(rate)
        values = self._values[rate]
        if isinstance(quantity, Derived):
            a, b = _DERIVED_PARTS[quantity]
            return values[(a, channel)] + values[(b, channel)]
        return values[(quantity, channel)]

    def total(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL) -> int:
        """Sum over all rates (milli-units)."""
        return sum(self.get(quantity, channel, r) for r in range(1, self.rates + 1))

    def totals(self) -> dict[RegisterKey, int]:
        """Sum over all rates of every base register."""
        return {key: sum(self._values[r][key] for r in range(1, self.rates + 1)) for key in ALL_KEYS}

    def reconcile(self, totals: Mapping[RegisterKey, int], rate: int) -> dict[RegisterKey, int]:
        """Book energy the totals hold beyond the rate registers into ``rate``; return it.

        Used when the meter had energy before the tariff existed. Raises ``StateError`` when
        the rate registers exceed a total (state from another meter or a corrupted store).
        """
        self._check_rate(rate)
        own = self.totals()
        missing: dict[RegisterKey, int] = {}
        for key in ALL_KEYS:
            diff = totals.get(key, 0) - own[key]
            if diff < 0:
                raise StateError(f"rate registers of {key!r} exceed the total by {-diff}")
            if diff:
                missing[key] = diff
        self.apply(missing, rate)
        return missing

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: {"rates": n, "values": {rate: {"<C>:<channel>": milli-units}}}."""
        return {
            "rates": self.rates,
            "values": {
                str(r): {f"{q.value}:{c.value}": v for (q, c), v in self._values[r].items() if v}
                for r in range(1, self.rates + 1)
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TariffRegisters:
        """Inverse of :meth:`to_dict`."""
        regs = cls(int(data["rates"]))
        for rate_text, values in data["values"].items():
            rate = int(rate_text)
            regs._check_rate(rate)
            for key_text, value in values.items():
                q_text, c_text = key_text.split(":")
                if int(value) < 0:
                    raise StateError(f"negative rate register {key_text}")
                regs._values[rate][(Quantity(int(q_text)), Channel(c_text))] = int(value)
        return regs

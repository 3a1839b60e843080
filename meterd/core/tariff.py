"""Per-rate energy registers (1-0:C.8.E.255, E = rate 1..8) for every base quantity.

Values are integer milli-units like :mod:`meterd.core.energy` (mWh, mvarh, mVAh). Each cycle's
deltas go to exactly one rate, so the rate registers of a quantity always sum exactly to the
total register that received the same deltas. Which channels have rate registers is chosen at
construction: all (total and L1..L3), or only the total (the meter's choice: 1-0:C.8.E.255 for
C = 1..10 is what billing needs, and it keeps the checkpoint small).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    def __init__(self, rates: int = 4, channels: tuple[Channel, ...] | None = None) -> None:
        if not 1 <= rates <= MAX_RATE:
            raise TariffError(f"number of rates {rates} outside 1..{MAX_RATE}")
        self.rates = rates
        self.channels = tuple(Channel) if channels is None else tuple(channels)
        self.keys: tuple[RegisterKey, ...] = tuple(k for k in ALL_KEYS if k[1] in self.channels)
        self._values: list[dict[RegisterKey, int]] = [dict.fromkeys(self.keys, 0) for _ in range(rates + 1)]

    def _check_rate(self, rate: int) -> None:
        if not 1 <= rate <= self.rates:
            raise TariffError(f"rate {rate} outside 1..{self.rates}")

    def apply(self, deltas: Mapping[RegisterKey, int], rate: int) -> None:
        """Add one cycle's non-negative deltas (milli-units) to rate ``rate`` (untracked channels
        are ignored)."""
        if not 1 <= rate <= self.rates:
            self._check_rate(rate)
        target = self._values[rate]
        for key, delta in deltas.items():
            if delta < 0:
                raise TariffError(f"negative delta for {key!r}")
            if key in target:
                target[key] += delta

    def get(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL, rate: int = 1) -> int:
        """Energy of ``quantity`` on ``channel`` in rate ``rate`` (milli-units)."""
        self._check_rate(rate)
        if channel not in self.channels:
            raise TariffError(f"no rate registers for channel {channel.value}")
        values = self._values[rate]
        if isinstance(quantity, Derived):
            a, b = _DERIVED_PARTS[quantity]
            return values[(a, channel)] + values[(b, channel)]
        return values[(quantity, channel)]

    def total(self, quantity: Quantity | Derived, channel: Channel = Channel.TOTAL) -> int:
        """Sum over all rates (milli-units)."""
        return sum(self.get(quantity, channel, r) for r in range(1, self.rates + 1))

    def totals(self) -> dict[RegisterKey, int]:
        """Sum over all rates of every tracked base register."""
        return {key: sum(self._values[r][key] for r in range(1, self.rates + 1)) for key in self.keys}

    def reconcile(self, totals: Mapping[RegisterKey, int], rate: int) -> dict[RegisterKey, int]:
        """Book energy the totals hold beyond the rate registers into ``rate``; return it.

        Used when the meter had energy before the tariff existed. Raises ``StateError`` when
        the rate registers exceed a total (state from another meter or a corrupted store).
        """
        self._check_rate(rate)
        own = self.totals()
        missing: dict[RegisterKey, int] = {}
        for key in self.keys:
            diff = totals.get(key, 0) - own[key]
            if diff < 0:
                raise StateError(f"rate registers of {key!r} exceed the total by {-diff}")
            if diff:
                missing[key] = diff
        self.apply(missing, rate)
        return missing

    def resized(self, rates: int, channels: tuple[Channel, ...] | None = None
                ) -> tuple[TariffRegisters, dict[RegisterKey, int]]:
        """The same registers with ``rates`` rates (and ``channels``): new rates start at 0; the
        energy of removed rates (and channels) is returned per key, summed (milli-units). The
        total registers still hold that energy; only its split by rate is given up."""
        new = TariffRegisters(rates, channels)
        dropped: dict[RegisterKey, int] = {}
        for r in range(1, self.rates + 1):
            for key, value in self._values[r].items():
                if r <= new.rates and key in new._values[r]:
                    new._values[r][key] = value
                elif value:
                    dropped[key] = dropped.get(key, 0) + value
        return new, dropped

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: {"rates": n, "values": {rate: {"<C>:<channel>": milli-units}}}."""
        return {
            "rates": self.rates,
            "channels": [c.value for c in self.channels],
            "values": {
                str(r): {f"{q.value}:{c.value}": v for (q, c), v in self._values[r].items() if v}
                for r in range(1, self.rates + 1)
            },
        }

    def to_compact(self) -> list[Any]:
        """Compact form for the checkpoint: [rates, channels, [[rate 1 values in key order], ...]]."""
        return [self.rates, "".join(c.value for c in self.channels),
                [[self._values[r][k] for k in self.keys] for r in range(1, self.rates + 1)]]

    @classmethod
    def from_compact(cls, data: Sequence[Any]) -> TariffRegisters:
        """Inverse of :meth:`to_compact`."""
        rates, channels, values = data
        regs = cls(int(rates), tuple(Channel(c) for c in channels))
        if len(values) != regs.rates or any(len(v) != len(regs.keys) for v in values):
            raise StateError("rate register state does not match its layout")
        for r, row in enumerate(values, start=1):
            if any(int(v) < 0 for v in row):
                raise StateError("negative rate register")
            regs._values[r] = {k: int(v) for k, v in zip(regs.keys, row, strict=True)}
        return regs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TariffRegisters:
        """Inverse of :meth:`to_dict`."""
        channels = data.get("channels")
        regs = cls(int(data["rates"]), None if channels is None else tuple(Channel(c) for c in channels))
        for rate_text, values in data["values"].items():
            rate = int(rate_text)
            regs._check_rate(rate)
            for key_text, value in values.items():
                q_text, c_text = key_text.split(":")
                if int(value) < 0:
                    raise StateError(f"negative rate register {key_text}")
                regs._values[rate][(Quantity(int(q_text)), Channel(c_text))] = int(value)
        return regs

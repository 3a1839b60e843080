"""Energy measured by the metering loop and not yet applied to the registers.

The metering loop (its own thread on a running meter) reads the chip each tick and adds the
tick's register increments (integer milli-units, :data:`~meterd.core.energy.RegisterKey`) to a
:class:`PendingEnergy`; the meter service drains it (all ticks since the last drain: the summed
increments and the latest reading) and applies that to the registers and the listeners.

Crash safety. Besides the increments not yet drained, the accumulator keeps, per register, the
*cumulative* energy added since the process started (never going backwards), tagged with a
token drawn at start (:attr:`PendingEnergy.token`). Each tick the cumulative totals go to a
:class:`PendingRecord` (a small memory-mapped slot in RAM that survives kill -9); each journal
record of the registers stores which cumulative total it has consumed (:class:`Consumed`: the
token and the totals drained into those registers). After a crash at any point::

    energy = registers of the checkpoint + (record's cumulative − checkpoint's consumed)

with consumed = 0 when the record's token is not the checkpoint's (:func:`residual`): a new
record is started (its token, zero) only after the checkpoint that absorbed the previous one
was written, so a record whose token the checkpoint does not name was never consumed. Nothing
is counted twice, nothing is lost, whichever write the kill interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterd.core.energy import ALL_KEYS, RegisterKey
from meterd.core.reading import Reading

CONSUMED_KEY = "metering_pending"
"""The key of :class:`Consumed` in the checkpoint's extra state."""


@dataclass(frozen=True)
class Consumed:
    """What a checkpoint's registers hold of a pending record: its token and, per register,
    the cumulative milli-units drained into them."""

    token: str
    totals: Mapping[RegisterKey, int]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able form (ALL_KEYS order)."""
        return {"token": self.token, "totals": [int(self.totals.get(key, 0)) for key in ALL_KEYS]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> Consumed | None:
        """Parse :meth:`state_dict` output; None for nothing or something else."""
        if not isinstance(state, Mapping):
            return None
        token, totals = state.get("token"), state.get("totals")
        if not isinstance(token, str) or not isinstance(totals, list) or len(totals) != len(ALL_KEYS):
            return None
        return cls(token, {key: int(v) for key, v in zip(ALL_KEYS, totals, strict=True) if int(v)})


@dataclass(frozen=True)
class RecordState:
    """A pending record as found: its token and cumulative totals (milli-units)."""

    token: str
    totals: Mapping[RegisterKey, int]


class PendingRecord(Protocol):
    """Port: where the cumulative totals survive the death of the process (store layer)."""

    def load(self) -> RecordState | None:
        """The record as the previous process left it; None when there is none."""
        ...

    def write(self, token: str, totals: Mapping[RegisterKey, int]) -> None:
        """Store the cumulative totals of ``token``."""
        ...


def residual(record: RecordState | None, consumed: Consumed | None) -> dict[RegisterKey, int]:
    """Energy (milli-units per register) a record holds beyond what a checkpoint consumed: the
    whole record when the checkpoint names another token (or none), else the difference
    (never negative)."""
    if record is None:
        return {}
    base: Mapping[RegisterKey, int] = consumed.totals if consumed is not None and consumed.token == record.token else {}
    out: dict[RegisterKey, int] = {}
    for key, total in record.totals.items():
        extra = int(total) - int(base.get(key, 0))
        if extra > 0:
            out[key] = extra
    return out


@dataclass(frozen=True)
class Drained:
    """What a drain took: the summed increments of ``ticks`` ticks, the latest reading (None
    when no tick happened), and the cumulative totals they bring the consumer to."""

    deltas: Mapping[RegisterKey, int]
    reading: Reading | None
    ticks: int
    consumed: Consumed


class PendingEnergy:
    """The thread-safe accumulator between the metering loop (:meth:`add`) and the meter
    service (:meth:`drain`), with its cumulative record (see the module docstring).

    ``token``: names this process's record; ``record``: where the cumulative totals are
    written at each :meth:`add` (None: in memory only)."""

    def __init__(self, token: str = "", record: PendingRecord | None = None) -> None:
        self.token = token
        self.record = record
        self._lock = threading.Lock()
        self._pending: dict[RegisterKey, int] = {}
        self._cumulative: dict[RegisterKey, int] = {}
        self._reading: Reading | None = None
        self._ticks = 0
        self.total_ticks = 0

    def add(self, deltas: Mapping[RegisterKey, int], reading: Reading) -> None:
        """One tick: its increments (milli-units, never negative) and its reading."""
        with self._lock:
            for key, value in deltas.items():
                if value < 0:
                    raise ValueError(f"negative increment {value} for {key!r}")
                if value:
                    self._pending[key] = self._pending.get(key, 0) + value
                    self._cumulative[key] = self._cumulative.get(key, 0) + value
            self._reading = reading
            self._ticks += 1
            self.total_ticks += 1
            if self.record is not None and deltas:
                self.record.write(self.token, self._cumulative)

    def drain(self) -> Drained:
        """Take every tick since the last drain."""
        with self._lock:
            deltas, self._pending = self._pending, {}
            reading, ticks = self._reading, self._ticks
            self._reading, self._ticks = None, 0
            consumed = Consumed(self.token, dict(self._cumulative))
        return Drained(deltas, reading, ticks, consumed)

    @property
    def waiting(self) -> int:
        """Ticks added and not drained yet."""
        return self._ticks

    def cumulative(self) -> dict[RegisterKey, int]:
        """A copy of the cumulative totals since start (milli-units)."""
        with self._lock:
            return dict(self._cumulative)

    def carry(self, carried: Mapping[RegisterKey, int]) -> None:
        """Energy of the previous process not in the registers (:func:`residual`): pending and
        cumulative, as if measured by a tick of this process (applied by the first drain)."""
        with self._lock:
            for key, value in carried.items():
                if value > 0:
                    self._pending[key] = self._pending.get(key, 0) + value
                    self._cumulative[key] = self._cumulative.get(key, 0) + value

    def begin(self) -> None:
        """Start this process's record (its token, zero): call it only after a checkpoint that
        absorbed the previous process's residual was written."""
        with self._lock:
            if self.record is not None:
                self.record.write(self.token, self._cumulative)

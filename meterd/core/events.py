"""Bounded event logs (DLMS profile generic buffers) and the recorder that routes codes to them.

Every log is a ring of configurable depth: when full, the oldest entry goes. Logs are read through
:class:`meterd.core.model.ProfileBuffer`: the first capture column is the clock 0-0:1.0.0.255; the
event logs 0-0:99.98.x.255 then carry their event code object 0-0:96.11.x.255; the power-failure
log 1-0:99.97.0.255 carries the failure duration 0-0:96.7.19.255 (s) instead (short and long
power failures both, each with its duration; over DLMS the threshold 0-0:96.7.20.255 tells them
apart, in memory the entry's code). As in every
profile of the meter, a :class:`~meterd.core.model.ProfileRow` carries the capture time in
``utc`` and one value per non-clock column in ``values`` (the code, or the duration).

Entries stay in recording order (a FIFO, as DLMS buffers are). Tamper and voltage events are
stamped with the onset time and recorded once their minimum duration has passed, so an entry can
carry an earlier time than one recorded just before it; range selection filters by time and
keeps recording order.

Each recorded event gets a global sequence number and is persisted through :class:`EventStore`
(one transaction per event, all its logs at once) before it becomes visible in memory.
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from meterd.core import event_codes
from meterd.core.errors import MeterError
from meterd.core.event_codes import LOG_OBIS, EventCode, LogId
from meterd.core.model import CaptureColumn, ProfileRow

CLOCK_OBIS = "0.0.1.0.0.255"
CLOCK_STATUS_KEY = "clock_status"
"""Detail key of the clock status bits of an event's time when it was not trusted (0x01 invalid,
0x02 doubtful, :mod:`meterd.core.time_trust`); the log's clock column carries them."""
POWER_FAILURE_DURATION_OBIS = "0.0.96.7.19.255"
DetailValue = str | int | float | bool | None
RowValue = int | float | str

DEFAULT_DEPTHS: Mapping[LogId, int] = MappingProxyType({
    LogId.STANDARD: 100, LogId.FRAUD: 100, LogId.DISCONNECTOR: 100, LogId.POWER_QUALITY: 100,
    LogId.COMMUNICATION: 100, LogId.POWER_FAILURE: 50, LogId.FIRMWARE: 20, LogId.TOKEN: 100,
    LogId.SECURITY: 100,
})


class EventError(MeterError):
    """An unknown event code, a naive timestamp, a bad depth or a detail that cannot be stored."""


@dataclass(frozen=True)
class EventEntry:
    """One recorded event: global sequence number, UTC time, code (0…255) and detail values."""

    seq: int
    utc: _dt.datetime
    code: int
    detail: Mapping[str, DetailValue] = field(default_factory=dict)

    @property
    def definition(self) -> EventCode:
        """The code's table entry."""
        return event_codes.lookup(self.code)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view (``meterctl events``): seq, utc (ISO 8601), code, name, text, logs, detail."""
        d = self.definition
        return {
            "seq": self.seq, "utc": self.utc.isoformat(), "code": self.code, "name": d.name,
            "text": d.text, "logs": [log.value for log in d.logs], "detail": dict(self.detail),
        }


class EventStore(Protocol):
    """Port: durable storage of event logs (implemented in ``meterd.store.event_store``)."""

    def append_event(self, entry: EventEntry, logs: Mapping[LogId, int]) -> None:
        """Store ``entry`` in every log named in ``logs`` (log → depth) in one transaction,
        keeping at most ``depth`` newest entries per log."""
        ...

    def load_events(self, log: LogId, limit: int) -> list[EventEntry]:
        """The newest ``limit`` entries of ``log``, oldest first."""
        ...

    def last_event_seq(self) -> int:
        """The highest sequence number ever stored (0 when empty)."""
        ...

    def clear_log(self, log: LogId) -> None:
        """Remove every entry of ``log``."""
        ...


class StateStore(Protocol):
    """Port: small named state records (JSON-like mappings) that must survive a restart."""

    def load_state(self, key: str) -> Mapping[str, object] | None:
        """The record saved under ``key``, or None."""
        ...

    def save_state(self, key: str, value: Mapping[str, object]) -> None:
        """Replace the record under ``key`` durably (one transaction)."""
        ...


@dataclass(frozen=True)
class ExtraColumn:
    """A capture column filled from the event detail: ``detail_key`` → value (``default`` if absent)."""

    column: CaptureColumn
    detail_key: str
    default: RowValue = 0


def _check_utc(utc: _dt.datetime) -> None:
    if utc.tzinfo is None:
        raise EventError("event time must be timezone-aware UTC")


def _check_detail(detail: Mapping[str, object] | None) -> Mapping[str, DetailValue]:
    clean: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise EventError(f"event detail {key!r} must be a scalar, got {type(value).__name__}")
        clean[str(key)] = value
    return MappingProxyType(clean)


def default_columns(log: LogId) -> tuple[tuple[CaptureColumn, ...], tuple[ExtraColumn, ...]]:
    """The standard capture columns of ``log``: (clock + code columns, extra detail columns)."""
    clock = CaptureColumn(CLOCK_OBIS, 8, 2)
    if log is LogId.POWER_FAILURE:
        duration = CaptureColumn(POWER_FAILURE_DURATION_OBIS, 3, 2)
        return (clock,), (ExtraColumn(duration, "duration_s", 0),)
    code_obis = LOG_OBIS[log].event_code
    assert code_obis is not None
    return (clock, CaptureColumn(code_obis, 1, 2)), ()


class EventLog:
    """One bounded event log; implements :class:`meterd.core.model.ProfileBuffer`."""

    def __init__(self, log_id: LogId, depth: int) -> None:
        if depth < 1:
            raise EventError(f"{log_id.value}: depth must be at least 1, got {depth}")
        self.log_id = log_id
        self.obis = LOG_OBIS[log_id].profile
        self.depth = depth
        self._base, self._extra = default_columns(log_id)
        self._entries: deque[EventEntry] = deque(maxlen=depth)

    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """Clock first, then the event code (or, for the power-failure log, the duration)."""
        return self._base + tuple(x.column for x in self._extra)

    @property
    def capture_period_s(self) -> int:
        """0: event logs are filled by events, not by a period."""
        return 0

    def entries_in_use(self) -> int:
        """Number of entries held (≤ depth)."""
        return len(self._entries)

    def entries(self) -> list[EventEntry]:
        """All entries, oldest first."""
        return list(self._entries)

    def append(self, entry: EventEntry) -> None:
        """Add ``entry`` as the newest, dropping the oldest when full."""
        self._entries.append(entry)

    def load(self, entries: Iterable[EventEntry]) -> None:
        """Replace the content (restart from the store), keeping the newest ``depth``."""
        self._entries.clear()
        self._entries.extend(entries)

    def clear(self) -> None:
        """Empty the log (profile generic ``reset``)."""
        self._entries.clear()

    def row(self, entry: EventEntry) -> ProfileRow:
        """The profile row of one entry: time in ``utc``, the non-clock columns in ``values``."""
        values: list[RowValue] = []
        if len(self._base) > 1:
            values.append(entry.code)
        for extra in self._extra:
            value = entry.detail.get(extra.detail_key, extra.default)
            values.append(extra.default if value is None or isinstance(value, bool) else value)
        status = entry.detail.get(CLOCK_STATUS_KEY, 0)
        return ProfileRow(entry.utc, tuple(values), status if isinstance(status, int) and not isinstance(status, bool)
                          else 0)

    def rows_between(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> list[ProfileRow]:
        """Rows with start_utc <= time <= end_utc, in log order (oldest first)."""
        return [self.row(e) for e in self._entries if start_utc <= e.utc <= end_utc]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        """Rows numbered first..last (1 = oldest; last 0 = up to the newest)."""
        held = list(self._entries)
        start = max(first, 1) - 1
        stop = len(held) if last == 0 else min(last, len(held))
        return [self.row(e) for e in held[start:stop]]


Listener = Callable[[EventEntry], None]


class EventRecorder:
    """Routes recorded event codes to their logs, persists them and tells listeners."""

    def __init__(self, depths: Mapping[LogId, int] | None = None, store: EventStore | None = None) -> None:
        wanted = dict(DEFAULT_DEPTHS)
        wanted.update(depths or {})
        self._logs = {log: EventLog(log, wanted[log]) for log in LogId}
        self._store = store
        self._listeners: list[Listener] = []
        self._seq = 0
        self.clock_status: Callable[[], int] | None = None  # the time trust's clock status bits
        if store is not None:
            self._restore(store)

    def _restore(self, store: EventStore) -> None:
        for log in self._logs.values():
            log.load(store.load_events(log.log_id, log.depth))
        self._seq = store.last_event_seq()

    @property
    def logs(self) -> Mapping[LogId, EventLog]:
        """Every log by id."""
        return MappingProxyType(self._logs)

    def log(self, log_id: LogId) -> EventLog:
        """One log by id."""
        return self._logs[log_id]

    def profile(self, obis: str) -> EventLog | None:
        """The log whose profile OBIS is ``obis`` (e.g. "0.0.99.98.1.255"), or None."""
        return next((log for log in self._logs.values() if log.obis == obis), None)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(entry)`` after each recorded event (alarms, push, display)."""
        self._listeners.append(listener)

    def record(self, code: int, utc: _dt.datetime, detail: Mapping[str, object] | None = None) -> EventEntry:
        """Record event ``code`` at ``utc`` in each of its logs; returns the stored entry."""
        if code not in event_codes.EVENT_CODES:
            raise EventError(f"unknown event code {code}")
        _check_utc(utc)
        status = self.clock_status() if self.clock_status is not None else 0
        if status:  # the time was not trusted: its capture carries the clock status (0x01, 0x02)
            detail = {**(detail or {}), CLOCK_STATUS_KEY: status}
        entry = EventEntry(self._seq + 1, utc.astimezone(_dt.UTC), code, _check_detail(detail))
        targets = {log: self._logs[log].depth for log in event_codes.lookup(code).logs}
        if self._store is not None:
            self._store.append_event(entry, targets)
        self._seq = entry.seq
        for log in targets:
            self._logs[log].append(entry)
        for listener in self._listeners:
            listener(entry)
        return entry

    def reset_log(self, log_id: LogId) -> None:
        """Empty one log in memory and in the store (profile generic ``reset``)."""
        if self._store is not None:
            self._store.clear_log(log_id)
        self._logs[log_id].clear()

    def recent(self, limit: int) -> list[EventEntry]:
        """The newest ``limit`` events across all logs, newest first, each once."""
        seen: dict[int, EventEntry] = {}
        for log in self._logs.values():
            for entry in log.entries():
                seen[entry.seq] = entry
        newest = sorted(seen.values(), key=lambda e: e.seq, reverse=True)
        return newest[:max(limit, 0)]

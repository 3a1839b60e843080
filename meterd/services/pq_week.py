"""EN 50160 weeks of the meter: 10-min samples collected, kept, judged, and the record of each closed week.

:class:`WeekTracker` takes the samples of each 10-min interval (:mod:`meterd.pq.en50160`:
voltage, THD 2-40 and harmonics 2-25 from the aggregate, the 10-s frequency values and the Plt
released in the interval). Weeks run from Monday 00:00 UTC. A week closes with its last interval
(the one ending at the next Monday 00:00) or, when the meter was off then, with the first
interval of a later week: its :class:`~meterd.pq.en50160.WeekRecord` is stored and, when it is
not compliant, event 187 (``EN50160_WEEK_NOT_COMPLIANT``, power-quality log) is recorded at the
week's end with the limits not met.

Durability: the samples wait in memory and are written in one transaction per ``flush_every``
intervals (default 6: one per hour), at the close of a week and at shutdown; at start the
samples of the week running at the newest stored interval come back. An unannounced power cut
loses at most the unwritten intervals, which then count as absent (EN 50160 judges the values
present).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.ports import EventSink
from meterd.pq.en50160 import LIMITS, Limit, Sample, Verdict, WeekRecord, WeekStatistics, interval_week

log = logging.getLogger(__name__)

StoredInterval = tuple[_dt.datetime, bool, Sequence[Sample]]
"""A stored 10-min interval: its end (UTC), its flag and its samples."""


class WeekStore(Protocol):
    """Durable weekly statistics (:class:`meterd.store.pq_store.SqlitePqWeekStore`)."""

    def save_intervals(self, intervals: Sequence[StoredInterval]) -> None:
        """Store the samples of these 10-min intervals (one transaction)."""
        ...

    def load_intervals(self, since_utc: _dt.datetime) -> list[StoredInterval]:
        """The intervals ending after ``since_utc``, oldest first."""
        ...

    def last_interval_utc(self) -> _dt.datetime | None:
        """The end of the newest stored interval (None: none)."""
        ...

    def save_week(self, record: WeekRecord) -> None:
        """Store a closed week's record and drop its intervals (one transaction)."""
        ...

    def load_weeks(self, limit: int) -> list[WeekRecord]:
        """The newest ``limit`` closed weeks, oldest first."""
        ...


InterruptionCounter = Callable[[_dt.datetime, _dt.datetime], tuple[int, int]]
"""(short, long) supply interruptions that started in [start, end)."""


class WeekTracker:
    """The running EN 50160 week and the closed weeks' records."""

    def __init__(self, store: WeekStore | None, events: EventSink | None,
                 interruptions: InterruptionCounter | None = None, limits: tuple[Limit, ...] = LIMITS,
                 flush_every: int = 6, keep_weeks: int = 52) -> None:
        self._store = store
        self._events = events
        self._interruptions = interruptions
        self._limits = limits
        self._flush_every = max(1, flush_every)
        self._keep = keep_weeks
        self._pending: list[StoredInterval] = []
        self._week: WeekStatistics | None = None
        self._last_end: _dt.datetime | None = None
        self.closed: list[WeekRecord] = store.load_weeks(keep_weeks) if store is not None else []
        if store is not None:
            last = store.last_interval_utc()
            if last is not None:
                start = interval_week(last)
                self._week = WeekStatistics(start, limits)
                for _end, flagged, samples in store.load_intervals(start):
                    self._week.add_interval(samples, flagged)
                self._last_end = last

    def add_interval(self, end_utc: _dt.datetime, flagged: bool, samples: Sequence[Sample]) -> WeekRecord | None:
        """The samples of the 10-min interval ending at ``end_utc``; returns the week it closed."""
        if self._last_end is not None and end_utc <= self._last_end:
            return None  # already counted (a restart within the interval)
        closed: WeekRecord | None = None
        start = interval_week(end_utc)
        if self._week is not None and self._week.start_utc != start:
            closed = self._close()
        if self._week is None:
            self._week = WeekStatistics(start, self._limits)
        self._week.add_interval(samples, flagged)
        self._last_end = end_utc
        self._pending.append((end_utc, flagged, tuple(samples)))
        if end_utc >= self._week.end_utc:
            closed = self._close()
        elif len(self._pending) >= self._flush_every:
            self.flush()
        return closed

    def _counts(self, week: WeekStatistics) -> tuple[int, int]:
        return self._interruptions(week.start_utc, week.end_utc) if self._interruptions is not None else (0, 0)

    def _close(self) -> WeekRecord:
        assert self._week is not None
        week, self._week = self._week, None
        record = week.record(*self._counts(week))
        self.flush()
        if self._store is not None:
            self._store.save_week(record)
        self.closed = (self.closed + [record])[-self._keep:]
        if record.verdict is Verdict.NOT_COMPLIANT and self._events is not None:
            self._events.record(ec.code("EN50160_WEEK_NOT_COMPLIANT"), record.end_utc, {
                "week_start": record.start_utc.isoformat(), "failed": ",".join(record.failed)})
        log.info("EN 50160 week from %s: %s%s", record.start_utc.date().isoformat(), record.verdict.name.lower(),
                 f" ({', '.join(record.failed)})" if record.failed else "")
        return record

    def flush(self) -> None:
        """Write the samples still in memory (one transaction)."""
        if self._pending and self._store is not None:
            self._store.save_intervals(self._pending)
        self._pending = []

    def current(self) -> WeekRecord | None:
        """The running week's statistics so far (None before its first interval)."""
        return self._week.record(*self._counts(self._week)) if self._week is not None else None

    def last_closed(self) -> WeekRecord | None:
        """The record of the newest closed week."""
        return self.closed[-1] if self.closed else None

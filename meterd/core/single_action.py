"""The single-action schedule (COSEM class 22, Blue Book §4.5.7), without I/O or protocol.

A single-action schedule runs one script (a script table's logical name and script selector) at
the wall times of its ``execution_time`` list. Each entry is a time (hour, minute, second,
hundredths) and a date (year, month, day of month, day of week); a field may be a wildcard
(None): the entry then matches every value of it. The ``type`` (1..5) constrains the list:

====  =========================================================================
type  rule
====  =========================================================================
1     one entry; wildcards in the date allowed
2     n entries, all with the same time; no wildcard in the date
3     n entries, all with the same time; wildcards in the date allowed
4     n entries, times may differ; no wildcard in the date
5     n entries, times may differ; wildcards in the date allowed
====  =========================================================================

Times are the meter's legal (local wall) time: :class:`ScheduleRunner` turns them into UTC with
:class:`~meterd.core.legal_time.LegalTime` (a time in the repeated autumn hour runs once, in its
first pass; a time in the skipped spring hour runs as far past the gap as it was into it). Day of
month 0xFE is the last day of the month, 0xFD the second last. A day of week is 1 (Monday) .. 7.
An empty list (or every entry entirely unspecified) means "not scheduled".

The meter's objects: image activation 0-0:15.0.2.255 (script 0-0:10.0.107.255, 1), and any other
schedule (end of billing, pushes) built the same way.
"""

from __future__ import annotations

import calendar
import datetime as _dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from meterd.core.errors import MeterError
from meterd.core.legal_time import LegalTime, LegalTimeError

LAST_DAY = 0xFE
SECOND_LAST_DAY = 0xFD
SEARCH_DAYS = 8 * 366  # how far ahead a next execution is looked for (a 29 February on a wildcard year)


class ScheduleError(MeterError):
    """An execution-time list the schedule's type does not allow, or a field out of range."""


@dataclass(frozen=True)
class TimePattern:
    """The time of an entry; None = wildcard (every hour / minute; second and hundredths: 0)."""

    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    hundredths: int | None = None

    def __post_init__(self) -> None:
        for name, value, top in (("hour", self.hour, 23), ("minute", self.minute, 59),
                                 ("second", self.second, 59), ("hundredths", self.hundredths, 99)):
            if value is not None and not 0 <= value <= top:
                raise ScheduleError(f"{name} {value} out of range 0..{top}")

    @property
    def unspecified(self) -> bool:
        return self.hour is None and self.minute is None and self.second is None

    def times(self) -> Iterator[_dt.time]:
        """Every wall time of a day this pattern matches, in order."""
        for hour in range(24) if self.hour is None else (self.hour,):
            for minute in range(60) if self.minute is None else (self.minute,):
                yield _dt.time(hour, minute, self.second or 0)


@dataclass(frozen=True)
class DatePattern:
    """The date of an entry; None = wildcard. ``day``: 1..31, :data:`LAST_DAY`,
    :data:`SECOND_LAST_DAY`; ``weekday``: 1 (Monday) .. 7."""

    year: int | None = None
    month: int | None = None
    day: int | None = None
    weekday: int | None = None

    def __post_init__(self) -> None:
        if self.month is not None and not 1 <= self.month <= 12:
            raise ScheduleError(f"month {self.month} out of range 1..12 (DST months are not offered)")
        if self.day is not None and not (1 <= self.day <= 31 or self.day in (LAST_DAY, SECOND_LAST_DAY)):
            raise ScheduleError(f"day of month {self.day} out of range")
        if self.weekday is not None and not 1 <= self.weekday <= 7:
            raise ScheduleError(f"day of week {self.weekday} out of range 1..7")
        if self.year is not None and not 1970 <= self.year <= 9999:
            raise ScheduleError(f"year {self.year} out of range")

    @property
    def has_wildcard(self) -> bool:
        """A wildcard in year, month or day (the day of week may be left out of a full date)."""
        return self.year is None or self.month is None or self.day is None

    @property
    def unspecified(self) -> bool:
        return self.year is None and self.month is None and self.day is None and self.weekday is None

    def matches(self, day: _dt.date) -> bool:
        """Whether ``day`` is one of this pattern's dates."""
        if self.year is not None and day.year != self.year:
            return False
        if self.month is not None and day.month != self.month:
            return False
        if self.weekday is not None and day.isoweekday() != self.weekday:
            return False
        if self.day is None:
            return True
        last = calendar.monthrange(day.year, day.month)[1]
        wanted = last if self.day == LAST_DAY else last - 1 if self.day == SECOND_LAST_DAY else self.day
        return day.day == wanted


@dataclass(frozen=True)
class ExecutionTime:
    """One entry of ``execution_time``: a time and a date pattern."""

    time: TimePattern
    date: DatePattern

    @property
    def unspecified(self) -> bool:
        return self.time.unspecified and self.date.unspecified


@dataclass(frozen=True)
class SingleActionSchedule:
    """A class 22 schedule: ``script`` (logical name of a script table, dotted) and ``selector``
    (its script id), ``type`` 1..5 and the ``times`` (checked by :meth:`check`)."""

    script: str
    selector: int
    type: int = 1
    times: tuple[ExecutionTime, ...] = field(default=())

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`ScheduleError` when ``times`` break the rules of ``type``."""
        if not 1 <= self.type <= 5:
            raise ScheduleError(f"type {self.type} out of range 1..5")
        active = [t for t in self.times if not t.unspecified]
        if self.type == 1 and len(self.times) > 1:
            raise ScheduleError(f"type 1 allows one execution time, got {len(self.times)}")
        if self.type in (2, 3) and len({t.time for t in active}) > 1:
            raise ScheduleError(f"type {self.type} needs the same time in every entry")
        if self.type in (2, 4) and any(t.date.has_wildcard for t in active):
            raise ScheduleError(f"type {self.type} allows no wildcard in the date")

    @property
    def scheduled(self) -> bool:
        """Whether any entry is set (an empty or entirely unspecified list schedules nothing)."""
        return any(not t.unspecified for t in self.times)

    def next_wall_after(self, wall: _dt.datetime) -> _dt.datetime | None:
        """The first wall time strictly after ``wall`` (naive) that an entry matches, looked for
        up to :data:`SEARCH_DAYS` days ahead; None when there is none."""
        best: _dt.datetime | None = None
        for entry in self.times:
            if entry.unspecified:
                continue
            found = _next_of(entry, wall, best)
            if found is not None and (best is None or found < best):
                best = found
        return best


def _next_of(entry: ExecutionTime, wall: _dt.datetime, bound: _dt.datetime | None) -> _dt.datetime | None:
    start = wall.date()
    if entry.date.year is not None and entry.date.year < start.year:
        return None
    for offset in range(SEARCH_DAYS):
        day = start + _dt.timedelta(days=offset)
        if bound is not None and _dt.datetime.combine(day, _dt.time()) > bound:
            return None
        if entry.date.year is not None and day.year > entry.date.year:
            return None
        if not entry.date.matches(day):
            continue
        for t in entry.time.times():
            candidate = _dt.datetime.combine(day, t)
            if candidate > wall:
                return candidate
    return None


class ScheduleRunner:
    """Decides, from the meter clock, when a :class:`SingleActionSchedule` is due.

    :meth:`due` is called with the meter's UTC time (each metering cycle) and the legal-time
    rules in force; it answers True once for each execution time reached since the previous
    call. A clock set forward past execution times runs the script once (not once per missed
    time); a clock set back does not run it again for times already passed. Changing the
    schedule (:meth:`set_schedule`) starts the count from the next call's time.
    """

    def __init__(self, schedule: SingleActionSchedule) -> None:
        self.schedule = schedule
        self._last_utc: _dt.datetime | None = None
        self._next_utc: _dt.datetime | None = None
        self._legal: LegalTime | None = None

    def set_schedule(self, schedule: SingleActionSchedule) -> None:
        """Use ``schedule`` from now on."""
        self.schedule = schedule
        self._last_utc = None
        self._next_utc = None

    @property
    def next_utc(self) -> _dt.datetime | None:
        """The next execution (UTC) as computed at the last :meth:`due` call, or None."""
        return self._next_utc

    def due(self, now_utc: _dt.datetime, legal: LegalTime) -> bool:
        """Whether the script is to run at ``now_utc`` (aware)."""
        if self._last_utc is None or now_utc < self._last_utc or legal is not self._legal:
            self._legal = legal
            self._last_utc = now_utc
            self._next_utc = self._next_after(now_utc, legal)
            return False
        self._last_utc = now_utc
        if self._next_utc is None or now_utc < self._next_utc:
            return False
        self._next_utc = self._next_after(now_utc, legal)
        return True

    def _next_after(self, utc: _dt.datetime, legal: LegalTime) -> _dt.datetime | None:
        """The first execution instant strictly after ``utc``."""
        if not self.schedule.scheduled:
            return None
        wall = legal.local(utc).wall
        for _ in range(1000):  # wall times already passed in UTC (the repeated hour) are skipped
            nxt = self.schedule.next_wall_after(wall)
            if nxt is None:
                return None
            try:
                when = legal.utc_of_wall(nxt)
            except LegalTimeError:
                wall = nxt
                continue
            if when > utc:
                return when
            wall = nxt
        return None


def parse_times(entries: Sequence[tuple[TimePattern, DatePattern]]) -> tuple[ExecutionTime, ...]:
    """Execution times from (time, date) pairs."""
    return tuple(ExecutionTime(t, d) for t, d in entries)

"""Legal (local) time from UTC by the rules of the DLMS clock object (class 8, 0-0:1.0.0.255).

Clock attributes modelled: 3 ``time_zone`` (minutes, Blue Book convention "local normal time to
UTC": UTC = local normal time + time_zone, so CET is −60), 5 ``daylight_savings_begin`` and
6 ``daylight_savings_end`` (date-time patterns, e.g. "last Sunday of March 01:00 UTC"),
7 ``daylight_savings_deviation`` (minutes added while DST is active), 8 ``daylight_savings_enabled``.
Clock status bits (attribute 4) are in :class:`ClockStatus`.

Transition patterns: a pattern without a deviation is read as the wall clock shows it at that
moment (normal time for the begin, DST time for the end); with a deviation it is an absolute
instant (deviation 0: UTC).

Tariff time (how switch times meet DST, see :meth:`LegalTime.tariff_wall`): switch times are
local wall-clock times. Energy of the interval ending at instant t is booked at the wall time in
force just before t. In the spring-forward gap the wall clock jumps, so a switch time inside the
missing hour takes effect at the end of the gap (the DST begin instant). In the repeated autumn
hour the tariff wall time stays at the end of the first pass, so switches inside that hour apply
once (in the first pass) and the second pass keeps the rate reached at its end.
"""

from __future__ import annotations

import calendar as _cal
import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Any

from meterd.core.errors import MeterError

UTC = _dt.UTC
LAST_DAY = 0xFE
SECOND_LAST_DAY = 0xFD
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)


class LegalTimeError(MeterError):
    """A clock setting or date-time pattern is invalid."""


class ClockStatus(enum.IntFlag):
    """DLMS clock status byte (class 8 attribute 4 and date-time byte 12)."""

    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


@dataclass(frozen=True)
class DateTimePattern:
    """A DLMS date-time with wildcards (None = "not specified"), used for DST begin/end.

    day_of_month: 1..31, LAST_DAY (0xFE) or SECOND_LAST_DAY (0xFD). day_of_week: 1 (Monday)..7.
    With both set: day 1..31 means "the first such weekday on or after that day"; LAST_DAY /
    SECOND_LAST_DAY mean "the last such weekday on or before that day". deviation_min: DLMS
    deviation (UTC = time + deviation) or None for wall-clock time.
    """

    month: int
    day_of_month: int | None = None
    day_of_week: int | None = None
    hour: int = 0
    minute: int = 0
    second: int = 0
    year: int | None = None
    deviation_min: int | None = None

    def __post_init__(self) -> None:
        checks = (
            (1 <= self.month <= 12, "month must be 1..12"),
            (self.day_of_month is None or 1 <= self.day_of_month <= 31
             or self.day_of_month in (LAST_DAY, SECOND_LAST_DAY), "day_of_month out of range"),
            (self.day_of_week is None or 1 <= self.day_of_week <= 7, "day_of_week must be 1..7"),
            (0 <= self.hour <= 23 and 0 <= self.minute <= 59 and 0 <= self.second <= 59, "bad time"),
            (self.deviation_min is None or -840 <= self.deviation_min <= 840, "deviation out of range"),
        )
        for ok, reason in checks:
            if not ok:
                raise LegalTimeError(f"date-time pattern {self!r}: {reason}")

    def resolve(self, year: int) -> _dt.datetime | None:
        """The naive date-time this pattern names in ``year`` (None if it names another year)."""
        if self.year is not None and self.year != year:
            return None
        day = self._day(year)
        base = _dt.datetime(year, self.month, 1) + _dt.timedelta(days=day - 1)
        return base.replace(hour=self.hour, minute=self.minute, second=self.second)

    def _day(self, year: int) -> int:
        last = _cal.monthrange(year, self.month)[1]
        dom = self.day_of_month
        if dom in (LAST_DAY, SECOND_LAST_DAY):
            anchor = last if dom == LAST_DAY else last - 1
            if self.day_of_week is None:
                return anchor
            weekday = _dt.date(year, self.month, anchor).isoweekday()
            return anchor - (weekday - self.day_of_week) % 7
        start = 1 if dom is None else min(dom, last)
        if self.day_of_week is None:
            return start
        weekday = _dt.date(year, self.month, start).isoweekday()
        return start + (self.day_of_week - weekday) % 7

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for persistence and DLMS adapters."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DateTimePattern:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class ClockSettings:
    """The legal-time attributes of the DLMS clock object (minutes)."""

    time_zone_min: int = 0
    dst_begin: DateTimePattern | None = None
    dst_end: DateTimePattern | None = None
    dst_deviation_min: int = 60
    dst_enabled: bool = False

    def __post_init__(self) -> None:
        if not -840 <= self.time_zone_min <= 720:
            raise LegalTimeError(f"time_zone {self.time_zone_min} min out of range −840..720")
        if not -120 <= self.dst_deviation_min <= 120:
            raise LegalTimeError(f"daylight_savings_deviation {self.dst_deviation_min} out of −120..120")
        if self.dst_enabled and (self.dst_begin is None or self.dst_end is None):
            raise LegalTimeError("daylight saving enabled without begin and end")

    @property
    def normal_offset_min(self) -> int:
        """Local normal time minus UTC (minutes), e.g. +60 for CET."""
        return -self.time_zone_min

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for persistence and DLMS adapters."""
        return {
            "time_zone_min": self.time_zone_min,
            "dst_begin": None if self.dst_begin is None else self.dst_begin.to_dict(),
            "dst_end": None if self.dst_end is None else self.dst_end.to_dict(),
            "dst_deviation_min": self.dst_deviation_min,
            "dst_enabled": self.dst_enabled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClockSettings:
        """Inverse of :meth:`to_dict`."""
        begin, end = data.get("dst_begin"), data.get("dst_end")
        return cls(
            time_zone_min=int(data["time_zone_min"]),
            dst_begin=None if begin is None else DateTimePattern.from_dict(begin),
            dst_end=None if end is None else DateTimePattern.from_dict(end),
            dst_deviation_min=int(data.get("dst_deviation_min", 60)),
            dst_enabled=bool(data.get("dst_enabled", False)),
        )


def eu_clock_settings(normal_offset_min: int) -> ClockSettings:
    """EU rules: DST from the last Sunday of March to the last Sunday of October, 01:00 UTC."""
    begin = DateTimePattern(month=3, day_of_month=LAST_DAY, day_of_week=7, hour=1, deviation_min=0)
    end = DateTimePattern(month=10, day_of_month=LAST_DAY, day_of_week=7, hour=1, deviation_min=0)
    return ClockSettings(-normal_offset_min, begin, end, 60, True)


@dataclass(frozen=True)
class LocalTime:
    """Legal time at one instant.

    wall: naive local date-time; utc_offset_min: local minus UTC (minutes); dst_active;
    fold: 1 in the second pass of a repeated (autumn) hour, else 0.
    """

    wall: _dt.datetime
    utc_offset_min: int
    dst_active: bool
    fold: int

    @property
    def deviation_min(self) -> int:
        """DLMS date-time deviation (UTC = local + deviation), e.g. −120 in CEST."""
        return -self.utc_offset_min

    def status(self, invalid: bool = False, doubtful: bool = False) -> ClockStatus:
        """DLMS clock status for this time."""
        s = ClockStatus(0)
        if self.dst_active:
            s |= ClockStatus.DAYLIGHT_SAVING_ACTIVE
        if invalid:
            s |= ClockStatus.INVALID_VALUE
        if doubtful:
            s |= ClockStatus.DOUBTFUL_VALUE
        return s


def to_epoch_s(utc: _dt.datetime) -> float:
    """POSIX seconds (s) of an aware datetime."""
    return (utc - _EPOCH).total_seconds()


def from_epoch_s(epoch_s: float) -> _dt.datetime:
    """Aware UTC datetime of POSIX seconds (s)."""
    return _EPOCH + _dt.timedelta(seconds=epoch_s)


class LegalTime:
    """Converts between UTC and legal local time under one :class:`ClockSettings`."""

    def __init__(self, settings: ClockSettings) -> None:
        self.settings = settings
        self._normal = _dt.timedelta(minutes=settings.normal_offset_min)
        self._dst_dev = _dt.timedelta(minutes=settings.dst_deviation_min)
        self._years: dict[int, list[tuple[_dt.datetime, bool]]] = {}

    def _year_events(self, year: int) -> list[tuple[_dt.datetime, bool]]:
        """DST transitions (UTC instant, True = begin) whose pattern falls in ``year``."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        events: list[tuple[_dt.datetime, bool]] = []
        s = self.settings
        if s.dst_enabled and s.dst_begin is not None and s.dst_end is not None:
            for pattern, is_begin in ((s.dst_begin, True), (s.dst_end, False)):
                wall = pattern.resolve(year)
                if wall is None:
                    continue
                if pattern.deviation_min is not None:
                    utc_naive = wall + _dt.timedelta(minutes=pattern.deviation_min)
                else:
                    utc_naive = wall - self._normal - (_dt.timedelta(0) if is_begin else self._dst_dev)
                events.append((utc_naive.replace(tzinfo=UTC), is_begin))
        events.sort()
        self._years[year] = events
        return events

    def events_around(self, utc: _dt.datetime) -> list[tuple[_dt.datetime, bool]]:
        """DST transitions of the year of ``utc`` and its neighbours, sorted (UTC, is_begin)."""
        out: list[tuple[_dt.datetime, bool]] = []
        for year in (utc.year - 1, utc.year, utc.year + 1):
            out.extend(self._year_events(year))
        out.sort()
        return out

    def _dst_at(self, utc: _dt.datetime, left_limit: bool) -> tuple[bool, _dt.datetime | None]:
        """DST state at ``utc`` (or just before it) and the last transition reached."""
        state, last = False, None
        for when, is_begin in self.events_around(utc):
            if when < utc or (when == utc and not left_limit):
                state, last = is_begin, when
            else:
                break
        return state, last

    def local(self, utc: _dt.datetime) -> LocalTime:
        """Legal time at the instant ``utc`` (aware)."""
        dst, last = self._dst_at(utc, left_limit=False)
        offset = self._normal + (self._dst_dev if dst else _dt.timedelta(0))
        fold = int(not dst and last is not None and self._dst_dev > _dt.timedelta(0)
                   and utc < last + self._dst_dev)
        return LocalTime((utc + offset).replace(tzinfo=None), _minutes(offset), dst, fold)

    def tariff_wall(self, utc: _dt.datetime) -> _dt.datetime:
        """Wall time at which energy of an interval ending at ``utc`` is booked (see module doc)."""
        dst, last = self._dst_at(utc, left_limit=True)
        if not dst and last is not None and self._dst_dev > _dt.timedelta(0) and utc <= last + self._dst_dev:
            return (last + self._normal + self._dst_dev).replace(tzinfo=None)
        offset = self._normal + (self._dst_dev if dst else _dt.timedelta(0))
        return (utc + offset).replace(tzinfo=None)

    def to_utc(self, wall: _dt.datetime, fold: int = 0) -> _dt.datetime:
        """UTC of a naive wall time; a time in the spring gap maps to the end of the gap.

        In a repeated hour, fold 0 picks the first pass (DST), fold 1 the second.
        """
        as_normal = (wall - self._normal).replace(tzinfo=UTC)
        as_dst = (wall - self._normal - self._dst_dev).replace(tzinfo=UTC)
        fits = [u for u in sorted((as_normal, as_dst)) if self.local(u).wall == wall]
        if fits:
            return fits[-1] if fold and len(fits) > 1 else fits[0]
        lo, hi = sorted((as_normal, as_dst))
        for when, is_begin in self.events_around(lo):
            if lo <= when <= hi and is_begin == (self._dst_dev > _dt.timedelta(0)):
                return when
        raise LegalTimeError(f"wall time {wall} cannot be mapped to UTC")

    def utc_of_wall(self, wall: _dt.datetime, dst_hint: bool | None = None) -> _dt.datetime:
        """UTC of a naive wall time given without a deviation (clock attribute 2 written with
        deviation 0x8000 "not specified"); deterministic around DST changes:

        * a wall time that occurs once: that instant;
        * a wall time of the repeated hour (DST end): ``dst_hint`` True picks the pass in DST,
          False the pass in normal time, None (status not specified) the earlier pass;
        * a wall time of the skipped hour (DST begin gap): read with the UTC offset in force just
          before the gap, so it lands as far past the gap as it was into it (EU: 02:30 on the
          spring-forward day is 01:30 UTC, shown as 03:30, as a clock not yet put forward would
          show it). ``dst_hint`` is ignored here.

        Unlike :meth:`to_utc` (tariff switch times, where the whole gap maps to its end), wall times
        keep their distance across the gap.
        """
        as_normal = (wall - self._normal).replace(tzinfo=UTC)
        as_dst = (wall - self._normal - self._dst_dev).replace(tzinfo=UTC)
        candidates = sorted({as_normal, as_dst})
        fits = [u for u in candidates if self.local(u).wall == wall]
        if len(fits) > 1 and dst_hint is not None:
            return next((u for u in fits if self.local(u).dst_active == dst_hint), fits[0])
        if fits:
            return fits[0]
        lo, hi = candidates[0], candidates[-1]
        for when, _is_begin in self.events_around(lo):
            if lo < when <= hi:
                dst_before, _ = self._dst_at(when, left_limit=True)
                offset_before = self._normal + (self._dst_dev if dst_before else _dt.timedelta(0))
                return (wall - offset_before).replace(tzinfo=UTC)
        raise LegalTimeError(f"wall time {wall} cannot be mapped to UTC")

    def next_change(self, utc: _dt.datetime) -> _dt.datetime | None:
        """The next instant after ``utc`` at which the tariff wall time jumps (DST edges)."""
        candidates: list[_dt.datetime] = []
        for when, is_begin in self.events_around(utc):
            candidates.append(when)
            if not is_begin:
                candidates.append(when + self._dst_dev)
        later = [c for c in candidates if c > utc]
        return min(later) if later else None

    def next_local_midnight(self, utc: _dt.datetime) -> _dt.datetime:
        """The first local midnight strictly after ``utc`` (UTC)."""
        day = self.local(utc).wall.date()
        while True:
            day += _dt.timedelta(days=1)
            candidate = self.to_utc(_dt.datetime.combine(day, _dt.time()))
            if candidate > utc:
                return candidate


def _minutes(delta: _dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)

"""Time-of-use activity calendar (DLMS class 20, 0-0:13.0.0.255) with special days (class 11).

A calendar set holds seasons (start date → week profile), week profiles (seven day ids, Monday
first, so weekends are just other day ids) and day profiles (switch times → rate 1..8). Special
days (0-0:11.0.0.255) map a fixed or yearly-recurring date to a day id and win over the week
profile. The activity calendar holds an active and a passive set; the passive set becomes
active at its activation date-time (local time).

Switch semantics: a switch at local time s applies from s onwards; the rate of an instant is the
rate of the latest switch at or before it, looking back into previous days when the day has no
earlier switch (a day profile need not start at 00:00: the previous day's last switch is
still in force). :meth:`ActivityCalendar.rate_before`
gives the rate in force just before a wall time, used to book the energy of an interval ending
at that time (see :mod:`meterd.core.legal_time` for DST).
"""

from __future__ import annotations

import bisect
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from meterd.core.errors import MeterError

MAX_RATE = 8


class CalendarError(MeterError):
    """A calendar definition is invalid; the message names the element and the reason."""


@dataclass(frozen=True, order=True)
class SwitchPoint:
    """A tariff switch: at ``start_s`` seconds after local midnight, rate ``rate`` (1..8)."""

    start_s: int
    rate: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < 86400:
            raise CalendarError(f"switch time {self.start_s} s outside 0..86399")
        if not 1 <= self.rate <= MAX_RATE:
            raise CalendarError(f"rate {self.rate} outside 1..{MAX_RATE}")

    def to_dict(self) -> dict[str, Any]:
        """{"start": "HH:MM:SS", "rate": n}."""
        h, rem = divmod(self.start_s, 3600)
        return {"start": f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}", "rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwitchPoint:
        """Inverse of :meth:`to_dict` ("HH:MM" is accepted too)."""
        parts = [int(p) for p in str(data["start"]).split(":")]
        if len(parts) == 2:
            parts.append(0)
        if len(parts) != 3:
            raise CalendarError(f"switch time {data['start']!r} is not HH:MM[:SS]")
        return cls(parts[0] * 3600 + parts[1] * 60 + parts[2], int(data["rate"]))


def at(hhmm: str, rate: int) -> SwitchPoint:
    """Shorthand: ``at("07:30", 2)``."""
    return SwitchPoint.from_dict({"start": hhmm, "rate": rate})


@dataclass(frozen=True)
class DayProfile:
    """A day profile: its id and one or more switch points (distinct times)."""

    day_id: int
    switches: tuple[SwitchPoint, ...]

    def __post_init__(self) -> None:
        if not self.switches:
            raise CalendarError(f"day profile {self.day_id} has no switch point")
        object.__setattr__(self, "switches", tuple(sorted(self.switches)))
        starts = [s.start_s for s in self.switches]
        if len(set(starts)) != len(starts):
            raise CalendarError(f"day profile {self.day_id} has two switches at the same time")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"day_id": self.day_id, "switches": [s.to_dict() for s in self.switches]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["day_id"]), tuple(SwitchPoint.from_dict(s) for s in data["switches"]))


@dataclass(frozen=True)
class WeekProfile:
    """A week profile: name and seven day ids, Monday first."""

    name: str
    day_ids: tuple[int, int, int, int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"name": self.name, "day_ids": list(self.day_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeekProfile:
        """Inverse of :meth:`to_dict`."""
        ids = tuple(int(i) for i in data["day_ids"])
        if len(ids) != 7:
            raise CalendarError(f"week profile {data.get('name')!r} needs 7 day ids")
        return cls(str(data["name"]), (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6]))


@dataclass(frozen=True)
class YearDate:
    """A date, fixed (year given) or recurring every year (year None). 29 Feb recurs as 28 Feb."""

    month: int
    day: int
    year: int | None = None

    def __post_init__(self) -> None:
        try:
            _dt.date(2000 if self.year is None else self.year, self.month, self.day)
        except ValueError as exc:
            raise CalendarError(f"invalid date {self!r}: {exc}") from None

    def in_year(self, year: int) -> _dt.date | None:
        """This date in ``year`` (None when fixed to another year)."""
        if self.year is not None and self.year != year:
            return None
        day = self.day
        if self.month == 2 and day == 29 and not _is_leap(year):
            day = 28
        return _dt.date(year, self.month, day)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"month": self.month, "day": self.day, "year": self.year}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YearDate:
        """Inverse of :meth:`to_dict`."""
        year = data.get("year")
        return cls(int(data["month"]), int(data["day"]), None if year is None else int(year))


@dataclass(frozen=True)
class Season:
    """A season: from ``start`` (local date) until the next season starts, use ``week_name``."""

    name: str
    start: YearDate
    week_name: str

    def last_start_on_or_before(self, day: _dt.date) -> _dt.date | None:
        """The latest start date of this season that is not after ``day``."""
        for year in (day.year, day.year - 1):
            start = self.start.in_year(year)
            if start is not None and start <= day:
                return start
        if self.start.year is not None and self.start.year < day.year - 1:
            return self.start.in_year(self.start.year)
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"name": self.name, "start": self.start.to_dict(), "week_name": self.week_name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Season:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["name"]), YearDate.from_dict(data["start"]), str(data["week_name"]))


@dataclass(frozen=True)
class SpecialDay:
    """A special day (holiday): entry index, date (fixed or yearly) and the day id to use."""

    index: int
    date: YearDate
    day_id: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"index": self.index, "date": self.date.to_dict(), "day_id": self.day_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpecialDay:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["index"]), YearDate.from_dict(data["date"]), int(data["day_id"]))


@dataclass(frozen=True)
class SpecialDaysTable:
    """Special days table (class 11, 0-0:11.0.0.255). A fixed date wins over a recurring one."""

    entries: tuple[SpecialDay, ...] = ()

    def __post_init__(self) -> None:
        indices = [e.index for e in self.entries]
        if len(set(indices)) != len(indices):
            raise CalendarError("special days table has duplicate indices")

    def day_id_for(self, day: _dt.date) -> int | None:
        """The special day id of ``day``, or None for an ordinary day."""
        found: int | None = None
        for entry in self.entries:
            if entry.date.in_year(day.year) == day:
                if entry.date.year is not None:
                    return entry.day_id
                found = entry.day_id
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpecialDaysTable:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(SpecialDay.from_dict(e) for e in data.get("entries", [])))


@dataclass(frozen=True)
class CalendarSet:
    """One calendar (the active or the passive half of class 20): seasons, weeks and days."""

    name: str
    seasons: tuple[Season, ...]
    week_profiles: tuple[WeekProfile, ...]
    day_profiles: tuple[DayProfile, ...]

    def __post_init__(self) -> None:
        if not self.seasons:
            raise CalendarError(f"calendar {self.name!r} has no season")
        weeks = {w.name for w in self.week_profiles}
        days = {d.day_id for d in self.day_profiles}
        if len(weeks) != len(self.week_profiles):
            raise CalendarError(f"calendar {self.name!r} has duplicate week profile names")
        if len(days) != len(self.day_profiles):
            raise CalendarError(f"calendar {self.name!r} has duplicate day ids")
        for season in self.seasons:
            if season.week_name not in weeks:
                raise CalendarError(f"season {season.name!r} uses unknown week {season.week_name!r}")
        for week in self.week_profiles:
            missing = sorted(set(week.day_ids) - days)
            if missing:
                raise CalendarError(f"week profile {week.name!r} uses unknown day ids {missing}")

    def day_id_for(self, day: _dt.date) -> int:
        """The week-profile day id of ``day`` (the season in force, then the weekday)."""
        best: tuple[_dt.date, Season] | None = None
        for season in self.seasons:
            start = season.last_start_on_or_before(day)
            if start is not None and (best is None or start > best[0]):
                best = (start, season)
        if best is None:
            raise CalendarError(f"calendar {self.name!r}: no season covers {day}")
        week = next(w for w in self.week_profiles if w.name == best[1].week_name)
        return week.day_ids[day.weekday()]

    def day_profile(self, day_id: int) -> DayProfile:
        """The day profile with ``day_id``."""
        for profile in self.day_profiles:
            if profile.day_id == day_id:
                return profile
        raise CalendarError(f"calendar {self.name!r} has no day profile {day_id}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {
            "name": self.name,
            "seasons": [s.to_dict() for s in self.seasons],
            "week_profiles": [w.to_dict() for w in self.week_profiles],
            "day_profiles": [d.to_dict() for d in self.day_profiles],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalendarSet:
        """Inverse of :meth:`to_dict`."""
        return cls(
            str(data["name"]),
            tuple(Season.from_dict(s) for s in data["seasons"]),
            tuple(WeekProfile.from_dict(w) for w in data["week_profiles"]),
            tuple(DayProfile.from_dict(d) for d in data["day_profiles"]),
        )


def single_rate_calendar(rate: int = 1) -> CalendarSet:
    """A calendar with one rate all the time (the meter's default)."""
    day = DayProfile(1, (SwitchPoint(0, rate),))
    week = WeekProfile("all", (1, 1, 1, 1, 1, 1, 1))
    return CalendarSet("single", (Season("all", YearDate(1, 1), "all"),), (week,), (day,))


@dataclass
class ActivityCalendar:
    """Activity calendar: active and passive sets, activation time (local), special days."""

    active: CalendarSet
    special_days: SpecialDaysTable = field(default_factory=SpecialDaysTable)
    passive: CalendarSet | None = None
    activate_passive_at: _dt.datetime | None = None
    _days: dict[_dt.date, tuple[list[int], list[int]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._check_special_days(self.active)

    def _check_special_days(self, cal: CalendarSet) -> None:
        ids = {d.day_id for d in cal.day_profiles}
        for entry in self.special_days.entries:
            if entry.day_id not in ids:
                raise CalendarError(f"special day {entry.index} uses unknown day id {entry.day_id}")

    def set_passive(self, passive: CalendarSet, activate_at_local: _dt.datetime | None) -> None:
        """Write the passive calendar and its activation time (naive local)."""
        self._check_special_days(passive)
        self.passive, self.activate_passive_at = passive, activate_at_local

    def set_special_days(self, table: SpecialDaysTable) -> None:
        """Replace the special days table (checked against the active calendar)."""
        old, self.special_days = self.special_days, table
        try:
            self._check_special_days(self.active)
        except CalendarError:
            self.special_days = old
            raise
        self._days.clear()

    def activate_passive(self) -> None:
        """Copy the passive calendar into the active one now (class 20 method 1)."""
        if self.passive is None:
            raise CalendarError("no passive calendar to activate")
        self.active, self.activate_passive_at = self.passive, None
        self._days.clear()

    def activate_if_due(self, wall: _dt.datetime) -> bool:
        """Activate the passive calendar once ``wall`` (local) is past its activation time.

        Energy of an interval ending exactly at the activation time still uses the old set.
        """
        due = self.activate_passive_at
        if self.passive is None or due is None or wall <= due:
            return False
        self.activate_passive()
        return True

    def day_profile_for(self, day: _dt.date) -> DayProfile:
        """The day profile in force on local date ``day`` (special day, else season/week)."""
        special = self.special_days.day_id_for(day)
        day_id = special if special is not None else self.active.day_id_for(day)
        return self.active.day_profile(day_id)

    def _day(self, day: _dt.date) -> tuple[list[int], list[int]]:
        cached = self._days.get(day)
        if cached is None:
            if len(self._days) > 64:
                self._days.clear()
            profile = self.day_profile_for(day)
            cached = ([s.start_s for s in profile.switches], [s.rate for s in profile.switches])
            self._days[day] = cached
        return cached

    def _rate(self, wall: _dt.datetime, strict: bool) -> int:
        seconds = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
        day = wall.date()
        starts, rates = self._day(day)
        i = (bisect.bisect_left if strict else bisect.bisect_right)(starts, seconds)
        if i:
            return rates[i - 1]
        # Day profiles are never empty, so the previous day's last switch is still in force.
        return self._day(day - _dt.timedelta(days=1))[1][-1]

    def rate_at(self, wall: _dt.datetime) -> int:
        """Rate (1..8) in force at local wall time ``wall`` (a switch at ``wall`` counts)."""
        return self._rate(wall, strict=False)

    def rate_before(self, wall: _dt.datetime) -> int:
        """Rate in force just before ``wall``: the rate of an interval that ends at ``wall``."""
        return self._rate(wall, strict=True)

    def next_switch_after(self, wall: _dt.datetime) -> _dt.datetime:
        """The first switch time or midnight strictly after ``wall`` (naive local)."""
        seconds = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
        starts = self._day(wall.date())[0]
        i = bisect.bisect_right(starts, seconds)
        midnight = _dt.datetime.combine(wall.date() + _dt.timedelta(days=1), _dt.time())
        if i < len(starts):
            return min(midnight, _dt.datetime.combine(wall.date(), _dt.time()) + _dt.timedelta(seconds=starts[i]))
        return midnight

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (both sets, activation time as ISO text, special days)."""
        return {
            "active": self.active.to_dict(),
            "passive": None if self.passive is None else self.passive.to_dict(),
            "activate_passive_at": None if self.activate_passive_at is None
            else self.activate_passive_at.isoformat(),
            "special_days": self.special_days.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivityCalendar:
        """Inverse of :meth:`to_dict`."""
        passive = data.get("passive")
        when = data.get("activate_passive_at")
        return cls(
            active=CalendarSet.from_dict(data["active"]),
            special_days=SpecialDaysTable.from_dict(data.get("special_days", {})),
            passive=None if passive is None else CalendarSet.from_dict(passive),
            activate_passive_at=None if when is None else _dt.datetime.fromisoformat(when),
        )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)

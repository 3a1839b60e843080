"""The single-action schedule (class 22): type rules, wildcards, legal time, clock jumps."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core.legal_time import ClockSettings, LegalTime, eu_clock_settings
from meterd.core.single_action import (
    LAST_DAY,
    DatePattern,
    ExecutionTime,
    ScheduleError,
    ScheduleRunner,
    SingleActionSchedule,
    TimePattern,
)

UTC = dt.UTC
CET = LegalTime(eu_clock_settings(60))
PLAIN = LegalTime(ClockSettings())


def at(hour: int, minute: int = 0, second: int = 0) -> TimePattern:
    return TimePattern(hour, minute, second, 0)


def on(year: int | None, month: int | None, day: int | None, weekday: int | None = None) -> DatePattern:
    return DatePattern(year, month, day, weekday)


def sched(*entries: tuple[TimePattern, DatePattern], type_: int = 1) -> SingleActionSchedule:
    return SingleActionSchedule("0.0.10.0.107.255", 1, type_, tuple(ExecutionTime(t, d) for t, d in entries))


def test_type_rules():
    with pytest.raises(ScheduleError, match="one execution time"):
        sched((at(1), on(2026, 1, 2)), (at(1), on(2026, 1, 3)), type_=1)
    with pytest.raises(ScheduleError, match="same time"):
        sched((at(1), on(2026, 1, 2)), (at(2), on(2026, 1, 3)), type_=2)
    with pytest.raises(ScheduleError, match="no wildcard"):
        sched((at(1), on(None, 1, 2)), type_=2)
    with pytest.raises(ScheduleError, match="no wildcard"):
        sched((at(1), on(2026, 1, 2)), (at(2), on(2026, None, 3)), type_=4)
    with pytest.raises(ScheduleError, match="type 6"):
        sched(type_=6)
    with pytest.raises(ScheduleError, match="hour 24"):
        TimePattern(24, 0, 0, 0)
    with pytest.raises(ScheduleError, match="month 13"):
        DatePattern(None, 13, 1, None)
    # allowed: wildcards in the date for 1, 3, 5; different times for 4 and 5
    sched((at(1), on(None, None, 1)), type_=1)
    sched((at(1), on(None, 1, 2)), (at(1), on(None, 2, 2)), type_=3)
    sched((at(1), on(2026, 1, 2)), (at(5), on(2026, 1, 3)), type_=4)
    sched((at(1), on(None, None, None, 1)), (at(5), on(None, 2, LAST_DAY)), type_=5)


def test_next_wall_with_wildcards_and_last_day():
    monthly = sched((at(23, 30), on(None, None, LAST_DAY)))
    assert monthly.next_wall_after(dt.datetime(2026, 2, 1)) == dt.datetime(2026, 2, 28, 23, 30)
    assert monthly.next_wall_after(dt.datetime(2026, 2, 28, 23, 30)) == dt.datetime(2026, 3, 31, 23, 30)
    mondays = sched((at(6), on(None, None, None, 1)))
    assert mondays.next_wall_after(dt.datetime(2026, 1, 1)) == dt.datetime(2026, 1, 5, 6)  # 1 Jan 2026: Thursday
    hourly = sched((TimePattern(None, 15, 0, 0), on(None, None, None)))
    assert hourly.next_wall_after(dt.datetime(2026, 1, 1, 10, 15)) == dt.datetime(2026, 1, 1, 11, 15)
    once = sched((at(3), on(2026, 5, 1)))
    assert once.next_wall_after(dt.datetime(2026, 5, 1, 3)) is None  # passed, never again
    assert not sched().scheduled
    assert not sched((TimePattern(), DatePattern())).scheduled


def test_runs_once_at_a_local_time_sixty_days_ahead_across_the_dst_change():
    """Schedule 10:00 local on 1 April (CEST, UTC+2) from 1 February (CET): stepped minute by
    minute over sixty days of meter time, it is due exactly once, at 08:00 UTC."""
    runner = ScheduleRunner(sched((at(10), on(2026, 4, 1))))
    now = dt.datetime(2026, 2, 1, tzinfo=UTC)
    fired: list[dt.datetime] = []
    while now < dt.datetime(2026, 4, 2, tzinfo=UTC):
        if runner.due(now, CET):
            fired.append(now)
        now += dt.timedelta(minutes=1)
    assert fired == [dt.datetime(2026, 4, 1, 8, 0, tzinfo=UTC)]


def test_repeated_autumn_hour_runs_once_and_spring_gap_runs_after_it():
    runner = ScheduleRunner(sched((TimePattern(2, 30, 0, 0), on(None, None, None))))
    now = dt.datetime(2026, 10, 24, 12, tzinfo=UTC)  # EU DST ends 25 Oct 2026 at 01:00 UTC
    fired = []
    while now < dt.datetime(2026, 10, 26, 12, tzinfo=UTC):
        if runner.due(now, CET):
            fired.append(now)
        now += dt.timedelta(minutes=5)
    # 25 Oct: 02:30 CEST (00:30 UTC) once, not again at 02:30 CET; 26 Oct: 02:30 CET (01:30 UTC)
    assert fired == [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC), dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    runner = ScheduleRunner(sched((TimePattern(2, 30, 0, 0), on(2026, 3, 29))))
    now = dt.datetime(2026, 3, 28, 23, tzinfo=UTC)
    runner.due(now, CET)
    fired = []
    while now < dt.datetime(2026, 3, 29, 6, tzinfo=UTC):
        now += dt.timedelta(minutes=5)
        if runner.due(now, CET):
            fired.append(now)
    assert fired == [dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]  # shown 03:30 CEST


def test_clock_jumps():
    runner = ScheduleRunner(sched((TimePattern(0, 0, 0, 0), on(None, None, None)), type_=1))
    t0 = dt.datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert not runner.due(t0, PLAIN)
    # forward over five midnights: once
    assert runner.due(t0 + dt.timedelta(days=5), PLAIN)
    assert not runner.due(t0 + dt.timedelta(days=5, seconds=1), PLAIN)
    # back over a midnight already run: not again at once, but again at the next midnight
    back = t0 + dt.timedelta(days=4)
    assert not runner.due(back, PLAIN)
    assert runner.next_utc == dt.datetime(2026, 1, 6, tzinfo=UTC)
    assert runner.due(dt.datetime(2026, 1, 6, tzinfo=UTC), PLAIN)
    # a new schedule counts from the next call
    runner.set_schedule(sched())
    assert not runner.due(dt.datetime(2026, 2, 1, tzinfo=UTC), PLAIN)
    assert runner.next_utc is None

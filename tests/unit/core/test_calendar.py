"""Activity calendar: seasons, week profiles, day profiles, special days, passive activation."""

import datetime as dt

import pytest

from meterd.core.calendar import (
    ActivityCalendar,
    CalendarError,
    CalendarSet,
    DayProfile,
    Season,
    SpecialDay,
    SpecialDaysTable,
    SwitchPoint,
    WeekProfile,
    YearDate,
    at,
    single_rate_calendar,
)

WORKDAY = DayProfile(1, (at("07:00", 2), at("23:00", 1)))
WEEKEND = DayProfile(2, (at("00:00", 1),))
SUMMER_DAY = DayProfile(3, (at("08:00", 3), at("20:00", 1)))
LATE_START = DayProfile(4, (at("12:00", 4),))


def make_set(name="std"):
    weeks = (WeekProfile("winter", (1, 1, 1, 1, 1, 2, 2)), WeekProfile("summer", (3, 3, 3, 3, 3, 2, 2)),
             WeekProfile("odd", (4, 4, 4, 4, 4, 4, 4)))
    seasons = (Season("winter", YearDate(10, 1), "winter"), Season("summer", YearDate(4, 1), "summer"))
    return CalendarSet(name, seasons, weeks, (WORKDAY, WEEKEND, SUMMER_DAY, LATE_START))


def make_cal():
    specials = SpecialDaysTable((SpecialDay(1, YearDate(1, 1), 2), SpecialDay(2, YearDate(5, 1, 2026), 2),
                                 SpecialDay(3, YearDate(12, 24), 4)))
    return ActivityCalendar(make_set(), specials)


def w(*args):
    return dt.datetime(*args)


def test_workday_weekend_and_seasons():
    cal = make_cal()
    assert cal.rate_at(w(2026, 1, 14, 6, 59)) == 1      # Wednesday, winter
    assert cal.rate_at(w(2026, 1, 14, 7, 0)) == 2
    assert cal.rate_at(w(2026, 1, 14, 23, 0)) == 1
    assert cal.rate_at(w(2026, 1, 17, 12, 0)) == 1      # Saturday
    assert cal.rate_at(w(2026, 6, 10, 9, 0)) == 3       # summer week
    assert cal.rate_at(w(2026, 3, 31, 9, 0)) == 2       # still winter
    assert cal.rate_at(w(2026, 4, 1, 9, 0)) == 3        # season starts at its date


def test_rate_before_books_the_interval_ending_at_a_switch_to_the_old_rate():
    cal = make_cal()
    assert cal.rate_before(w(2026, 1, 14, 7, 0)) == 1
    assert cal.rate_before(w(2026, 1, 14, 7, 0, 1)) == 2
    assert cal.rate_before(w(2026, 1, 15, 0, 0)) == 1   # midnight belongs to the previous day


def test_special_days_fixed_and_recurring():
    cal = make_cal()
    assert cal.rate_at(w(2027, 1, 1, 12)) == 1          # New Year (recurring) on a Friday -> weekend day
    assert cal.rate_at(w(2026, 5, 1, 10)) == 1          # fixed-year holiday, a Friday in summer
    assert cal.rate_at(w(2027, 4, 30, 10)) == 3
    assert cal.rate_at(w(2027, 5, 3, 10)) == 3          # the 2026 holiday does not recur


def test_day_without_midnight_switch_carries_previous_days_rate():
    cal = make_cal()
    # 24 Dec 2026 is a Thursday: special day 4 switches only at 12:00; before that, the 23rd's last switch
    assert cal.rate_at(w(2026, 12, 24, 11, 59)) == 1
    assert cal.rate_at(w(2026, 12, 24, 12, 0)) == 4
    # the 25th (Friday, workday profile) starts with the 24th's last switch (rate 4) until 07:00
    assert cal.rate_at(w(2026, 12, 25, 6, 0)) == 4
    assert cal.rate_at(w(2026, 12, 25, 7, 0)) == 2


def test_next_switch_after():
    cal = make_cal()
    assert cal.next_switch_after(w(2026, 1, 14, 6, 0)) == w(2026, 1, 14, 7, 0)
    assert cal.next_switch_after(w(2026, 1, 14, 7, 0)) == w(2026, 1, 14, 23, 0)
    assert cal.next_switch_after(w(2026, 1, 14, 23, 30)) == w(2026, 1, 15)


def test_passive_calendar_activates_after_its_time():
    cal = make_cal()
    with pytest.raises(CalendarError):   # special days refer to day ids the new set lacks
        cal.set_passive(single_rate_calendar(3), w(2026, 2, 1))
    flat = DayProfile(1, (at("00:00", 3),))
    new = make_set("new")
    cal.set_passive(CalendarSet("new", new.seasons, new.week_profiles, (flat, WEEKEND, SUMMER_DAY, LATE_START)),
                    w(2026, 2, 1))
    assert not cal.activate_if_due(w(2026, 2, 1))
    assert cal.rate_at(w(2026, 2, 2, 12)) == 2
    assert cal.activate_if_due(w(2026, 2, 1, 0, 0, 1))
    assert cal.rate_at(w(2026, 2, 2, 12)) == 3
    assert cal.activate_passive_at is None


@pytest.mark.parametrize("build", [
    lambda: SwitchPoint(86400, 1),
    lambda: SwitchPoint(0, 9),
    lambda: DayProfile(1, ()),
    lambda: DayProfile(1, (at("01:00", 1), at("01:00", 2))),
    lambda: YearDate(2, 30),
    lambda: CalendarSet("x", (), (), ()),
    lambda: CalendarSet("x", (Season("s", YearDate(1, 1), "nope"),), (), (WORKDAY,)),
    lambda: CalendarSet("x", (Season("s", YearDate(1, 1), "w"),), (WeekProfile("w", (1, 1, 1, 1, 1, 1, 9)),),
                        (WORKDAY,)),
    lambda: ActivityCalendar(make_set(), SpecialDaysTable((SpecialDay(1, YearDate(1, 1), 99),))),
    lambda: SwitchPoint.from_dict({"start": "7", "rate": 1}),
])
def test_validation_errors(build):
    with pytest.raises(CalendarError):
        build()


def test_error_names_the_element():
    with pytest.raises(CalendarError, match="season 's' uses unknown week 'nope'"):
        CalendarSet("x", (Season("s", YearDate(1, 1), "nope"),), (), (WORKDAY,))


def test_dict_round_trip():
    cal = make_cal()
    cal.set_passive(make_set("next"), w(2026, 9, 1))
    back = ActivityCalendar.from_dict(cal.to_dict())
    assert back.to_dict() == cal.to_dict()
    assert back.active == cal.active and back.passive == cal.passive
    assert back.special_days == cal.special_days


def test_leap_day_recurring_falls_back_to_28th():
    assert YearDate(2, 29).in_year(2027) == dt.date(2027, 2, 28)
    assert YearDate(2, 29).in_year(2028) == dt.date(2028, 2, 29)

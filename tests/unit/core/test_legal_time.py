"""Legal time from the DLMS clock rules: DST transitions, gap, repeated hour, tariff wall time."""

import datetime as dt

import pytest

from meterd.core.legal_time import (
    LAST_DAY,
    SECOND_LAST_DAY,
    ClockSettings,
    ClockStatus,
    DateTimePattern,
    LegalTime,
    LegalTimeError,
    eu_clock_settings,
)

U = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=U)


def test_last_sunday_patterns_resolve():
    last_sun_march = DateTimePattern(month=3, day_of_month=LAST_DAY, day_of_week=7, hour=1)
    assert last_sun_march.resolve(2026) == dt.datetime(2026, 3, 29, 1)
    assert last_sun_march.resolve(2027) == dt.datetime(2027, 3, 28, 1)
    on_or_after = DateTimePattern(month=3, day_of_month=25, day_of_week=7, hour=1)
    assert on_or_after.resolve(2026) == dt.datetime(2026, 3, 29, 1)
    second_last = DateTimePattern(month=2, day_of_month=SECOND_LAST_DAY)
    assert second_last.resolve(2028) == dt.datetime(2028, 2, 28)
    first_monday = DateTimePattern(month=9, day_of_week=1)
    assert first_monday.resolve(2026) == dt.datetime(2026, 9, 7)
    assert DateTimePattern(month=4, day_of_month=1, year=2027).resolve(2026) is None


@pytest.mark.parametrize("bad", [dict(month=13), dict(month=1, day_of_week=8), dict(month=1, hour=24)])
def test_invalid_patterns_are_refused(bad):
    with pytest.raises(LegalTimeError):
        DateTimePattern(**bad)


def test_settings_validation():
    with pytest.raises(LegalTimeError):
        ClockSettings(time_zone_min=-60, dst_enabled=True)
    with pytest.raises(LegalTimeError):
        ClockSettings(time_zone_min=2000)


def test_eu_offsets_and_status():
    lt = LegalTime(eu_clock_settings(60))
    winter = lt.local(utc(2026, 1, 15, 12))
    assert (winter.wall, winter.utc_offset_min, winter.dst_active) == (dt.datetime(2026, 1, 15, 13), 60, False)
    assert winter.deviation_min == -60
    summer = lt.local(utc(2026, 7, 1, 12))
    assert (summer.wall.hour, summer.dst_active) == (14, True)
    assert summer.status() == ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert winter.status(invalid=True) == ClockStatus.INVALID_VALUE


def test_spring_gap_and_autumn_fold():
    lt = LegalTime(eu_clock_settings(60))
    assert lt.local(utc(2026, 3, 29, 0, 59, 59)).wall == dt.datetime(2026, 3, 29, 1, 59, 59)
    assert lt.local(utc(2026, 3, 29, 1)).wall == dt.datetime(2026, 3, 29, 3)
    first = lt.local(utc(2026, 10, 25, 0, 30))
    second = lt.local(utc(2026, 10, 25, 1, 30))
    assert first.wall == second.wall == dt.datetime(2026, 10, 25, 2, 30)
    assert (first.fold, second.fold, first.dst_active, second.dst_active) == (0, 1, True, False)
    assert lt.local(utc(2026, 10, 25, 2)).fold == 0


def test_to_utc_gap_maps_to_end_of_gap_and_fold_selects_pass():
    lt = LegalTime(eu_clock_settings(60))
    assert lt.to_utc(dt.datetime(2026, 3, 29, 2, 30)) == utc(2026, 3, 29, 1)
    assert lt.to_utc(dt.datetime(2026, 10, 25, 2, 30)) == utc(2026, 10, 25, 0, 30)
    assert lt.to_utc(dt.datetime(2026, 10, 25, 2, 30), fold=1) == utc(2026, 10, 25, 1, 30)
    assert lt.to_utc(dt.datetime(2026, 6, 1)) == utc(2026, 5, 31, 22)


def test_tariff_wall_is_left_limit_and_frozen_in_repeated_hour():
    lt = LegalTime(eu_clock_settings(60))
    # interval ending at the DST begin instant happened in normal time
    assert lt.tariff_wall(utc(2026, 3, 29, 1)) == dt.datetime(2026, 3, 29, 2)
    assert lt.tariff_wall(utc(2026, 3, 29, 1, 0, 1)) == dt.datetime(2026, 3, 29, 3, 0, 1)
    # the second pass of the repeated hour keeps the wall time reached at the end of the first
    assert lt.tariff_wall(utc(2026, 10, 25, 1)) == dt.datetime(2026, 10, 25, 3)
    assert lt.tariff_wall(utc(2026, 10, 25, 1, 45)) == dt.datetime(2026, 10, 25, 3)
    assert lt.tariff_wall(utc(2026, 10, 25, 2)) == dt.datetime(2026, 10, 25, 3)
    assert lt.tariff_wall(utc(2026, 10, 25, 2, 0, 1)) == dt.datetime(2026, 10, 25, 3, 0, 1)


def test_wall_clock_patterns_equal_utc_patterns_for_cet():
    local_rules = ClockSettings(
        -60, DateTimePattern(month=3, day_of_month=LAST_DAY, day_of_week=7, hour=2),
        DateTimePattern(month=10, day_of_month=LAST_DAY, day_of_week=7, hour=3), 60, True)
    a, b = LegalTime(local_rules), LegalTime(eu_clock_settings(60))
    for t in (utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 1), utc(2026, 10, 25, 0, 59), utc(2026, 10, 25, 1)):
        assert a.local(t) == b.local(t)


def test_southern_hemisphere_dst_spans_new_year():
    # e.g. UTC+10 with DST from first Sunday of October to first Sunday of April (wall time)
    s = ClockSettings(-600, DateTimePattern(month=10, day_of_week=7, hour=2),
                      DateTimePattern(month=4, day_of_week=7, hour=3), 60, True)
    lt = LegalTime(s)
    assert lt.local(utc(2026, 1, 10)).dst_active
    assert not lt.local(utc(2026, 6, 10)).dst_active
    assert lt.local(utc(2026, 12, 10)).dst_active


def test_dst_disabled_and_next_midnight():
    lt = LegalTime(ClockSettings(-330))
    assert lt.local(utc(2026, 7, 1)).wall == dt.datetime(2026, 7, 1, 5, 30)
    assert lt.next_local_midnight(utc(2026, 7, 1)) == utc(2026, 7, 1, 18, 30)
    assert lt.next_change(utc(2026, 7, 1)) is None
    eu = LegalTime(eu_clock_settings(60))
    assert eu.next_local_midnight(utc(2026, 3, 28, 23, 30)) == utc(2026, 3, 29, 22)


def test_settings_dict_round_trip():
    s = eu_clock_settings(120)
    assert ClockSettings.from_dict(s.to_dict()) == s


def test_utc_of_wall_is_exact_outside_dst_changes():
    lt = LegalTime(eu_clock_settings(60))
    assert lt.utc_of_wall(dt.datetime(2026, 1, 15, 13, 0, 0, 250000)) == utc(2026, 1, 15, 12, 0, 0, 250000)
    assert lt.utc_of_wall(dt.datetime(2026, 7, 1, 14)) == utc(2026, 7, 1, 12)
    # the DST hint only matters in the repeated hour: the rules decide everywhere else
    assert lt.utc_of_wall(dt.datetime(2026, 7, 1, 14), dst_hint=False) == utc(2026, 7, 1, 12)
    assert lt.utc_of_wall(dt.datetime(2026, 1, 15, 13), dst_hint=True) == utc(2026, 1, 15, 12)
    assert LegalTime(ClockSettings()).utc_of_wall(dt.datetime(2026, 7, 1, 14)) == utc(2026, 7, 1, 14)


def test_utc_of_wall_in_the_repeated_hour_follows_the_dst_hint_else_the_first_pass():
    lt = LegalTime(eu_clock_settings(60))
    wall = dt.datetime(2026, 10, 25, 2, 30)
    assert lt.utc_of_wall(wall) == utc(2026, 10, 25, 0, 30)  # first pass (CEST)
    assert lt.utc_of_wall(wall, dst_hint=True) == utc(2026, 10, 25, 0, 30)
    assert lt.utc_of_wall(wall, dst_hint=False) == utc(2026, 10, 25, 1, 30)  # second pass (CET)
    # the edges of the repeated hour: 02:00 occurs twice, 03:00 once (CET)
    assert lt.utc_of_wall(dt.datetime(2026, 10, 25, 2), dst_hint=False) == utc(2026, 10, 25, 1)
    assert lt.utc_of_wall(dt.datetime(2026, 10, 25, 3), dst_hint=True) == utc(2026, 10, 25, 2)
    for hint in (None, True, False):  # what it maps to reads back as the wall time written
        assert lt.local(lt.utc_of_wall(wall, hint)).wall == wall


def test_utc_of_wall_in_the_spring_gap_uses_the_offset_before_the_gap():
    lt = LegalTime(eu_clock_settings(60))
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 2)) == utc(2026, 3, 29, 1)
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 2, 30)) == utc(2026, 3, 29, 1, 30)
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 2, 30), dst_hint=True) == utc(2026, 3, 29, 1, 30)
    assert lt.local(utc(2026, 3, 29, 1, 30)).wall == dt.datetime(2026, 3, 29, 3, 30)
    # a gap time is what a clock still on normal time shows: 02:30 is the instant shown as 03:30
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 2, 30)) == lt.utc_of_wall(dt.datetime(2026, 3, 29, 3, 30))
    # across the gap wall times keep their distance (to_utc, for tariffs, moves them all to 03:00)
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 2, 59, 59)) - lt.utc_of_wall(dt.datetime(2026, 3, 29, 1, 59, 59)) \
        == dt.timedelta(hours=1)


def test_utc_of_wall_with_a_negative_dst_deviation():
    # "winter time" modelled as DST with deviation -60 (normal time UTC+1, DST UTC+0 from Oct to Mar):
    # the clock falls back at the DST begin and jumps forward at its end
    s = ClockSettings(-60, DateTimePattern(month=10, day_of_month=LAST_DAY, day_of_week=7, hour=1, deviation_min=0),
                      DateTimePattern(month=3, day_of_month=LAST_DAY, day_of_week=7, hour=1, deviation_min=0), -60, True)
    lt = LegalTime(s)
    assert lt.utc_of_wall(dt.datetime(2026, 10, 25, 1, 30), dst_hint=False) == utc(2026, 10, 25, 0, 30)
    assert lt.utc_of_wall(dt.datetime(2026, 10, 25, 1, 30), dst_hint=True) == utc(2026, 10, 25, 1, 30)
    assert lt.utc_of_wall(dt.datetime(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 30)  # gap: offset before (+0)

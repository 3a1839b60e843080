"""Clock 0-0:1.0.0.255 attribute 2 in legal time: local date-time, deviation (UTC = local +
deviation) and the daylight-saving bit of the clock status; writes with an explicit deviation are
exact, writes without one (0x8000) are local time under the meter's rules."""

from __future__ import annotations

import datetime as dt
import struct
from types import SimpleNamespace
from typing import Any

import pytest

from meterd.core.legal_time import ClockSettings, LegalTime, eu_clock_settings
from meterd.cosem.adapters import OK, OTHER_REASON, ModelClock, decode_clock_datetime, encode_clock_datetime
from meterd.cosem.errors import ApduError

U = dt.UTC
CET = LegalTime(eu_clock_settings(60))
UNSPECIFIED = -0x8000


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=U)


def fields(raw: bytes) -> tuple[int, ...]:
    """(year, month, day, weekday, hour, minute, second, hundredths, deviation, status)."""
    return struct.unpack(">HBBBBBBBhB", raw)


def date_time(wall: dt.datetime, deviation: int, status: int) -> bytes:
    return struct.pack(">HBBBBBBBhB", wall.year, wall.month, wall.day, wall.isoweekday(), wall.hour,
                       wall.minute, wall.second, wall.microsecond // 10000, deviation, status)


@pytest.mark.parametrize("instant,expected", [
    (utc(2026, 1, 15, 12, 0, 5, 370000), (2026, 1, 15, 4, 13, 0, 5, 37, -60, 0x00)),   # CET
    (utc(2026, 7, 1, 23, 30), (2026, 7, 2, 4, 1, 30, 0, 0, -120, 0x80)),                # CEST, next day
    (utc(2026, 10, 25, 0, 30), (2026, 10, 25, 7, 2, 30, 0, 0, -120, 0x80)),             # first 02:30
    (utc(2026, 10, 25, 1, 30), (2026, 10, 25, 7, 2, 30, 0, 0, -60, 0x00)),              # second 02:30
    (utc(2026, 3, 29, 1), (2026, 3, 29, 7, 3, 0, 0, 0, -120, 0x80)),                    # 02:00 -> 03:00
])
def test_time_is_local_with_deviation_and_dst_bit(instant: dt.datetime, expected: tuple[int, ...]) -> None:
    raw = encode_clock_datetime(CET.local(instant))
    assert fields(raw) == expected
    assert decode_clock_datetime(raw, CET) == instant  # and it is the same instant


def test_explicit_deviation_is_exact_whatever_the_meter_rules() -> None:
    # 12:00 UTC sent as 14:00 with deviation -120, as 21:00 with +540 (e.g. a client in UTC-9)
    assert decode_clock_datetime(date_time(dt.datetime(2026, 1, 15, 14), -120, 0x80), CET) == utc(2026, 1, 15, 12)
    assert decode_clock_datetime(date_time(dt.datetime(2026, 1, 15, 3), 540, 0xFF), CET) == utc(2026, 1, 15, 12)
    assert decode_clock_datetime(date_time(dt.datetime(2026, 10, 25, 2, 30), -60, 0x80), CET) \
        == utc(2026, 10, 25, 1, 30)  # the deviation wins over the status bit


@pytest.mark.parametrize("wall,status,expected", [
    (dt.datetime(2026, 1, 15, 13), 0xFF, utc(2026, 1, 15, 12)),
    (dt.datetime(2026, 7, 1, 14), 0x00, utc(2026, 7, 1, 12)),          # the rules, not the status bit
    (dt.datetime(2026, 10, 25, 2, 30), 0xFF, utc(2026, 10, 25, 0, 30)),  # repeated hour: first pass
    (dt.datetime(2026, 10, 25, 2, 30), 0x80, utc(2026, 10, 25, 0, 30)),  # ... in DST
    (dt.datetime(2026, 10, 25, 2, 30), 0x00, utc(2026, 10, 25, 1, 30)),  # ... in normal time
    (dt.datetime(2026, 10, 25, 2, 30), 0x02, utc(2026, 10, 25, 1, 30)),  # doubtful, not DST
    (dt.datetime(2026, 3, 29, 2, 30), 0xFF, utc(2026, 3, 29, 1, 30)),    # gap: offset before the gap
])
def test_unspecified_deviation_is_local_time(wall: dt.datetime, status: int, expected: dt.datetime) -> None:
    assert decode_clock_datetime(date_time(wall, UNSPECIFIED, status), CET) == expected


def test_bad_date_times_are_refused() -> None:
    with pytest.raises(ApduError):
        decode_clock_datetime(b"\x07\xea\x01\x0f", CET)
    with pytest.raises(ApduError):
        decode_clock_datetime(date_time(dt.datetime(2026, 1, 15, 13), 900, 0), CET)
    wild = bytearray(date_time(dt.datetime(2026, 1, 15, 13), UNSPECIFIED, 0xFF))
    wild[5] = 0xFF  # hour not specified
    with pytest.raises(ApduError):
        decode_clock_datetime(bytes(wild), CET)


class Clock:
    """A ModelClock on a settable instant, recording what it sets."""

    def __init__(self, now: dt.datetime, legal: LegalTime | None) -> None:
        self.now = now
        self.sets: list[dt.datetime] = []
        self.obj = ModelClock("0.0.1.0.0.255", lambda: self.now, self.sets.append,
                              None if legal is None else (lambda: legal))

    def get(self, index: int) -> bytes:
        e = SimpleNamespace(index=index, byteArray=False)
        raw = self.obj.getValue(None, e)
        assert e.byteArray
        return bytes(raw)

    def set_time(self, raw: bytes) -> int:
        return int(self.obj.write(SimpleNamespace(index=2, value=raw)))

    def action(self, index: int, parameters: Any) -> Any:
        e = SimpleNamespace(index=index, parameters=parameters, error=None)
        self.obj.invoke(None, e)
        return e.error


def test_model_clock_serves_time_zone_and_status_of_its_rules() -> None:
    summer = Clock(utc(2026, 7, 1, 12), CET)
    assert summer.get(2) == b"\x09\x0c" + date_time(dt.datetime(2026, 7, 1, 14), -120, 0x80)
    assert summer.get(3) == b"\x10\xff\xc4"  # long -60
    assert summer.get(4) == b"\x11\x80"
    base = Clock(utc(2026, 7, 1, 12), None)  # the base registry: UTC, no DST
    assert base.get(2) == b"\x09\x0c" + date_time(dt.datetime(2026, 7, 1, 12), 0, 0x00)
    assert base.get(3) == b"\x10\x00\x00" and base.get(4) == b"\x11\x00"


def test_model_clock_write_and_refusals() -> None:
    clock = Clock(utc(2026, 7, 1, 12), CET)
    assert clock.set_time(date_time(dt.datetime(2026, 10, 25, 2, 30), UNSPECIFIED, 0x00)) == OK
    assert clock.set_time(date_time(dt.datetime(2026, 7, 1, 14), -120, 0x80)) == OK
    assert clock.set_time(date_time(dt.datetime(2026, 7, 1, 14), 2000, 0x80)) == OTHER_REASON
    assert clock.sets == [utc(2026, 10, 25, 1, 30), utc(2026, 7, 1, 12)]


def test_clock_methods_round_in_local_time_and_shift() -> None:
    # a zone 10 min off a quarter (UTC+00:10): local 12:06:31 rounds to 12:00 local = 11:50 UTC
    # (rounding UTC 11:56:31 would give 11:45), to the minute 12:07 local = 11:57 UTC
    odd = Clock(utc(2026, 7, 1, 11, 56, 31), LegalTime(ClockSettings(time_zone_min=-10)))
    assert odd.action(1, 0) is None
    assert odd.action(3, 0) is None
    assert odd.sets == [utc(2026, 7, 1, 11, 50), utc(2026, 7, 1, 11, 57)]
    summer = Clock(utc(2026, 7, 1, 12, 7, 29), CET)
    assert summer.action(1, 0) is None and summer.action(6, -31) is None
    assert summer.sets == [utc(2026, 7, 1, 12, 0), utc(2026, 7, 1, 12, 6, 58)]
    assert summer.action(6, 901) is not None and summer.action(2, 0) is not None  # out of range, not served
    assert len(summer.sets) == 2

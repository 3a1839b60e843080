"""The COSEM date-time codec (meterd.cosem.datetime_codec), octet by octet: every field, the
not-specified values (0xFF, year 0xFFFF, deviation 0x8000), the daylight-saving status bit, and the
four kinds of date-time the meter writes (UTC, legal time, wall time, unspecified)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterd.core.legal_time import LegalTime, eu_clock_settings
from meterd.cosem.datetime_codec import (
    DATETIME_LEN,
    UNSPECIFIED,
    CosemDateTime,
    decode_utc,
    decode_wall,
    encode_legal,
    encode_utc,
    encode_wall,
)
from meterd.cosem.errors import ApduError

U = dt.UTC
CET = LegalTime(eu_clock_settings(60))


def test_fields_go_out_in_order_big_endian():
    raw = CosemDateTime(2026, 3, 29, 7, 2, 30, 15, 99, -120, 0x80).encode()
    assert raw == bytes.fromhex("07EA" "03" "1D" "07" "02" "1E" "0F" "63" "FF88" "80")
    assert len(raw) == DATETIME_LEN


def test_not_specified_fields_are_ff_the_year_ffff_the_deviation_8000():
    assert bytes.fromhex("FFFF" "FF" "FF" "FF" "FF" "FF" "FF" "FF" "8000" "FF") == UNSPECIFIED
    assert CosemDateTime().encode() == UNSPECIFIED
    assert CosemDateTime.decode(UNSPECIFIED) == CosemDateTime()
    raw = CosemDateTime(month=12, day=24, hour=18, deviation_min=0).encode()
    assert raw == bytes.fromhex("FFFF" "0C" "18" "FF" "12" "FF" "FF" "FF" "0000" "FF")


def test_decode_reads_every_field_and_the_signed_deviation():
    raw = bytes.fromhex("07EA" "0A" "19" "07" "02" "1E" "00" "00" "FFC4" "00")
    assert CosemDateTime.decode(raw) == CosemDateTime(2026, 10, 25, 7, 2, 30, 0, 0, -60, 0)
    assert CosemDateTime.decode(bytes.fromhex("07EA0A190702" "1E0000" "02D0" "FF")).deviation_min == 720


@pytest.mark.parametrize("size", [0, 5, 11, 13])
def test_decode_refuses_other_lengths(size: int) -> None:
    with pytest.raises(ApduError, match="12 octets"):
        CosemDateTime.decode(bytes(size))


def test_utc_goes_out_with_deviation_0_and_status_0():
    when = dt.datetime(2026, 1, 15, 12, 0, 5, 379999, tzinfo=U)
    assert encode_utc(when) == bytes.fromhex("07EA" "01" "0F" "04" "0C" "00" "05" "25" "0000" "00")
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert encode_utc(dt.datetime(2026, 1, 15, 14, 0, 5, 379999, tzinfo=plus2)) == encode_utc(when)


def test_legal_time_carries_the_deviation_and_the_dst_bit():
    winter = encode_legal(CET.local(dt.datetime(2026, 1, 15, 12, tzinfo=U)))
    assert winter == bytes.fromhex("07EA" "01" "0F" "04" "0D" "00" "00" "00" "FFC4" "00")  # CET: -60
    summer = encode_legal(CET.local(dt.datetime(2026, 7, 1, 12, tzinfo=U)))
    assert summer == bytes.fromhex("07EA" "07" "01" "03" "0E" "00" "00" "00" "FF88" "80")  # CEST: -120, DST


def test_wall_time_has_no_deviation_nor_status_and_may_be_every_year():
    wall = dt.datetime(2026, 12, 24, 18, 30, 15)
    assert encode_wall(wall) == bytes.fromhex("07EA" "0C" "18" "04" "12" "1E" "0F" "00" "8000" "FF")
    assert encode_wall(wall, year_wild=True) == bytes.fromhex("FFFF" "0C" "18" "FF" "12" "1E" "0F" "00" "8000" "FF")
    assert encode_wall(None) == UNSPECIFIED
    assert decode_wall(encode_wall(wall)) == (2026, 12, 24, 18, 30, 15)
    assert decode_wall(encode_wall(wall, year_wild=True)) == (None, 12, 24, 18, 30, 15)
    assert decode_wall(UNSPECIFIED) is None
    assert decode_wall(CosemDateTime(2026, 12, 24).encode()) == (2026, 12, 24, 0, 0, 0)  # time not specified: 0


def test_decode_utc_applies_the_deviation():
    assert decode_utc(bytes.fromhex("07EA010F040D000000FFC400")) == dt.datetime(2026, 1, 15, 12, tzinfo=U)
    assert decode_utc(encode_utc(dt.datetime(2026, 1, 15, 12, 0, 5, 370000, tzinfo=U))) == \
        dt.datetime(2026, 1, 15, 12, 0, 5, 370000, tzinfo=U)
    # second and hundredths not specified: 0
    assert decode_utc(bytes.fromhex("07EA010F040D00FFFF000000")) == dt.datetime(2026, 1, 15, 13, tzinfo=U)


def test_decode_utc_without_deviation_is_utc_or_local_under_the_rules():
    raw = bytes.fromhex("07EA070103" "0E0000" "00" "8000" "FF")  # 2026-07-01 14:00, deviation unspecified
    assert decode_utc(raw) == dt.datetime(2026, 7, 1, 14, tzinfo=U)
    assert decode_utc(raw, CET) == dt.datetime(2026, 7, 1, 12, tzinfo=U)


@pytest.mark.parametrize(("status", "expected_utc_hour"), [(0x80, 0), (0x00, 1), (0xFF, 0)])
def test_the_dst_bit_picks_the_pass_of_the_repeated_hour(status: int, expected_utc_hour: int) -> None:
    raw = bytes.fromhex("07EA0A1907" "021E00" "00" "8000") + bytes((status,))  # 02:30 on 25 Oct 2026
    assert decode_utc(raw, CET) == dt.datetime(2026, 10, 25, expected_utc_hour, 30, tzinfo=U)


@pytest.mark.parametrize("raw", [
    UNSPECIFIED,
    bytes.fromhex("FFFF010F040D000000000000"),   # year not specified
    bytes.fromhex("07EAFF0F040D000000000000"),   # month
    bytes.fromhex("07EA01FF040D000000000000"),   # day
    bytes.fromhex("07EA010F04FF000000000000"),   # hour
    bytes.fromhex("07EA010F040DFF0000000000"),   # minute
])
def test_decode_utc_refuses_wildcards(raw: bytes) -> None:
    with pytest.raises(ApduError, match="wildcards"):
        decode_utc(raw)


def test_decode_utc_refuses_impossible_dates_and_deviations():
    with pytest.raises(ApduError, match="invalid date-time"):
        decode_utc(bytes.fromhex("07EA021E010D000000000000"))  # 30 February
    with pytest.raises(ApduError, match="deviation 900 min out of range"):
        decode_utc(bytes.fromhex("07EA010F040D0000000384" "00"))
    with pytest.raises(ApduError, match="12 octets"):
        decode_utc(b"\x07\xea\x01\x0f")


_fields = st.one_of(st.none(), st.integers(0, 0xFE))


@given(st.builds(CosemDateTime, st.one_of(st.none(), st.integers(0, 0xFFFE)), _fields, _fields, _fields, _fields,
                 _fields, _fields, _fields, st.one_of(st.none(), st.integers(-0x7FFF, 0x7FFF)), _fields))
def test_every_field_value_round_trips(value: CosemDateTime) -> None:
    assert CosemDateTime.decode(value.encode()) == value


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=st.just(U)))
def test_utc_round_trips_to_the_hundredth(when: dt.datetime) -> None:
    to_the_hundredth = when.replace(microsecond=when.microsecond // 10000 * 10000)
    assert decode_utc(encode_utc(when)) == to_the_hundredth
    assert decode_utc(encode_legal(CET.local(when)), CET) == to_the_hundredth

"""Profile range bounds sent without a deviation (0x8000) are the meter's legal local time, by the
rules of the clock 0-0:1.0.0.255 (meterd.cosem.datetime_codec.decode_utc, meterd.cosem.profile,
meterd.cosem.server ``legal``); with a deviation they stay exact instants; without legal-time
rules they are UTC. The rules are CET/CEST (EU, normal offset +60 min)."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSSettings, GXReplyData
from gurux_dlms.enums import DateTimeSkips
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo
from gurux_dlms.objects import GXDLMSProfileGeneric

from meterd.core.legal_time import ClockSettings, LegalTime, eu_clock_settings
from meterd.cosem import axdr, datetime_codec, profile
from meterd.cosem.config import ServerConfig
from meterd.cosem.errors import ApduError
from meterd.cosem.profile import ProfileReader
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import UTC, FakeMeter, FakeProfile, make_keyring
from tests.dlms_gurux_client import connect_in_memory

CET = LegalTime(eu_clock_settings(60))
UNSPECIFIED, DST_BIT, STATUS_UNSPECIFIED = 0x8000, 0x80, 0xFF
CLOCK_COLUMN = [8, bytearray(axdr.obis_bytes("0.0.1.0.0.255")), 2, 0]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def wall(value: dt.datetime, deviation: int = UNSPECIFIED, status: int = 0) -> bytes:
    """A 12-octet COSEM date-time of a naive wall time with the given deviation and status."""
    return struct.pack(">HBBBBBBBHB", value.year, value.month, value.day, value.isoweekday(), value.hour,
                       value.minute, value.second, 0, deviation & 0xFFFF, status)


@pytest.mark.parametrize("raw,expected", [
    pytest.param(wall(dt.datetime(2026, 1, 15, 13, 0)), utc(2026, 1, 15, 12), id="winter-CET"),
    pytest.param(wall(dt.datetime(2026, 7, 1, 14, 0)), utc(2026, 7, 1, 12), id="summer-CEST"),
    pytest.param(wall(dt.datetime(2026, 7, 1, 14, 0), status=DST_BIT), utc(2026, 7, 1, 12), id="summer-bit-set"),
    # the repeated hour of the DST end: the status' DST bit picks the pass
    pytest.param(wall(dt.datetime(2026, 10, 25, 2, 30), status=DST_BIT), utc(2026, 10, 25, 0, 30), id="fold-1st"),
    pytest.param(wall(dt.datetime(2026, 10, 25, 2, 30), status=0), utc(2026, 10, 25, 1, 30), id="fold-2nd"),
    pytest.param(wall(dt.datetime(2026, 10, 25, 2, 30), status=STATUS_UNSPECIFIED), utc(2026, 10, 25, 0, 30),
                 id="fold-status-unspecified"),
    # the skipped hour of the DST begin: read with the offset before it (CET)
    pytest.param(wall(dt.datetime(2026, 3, 29, 2, 30)), utc(2026, 3, 29, 1, 30), id="spring-gap"),
    # an explicit deviation is exact, whatever the rules and the status
    pytest.param(wall(dt.datetime(2026, 7, 1, 14, 0), deviation=0), utc(2026, 7, 1, 14), id="deviation-0"),
    pytest.param(wall(dt.datetime(2026, 7, 1, 7, 0), deviation=300), utc(2026, 7, 1, 12), id="deviation+300"),
    pytest.param(wall(dt.datetime(2026, 10, 25, 2, 30), deviation=-60, status=DST_BIT), utc(2026, 10, 25, 1, 30),
                 id="fold-with-deviation"),
])
def test_a_date_time_without_deviation_is_local_time_under_the_rules(raw: bytes, expected: dt.datetime) -> None:
    assert datetime_codec.decode_utc(raw, CET) == expected


def test_without_rules_a_date_time_without_deviation_stays_utc() -> None:
    raw = wall(dt.datetime(2026, 7, 1, 14, 0))
    assert datetime_codec.decode_utc(raw) == utc(2026, 7, 1, 14)
    assert datetime_codec.decode_utc(raw, LegalTime(ClockSettings())) == utc(2026, 7, 1, 14)  # UTC rules: the same
    with pytest.raises(ApduError):
        datetime_codec.decode_utc(wall(dt.datetime(2026, 7, 1, 14, 0), deviation=900), CET)  # out of ±720


def _decode(raw: bytes) -> list[list[object]]:
    return _GXCommon.getData(GXDLMSSettings(True, None), GXByteBuffer(raw), _GXDataInfo())


def _times(reader: ProfileReader, start: bytes, end: bytes) -> list[dt.datetime]:
    rows = _decode(reader.buffer(1, [CLOCK_COLUMN, bytearray(start), bytearray(end), []]))
    return [datetime_codec.decode_utc(bytes(r[0])) for r in rows]


def _quarters(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    out = [first]
    while out[-1] < last:
        out.append(out[-1] + dt.timedelta(minutes=15))
    return out


def test_range_bounds_without_deviation_follow_the_bound_rules() -> None:
    reader = ProfileReader(FakeProfile(96 * 4, utc(2026, 6, 30)))
    start, end = wall(dt.datetime(2026, 7, 1, 14, 0)), wall(dt.datetime(2026, 7, 1, 15, 0))
    assert _times(reader, start, end) == _quarters(utc(2026, 7, 1, 14), utc(2026, 7, 1, 15))  # no rules: UTC
    with profile.local_time_rules(lambda: CET):
        assert _times(reader, start, end) == _quarters(utc(2026, 7, 1, 12), utc(2026, 7, 1, 13))
        exact = wall(dt.datetime(2026, 7, 1, 14, 0), deviation=0), wall(dt.datetime(2026, 7, 1, 15, 0), deviation=0)
        assert _times(reader, *exact) == _quarters(utc(2026, 7, 1, 14), utc(2026, 7, 1, 15))
    assert _times(reader, start, end) == _quarters(utc(2026, 7, 1, 14), utc(2026, 7, 1, 15))  # unbound again


def test_rules_are_read_at_each_request() -> None:
    reader = ProfileReader(FakeProfile(96 * 4, utc(2026, 6, 30)))
    rules = [CET]
    start, end = wall(dt.datetime(2026, 7, 1, 14, 0)), wall(dt.datetime(2026, 7, 1, 14, 0))
    with profile.local_time_rules(lambda: rules[0]):
        assert _times(reader, start, end) == [utc(2026, 7, 1, 12)]
        rules[0] = LegalTime(ClockSettings(time_zone_min=-180))  # UTC+3, no DST: a clock-rules write
        assert _times(reader, start, end) == [utc(2026, 7, 1, 11)]


def test_the_repeated_autumn_hour_is_chosen_by_the_dst_bit_of_each_bound() -> None:
    reader = ProfileReader(FakeProfile(96 * 3, utc(2026, 10, 24)))
    with profile.local_time_rules(lambda: CET):
        # 02:00 first pass (DST) .. 02:45 second pass (normal time): both passes, 00:00..01:45 UTC
        both = _times(reader, wall(dt.datetime(2026, 10, 25, 2, 0), status=DST_BIT),
                      wall(dt.datetime(2026, 10, 25, 2, 45), status=0))
        assert both == _quarters(utc(2026, 10, 25, 0), utc(2026, 10, 25, 1, 45))
        first = _times(reader, wall(dt.datetime(2026, 10, 25, 2, 0), status=DST_BIT),
                       wall(dt.datetime(2026, 10, 25, 2, 45), status=DST_BIT))
        assert first == _quarters(utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 45))
        second = _times(reader, wall(dt.datetime(2026, 10, 25, 2, 0), status=0),
                        wall(dt.datetime(2026, 10, 25, 2, 45), status=0))
        assert second == _quarters(utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 45))


def _gurux_range(legal: profile.LegalTimeSource | None, start: dt.datetime, end: dt.datetime,
                 deviation: bool) -> list[dt.datetime]:
    """Rows read by a gurux client (reader association) with bounds sent with or without deviation."""
    meter = FakeMeter(profile_rows=0)
    meter.load_profile = FakeProfile(96 * 4, utc(2026, 6, 30))
    factory = build_session_factory(meter, MemoryCounterStore(), make_keyring(), ServerConfig(legal=legal))
    gs, _ = connect_in_memory(factory(), 17)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    bounds = [GXDateTime(start), GXDateTime(end)]
    if not deviation:
        for bound in bounds:
            bound.skip |= DateTimeSkips.DEVITATION  # 0x8000
    data = GXReplyData()
    gs._block(gs.client.readRowsByRange(pg, *bounds), data)
    rows = gs.client.updateValue(pg, 2, data.value)
    gs.close()
    return [r[0].value.astimezone(UTC) for r in rows]


def test_the_server_reads_bounds_without_deviation_as_local_time_when_it_has_rules() -> None:
    start, end = utc(2026, 7, 1, 14), utc(2026, 7, 1, 15)  # 14:00..15:00 written as wall time
    local = _quarters(utc(2026, 7, 1, 12), utc(2026, 7, 1, 13))
    assert _gurux_range(lambda: CET, start, end, deviation=False) == local
    assert _gurux_range(None, start, end, deviation=False) == _quarters(start, end)  # no rules: UTC
    assert _gurux_range(lambda: CET, start, end, deviation=True) == _quarters(start, end)  # exact


def test_an_emergency_profile_activation_time_without_deviation_is_local_time() -> None:
    """Class 71 attribute 7 (emergency profile) written in wall time reads like a range bound."""
    from meterd.cosem.objects_load_control import _profile_from

    value = [7, wall(dt.datetime(2026, 7, 1, 14, 0)), 3600]
    with profile.local_time_rules(lambda: CET):
        assert _profile_from(value).activation_utc == utc(2026, 7, 1, 12)
    assert _profile_from(value).activation_utc == utc(2026, 7, 1, 14)  # no rules bound: UTC

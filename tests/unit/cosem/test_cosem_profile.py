"""Profile buffer encoding and selective access (meterd.cosem.axdr, meterd.cosem.profile)."""

from __future__ import annotations

import datetime as dt

import pytest
from gurux_dlms import GXByteBuffer, GXDLMSSettings
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo
from gurux_dlms.objects import GXDLMSProfileGeneric

from meterd.cosem import axdr, datetime_codec
from meterd.cosem.errors import ApduError
from meterd.cosem.profile import ProfileReader
from tests.dlms_fakes import UTC, FakeMeter, FakeProfile
from tests.dlms_gurux_client import connect_in_memory
from tests.unit.cosem.test_cosem_server import _factory

START = dt.datetime(2026, 1, 1, tzinfo=UTC)


def _gurux_encode(rows) -> bytes:
    settings = GXDLMSSettings(True, None)
    bb = GXByteBuffer()
    bb.setUInt8(DataType.ARRAY)
    _GXCommon.setObjectCount(len(rows), bb)
    for row in rows:
        bb.setUInt8(DataType.STRUCTURE)
        _GXCommon.setObjectCount(1 + len(row.values), bb)
        _GXCommon.setData(settings, bb, DataType.OCTET_STRING, datetime_codec.encode_utc(row.utc))
        for v in row.values:
            _GXCommon.setData(settings, bb, DataType.UINT32, v)
    return bytes(bb.array())


def test_encoder_output_is_identical_to_gurux_per_value_encoding():
    profile = FakeProfile(200, START)
    rows = profile.rows_by_entry(1, 0)
    ours = ProfileReader(profile).buffer(0, None)
    assert ours == _gurux_encode(rows)


def test_datetime_round_trip_and_deviation():
    t = dt.datetime(2026, 2, 28, 23, 59, 59, 990000, tzinfo=UTC)
    assert datetime_codec.decode_utc(datetime_codec.encode_utc(t)) == t
    raw = bytearray(datetime_codec.encode_utc(dt.datetime(2026, 1, 1, 12, tzinfo=UTC)))
    raw[9:11] = (-60).to_bytes(2, "big", signed=True)  # CET written as local time, deviation -60
    assert datetime_codec.decode_utc(bytes(raw)) == dt.datetime(2026, 1, 1, 11, tzinfo=UTC)
    raw[9:11] = b"\x80\x00"
    assert datetime_codec.decode_utc(bytes(raw)) == dt.datetime(2026, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(ApduError):
        datetime_codec.decode_utc(b"\xff" * 12)


def test_column_types_widen_as_needed():
    assert axdr.column_type([1, 2]) == axdr.UINT32
    assert axdr.column_type([1, 1 << 40]) == axdr.UINT64
    assert axdr.column_type([-1, 2]) == axdr.INT32
    assert axdr.column_type([0.5]) == axdr.FLOAT64
    assert axdr.column_type(["a"]) == axdr.VISIBLE_STRING


def _decode(raw: bytes):
    return _GXCommon.getData(GXDLMSSettings(True, None), GXByteBuffer(raw), _GXDataInfo())


def _range(reader: ProfileReader, start, end, selected=()):
    clock = [8, bytearray(axdr.obis_bytes("0.0.1.0.0.255")), 2, 0]
    return _decode(reader.buffer(1, [clock, bytearray(datetime_codec.encode_utc(start)),
                                     bytearray(datetime_codec.encode_utc(end)), list(selected)]))


def test_range_and_entry_selection():
    reader = ProfileReader(FakeProfile(96 * 3, START))
    day = _range(reader, START + dt.timedelta(days=1), START + dt.timedelta(days=2))
    assert len(day) == 97
    assert _range(reader, START - dt.timedelta(days=9), START - dt.timedelta(days=8)) == []
    rows = _decode(reader.buffer(2, [10, 12, 1, 0]))
    assert len(rows) == 3 and len(rows[0]) == 9
    newest = _decode(reader.buffer(2, [280, 0, 3, 4]))
    assert len(newest) == 9 and len(newest[0]) == 2  # columns 3..4, no clock


def test_selected_values_pick_columns_by_capture_object():
    reader = ProfileReader(FakeProfile(10, START))
    col = [3, bytearray(axdr.obis_bytes("1.0.2.29.0.255")), 2, 0]
    clock = [8, bytearray(axdr.obis_bytes("0.0.1.0.0.255")), 2, 0]
    rows = _range(reader, START, START + dt.timedelta(hours=1), [clock, col])
    assert len(rows) == 5 and len(rows[0]) == 2
    with pytest.raises(ApduError):
        _range(reader, START, START, [[3, bytearray(6), 2, 0]])


@pytest.mark.parametrize("selector,params", [
    (1, [1, 2, 3]),
    (1, [[3, bytearray(axdr.obis_bytes("1.0.1.8.0.255")), 2, 0], bytearray(12), bytearray(12), []]),
    (1, [[8, bytearray(axdr.obis_bytes("0.0.1.0.0.255")), 2, 0], 5, 6, []]),
    (2, [0, 1, 1, 0]),
    (2, [5, 2, 1, 0]),
    (2, [1, 2, 1, 99]),
    (3, [1]),
])
def test_bad_selective_access_is_refused(selector, params):
    with pytest.raises(ApduError):
        ProfileReader(FakeProfile(10, START)).buffer(selector, params)


def test_gurux_client_reads_by_entry_and_the_profile_attributes():
    meter = FakeMeter(profile_rows=500)
    gs, _ = connect_in_memory(_factory(meter)(), 17)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    rows = gs.rows_by_entry(pg, 491, 10)
    assert len(rows) == 10
    assert rows[0][0].value == START + dt.timedelta(minutes=15 * 490)
    for attr in (4, 7, 8):
        gs.read(pg, attr)
    assert pg.entriesInUse == 500 and pg.capturePeriod == 900

"""Date-time columns of a profile buffer (meterd.cosem.profile): a capture time never set is the
12-octet date-time with every field not specified, a set one the UTC date-time, octet by octet;
and the keys file's list of client system titles (meterd.cosem.keys)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from meterd.core.model import CaptureColumn, ProfileBuffer, ProfileRow
from meterd.cosem.datetime_codec import UNSPECIFIED, encode_utc
from meterd.cosem.errors import KeyFileError
from meterd.cosem.keys import parse_keys
from meterd.cosem.profile import ProfileReader

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, tzinfo=UTC)
CAPTURED = dt.datetime(2026, 1, 4, 18, 15, tzinfo=UTC)


class Billing(ProfileBuffer):
    """Clock, a maximum demand value (class 4/2) and its capture time (class 4/5)."""

    columns: Sequence[CaptureColumn] = (CaptureColumn("0.0.1.0.0.255", 8), CaptureColumn("1.0.1.6.0.255", 4, 2),
                                        CaptureColumn("1.0.1.6.0.255", 4, 5))
    capture_period_s = 0

    def __init__(self) -> None:
        self.rows = [ProfileRow(T0, (0, "")), ProfileRow(T0 + dt.timedelta(days=31), (1234, CAPTURED.isoformat()))]

    def entries_in_use(self) -> int:
        return len(self.rows)

    def rows_between(self, start_utc: dt.datetime, end_utc: dt.datetime) -> list[ProfileRow]:
        return [r for r in self.rows if start_utc <= r.utc <= end_utc]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        return self.rows[first - 1:last or None]


def test_unset_and_set_capture_times_are_twelve_octet_date_times():
    raw = ProfileReader(Billing(), max_entries=12).buffer(0, None)
    row = bytes.fromhex("0203 090c") + encode_utc(T0) + bytes.fromhex("0600000000 090c") + UNSPECIFIED
    assert raw.startswith(bytes.fromhex("0102") + row)
    assert raw.endswith(bytes.fromhex("0600 0004d2 090c".replace(" ", "")) + encode_utc(CAPTURED))
    assert b"\x0a\x00" not in raw  # never an empty visible-string
    assert bytes.fromhex("ffff ff ff ff ff ff ff ff 8000 ff".replace(" ", "")) == UNSPECIFIED


def test_profile_entries_is_the_capacity_given():
    reader = ProfileReader(Billing(), max_entries=12)
    assert (reader.profile_entries(), reader.entries_in_use()) == (12, 2)


def _keys(**management: object) -> dict[str, object]:
    return {"server": {"system_title": "504D4D0000000001"}, "reader": {"lls_password": "x"},
            "management": {"global_unicast_key": "00" * 16, "authentication_key": "11" * 16,
                           "master_key": "22" * 16, **management}}


def test_client_system_titles_in_the_keys_file_are_validated():
    assert parse_keys(_keys()).client_system_titles == frozenset()
    assert parse_keys(_keys(client_system_titles=["4758580000000001"])).client_system_titles == {
        bytes.fromhex("4758580000000001")}
    for bad in (["47585800"], "4758580000000001", ["zz"], [1]):
        with pytest.raises(KeyFileError):
            parse_keys(_keys(client_system_titles=bad))

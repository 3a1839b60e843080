"""The clock status bits of the time trust (0x01 invalid, 0x02 doubtful) in the clock object and
in every capture of the clock: profile rows and event log rows."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import CLOCK_STATUS_KEY, EventRecorder
from meterd.core.legal_time import LegalTime, eu_clock_settings
from meterd.core.model import ProfileRow
from meterd.core.profile import (
    LOAD_PROFILE_OBIS,
    LoadProfile,
    ProfileConfig,
    ProfileStatus,
    clock_status_of,
    default_load_profile_channels,
)
from meterd.cosem import axdr, datetime_codec
from meterd.cosem.adapters import ModelClock
from meterd.cosem.profile import ProfileReader

CET = LegalTime(eu_clock_settings(60))
SUMMER = dt.datetime(2026, 7, 1, 10, tzinfo=dt.UTC)


def _get(obj: Any, index: int) -> bytes:
    e = SimpleNamespace(index=index, byteArray=False)
    return bytes(obj.getValue(None, e))


def test_clock_object_ors_the_trust_bits_with_daylight_saving():
    quality = [0]
    clock = ModelClock("0.0.1.0.0.255", lambda: SUMMER, lambda _u: None, lambda: CET, lambda: quality[0])
    assert _get(clock, 2)[-1] == 0x80 and _get(clock, 4)[-1] == 0x80
    quality[0] = 0x02
    assert _get(clock, 2)[-1] == 0x82 and _get(clock, 4)[-1] == 0x82
    quality[0] = 0x01
    assert _get(clock, 2)[-1] == 0x81


def test_encode_utc_carries_a_capture_status():
    assert datetime_codec.encode_utc(SUMMER)[-1] == 0
    assert datetime_codec.encode_utc(SUMMER, 0x02)[-1] == 0x02
    assert datetime_codec.CosemDateTime.decode(datetime_codec.encode_utc(SUMMER, 0x01)).status == 0x01


def test_profile_rows_clock_status_from_their_status_word():
    assert clock_status_of(0) == 0
    assert clock_status_of(ProfileStatus.CIV) == 0x02
    assert clock_status_of(ProfileStatus.CIV | ProfileStatus.TIME_INVALID) == 0x01
    assert clock_status_of(ProfileStatus.TIME_INVALID) == 0
    profile = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    profile.pending |= ProfileStatus.CIV
    profile.capture(SUMMER, {}, ProfileStatus(0))
    profile.capture(SUMMER + dt.timedelta(minutes=15), {}, ProfileStatus(0))
    rows = profile.rows_by_entry(1, 0)
    assert [r.clock_status for r in rows] == [0x02, 0]
    # a reloaded row (from storage: time and values only) gets it back from its status word
    again = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    again.append(ProfileRow(rows[0].utc, rows[0].values))
    assert again.rows_by_entry(1, 0)[0].clock_status == 0x02
    raw = ProfileReader(profile).buffer(0, None)
    first = raw.index(bytes((axdr.OCTET_STRING, 12)))  # the first row's capture time
    assert raw[first + 2 + 11] == 0x02


def test_events_recorded_while_the_time_is_not_trusted_carry_the_status():
    recorder = EventRecorder()
    bits = [0]
    recorder.clock_status = lambda: bits[0]
    recorder.record(ec.code("TERMINAL_COVER_REMOVED"), SUMMER)
    bits[0] = 0x01
    entry = recorder.record(ec.code("TERMINAL_COVER_CLOSED"), SUMMER + dt.timedelta(seconds=5), {"x": 1})
    assert entry.detail[CLOCK_STATUS_KEY] == 0x01 and entry.detail["x"] == 1
    rows = recorder.log(LogId.FRAUD).rows_by_entry(1, 0)
    assert [r.clock_status for r in rows] == [0, 0x01]
    raw = ProfileReader(recorder.log(LogId.FRAUD)).buffer(0, None)
    stamps = [i for i in range(len(raw) - 1) if raw[i:i + 2] == bytes((axdr.OCTET_STRING, 12))]
    assert [raw[i + 2 + 11] for i in stamps] == [0, 0x01]


def test_billing_rows_carry_the_status_of_their_closing_time():
    from meterd.core.billing import BillingPeriods, BillingSnapshot
    from meterd.core.demand import DemandConfig, DemandRegisters
    from meterd.core.tariff import TariffRegisters

    periods = BillingPeriods(rates=2)
    bits = [0x02]
    periods.clock_status = lambda: bits[0]
    snap = periods.close_period(SUMMER, "schedule", {}, TariffRegisters(2), DemandRegisters(DemandConfig(rates=2)))
    assert snap.clock_status == 0x02
    assert BillingSnapshot.from_dict(snap.to_dict()) == snap
    bits[0] = 0
    later = periods.close_period(SUMMER + dt.timedelta(days=30), "schedule", {}, TariffRegisters(2),
                                 DemandRegisters(DemandConfig(rates=2)))
    assert "clock_status" not in later.to_dict()
    assert [r.clock_status for r in periods.rows_by_entry(1, 0)] == [0x02, 0]

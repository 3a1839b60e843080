"""The time-trust state machine and the step detector (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core.errors import ConfigError
from meterd.core.time_trust import (
    CLOCK_STATUS_DOUBTFUL,
    CLOCK_STATUS_INVALID,
    StepDetector,
    TimeTrust,
    TrustRecord,
    TrustSettings,
    TrustState,
)

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def test_a_new_meter_is_never_synchronised_and_doubtful():
    trust = TimeTrust(TrustSettings(max_unsynced_h=24))
    assert trust.state is TrustState.NEVER_SYNCHRONISED
    assert trust.status_bits() == CLOCK_STATUS_DOUBTFUL
    assert trust.tick(T0) is None


def test_sync_then_free_running_after_the_limit_then_trusted_again():
    trust = TimeTrust(TrustSettings(max_unsynced_h=24))
    change = trust.synced(T0, "ntp")
    assert change is not None and change.new is TrustState.SYNCHRONISED and change.trusted
    assert trust.status_bits() == 0
    assert trust.tick(T0 + 24 * H) is None  # exactly at the limit: still synchronised
    change = trust.tick(T0 + 24 * H + dt.timedelta(seconds=1))
    assert change is not None and change.new is TrustState.FREE_RUNNING and not change.trusted
    assert trust.status_bits() == CLOCK_STATUS_DOUBTFUL
    assert trust.unsynced_s(T0 + 30 * H) == 30 * 3600
    change = trust.synced(T0 + 30 * H, "ntp")
    assert change is not None and change.old is TrustState.FREE_RUNNING and change.new is TrustState.SYNCHRONISED


def test_rtc_lost_is_invalid_until_a_sync_or_a_write():
    trust = TimeTrust()
    trust.synced(T0, "ntp")
    change = trust.rtc_lost(T0 + H)
    assert change is not None and change.new is TrustState.INVALID
    assert trust.status_bits() == CLOCK_STATUS_INVALID
    assert trust.tick(T0 + 2 * H) is None  # time passing does not end it
    change = trust.synced(T0 + 3 * H, "dlms:management")
    assert change is not None and change.new is TrustState.SYNCHRONISED
    assert trust.record.last_sync_source == "dlms:management"


def test_record_round_trip_and_restore_keeps_what_this_start_found():
    trust = TimeTrust()
    trust.synced(T0, "ntp")
    record = TrustRecord.from_record(trust.record.to_record())
    assert record == trust.record
    # at the next start the RTC was found invalid before the checkpoint was loaded
    later = TimeTrust()
    later.rtc_lost(T0 + H)
    later.restore(record, T0 + H)
    assert later.state is TrustState.INVALID and later.record.last_sync_utc == T0
    # a sync seen before the checkpoint was loaded is newer than the saved one: kept
    fresh = TimeTrust()
    fresh.synced(T0 + 2 * H, "ntp")
    fresh.restore(record, T0 + 2 * H)
    assert fresh.state is TrustState.SYNCHRONISED and fresh.record.last_sync_utc == T0 + 2 * H


def test_restored_old_sync_is_free_running():
    trust = TimeTrust(TrustSettings(max_unsynced_h=1))
    trust.restore(TrustRecord(T0, "ntp"), T0 + 2 * H)
    assert trust.state is TrustState.FREE_RUNNING


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        TrustSettings(max_unsynced_h=0)
    with pytest.raises(ConfigError):
        TrustSettings(event_threshold_s=-1)


def test_step_detector_finds_steps_over_the_threshold_only():
    det = StepDetector(threshold_s=1.0)
    assert det.observe(T0, 100.0) is None  # first observation: the base
    assert det.observe(T0 + dt.timedelta(seconds=1.5), 101.0) is None  # 0.5 s: slewing or jitter
    step = det.observe(T0 + dt.timedelta(seconds=3600 + 2.5), 102.0)
    assert step is not None and step.step_s == pytest.approx(3600.0)
    assert step.old_utc == T0 + dt.timedelta(seconds=2.5)
    back = det.observe(T0 + dt.timedelta(seconds=3.5), 103.0)
    assert back is not None and back.step_s == pytest.approx(-3600.0)


def test_step_detector_rebase_hides_a_change_the_meter_made():
    det = StepDetector(threshold_s=1.0)
    det.observe(T0, 100.0)
    det.rebase(T0 + H, 100.5)  # a DLMS write announced by the meter itself
    assert det.observe(T0 + H + dt.timedelta(seconds=0.5), 101.0) is None


def test_a_valid_rtc_again_returns_to_the_last_sync():
    trust = TimeTrust()
    trust.synced(T0, "ntp")
    trust.rtc_lost(T0 + H)
    change = trust.rtc_valid(T0 + 2 * H)
    assert change is not None and change.new is TrustState.SYNCHRONISED
    assert trust.record.last_sync_utc == T0

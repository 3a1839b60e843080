"""Alarm register 0-0:97.98.0.255 and alarm filter 0-0:97.98.10.255."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core import event_codes as ec
from meterd.core.alarms import ALARMS_BY_CODE, ALL_BITS, Alarm, AlarmRegister
from meterd.core.events import EventRecorder
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def wired(filter_mask: int = ALL_BITS, store=None) -> tuple[EventRecorder, AlarmRegister]:
    rec = EventRecorder(store=store)
    reg = AlarmRegister(filter_mask, store)
    rec.add_listener(reg.on_event)
    return rec, reg


def test_tamper_start_sets_its_bit_and_fraud_attempt_end_does_not_clear() -> None:
    rec, reg = wired()
    rec.record(ec.code("TERMINAL_COVER_REMOVED"), T0)
    assert reg.value == Alarm.TERMINAL_COVER.mask | Alarm.FRAUD_ATTEMPT.mask
    rec.record(ec.code("TERMINAL_COVER_CLOSED"), T0)
    assert reg.active() == [Alarm.FRAUD_ATTEMPT, Alarm.TERMINAL_COVER]


def test_filter_masks_alarms() -> None:
    rec, reg = wired(filter_mask=ALL_BITS & ~Alarm.MAGNETIC_FIELD.mask)
    rec.record(ec.code("STRONG_DC_FIELD"), T0)
    assert reg.value == Alarm.FRAUD_ATTEMPT.mask
    reg.set_filter(0)
    rec.record(ec.code("CLOCK_INVALID"), T0)
    assert reg.value == Alarm.FRAUD_ATTEMPT.mask


def test_clear_by_mask_returns_cleared_bits() -> None:
    rec, reg = wired()
    rec.record(ec.code("REVERSE_CURRENT_L2"), T0)
    rec.record(ec.code("UNDER_VOLTAGE_L3"), T0)
    assert reg.clear(Alarm.UNDER_VOLTAGE.mask | Alarm.CLOCK_INVALID.mask) == Alarm.UNDER_VOLTAGE.mask
    assert reg.value == Alarm.REVERSE_CURRENT.mask | Alarm.FRAUD_ATTEMPT.mask
    assert reg.clear() == Alarm.REVERSE_CURRENT.mask | Alarm.FRAUD_ATTEMPT.mask
    assert reg.value == 0
    rec.record(ec.code("REVERSE_CURRENT_L2"), T0)
    assert reg.value != 0


def test_events_without_alarm_leave_register_alone() -> None:
    rec, reg = wired()
    rec.record(ec.code("POWER_DOWN"), T0)
    rec.record(ec.code("REMOTE_CONNECTION"), T0)
    rec.record(ec.code("REMOTE_DISCONNECTION"), T0)
    rec.record(ec.code("CREDIT_EXHAUSTED"), T0)  # the relay opening that may follow sets bit 4
    assert reg.value == 0


def test_power_restored_and_local_disconnection_have_project_bits_3_and_4() -> None:
    assert (Alarm.POWER_RESTORED.value, Alarm.LOCAL_DISCONNECTION.value) == (3, 4)
    rec, reg = wired()
    rec.record(ec.code("POWER_UP"), T0)
    assert reg.value == Alarm.POWER_RESTORED.mask
    rec.record(ec.code("LONG_POWER_FAILURE"), T0)
    assert reg.active() == [Alarm.LONG_POWER_FAILURE, Alarm.POWER_RESTORED]
    reg.clear()
    rec.record(ec.code("LOCAL_DISCONNECTION"), T0)
    assert reg.value == Alarm.LOCAL_DISCONNECTION.mask
    reg.set_filter(ALL_BITS & ~(Alarm.POWER_RESTORED.mask | Alarm.LOCAL_DISCONNECTION.mask))
    reg.clear()
    rec.record(ec.code("POWER_UP"), T0)
    rec.record(ec.code("LOCAL_DISCONNECTION"), T0)
    assert reg.value == 0


@pytest.mark.parametrize(("state", "expected"), [("invalid", Alarm.CLOCK_INVALID.mask),
                                                 ("free_running", 0), ("never_synchronised", 0)])
def test_time_untrusted_sets_clock_invalid_only_when_the_time_is_invalid(state: str, expected: int) -> None:
    rec, reg = wired()
    rec.record(ec.code("TIME_UNTRUSTED"), T0, {"state": state, "previous": "synchronised"})
    rec.record(ec.code("TIME_TRUSTED"), T0, {"state": "synchronised", "previous": state})
    assert reg.value == expected


def test_project_bits_stay_clear_of_the_idis_bits() -> None:
    idis = {0, 1} | set(range(8, 14))
    free = {5, 6, 7, 14, 15, 31}
    assert {a.value for a in Alarm}.isdisjoint(free)
    assert {a.value for a in Alarm} >= idis


def test_masks_are_32_bit() -> None:
    reg = AlarmRegister()
    with pytest.raises(ValueError):
        reg.set_filter(1 << 32)
    with pytest.raises(ValueError):
        reg.clear(-1)
    assert all(0 <= a.value < 32 for a in Alarm)
    assert all(0 < m <= ALL_BITS for m in ALARMS_BY_CODE.values())


def test_register_and_filter_survive_restart(tmp_path) -> None:
    with SqliteEventStore(tmp_path / "e.db") as store:
        rec, reg = wired(store=store)
        reg.set_filter(ALL_BITS & ~Alarm.SECURITY.mask)
        rec.record(ec.code("STRONG_DC_FIELD"), T0)
        rec.record(ec.code("REPLAY_ATTACK"), T0)
    with SqliteEventStore(tmp_path / "e.db") as store:
        reg = AlarmRegister(store=store)
        assert reg.value == Alarm.MAGNETIC_FIELD.mask | Alarm.FRAUD_ATTEMPT.mask
        assert reg.filter == ALL_BITS & ~Alarm.SECURITY.mask

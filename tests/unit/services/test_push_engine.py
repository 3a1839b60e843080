"""The push engine: queue, delivery, Blue Book retries and repetition delay, parking, the queue
bound, restarts, alarm and schedule triggers (manual clocks, a scripted uplink)."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meterd.core import event_codes as ec
from meterd.core.legal_time import ClockSettings, LegalTime
from meterd.proto.wrapper import WrapperDecoder, WrapperFrame
from meterd.services.push import (
    ALARM_OBIS,
    SCHEDULED_OBIS,
    Captured,
    PushEngine,
    PushKind,
    PushSchedule,
    PushSettings,
    RepetitionDelay,
    Transport,
    Window,
    daily_schedule,
    default_objects,
)
from meterd.services.uplink import UplinkDown, UplinkState
from meterd.store.push_queue import SqlitePushQueue
from tests.fakes import ManualMono

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Writer:
    def __init__(self, uplink: ScriptedUplink) -> None:
        self.uplink = uplink

    def write(self, data: bytes) -> None:
        self.uplink.sent.append(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class ScriptedUplink:
    """An uplink whose medium is up or down, and whose next ``fail`` connections are refused."""

    def __init__(self) -> None:
        self.up = True
        self.fail = 0
        self.sent: list[bytes] = []
        self.attempts = 0
        self.medium = "test"

    def state(self) -> UplinkState:
        return UplinkState(self.medium, self.up, "" if self.up else "cut")

    async def open_stream(self, host: str, port: int, timeout_s: float) -> tuple[Any, Any]:
        if not self.up:
            raise UplinkDown("no medium")
        self.attempts += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return None, Writer(self)

    async def send_datagram(self, host: str, port: int, data: bytes) -> None:
        self.attempts += 1
        self.sent.append(data)


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, Mapping[str, object] | None]] = []

    def record(self, code: int, utc: dt.datetime, detail: Mapping[str, object] | None = None) -> object:
        self.recorded.append((code, detail))
        return None

    def codes(self) -> list[int]:
        return [c for c, _ in self.recorded]


def capture(settings: PushSettings, marks: Mapping[str, str]) -> Captured:
    n = int(marks.get("n", "0")) + 1
    return Captured(bytes((0,)) + bytes((0x12,)) + struct.pack(">H", n), {"n": str(n)})


def setups(retries: int = 2, randomisation_s: int = 0) -> list[PushSettings]:
    base = PushSettings("", PushKind.ALARM, (), destination="127.0.0.1:4059", retries=retries,
                        repetition=RepetitionDelay(10, 200, 35))
    return [replace(base, obis=ALARM_OBIS, kind=PushKind.ALARM, objects=default_objects(ALARM_OBIS, PushKind.ALARM)),
            replace(base, obis=SCHEDULED_OBIS, kind=PushKind.SCHEDULED, randomisation_s=randomisation_s,
                    objects=default_objects(SCHEDULED_OBIS, PushKind.SCHEDULED))]


class Rig:
    def __init__(self, path: Path, retries: int = 2, max_messages: int = 1000, randomisation_s: int = 0) -> None:
        self.mono = ManualMono()
        self.utc = T0
        self.uplink = ScriptedUplink()
        self.events = Events()
        self.store = SqlitePushQueue(path / "push.db")
        self.engine = PushEngine(setups(retries, randomisation_s), self.store, self.uplink, capture,
                                 lambda apdu: apdu, self.mono, lambda: self.utc, self.events,
                                 max_messages=max_messages, park_s=600.0)

    def deliver(self) -> int:
        return asyncio.run(self.engine.deliver_due())

    def advance(self, s: float) -> None:
        self.mono.advance(s)
        self.utc += dt.timedelta(seconds=s)

    def apdus(self) -> list[bytes]:
        decoder = WrapperDecoder()
        out = []
        for data in self.uplink.sent:
            out += [ev.apdu for ev in decoder.feed(data) if isinstance(ev, WrapperFrame)]
        return out


def test_repetition_delay_follows_the_blue_book_formula() -> None:
    rep = RepetitionDelay(10, 200, 35)
    assert [rep.delay_s(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 35.0, 35.0]
    assert RepetitionDelay(30, 100, 0).delay_s(5) == 30.0  # exponent 100: constant
    assert RepetitionDelay(5, 150, 0).delay_s(3) == pytest.approx(11.25)  # no maximum


def test_a_message_is_framed_sent_once_and_leaves_the_store(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    first = rig.engine.trigger(ALARM_OBIS, "test")
    second = rig.engine.trigger(SCHEDULED_OBIS, "test")
    assert (first, second) == (1, 2)
    assert rig.deliver() == 2
    apdus = rig.apdus()
    assert [a[0] for a in apdus] == [0x0F, 0x0F]
    invoke = [struct.unpack(">I", a[1:5])[0] for a in apdus]
    assert invoke == [0x8000_0001, 2]  # alarm: priority high; invoke id = message id
    assert rig.store.pending() == []
    assert rig.deliver() == 0 and len(rig.uplink.sent) == 2


def test_failed_sends_retry_after_the_repetition_delay_then_park(tmp_path: Path) -> None:
    rig = Rig(tmp_path, retries=2)
    rig.uplink.fail = 10
    rig.engine.trigger(ALARM_OBIS, "test")
    assert rig.deliver() == 0 and rig.uplink.attempts == 1
    rig.advance(9)
    assert rig.deliver() == 0 and rig.uplink.attempts == 1  # retry 1 after 10 s
    rig.advance(1)
    assert rig.deliver() == 0 and rig.uplink.attempts == 2
    rig.advance(19)
    rig.deliver()
    assert rig.uplink.attempts == 2  # retry 2 after 20 s
    rig.advance(1)
    rig.deliver()
    assert rig.uplink.attempts == 3
    assert ec.code("PUSH_RETRIES_EXHAUSTED") in rig.events.codes()
    rig.advance(500)
    rig.deliver()
    assert rig.uplink.attempts == 3  # parked: kept, not tried
    assert len(rig.store.pending()) == 1
    rig.uplink.fail = 0
    rig.advance(100)  # park_s over: a new round
    assert rig.deliver() == 1
    assert rig.store.pending() == []


def test_a_retry_goes_out_at_once_when_the_uplink_switched_media(tmp_path: Path) -> None:
    """An attempt failed on the primary; the uplink falls back: the push continues on the new
    medium without waiting out the repetition delay, and counts its retries as before."""
    rig = Rig(tmp_path, retries=2)
    rig.uplink.medium, rig.uplink.fail = "ethernet", 1
    rig.engine.trigger(ALARM_OBIS, "test")
    assert rig.deliver() == 0 and rig.uplink.attempts == 1
    rig.advance(1)
    assert not rig.engine.has_due()  # same medium: retry 1 after 10 s
    rig.uplink.medium, rig.uplink.fail = "cellular", 1
    assert rig.engine.has_due()
    assert rig.deliver() == 0 and rig.uplink.attempts == 2  # failed on the fallback too
    rig.advance(19)
    assert not rig.engine.has_due()  # retry 2 after 20 s on the same medium
    rig.advance(1)
    assert rig.deliver() == 1 and rig.uplink.attempts == 3
    assert ec.code("PUSH_RETRIES_EXHAUSTED") not in rig.events.codes()


def test_no_medium_uses_no_retry_and_a_returning_medium_sends_the_backlog(tmp_path: Path) -> None:
    rig = Rig(tmp_path, retries=0)
    rig.engine.watch_uplink()  # up at start
    rig.uplink.up = False
    rig.engine.watch_uplink()
    for _ in range(5):
        rig.engine.trigger(ALARM_OBIS, "test")
    for _ in range(10):
        rig.advance(60)
        assert rig.deliver() == 0
    assert rig.uplink.attempts == 0 and len(rig.store.pending()) == 5
    rig.uplink.up = True
    rig.engine.watch_uplink()
    assert rig.deliver() == 5
    ids = [struct.unpack(">I", a[1:5])[0] & 0xFFFFFF for a in rig.apdus()]
    assert ids == [1, 2, 3, 4, 5]
    assert ec.code("PUSH_BACKLOG_DELIVERED") in rig.events.codes()


def test_a_backlog_sent_before_the_cycle_sees_the_medium_back_is_still_reported(tmp_path: Path) -> None:
    """The delivery task runs on its own: it may send the backlog as soon as the medium is up,
    before the next cycle's watch of the uplink."""
    rig = Rig(tmp_path, retries=0)
    rig.engine.watch_uplink()  # up at start
    rig.uplink.up = False
    rig.engine.trigger(ALARM_OBIS, "test")
    rig.engine.watch_uplink()
    rig.uplink.up = True  # back: the delivery task is first
    assert rig.deliver() == 1
    assert rig.events.codes().count(ec.code("PUSH_BACKLOG_DELIVERED")) == 1
    rig.engine.watch_uplink()  # then the cycle sees the medium back: no second report
    rig.deliver()
    assert rig.events.codes().count(ec.code("PUSH_BACKLOG_DELIVERED")) == 1


def test_queue_bound_drops_the_oldest_non_alarm_first(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_messages=10)
    rig.uplink.up = False
    ids = [rig.engine.trigger(SCHEDULED_OBIS, "s") for _ in range(3)]
    ids += [rig.engine.trigger(ALARM_OBIS, "a") for _ in range(7)]
    assert rig.engine.queued() == 10
    rig.engine.trigger(ALARM_OBIS, "a")
    kept = [m.id for m in rig.store.pending()]
    assert ids[0] not in kept and ids[1] in kept and len(kept) == 10
    rig.engine.trigger(ALARM_OBIS, "a")
    rig.engine.trigger(ALARM_OBIS, "a")
    kept = [m.id for m in rig.store.pending()]
    assert all(m.priority for m in rig.store.pending())  # every scheduled one went before an alarm
    rig.engine.trigger(ALARM_OBIS, "a")  # all alarms: the oldest alarm goes
    assert ids[3] not in [m.id for m in rig.store.pending()]
    dropped = [d for c, d in rig.events.recorded if c == ec.code("PUSH_DROPPED")]
    assert len(dropped) == 4 and dropped[-1] == {"setup": ALARM_OBIS, "id": ids[3]}


def test_alarms_go_before_an_older_backlog(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.uplink.up = False
    rig.engine.trigger(SCHEDULED_OBIS, "s")
    rig.engine.trigger(SCHEDULED_OBIS, "s")
    rig.engine.trigger(ALARM_OBIS, "a")
    rig.uplink.up = True
    assert rig.deliver() == 3
    assert [struct.unpack(">I", a[1:5])[0] for a in rig.apdus()] == [0x8000_0003, 1, 2]


def test_queued_messages_survive_a_restart_and_ids_are_never_reused(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.uplink.up = False
    rig.engine.trigger(ALARM_OBIS, "a")
    rig.engine.trigger(SCHEDULED_OBIS, "s")
    rig.store.close()
    again = Rig(tmp_path)
    assert again.engine.queued() == 2
    assert again.deliver() == 2
    assert again.engine.trigger(ALARM_OBIS, "a") == 3
    assert again.deliver() == 1
    again.store.close()
    third = Rig(tmp_path)
    assert third.engine.queued() == 0
    assert third.engine.trigger(ALARM_OBIS, "a") == 4


def test_capture_marks_move_with_the_message(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for _ in range(3):
        rig.engine.trigger(SCHEDULED_OBIS, "s")
    assert rig.store.marks()["n"] == "3"
    bodies = [m.body for m in rig.store.pending()]
    assert [struct.unpack(">H", b[2:4])[0] for b in bodies] == [1, 2, 3]


def test_new_alarm_bits_trigger_the_alarm_push_with_the_descriptor(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.watch_alarms(0b1)  # what was set before start is not pushed again
    assert rig.engine.queued() == 0
    rig.engine.watch_alarms(0b1)
    assert rig.engine.queued() == 0
    rig.engine.watch_alarms(0b1011)
    assert rig.engine.queued() == 1 and rig.engine.alarm_descriptor == 0b1010
    rig.engine.watch_alarms(0)  # cleared: nothing
    rig.engine.watch_alarms(0b10)  # set again: a new alarm
    assert rig.engine.queued() == 2 and rig.engine.alarm_descriptor == 0b10


def test_alarm_bits_set_while_the_meter_was_down_are_pushed_after_the_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.watch_alarms(0b1)  # a new meter: the starting point
    rig.engine.watch_alarms(0b101)
    assert rig.engine.queued() == 1
    rig.store.close()
    again = Rig(tmp_path)  # the supply came back: "power restored" (bit 3) set before the first cycle
    assert again.engine.queued() == 1
    again.engine.watch_alarms(0b1101)
    assert again.engine.queued() == 2 and again.engine.alarm_descriptor == 0b1000
    again.engine.watch_alarms(0)  # cleared by the head end
    again.store.close()
    third = Rig(tmp_path)
    third.engine.watch_alarms(0)  # nothing set since: nothing pushed, nothing pushed twice
    assert third.engine.queued() == 2


def test_push_action_schedule_runs_the_scheduled_push_daily_and_keeps_a_written_schedule(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    utc_rules = LegalTime(ClockSettings())
    schedule = PushSchedule(rig.engine, rig.store, daily_schedule(0, 5))
    schedule.tick(T0, utc_rules)
    schedule.tick(T0 + dt.timedelta(minutes=4), utc_rules)
    assert rig.engine.queued() == 0
    schedule.tick(T0 + dt.timedelta(minutes=5), utc_rules)
    schedule.tick(T0 + dt.timedelta(hours=5), utc_rules)
    assert rig.engine.queued() == 1 and rig.store.pending()[0].setup == SCHEDULED_OBIS
    schedule.tick(T0 + dt.timedelta(days=1, minutes=5), utc_rules)
    assert rig.engine.queued() == 2
    assert not schedule.put(replace(daily_schedule(1, 0), selector=9))  # not a push script
    assert schedule.put(replace(daily_schedule(2, 30), selector=2))  # the alarm setup at 02:30
    rig.store.close()
    again = Rig(tmp_path)
    kept = PushSchedule(again.engine, again.store, daily_schedule(0, 5))
    assert kept.get() == replace(daily_schedule(2, 30), selector=2)
    kept.tick(T0 + dt.timedelta(days=2), utc_rules)
    kept.tick(T0 + dt.timedelta(days=2, hours=2, minutes=30), utc_rules)
    assert [m.setup for m in again.store.pending()][-1] == ALARM_OBIS
    assert kept.next_utc == T0 + dt.timedelta(days=3, hours=2, minutes=30)


def test_randomisation_and_windows_delay_the_send(tmp_path: Path) -> None:
    rig = Rig(tmp_path, randomisation_s=100)
    rig.engine.trigger(SCHEDULED_OBIS, "s")
    sent_at = None
    for second in range(0, 101):
        if rig.deliver():
            sent_at = second
            break
        rig.advance(1)
    assert sent_at is not None and 0 <= sent_at <= 100
    window = replace(rig.engine.settings(SCHEDULED_OBIS), randomisation_s=0, windows=(Window(3600, 7200),))
    rig.engine.update(window)
    rig.utc = T0
    rig.engine.trigger(SCHEDULED_OBIS, "s")
    assert rig.deliver() == 0
    rig.utc = T0 + dt.timedelta(hours=1, minutes=1)
    assert rig.deliver() == 1


def test_written_settings_survive_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    changed = replace(rig.engine.settings(ALARM_OBIS), destination="10.0.0.9:4060", retries=7,
                      repetition=RepetitionDelay(1, 150, 99), windows=(Window(0, 60),), client_sap=17)
    rig.engine.update(changed)
    rig.store.close()
    assert Rig(tmp_path).engine.settings(ALARM_OBIS) == changed


def test_a_setup_without_destination_sends_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.update(replace(rig.engine.settings(ALARM_OBIS), destination=""))
    assert rig.engine.trigger(ALARM_OBIS, "a") is None
    assert rig.store.pending() == [] and "n" not in rig.store.marks()


def test_udp_setups_send_one_datagram_per_message(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.update(replace(rig.engine.settings(ALARM_OBIS), transport=Transport.UDP, client_sap=17))
    rig.engine.trigger(ALARM_OBIS, "a")
    assert rig.deliver() == 1 and rig.uplink.attempts == 1
    frame = rig.uplink.sent[0]
    assert struct.unpack(">HHHH", frame[:8]) == (1, 1, 17, len(frame) - 8)

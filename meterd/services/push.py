"""Pushes to the head end: DLMS push setups (class 40 version 2), their triggers, the queue of
undelivered messages and their delivery through the :class:`~meterd.services.uplink.Uplink`.

A push setup (0-x:25.9.0.255) says *what* is sent (``push_object_list``: captured attribute
values), *where* and *how* (``send_destination_and_method``: TCP or UDP, "host:port", A-XDR
COSEM APDUs behind the IEC 62056-47 wrapper to wPort ``push_client_SAP``), *when* sending is
allowed (``communication_window``) and how delivery is retried (``randomisation_start_interval``,
``number_of_retries``, ``repetition_delay`` with its minimum, exponent and maximum).

The flow, pure apart from the uplink port:

1. a trigger (a newly set alarm bit, the push action schedule 0-0:15.0.4.255 (class 22, see
   :class:`PushSchedule`), a medium coming up, the first start, the head end's method 1
   ``push``) captures the values now, through the injected
   :class:`Capture` (the COSEM layer encodes them), and stores one message in the
   :class:`PushStore` in one transaction with the profile marks the capture advanced (so every
   profile row goes into exactly one message, also across restarts);
2. the message is due after a random delay in 0 … ``randomisation_start_interval`` (s), inside a
   communication window when the setup has any;
3. :meth:`PushEngine.deliver_due` sends the due messages, alarms first, then in id order: the DataNotification APDU
   (long-invoke-id-and-priority from the message id, the captured date-time and body) is sealed
   by the injected :class:`Sealer` (ciphered when the meter has keys), framed by the wrapper and
   handed to the uplink; a message leaves the store only after its send succeeded;
4. a failed send while a medium is up is retry *n* (1 … ``number_of_retries``) after
   ``min(repetition_delay_min · (exponent/100)^(n−1), repetition_delay_max)`` seconds (Blue Book,
   class 40 v2); after the last retry the message stays queued ("parked", event 170) and gets a
   new round of attempts when a medium comes up again or after ``park_s``. While no medium is up
   nothing is tried and no retry is used up. Nothing is dropped except by the queue bound.

The queue is bounded (``max_messages``): when full, a new message evicts the oldest non-alarm
message, or the oldest alarm when every queued message is an alarm (event 171 with the evicted
setup). A message has one id for its whole life; its invoke id (the id modulo 2^24) lets the
head end discard a repeat, which is only ever sent after a send the uplink could not confirm.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import logging
import random
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.legal_time import LegalTime
from meterd.core.ports import EventSink, MonoClock
from meterd.core.single_action import (
    DatePattern,
    ExecutionTime,
    ScheduleError,
    ScheduleRunner,
    SingleActionSchedule,
    TimePattern,
)
from meterd.proto.wrapper import WrapperFrame
from meterd.services.uplink import Uplink, UplinkDown

log = logging.getLogger("meterd.push")

DATA_NOTIFICATION = 0x0F
SERVER_WPORT = 1  # the management logical device sends
INVOKE_ID_MASK = 0x00FF_FFFF
PRIORITY_HIGH = 0x8000_0000

# push setup logical names (IDIS package 3 practice; see docs/communications.md)
ON_CONNECTIVITY_OBIS = "0.0.25.9.0.255"
SCHEDULED_OBIS = "0.1.25.9.0.255"
ALARM_OBIS = "0.4.25.9.0.255"
ON_INSTALLATION_OBIS = "0.7.25.9.0.255"
ALARM_DESCRIPTOR_OBIS = "0.0.97.98.20.255"
ALARM_BITS_MARK = "alarm_bits"
"""The push store's mark holding the alarm register as the alarm push last saw it."""
PUSH_SCHEDULE_OBIS = "0.0.15.0.4.255"
PUSH_SCRIPT_TABLE_OBIS = "0.0.10.0.108.255"
PUSH_SCRIPTS = {1: SCHEDULED_OBIS, 2: ALARM_OBIS, 3: ON_CONNECTIVITY_OBIS, 4: ON_INSTALLATION_OBIS}
"""Scripts of the push script table 0-0:10.0.108.255: script id -> the push setup whose method 1
(push) it invokes."""


class Transport(enum.IntEnum):
    """``transport_service`` of ``send_destination_and_method`` (those this meter serves)."""

    TCP = 0
    UDP = 1


class OperationMethod(enum.IntEnum):
    """``push_operation_method`` (class 40 v2): 0 unconfirmed, failure tolerant; 1 confirmed by
    the supporting layer (the TCP connection took and closed the message). 2 (application layer
    confirmation) is not offered."""

    UNCONFIRMED = 0
    CONFIRMED_TRANSPORT = 1


class PushKind(enum.Enum):
    """What triggers a push setup."""

    ALARM = "alarm"
    SCHEDULED = "scheduled"
    CONNECTIVITY = "connectivity"
    INSTALLATION = "installation"


@dataclass(frozen=True)
class PushObject:
    """One element of ``push_object_list``: interface class, logical name (dotted OBIS),
    attribute index and data index (0 = the whole attribute). A profile's buffer (class 7,
    attribute 2) is pushed as the rows captured since this setup last pushed it."""

    class_id: int
    obis: str
    attribute: int
    data_index: int = 0


@dataclass(frozen=True)
class RepetitionDelay:
    """``repetition_delay`` of class 40 v2: minimum (s), exponent (percent: 100 keeps the delay
    constant, 200 doubles it per retry) and maximum (s, 0 = no maximum)."""

    min_s: int = 60
    exponent: int = 200
    max_s: int = 3600

    def delay_s(self, retry: int) -> float:
        """The wait (s) before retry ``retry`` (1 = the first retry after a failed attempt)."""
        delay = float(self.min_s) * (self.exponent / 100.0) ** max(retry - 1, 0)
        return min(delay, float(self.max_s)) if self.max_s else delay


@dataclass(frozen=True)
class Window:
    """A communication window: a daily span of UTC seconds of day [``start_s``, ``end_s``)
    (``end_s`` < ``start_s`` spans midnight)."""

    start_s: int
    end_s: int

    def contains(self, utc: _dt.datetime) -> bool:
        """Whether ``utc`` falls in the window."""
        s = utc.hour * 3600 + utc.minute * 60 + utc.second
        if self.start_s <= self.end_s:
            return self.start_s <= s < self.end_s
        return s >= self.start_s or s < self.end_s


@dataclass(frozen=True)
class PushSettings:
    """The attributes of one push setup (see the module docstring); ``destination`` "" = the
    setup sends nothing (a trigger is ignored)."""

    obis: str
    kind: PushKind
    objects: tuple[PushObject, ...]
    transport: Transport = Transport.TCP
    destination: str = ""
    windows: tuple[Window, ...] = ()
    randomisation_s: int = 0
    retries: int = 3
    repetition: RepetitionDelay = RepetitionDelay()
    client_sap: int = 102
    operation: OperationMethod = OperationMethod.CONFIRMED_TRANSPORT

    def address(self) -> tuple[str, int] | None:
        """(host, port) of the destination, None when unset or malformed."""
        host, sep, port = self.destination.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return None
        return host.strip("[]"), int(port)

    def in_window(self, utc: _dt.datetime) -> bool:
        """Whether sending is allowed at ``utc`` (always, without windows)."""
        return not self.windows or any(w.contains(utc) for w in self.windows)


def default_objects(obis: str, kind: PushKind) -> tuple[PushObject, ...]:
    """The default push object list of a setup of ``kind``: its own logical name, the device
    id 0-0:96.1.0.255 and the clock, then per kind the alarm register and alarm descriptor
    (alarm) or the daily billing profile 1-0:99.2.0.255 and the load profile 1-0:99.1.0.255
    (scheduled)."""
    head = (PushObject(40, obis, 1), PushObject(1, "0.0.96.1.0.255", 2), PushObject(8, "0.0.1.0.0.255", 2))
    if kind is PushKind.ALARM:
        return head + (PushObject(1, "0.0.97.98.0.255", 2), PushObject(1, ALARM_DESCRIPTOR_OBIS, 2))
    if kind is PushKind.SCHEDULED:
        return head + (PushObject(7, "1.0.99.2.0.255", 2), PushObject(7, "1.0.99.1.0.255", 2))
    return head


@dataclass(frozen=True)
class Captured:
    """What a capture produced: the DataNotification's date-time field and body (A-XDR) and the
    profile marks it advanced (mark name -> ISO UTC of the newest row it holds)."""

    body: bytes
    marks: Mapping[str, str] = field(default_factory=dict)


class Capture(Protocol):
    """Captures a push object list now (implemented in the COSEM layer)."""

    def __call__(self, settings: PushSettings, marks: Mapping[str, str]) -> Captured: ...


class Sealer(Protocol):
    """Protects a DataNotification APDU (ciphered with the meter's keys, or as it is)."""

    def __call__(self, apdu: bytes) -> bytes: ...


@dataclass(frozen=True)
class StoredPush:
    """A queued message as the store keeps it: id, setup, alarm priority, creation UTC, body."""

    id: int
    setup: str
    priority: bool
    created_utc: _dt.datetime
    body: bytes


class PushStore(Protocol):
    """Durable queue of undelivered messages, profile marks and push settings
    (``meterd.store.push_queue``); every method is one transaction."""

    def pending(self) -> list[StoredPush]: ...

    def enqueue(self, setup: str, priority: bool, created_utc: _dt.datetime, body: bytes,
                marks: Mapping[str, str], evict: int | None) -> int: ...

    def delivered(self, push_id: int) -> None: ...

    def marks(self) -> dict[str, str]: ...

    def set_mark(self, name: str, value: str) -> None: ...

    def load_settings(self) -> dict[str, dict[str, object]]: ...

    def save_settings(self, obis: str, value: Mapping[str, object]) -> None: ...


@dataclass
class _Pending:
    msg: StoredPush
    due_mono: float
    attempts: int = 0  # failed attempts in this round (a medium was up)
    parked_mono: float | None = None
    failed_on: str = ""  # the medium of the last failed attempt


@dataclass(frozen=True)
class SetupStatus:
    """What ``meterctl push`` shows of a push setup."""

    obis: str
    kind: str
    destination: str
    transport: str
    queued: int
    parked: int
    sent: int
    failed_attempts: int
    last_sent_utc: str


@dataclass(frozen=True)
class PushStatus:
    """The push engine at a glance: the medium, the queue and each setup."""

    medium: str
    uplink_up: bool
    queued: int
    max_messages: int
    dropped: int
    setups: tuple[SetupStatus, ...]


class PushEngine:
    """Triggers -> queued messages -> delivery (see the module docstring)."""

    def __init__(self, setups: Sequence[PushSettings], store: PushStore, uplink: Uplink, capture: Capture,
                 seal: Sealer, clock: MonoClock, utc: Callable[[], _dt.datetime], events: EventSink,
                 max_messages: int = 1000, park_s: float = 3600.0, send_timeout_s: float = 10.0,
                 rng: random.Random | None = None) -> None:
        self._store, self._uplink, self._capture, self._seal = store, uplink, capture, seal
        self._clock, self._utc, self._events = clock, utc, events
        self.max_messages, self.park_s, self.send_timeout_s = max_messages, park_s, send_timeout_s
        self._rng = rng or random.Random()
        saved = store.load_settings()
        self._setups: dict[str, PushSettings] = {}
        for s in setups:
            self._setups[s.obis] = settings_from_dict(saved[s.obis], s) if s.obis in saved else s
        now = clock.mono()
        self._queue: list[_Pending] = [_Pending(m, now) for m in store.pending()]
        self._was_up: bool | None = None
        watched = store.marks().get(ALARM_BITS_MARK)
        self._alarm_bits: int | None = int(watched) if watched is not None else None
        self.alarm_descriptor = 0
        self.dropped = 0
        self._sent: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._last_sent: dict[str, str] = {}
        self._backlog_after_outage = False
        self.on_change: Callable[[str], None] | None = None

    # --- settings ---------------------------------------------------------------------------

    def settings(self, obis: str) -> PushSettings:
        """The current settings of the push setup ``obis`` (KeyError if there is none)."""
        return self._setups[obis]

    def setups(self) -> list[PushSettings]:
        """Every push setup, in configuration order."""
        return list(self._setups.values())

    def update(self, settings: PushSettings) -> None:
        """Replace a setup's settings (a DLMS write) and keep them across restarts."""
        if settings.obis not in self._setups:
            raise KeyError(settings.obis)
        self._setups[settings.obis] = settings
        self._store.save_settings(settings.obis, settings_to_dict(settings))

    # --- triggers ---------------------------------------------------------------------------

    def trigger(self, obis: str, reason: str) -> int | None:
        """Capture and queue a message of setup ``obis``; its id, or None when the setup has no
        destination (nothing is sent, no profile mark moves)."""
        setup = self._setups[obis]
        if setup.address() is None:
            log.debug("push %s (%s) not sent: no destination", obis, reason)
            return None
        marks = self._store.marks()
        captured = self._capture(setup, marks)
        priority = setup.kind is PushKind.ALARM
        evict = self._victim() if len(self._queue) >= self.max_messages else None
        utc = self._utc()
        push_id = self._store.enqueue(obis, priority, utc, captured.body, captured.marks,
                                      evict.msg.id if evict is not None else None)
        if evict is not None:
            self._queue.remove(evict)
            self.dropped += 1
            self._events.record(ec.code("PUSH_DROPPED"), utc, {"setup": evict.msg.setup, "id": evict.msg.id})
            log.warning("push queue full (%d): dropped message %d of %s", self.max_messages, evict.msg.id,
                        evict.msg.setup)
        wait = self._rng.uniform(0.0, float(setup.randomisation_s)) if setup.randomisation_s > 0 else 0.0
        msg = StoredPush(push_id, obis, priority, utc, captured.body)
        self._queue.append(_Pending(msg, self._clock.mono() + wait))
        log.info("push %d of %s queued (%s, %d octets)", push_id, obis, reason, len(captured.body))
        return push_id

    def _victim(self) -> _Pending | None:
        for item in self._queue:
            if not item.msg.priority:
                return item
        return self._queue[0] if self._queue else None

    def watch_alarms(self, register: int) -> None:
        """Called with the alarm register 0-0:97.98.0.255 each cycle: bits newly set since the
        last call (the filter already applied) trigger the alarm pushes, the alarm descriptor
        holding those bits. The register last seen is kept (mark ``alarm_bits``, written after
        the pushes are queued): bits set while the meter was down or at its start (the power
        restored after an outage that stopped it) are new at the first call after a restart;
        on a meter that never watched, what is set at the first call is the starting point."""
        if self._alarm_bits is None:
            self._alarm_bits = register
            self._store.set_mark(ALARM_BITS_MARK, str(register))
            return
        new = register & ~self._alarm_bits
        changed = register != self._alarm_bits
        self._alarm_bits = register
        if new:
            self.alarm_descriptor = new
            for s in self._setups.values():
                if s.kind is PushKind.ALARM:
                    self.trigger(s.obis, f"alarm bits {new:#010x}")
        if changed:
            self._store.set_mark(ALARM_BITS_MARK, str(register))

    def trigger_kind(self, kind: PushKind, reason: str) -> list[int]:
        """Trigger every setup of ``kind``; the ids of the queued messages."""
        ids = [self.trigger(s.obis, reason) for s in list(self._setups.values()) if s.kind is kind]
        return [i for i in ids if i is not None]

    def installed(self) -> None:
        """The on-installation push: once in the meter's life (a mark remembers it)."""
        if self._store.marks().get("installation") is None:
            self.trigger_kind(PushKind.INSTALLATION, "first start")
            self._store.set_mark("installation", self._utc().isoformat())

    def watch_uplink(self) -> None:
        """Called each cycle: a medium coming up gives parked messages a new round and triggers
        the on-connectivity pushes. Messages waiting while no medium is up are a backlog: the
        event 172 when they are all delivered (the delivery task may send them before this call
        sees the medium back)."""
        up = self._uplink.state().up
        was = self._was_up
        self._was_up = up
        if not up and was is not None and self._queue:
            self._backlog_after_outage = True
        if up and not was:
            now = self._clock.mono()
            for item in self._queue:
                if item.parked_mono is not None or item.attempts:
                    item.parked_mono, item.attempts, item.due_mono = None, 0, now
            self._backlog_after_outage = was is False and bool(self._queue)
            self.trigger_kind(PushKind.CONNECTIVITY, f"medium {self._uplink.state().medium} up")

    # --- delivery ---------------------------------------------------------------------------

    def queued(self) -> int:
        """Messages not delivered yet."""
        return len(self._queue)

    def has_due(self) -> bool:
        """Whether :meth:`deliver_due` has anything to send now."""
        now, utc = self._clock.mono(), self._utc()
        return any(self._is_due(item, now, utc) for item in self._queue)

    def _is_due(self, item: _Pending, now: float, utc: _dt.datetime) -> bool:
        if item.parked_mono is not None:
            if now - item.parked_mono < self.park_s:
                return False
            item.parked_mono, item.attempts = None, 0
        if item.failed_on and item.due_mono > now:
            state = self._uplink.state()
            if state.up and state.medium != item.failed_on:  # the uplink switched media: retry on the new one now
                item.due_mono = now
        setup = self._setups.get(item.msg.setup)
        return item.due_mono <= now and (setup is None or setup.in_window(utc))

    def apdu(self, msg: StoredPush) -> bytes:
        """The plain DataNotification of ``msg``: tag, long-invoke-id-and-priority, body."""
        invoke = (msg.id & INVOKE_ID_MASK) | (PRIORITY_HIGH if msg.priority else 0)
        return bytes((DATA_NOTIFICATION,)) + struct.pack(">I", invoke) + msg.body

    def frame(self, msg: StoredPush) -> bytes:
        """The sealed APDU of ``msg`` in a wrapper frame to its setup's client SAP."""
        setup = self._setups[msg.setup]
        return WrapperFrame(SERVER_WPORT, setup.client_sap, self._seal(self.apdu(msg))).encode()

    async def deliver_due(self) -> int:
        """Send every due message, alarms first, then in id order, while a medium is up; the
        number delivered."""
        sent = 0
        now, utc = self._clock.mono(), self._utc()
        for item in sorted(self._queue, key=lambda i: (not i.msg.priority, i.msg.id)):
            if not self._is_due(item, now, utc):
                continue
            if not self._uplink.state().up:
                self._backlog_after_outage = True
                break
            setup = self._setups.get(item.msg.setup)
            address = setup.address() if setup is not None else None
            if setup is None or address is None:
                continue  # the destination was removed: kept until one is set
            medium = self._uplink.state().medium
            try:
                await self._send(setup, address, self.frame(item.msg))
            except UplinkDown:
                self._backlog_after_outage = True
                break
            except (OSError, TimeoutError) as exc:
                self._failed_attempt(item, setup, str(exc) or type(exc).__name__, medium)
                continue
            self._store.delivered(item.msg.id)
            if item in self._queue:  # the queue bound may have dropped it while it was being sent
                self._queue.remove(item)
            self._sent[setup.obis] = self._sent.get(setup.obis, 0) + 1
            self._last_sent[setup.obis] = self._utc().isoformat()
            sent += 1
            if self.on_change is not None:
                self.on_change(setup.obis)
        if sent and self._backlog_after_outage and not self._queue:
            self._backlog_after_outage = False
            self._events.record(ec.code("PUSH_BACKLOG_DELIVERED"), self._utc(), {"messages": sent})
        return sent

    async def _send(self, setup: PushSettings, address: tuple[str, int], data: bytes) -> None:
        host, port = address
        if setup.transport is Transport.UDP:
            await self._uplink.send_datagram(host, port, data)
            return
        _reader, writer = await self._uplink.open_stream(host, port, self.send_timeout_s)
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.send_timeout_s)
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), self.send_timeout_s)
            except (OSError, TimeoutError):
                if setup.operation is OperationMethod.CONFIRMED_TRANSPORT:
                    raise

    def _failed_attempt(self, item: _Pending, setup: PushSettings, reason: str, medium: str) -> None:
        """A failed attempt over ``medium``: the next retry after the repetition delay, or at once
        when the uplink has switched to another medium meanwhile (:meth:`_is_due`)."""
        item.attempts += 1
        item.failed_on = medium
        self._failed[setup.obis] = self._failed.get(setup.obis, 0) + 1
        now = self._clock.mono()
        if item.attempts <= setup.retries:
            item.due_mono = now + setup.repetition.delay_s(item.attempts)
            log.info("push %d of %s failed (%s): retry %d in %.0f s", item.msg.id, setup.obis, reason,
                     item.attempts, item.due_mono - now)
            return
        item.parked_mono = now
        log.warning("push %d of %s not delivered after %d retries (%s): kept queued", item.msg.id, setup.obis,
                    setup.retries, reason)
        self._events.record(ec.code("PUSH_RETRIES_EXHAUSTED"), self._utc(),
                            {"setup": setup.obis, "id": item.msg.id, "reason": reason[:60]})

    # --- status -----------------------------------------------------------------------------

    def status(self) -> PushStatus:
        """The medium, the queue and every setup."""
        state = self._uplink.state()
        rows = []
        for s in self._setups.values():
            mine = [i for i in self._queue if i.msg.setup == s.obis]
            rows.append(SetupStatus(s.obis, s.kind.value, s.destination, s.transport.name.lower(), len(mine),
                                    sum(1 for i in mine if i.parked_mono is not None), self._sent.get(s.obis, 0),
                                    self._failed.get(s.obis, 0), self._last_sent.get(s.obis, "")))
        return PushStatus(state.medium, state.up, len(self._queue), self.max_messages, self.dropped, tuple(rows))


def settings_to_dict(s: PushSettings) -> dict[str, object]:
    """The writable attributes of a setup as a JSON-able dict (kept in the push store)."""
    return {
        "objects": [[o.class_id, o.obis, o.attribute, o.data_index] for o in s.objects],
        "transport": int(s.transport), "destination": s.destination,
        "windows": [[w.start_s, w.end_s] for w in s.windows], "randomisation_s": s.randomisation_s,
        "retries": s.retries, "repetition": [s.repetition.min_s, s.repetition.exponent, s.repetition.max_s],
        "client_sap": s.client_sap, "operation": int(s.operation),
    }


def _ints(value: object) -> list[int]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return [int(v) for v in value]


def settings_from_dict(d: Mapping[str, object], base: PushSettings) -> PushSettings:
    """Settings saved by :func:`settings_to_dict` over ``base`` (its OBIS and kind); a field
    that does not parse keeps ``base``'s value."""
    s = base
    try:
        objects = d.get("objects")
        if isinstance(objects, list):
            s = replace(s, objects=tuple(PushObject(int(o[0]), str(o[1]), int(o[2]), int(o[3])) for o in objects))
        windows = d.get("windows")
        if isinstance(windows, list):
            s = replace(s, windows=tuple(Window(*_ints(w)) for w in windows))
        rep = _ints(d.get("repetition", [s.repetition.min_s, s.repetition.exponent, s.repetition.max_s]))
        s = replace(s, transport=Transport(int(str(d.get("transport", int(s.transport))))),
                    destination=str(d.get("destination", s.destination)),
                    randomisation_s=int(str(d.get("randomisation_s", s.randomisation_s))),
                    retries=int(str(d.get("retries", s.retries))), repetition=RepetitionDelay(*rep),
                    client_sap=int(str(d.get("client_sap", s.client_sap))),
                    operation=OperationMethod(int(str(d.get("operation", int(s.operation))))))
    except (ValueError, TypeError, IndexError) as exc:
        log.warning("push setup %s: saved settings ignored in part (%s)", base.obis, exc)
    return s


def daily_schedule(hour: int, minute: int) -> SingleActionSchedule:
    """The default push action schedule: script 1 of the push script table (the scheduled push)
    every day at ``hour``:``minute`` legal (local) time."""
    return SingleActionSchedule(PUSH_SCRIPT_TABLE_OBIS, 1, 1,
                                (ExecutionTime(TimePattern(hour, minute, 0, 0), DatePattern()),))


def schedule_to_dict(s: SingleActionSchedule) -> dict[str, object]:
    """A schedule as a JSON-able dict (wildcards as None)."""
    return {"script": s.script, "selector": s.selector, "type": s.type,
            "times": [[t.time.hour, t.time.minute, t.time.second, t.time.hundredths,
                       t.date.year, t.date.month, t.date.day, t.date.weekday] for t in s.times]}


def schedule_from_dict(d: Mapping[str, object]) -> SingleActionSchedule:
    """Inverse of :func:`schedule_to_dict`; raises ValueError, TypeError or ScheduleError."""
    times = d.get("times")
    if not isinstance(times, list):
        raise ValueError("times must be a list")

    def opt(v: object) -> int | None:
        return None if v is None else int(str(v))

    entries = tuple(ExecutionTime(TimePattern(*(opt(v) for v in t[:4])), DatePattern(*(opt(v) for v in t[4:8])))
                    for t in times)
    return SingleActionSchedule(str(d["script"]), int(str(d["selector"])), int(str(d["type"])), entries)


class PushSchedule:
    """The push action schedule 0-0:15.0.4.255 (single action schedule, class 22): when due it
    runs a script of the push script table 0-0:10.0.108.255 (:data:`PUSH_SCRIPTS`), each of which
    triggers one push setup. Times are the meter's legal time; a written schedule is kept in the
    push store and wins over the configured ``default``. A time the meter was off at is not
    pushed afterwards: the next scheduled push carries every profile row since the last one."""

    def __init__(self, engine: PushEngine, store: PushStore, default: SingleActionSchedule) -> None:
        self._engine, self._store = engine, store
        schedule = default
        saved = store.load_settings().get(PUSH_SCHEDULE_OBIS)
        if saved is not None:
            try:
                schedule = schedule_from_dict(saved)
            except (ValueError, TypeError, KeyError, ScheduleError) as exc:
                log.warning("push action schedule: saved schedule ignored (%s)", exc)
        self._runner = ScheduleRunner(schedule)

    def get(self) -> SingleActionSchedule:
        """The schedule in force."""
        return self._runner.schedule

    def put(self, schedule: SingleActionSchedule) -> bool:
        """Use and keep ``schedule`` (a DLMS write); False when its script is not a push script."""
        if schedule.script != PUSH_SCRIPT_TABLE_OBIS or schedule.selector not in PUSH_SCRIPTS:
            return False
        self._store.save_settings(PUSH_SCHEDULE_OBIS, schedule_to_dict(schedule))
        self._runner.set_schedule(schedule)
        return True

    def run_script(self, selector: int) -> int | None:
        """Script ``selector`` of the push script table: trigger its push setup; the message id."""
        obis = PUSH_SCRIPTS.get(selector)
        if obis is None:
            raise KeyError(selector)
        return self._engine.trigger(obis, f"push script {selector}")

    def tick(self, utc: _dt.datetime, legal: LegalTime) -> None:
        """Called each cycle with the meter's UTC time and legal-time rules: runs the script
        when an execution time was reached."""
        if self._runner.due(utc, legal):
            self.run_script(self.get().selector)

    @property
    def next_utc(self) -> _dt.datetime | None:
        """The next execution (UTC), as computed at the last tick."""
        return self._runner.next_utc

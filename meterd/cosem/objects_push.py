"""COSEM side of the pushes: the push setup objects (class 40 version 2), the alarm descriptor,
the capture of a push object list and the sealing of a DataNotification.

OBIS map (IDIS package 3 practice):

* 0-0:25.9.0.255 on connectivity, 0-1:25.9.0.255 scheduled (daily billing values and load
  profile), 0-4:25.9.0.255 alarm, 0-7:25.9.0.255 on installation (class 40 v2). Every attribute
  is read by the reader and the management association; the management association writes
  push_object_list (2), send_destination_and_method (3), communication_window (4),
  randomisation_start_interval (5), number_of_retries (6), repetition_delay (7), push_client_SAP
  (9) and push_operation_method (11) (each write: event "one or more parameters changed") and
  invokes method 1 ``push`` (the message is queued and sent by the push engine).
  port_reference (8) names the TCP-UDP setup 0-0:25.0.0.255; push_protection_parameters (10) is
  empty (the message is protected by the meter's security suite 0 keys, see below);
  confirmation_parameters (12) and last_confirmation_date_time (13) are not used (no application
  layer confirmation) and read as "not specified".
* 0-0:97.98.20.255 (class 1, double-long-unsigned): alarm descriptor 1, the alarm bits whose
  setting triggered the last alarm push.
* 0-0:15.0.4.255 (class 22): the push action schedule (legal time; attributes 2-4 written by
  the management association, each write "parameters changed"), running a script of
* 0-0:10.0.108.255 (class 9): the push script table; script 1 pushes the scheduled setup,
  2 the alarm, 3 the on-connectivity, 4 the on-installation setup (method 1 execute).

A DataNotification body is a structure with one element per push object list entry: the
attribute's A-XDR value as a GET would return it; a profile buffer (class 7, attribute 2) holds
the rows captured since the setup last pushed that profile (mark ``rows:<setup>:<profile>``),
all rows the first time. An object the meter does not have is null-data.

With keys, a DataNotification goes out as general-glo-ciphering (tag 0xDB, the meter's system
title, security control 0x30: authenticated and encrypted, suite 0) with the global unicast and
authentication keys of the management association and a fresh invocation counter from its
durable counter ("management/out"), so no nonce is ever used twice across pushes and responses.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gurux_dlms import GXByteBuffer, ValueEventArgs
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.objects import GXDLMSPushSetup

from meterd.core import event_codes as ec
from meterd.core.model import MeterModel
from meterd.core.ports import EventSink
from meterd.core.single_action import SingleActionSchedule
from meterd.cosem import axdr
from meterd.cosem.adapters import (
    DENIED,
    OK,
    OTHER_REASON,
    TYPE_UNMATCHED,
    AttributeTable,
    AttributeValue,
    ValueData,
)
from meterd.cosem.datetime_codec import encode_utc
from meterd.cosem.errors import CosemError
from meterd.cosem.keys import KeyRing
from meterd.cosem.objects import (
    DEFAULT_ASSOCIATIONS,
    Access,
    AccessLevel,
    CosemContext,
    CosemEntry,
    ObjectFactory,
    ObjectRegistry,
)
from meterd.cosem.objects_schedule import MethodScriptTable, ScriptAction, SingleActionScheduleObject
from meterd.cosem.security import GENERAL_GLO, SC_AUTH_ENC, CounterStore, SecurityContext
from meterd.cosem.xdlms import ln_settings
from meterd.services.push import (
    ALARM_DESCRIPTOR_OBIS,
    PUSH_SCHEDULE_OBIS,
    PUSH_SCRIPT_TABLE_OBIS,
    PUSH_SCRIPTS,
    Captured,
    OperationMethod,
    PushEngine,
    PushObject,
    PushSchedule,
    PushSettings,
    RepetitionDelay,
    Transport,
    Window,
)

log = logging.getLogger("meterd.push")

TCP_UDP_SETUP_OBIS = "0.0.25.0.0.255"
WRITABLE = frozenset({2, 3, 4, 5, 6, 7, 9, 11})
_NOT_SPECIFIED = bytes((0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0xFF))
PROFILE_CLASS = 7


def _window_datetime(seconds: int) -> bytes:
    """A daily window bound: every date (wildcards), the UTC time of day, deviation 0."""
    h, rest = divmod(seconds, 3600)
    return bytes((0xFF, 0xFF, 0xFF, 0xFF, 0xFF, h, rest // 60, rest % 60, 0, 0, 0, 0))


def _window_seconds(raw: object) -> int:
    if not isinstance(raw, bytes | bytearray) or len(raw) != 12:
        raise ValueError("a window bound is a 12-octet date-time")
    h, m, s = raw[5], raw[6], raw[7]
    if h > 23 or m > 59 or s > 59:
        raise ValueError("a window bound needs hour, minute and second")
    dev = int.from_bytes(raw[9:11], "big", signed=True)
    total = h * 3600 + m * 60 + s
    if dev != -0x8000:  # deviation given: local = UTC - deviation (minutes)
        total = (total + dev * 60) % 86400
    return total


def encode_object_list(objects: Iterable[PushObject]) -> bytes:
    """Attribute 2 (v2): class, logical name, attribute, data index, no restriction, all columns."""
    return axdr.encode_array([
        axdr.encode_structure(axdr.encode_value(axdr.UINT16, o.class_id), axdr.encode_logical_name(o.obis),
                              axdr.encode_value(axdr.INT8, o.attribute), axdr.encode_value(axdr.UINT16, o.data_index),
                              axdr.encode_structure(axdr.encode_value(axdr.ENUM, 0), axdr.encode_value(axdr.NULL, None)),
                              axdr.encode_array([]))
        for o in objects])


def parse_object_list(value: object) -> tuple[PushObject, ...]:
    """A written push_object_list (v1 elements of 4 or v2 elements of 6); raises ValueError."""
    if not isinstance(value, list):
        raise ValueError("push_object_list must be an array")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) not in (4, 6):
            raise ValueError("push object list element must be a structure of 4 or 6")
        class_id, ln, attr, index = item[:4]
        if not isinstance(ln, bytes | bytearray) or len(ln) != 6:
            raise ValueError("logical name must be 6 octets")
        if int(index) != 0:
            raise ValueError("only data index 0 (the whole attribute) is pushed")
        if len(item) == 6 and isinstance(item[4], list) and item[4] and int(item[4][0]) != 0:
            raise ValueError("restrictions are not supported (profiles push the rows since the last push)")
        out.append(PushObject(int(class_id), ".".join(str(b) for b in ln), int(attr), 0))
    return tuple(out)


class PushSetupObject(AttributeTable, GXDLMSPushSetup):  # type: ignore[misc]  # gurux is untyped
    """Push setup (class 40 v2) over the push engine's settings of ``obis``."""

    def __init__(self, obis: str, engine: PushEngine, events: EventSink, now: Callable[[], _dt.datetime]) -> None:
        super().__init__(obis)
        self.version = 2
        self._engine, self._events, self._now = engine, events, now

    def _s(self) -> PushSettings:
        return self._engine.settings(self.logicalName)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        s = self._s()
        rep = s.repetition
        return {
            2: lambda: encode_object_list(s.objects),
            3: lambda: axdr.encode_structure(axdr.encode_value(axdr.ENUM, int(s.transport)),
                                             axdr.encode_value(axdr.OCTET_STRING, s.destination.encode()),
                                             axdr.encode_value(axdr.ENUM, 0)),
            4: lambda: axdr.encode_array([axdr.encode_structure(
                axdr.encode_value(axdr.OCTET_STRING, _window_datetime(w.start_s)),
                axdr.encode_value(axdr.OCTET_STRING, _window_datetime(w.end_s))) for w in s.windows]),
            5: axdr.encode_value(axdr.UINT16, s.randomisation_s),
            6: axdr.encode_value(axdr.UINT8, s.retries),
            7: axdr.encode_structure(axdr.encode_value(axdr.UINT16, rep.min_s),
                                     axdr.encode_value(axdr.UINT16, rep.exponent),
                                     axdr.encode_value(axdr.UINT16, rep.max_s)),
            8: axdr.encode_logical_name(TCP_UDP_SETUP_OBIS),
            9: axdr.encode_value(axdr.INT8, s.client_sap if s.client_sap < 128 else s.client_sap - 256),
            10: axdr.encode_array([]),
            11: axdr.encode_value(axdr.ENUM, int(s.operation)),
            12: axdr.encode_structure(axdr.encode_value(axdr.OCTET_STRING, _NOT_SPECIFIED),
                                      axdr.encode_value(axdr.UINT32, 0)),
            13: axdr.encode_value(axdr.OCTET_STRING, _NOT_SPECIFIED),
        }

    def write(self, e: Any) -> int:
        """SET of a writable attribute (management association); "parameters changed" on success."""
        if e.index not in WRITABLE:
            return DENIED
        try:
            new = self._apply(self._s(), e.index, e.value)
        except (ValueError, TypeError, IndexError) as exc:
            log.info("push setup %s attribute %d write refused: %s", self.logicalName, e.index, exc)
            return TYPE_UNMATCHED if isinstance(exc, TypeError) else OTHER_REASON
        self._engine.update(new)
        self._events.record(ec.code("PARAMETERS_CHANGED"), self._now(),
                            {"object": self.logicalName, "attribute": int(e.index)})
        return OK

    @staticmethod
    def _apply(s: PushSettings, index: int, value: Any) -> PushSettings:
        if index == 2:
            return replace(s, objects=parse_object_list(value))
        if index == 3:
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError("send_destination_and_method is a structure of 3")
            dest = bytes(value[1]).decode("ascii")
            if int(value[2]) != 0:
                raise ValueError("only A-XDR encoded COSEM APDUs are sent")
            candidate = replace(s, transport=Transport(int(value[0])), destination=dest)
            if dest and candidate.address() is None:
                raise ValueError(f"destination {dest!r} is not host:port")
            return candidate
        if index == 4:
            if not isinstance(value, list):
                raise ValueError("communication_window is an array")
            return replace(s, windows=tuple(Window(_window_seconds(w[0]), _window_seconds(w[1])) for w in value))
        if index == 5:
            return replace(s, randomisation_s=_unsigned(value, 0xFFFF))
        if index == 6:
            return replace(s, retries=_unsigned(value, 0xFF))
        if index == 7:
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError("repetition_delay is a structure of 3 (v2)")
            return replace(s, repetition=RepetitionDelay(*(_unsigned(v, 0xFFFF) for v in value)))
        if index == 9:  # an integer (-128..127) on the wire: SAPs above 127 come negative
            sap = value + 256 if isinstance(value, int) and not isinstance(value, bool) and value < 0 else value
            return replace(s, client_sap=_unsigned(sap, 0xFF))
        return replace(s, operation=OperationMethod(int(value)))

    def invoke(self, settings: Any, e: Any) -> Any:
        """Method 1 ``push``: queue a message of this setup now."""
        if e.index != 1:
            e.error = DENIED
            return None
        self._engine.trigger(self.logicalName, "push method invoked")
        return None


def _unsigned(value: Any, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an unsigned integer is expected")
    if not 0 <= value <= top:
        raise ValueError(f"{value} outside 0..{top}")
    return value


def push_factory(engine: PushEngine, events: EventSink, schedule: PushSchedule) -> ObjectFactory:
    """The factory of the push setups, the alarm descriptor, the push action schedule and the
    push script table for every DLMS session."""

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        for s in engine.setups():
            yield CosemEntry(PushSetupObject(s.obis, engine, events, ctx.model.now_utc),
                             Access(write=WRITABLE, methods=frozenset({1})))
        yield CosemEntry(ValueData(ALARM_DESCRIPTOR_OBIS, lambda: (axdr.UINT32, engine.alarm_descriptor)))

        def put(new: SingleActionSchedule) -> bool:
            if not schedule.put(new):
                return False
            events.record(ec.code("PARAMETERS_CHANGED"), ctx.model.now_utc(), {"object": PUSH_SCHEDULE_OBIS})
            return True

        yield CosemEntry(SingleActionScheduleObject(PUSH_SCHEDULE_OBIS, schedule.get, put,
                                                    [(PUSH_SCRIPT_TABLE_OBIS, sid) for sid in PUSH_SCRIPTS]),
                         Access(write=frozenset({2, 3, 4})))
        yield CosemEntry(MethodScriptTable(PUSH_SCRIPT_TABLE_OBIS, {
            sid: ScriptAction(40, obis, 1, _runner(schedule, sid)) for sid, obis in PUSH_SCRIPTS.items()}),
            Access(methods=frozenset({1})))

    return factory


def _runner(schedule: PushSchedule, selector: int) -> Callable[[], int]:
    def run() -> int:
        schedule.run_script(selector)
        return OK
    return run


def _no_clock_set(_utc: Any) -> None:
    raise CosemError("a push capture never sets the clock")


def management_objects(registry: ObjectRegistry, model: MeterModel, server_title: bytes,
                       counters: CounterStore) -> list[CosemEntry]:
    """The meter's objects as the management association sees them (what a push may capture);
    ``counters`` gives the frame counters 0-0:43.1.E.255."""
    manager = next(a for a in DEFAULT_ASSOCIATIONS if a.level is AccessLevel.MANAGER)

    def frame_counter(instance: int) -> int:
        assoc = next((a for a in DEFAULT_ASSOCIATIONS if a.security_instance == instance), None)
        return counters.last_accepted(f"{assoc.name}/in") if assoc else 0

    ctx = CosemContext(model=model, association=manager, associations=DEFAULT_ASSOCIATIONS, server_sap=1,
                       server_title=server_title, conformance=0, max_pdu=0xFFFF, set_clock=_no_clock_set,
                       frame_counter=frame_counter, client_title=lambda: None, stage_keys=lambda _items: DENIED)
    return registry.build(ctx)


class ObjectCapture:
    """Captures push object lists from the meter's COSEM objects (as the management association
    sees them) and its profiles (see the module docstring). ``objects()`` builds them once, on
    the first capture."""

    def __init__(self, objects: Callable[[], list[CosemEntry]], model: MeterModel) -> None:
        self._build = objects
        self._model = model
        self._by_name: dict[tuple[int, str], Any] | None = None
        self._settings: Any = None

    def _objects(self) -> dict[tuple[int, str], Any]:
        if self._by_name is None:
            entries = self._build()
            self._by_name = {(int(e.obj.objectType), str(e.obj.logicalName)): e.obj for e in entries}
            self._settings = ln_settings([e.obj for e in entries], 0, 0xFFFF)
        return self._by_name

    def __call__(self, settings: PushSettings, marks: Mapping[str, str]) -> Captured:
        now = self._model.now_utc()
        new_marks: dict[str, str] = {}
        elements = []
        for item in settings.objects:
            if item.class_id == PROFILE_CLASS and item.attribute == 2:
                elements.append(self._profile_rows(settings.obis, item.obis, marks, now, new_marks))
            else:
                elements.append(self._attribute(item))
        body = bytes((12,)) + encode_utc(now) + axdr.encode_structure(*elements)
        return Captured(body, new_marks)

    def _profile_rows(self, setup: str, obis: str, marks: Mapping[str, str], now: _dt.datetime,
                      new_marks: dict[str, str]) -> bytes:
        buffer = self._model.profile(obis)
        if buffer is None:
            return axdr.encode_value(axdr.NULL, None)
        name = f"rows:{setup}:{obis}"
        last = marks.get(name)
        start = (_dt.datetime.fromisoformat(last) + _dt.timedelta(microseconds=1) if last
                 else _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC))
        rows = buffer.rows_between(start, now)
        if rows:
            new_marks[name] = rows[-1].utc.isoformat()
        width = len(buffer.columns) - 1
        types = [axdr.column_type([r.values[i] for r in rows]) for i in range(width)]
        return axdr.ProfileEncoder(types, with_clock=True).encode([(r.utc, list(r.values)) for r in rows])

    def _attribute(self, item: PushObject) -> bytes:
        obj = self._objects().get((item.class_id, item.obis))
        if obj is None:
            return axdr.encode_value(axdr.NULL, None)
        e = ValueEventArgs(self._settings, obj, item.attribute)
        value = obj.getValue(self._settings, e)
        if e.error:
            log.info("push capture: %s attribute %d not readable (%s)", item.obis, item.attribute, e.error)
            return axdr.encode_value(axdr.NULL, None)
        if e.byteArray:
            return bytes(value)
        if isinstance(value, GXByteBuffer):
            return bytes(value.array())
        buff = GXByteBuffer()
        GXDLMS.appendData(self._settings, obj, item.attribute, buff, value)
        return bytes(buff.array())


class NotificationSealer:
    """Seals DataNotifications as general-glo-ciphering with the meter's current keys (``keys``)
    and the management association's durable invocation counter; as they are without keys."""

    def __init__(self, keys: KeyRing | None, store: CounterStore, association: str = "management") -> None:
        self._keys = keys
        self._context: SecurityContext | None = None
        if keys is not None:
            k = keys.current
            self._context = SecurityContext(association, k.server_system_title, k.global_unicast_key,
                                            k.authentication_key, store)

    @property
    def ciphered(self) -> bool:
        """Whether notifications go out ciphered."""
        return self._context is not None

    def __call__(self, apdu: bytes) -> bytes:
        if self._context is None or self._keys is None:
            return apdu
        k = self._keys.current
        self._context.rekey(k.global_unicast_key, k.authentication_key)
        self._context.server_title = k.server_system_title
        return self._context.seal(GENERAL_GLO, SC_AUTH_ENC, apdu)

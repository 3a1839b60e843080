"""Single-action schedules (class 22) and method-calling script tables (class 9), generic.

:class:`SingleActionScheduleObject` serves a :class:`~meterd.core.single_action.SingleActionSchedule`
held by its owner (``get()``; writes go through ``put(schedule) -> bool``, which persists it and
may refuse it):

* 2 executed_script: structure {script_logical_name octet-string(6), script_selector
  long-unsigned}; writable, but only to one of the ``scripts`` the owner allows;
* 3 type: enum 1..5; writable when the execution times already set fit the new type;
* 4 execution_time: array of structure {time octet-string(4), date octet-string(5)}, wall
  (legal local) time, 0xFF = wildcard (year 0xFFFF); day of month 0xFE last, 0xFD second last;
  writable; a list the type does not allow is refused (other-reason).

:class:`MethodScriptTable` is a script table whose scripts each call one method of one object of
the meter (``execute(selector)``, method 1); attribute 2 lists them as the Blue Book's
action specifications (service 2 = execute a method).

Time and date encodings (Blue Book §4.1.6.1): time = hour, minute, second, hundredths; date =
year (2 octets), month, day of month, day of week.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSScriptTable

from meterd.core.single_action import (
    DatePattern,
    ExecutionTime,
    ScheduleError,
    SingleActionSchedule,
    TimePattern,
)
from meterd.cosem import axdr
from meterd.cosem.adapters import DENIED, OK, OTHER_REASON, TYPE_UNMATCHED, AttributeTable, AttributeValue
from meterd.cosem.errors import ApduError

_log = logging.getLogger("meterd.cosem.schedule")
_WILD = 0xFF
_WILD_YEAR = 0xFFFF
CLASS_SCRIPT_TABLE = 9


def encode_time4(t: TimePattern) -> bytes:
    """Four octets: hour, minute, second, hundredths (0xFF = wildcard)."""
    return bytes(_WILD if v is None else v for v in (t.hour, t.minute, t.second, t.hundredths))


def encode_date5(d: DatePattern) -> bytes:
    """Five octets: year (0xFFFF = wildcard), month, day of month, day of week (0xFF = wildcard)."""
    return struct.pack(">HBBB", _WILD_YEAR if d.year is None else d.year,
                       *(_WILD if v is None else v for v in (d.month, d.day, d.weekday)))


def decode_time4(raw: bytes) -> TimePattern:
    """The time of four octets; raises :class:`ApduError` (length) or ScheduleError (range)."""
    if len(raw) != 4:
        raise ApduError(f"time must be 4 octets, got {len(raw)}")
    hour, minute, second, hundredths = (None if v == _WILD else v for v in raw)
    return TimePattern(hour, minute, second, hundredths)


def decode_date5(raw: bytes) -> DatePattern:
    """The date of five octets; raises :class:`ApduError` (length) or ScheduleError (range)."""
    if len(raw) != 5:
        raise ApduError(f"date must be 5 octets, got {len(raw)}")
    year, month, day, weekday = struct.unpack(">HBBB", raw)
    return DatePattern(None if year == _WILD_YEAR else year, None if month == _WILD else month,
                       None if day == _WILD else day, None if weekday == _WILD else weekday)


def encode_execution_times(times: Iterable[ExecutionTime]) -> bytes:
    """Attribute 4 of class 22."""
    return axdr.encode_array([axdr.encode_structure(axdr.encode_value(axdr.OCTET_STRING, encode_time4(t.time)),
                                                    axdr.encode_value(axdr.OCTET_STRING, encode_date5(t.date)))
                              for t in times])


def decode_execution_times(value: Any) -> tuple[ExecutionTime, ...]:
    """Execution times of a written attribute 4 (a list of [time, date] octet strings)."""
    if not isinstance(value, list | tuple):
        raise ApduError("execution_time must be an array")
    out = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2 or not all(
                isinstance(v, bytes | bytearray) for v in item):
            raise ApduError("execution_time entry must be structure {time, date}")
        out.append(ExecutionTime(decode_time4(bytes(item[0])), decode_date5(bytes(item[1]))))
    return tuple(out)


class SingleActionScheduleObject(AttributeTable, GXDLMSActionSchedule):  # type: ignore[misc]  # gurux is untyped
    """Single action schedule (class 22) over its owner's schedule (see module docstring)."""

    def __init__(self, ln: str, get: Callable[[], SingleActionSchedule],
                 put: Callable[[SingleActionSchedule], bool],
                 scripts: Iterable[tuple[str, int]]) -> None:
        super().__init__(ln)
        self._get = get
        self._put = put
        self._scripts = frozenset(scripts)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {
            2: lambda: axdr.encode_structure(axdr.encode_logical_name(self._get().script),
                                             axdr.encode_value(axdr.UINT16, self._get().selector)),
            3: lambda: axdr.encode_value(axdr.ENUM, self._get().type),
            4: lambda: encode_execution_times(self._get().times),
        }

    def write(self, e: Any) -> int:
        current = self._get()
        try:
            if e.index == 2:
                new = self._script(e.value, current)
            elif e.index == 3:
                if not isinstance(e.value, int) or isinstance(e.value, bool):
                    return TYPE_UNMATCHED
                new = SingleActionSchedule(current.script, current.selector, int(e.value), current.times)
            elif e.index == 4:
                new = SingleActionSchedule(current.script, current.selector, current.type,
                                           decode_execution_times(e.value))
            else:
                return DENIED
        except (ApduError, ScheduleError) as exc:
            _log.info("%s attribute %d refused: %s", self.logicalName, e.index, exc)
            return OTHER_REASON
        if new is None:
            return OTHER_REASON
        return OK if self._put(new) else OTHER_REASON

    def _script(self, value: Any, current: SingleActionSchedule) -> SingleActionSchedule | None:
        if (not isinstance(value, list | tuple) or len(value) != 2 or not isinstance(value[0], bytes | bytearray)
                or len(value[0]) != 6 or not isinstance(value[1], int)):
            raise ApduError("executed_script must be structure {octet-string(6), long-unsigned}")
        ln = ".".join(str(b) for b in value[0])
        if (ln, int(value[1])) not in self._scripts:
            _log.info("%s: script %s/%d is not one this schedule may run", self.logicalName, ln, value[1])
            return None
        return SingleActionSchedule(ln, int(value[1]), current.type, current.times)


@dataclass(frozen=True)
class ScriptAction:
    """What one script does: call method ``method`` of object ``ln`` (class ``class_id``) through
    ``run()``, which returns a DLMS action result (0 success, 2 temporary-failure, 250 other)."""

    class_id: int
    ln: str
    method: int
    run: Callable[[], int]


class MethodScriptTable(AttributeTable, GXDLMSScriptTable):  # type: ignore[misc]  # gurux is untyped
    """Script table (class 9) whose scripts each run one :class:`ScriptAction`; method 1
    execute(selector)."""

    def __init__(self, ln: str, scripts: Mapping[int, ScriptAction]) -> None:
        super().__init__(ln)
        self._table = dict(scripts)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_array([axdr.encode_structure(
            axdr.encode_value(axdr.UINT16, sid),
            axdr.encode_array([axdr.encode_structure(
                axdr.encode_value(axdr.ENUM, 2),  # execute a method
                axdr.encode_value(axdr.UINT16, act.class_id), axdr.encode_logical_name(act.ln),
                axdr.encode_value(axdr.INT8, act.method), axdr.encode_value(axdr.INT8, 0))]))
            for sid, act in sorted(self._table.items())])}

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1 or not isinstance(e.parameters, int) or isinstance(e.parameters, bool):
            e.error = ErrorCode.READ_WRITE_DENIED if e.index != 1 else ErrorCode.UNMATCHED_TYPE
            return None
        action = self._table.get(int(e.parameters))
        if action is None:
            e.error = ErrorCode.OTHER_REASON
            return None
        result = action.run()
        if result != OK:
            e.error = ErrorCode(result)
        return None

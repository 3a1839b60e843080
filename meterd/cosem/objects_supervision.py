"""COSEM objects of the supervision: event logs, event codes, alarm register and filter, outages.

OBIS map (values read the supervision service on every GET):

* 0-0:99.98.x.255 (class 7), x = 0 standard, 1 fraud, 2 disconnector, 4 power quality,
  5 communication, 6 firmware, 7 token, 8 security: event logs, capture objects clock
  0-0:1.0.0.255 and the log's event code object; 1-0:99.97.0.255 (class 7): power failures,
  long and short, each with its duration (clock = end time, duration 0-0:96.7.19.255 in s; a
  failure is long when its duration reaches the threshold 0-0:96.7.20.255). Read by range (selector 1 on the clock) or
  by entry (selector 2); capture period 0 (event-driven); profile entries = the log's depth.
* 0-0:96.11.x.255 (class 1, unsigned): code of the newest event of log x (0 when empty).
* 0-0:97.98.0.255 (class 1, double-long-unsigned): alarm register 1. A write (management only)
  clears the bits set in the written value and records "alarm register cleared".
* 0-0:97.98.10.255 (class 1, double-long-unsigned): alarm filter; a write (management only)
  sets it and records "one or more parameters changed".
* 0-0:96.7.21.255 (class 1, long-unsigned): power failures in any phase (short and long);
  0-0:96.7.9.255 (class 1, long-unsigned): long power failures in any phase;
  0-0:96.7.19.255 (class 3, double-long-unsigned, s): duration of the last long power failure
  (the value the power-failure log captures); 0-0:96.7.20.255 (class 3, double-long-unsigned, s):
  time threshold for a long power failure (``long_failure_s``, default 180 s, EN 50160).

Reads are for the reader and the management association; writes for the management one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.alarms import ALARM_FILTER_OBIS, ALARM_REGISTER_OBIS, ALL_BITS
from meterd.core.event_codes import LOG_OBIS, LogId
from meterd.core.events import POWER_FAILURE_DURATION_OBIS, EventLog
from meterd.core.power_fail import FAILURES_OBIS, LONG_FAILURE_THRESHOLD_OBIS, LONG_FAILURES_OBIS
from meterd.cosem import axdr
from meterd.cosem.adapters import OK, OTHER_REASON, TYPE_UNMATCHED, ModelProfile, ValueData, ValueRegister
from meterd.cosem.objects import Access, CosemContext, CosemEntry, ObjectFactory
from meterd.cosem.profile import ProfileReader
from meterd.services.supervision import Supervision

UNIT_SECOND = 7


class WritableData(ValueData):
    """Data (class 1) whose value attribute is read from a getter and written through a setter
    ``write_value(int) -> DLMS result code``."""

    def __init__(self, ln: str, getter: Callable[[], tuple[int, axdr.Scalar]],
                 write_value: Callable[[int], int]) -> None:
        super().__init__(ln, getter)
        self._write_value = write_value

    def write(self, e: Any) -> int:
        """SET attribute 2 with an unsigned integer."""
        if e.index != 2:
            return OTHER_REASON
        if isinstance(e.value, bool) or not isinstance(e.value, int):
            return TYPE_UNMATCHED
        return self._write_value(int(e.value))


def _last_code(log: EventLog) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        entries = log.entries()
        return axdr.UINT8, entries[-1].code if entries else 0
    return read


def _last_duration(log: EventLog) -> Callable[[], tuple[int, int]]:
    """Duration (s) of the newest long power failure of the power-failure log (short ones skipped)."""
    long_code = ec.code("LONG_POWER_FAILURE")

    def read() -> tuple[int, int]:
        entries = [e for e in log.entries() if e.code == long_code]
        value = entries[-1].detail.get("duration_s", 0) if entries else 0
        return axdr.UINT32, int(value) if isinstance(value, int | float) else 0
    return read


def supervision_factory(supervision: Supervision) -> ObjectFactory:
    """The factory registering the supervision objects for every DLMS session."""

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        now = ctx.model.now_utc
        for log_id, obis in LOG_OBIS.items():
            log = supervision.recorder.log(log_id)
            yield CosemEntry(ModelProfile(obis.profile, ProfileReader(log, max_entries=log.depth)))
            if obis.event_code is not None:
                yield CosemEntry(ValueData(obis.event_code, _last_code(log)))

        def clear(mask: int) -> int:
            if not 0 <= mask <= ALL_BITS:
                return OTHER_REASON
            supervision.clear_alarms(now(), mask)
            return OK

        def set_filter(mask: int) -> int:
            if not 0 <= mask <= ALL_BITS:
                return OTHER_REASON
            supervision.set_alarm_filter(mask, now())
            return OK

        yield CosemEntry(WritableData(ALARM_REGISTER_OBIS, lambda: (axdr.UINT32, supervision.alarm_register()),
                                      clear), Access(write=frozenset({2})))
        yield CosemEntry(WritableData(ALARM_FILTER_OBIS, lambda: (axdr.UINT32, supervision.alarm_filter()),
                                      set_filter), Access(write=frozenset({2})))
        counters = supervision.power_counters
        yield CosemEntry(ValueData(FAILURES_OBIS, lambda: (axdr.UINT16, min(counters()["failures"], 0xFFFF))))
        yield CosemEntry(ValueData(LONG_FAILURES_OBIS,
                                   lambda: (axdr.UINT16, min(counters()["long_failures"], 0xFFFF))))
        failures = supervision.recorder.log(LogId.POWER_FAILURE)
        yield CosemEntry(ValueRegister(POWER_FAILURE_DURATION_OBIS, _last_duration(failures), 0, UNIT_SECOND))
        threshold_s = round(supervision.settings.power.long_failure_s)
        yield CosemEntry(ValueRegister(LONG_FAILURE_THRESHOLD_OBIS, lambda: (axdr.UINT32, threshold_s), 0,
                                       UNIT_SECOND))

    return factory

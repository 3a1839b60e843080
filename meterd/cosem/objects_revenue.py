"""COSEM objects of tariffs, demand, profiles and billing, bound to the revenue service.

OBIS map (values read the service on every GET; encodings are ours, see :mod:`meterd.cosem.axdr`):

* 0-0:13.0.0.255 activity calendar (class 20): active set (2–5) read-only, passive set (6–9)
  and its activation time (10, local wall time) writable, method 1 activates the passive set.
  Day schedules name the tariff script table 0-0:10.0.100.255 and script selector = rate.
  Passive attributes are staged as they are written (a calendar is written one attribute at a
  time); the staged set goes to the meter when it is consistent, and activation refuses an
  inconsistent one. Season starts and activation time are local date-times, year 0xFFFF = every
  year (season) or "not set" (activation).
* 0-0:11.0.0.255 special days table (class 11): attribute 2 writable, methods 1 insert and
  2 delete (by index). Dates: 5-octet COSEM date, year 0xFFFF = every year.
* 0-0:10.0.100.255 tariff script table (class 9): script n activates rate n (register
  activation mask "RATE n"). The calendar executes them at its switch times; method 1
  execute(n) by the management client puts rate n in force from now until the next switch time
  of the day profile (or local midnight, or the passive calendar's activation), after which
  the calendar rules again (the override survives a restart).
* 0-0:10.0.1.255 end-of-billing script table (class 9): method 1 execute(1) ends the billing
  period now (MD reset).
* 0-0:14.0.0.255 register activation (class 6): the rate registers and one mask per rate;
  attribute 4 is the active mask; writing "RATE n" to it is the same as executing script n. 0-0:96.14.0.255 (class 1): current rate (unsigned).
* 1-0:C.8.E.255 (class 3), C = 1..10 and 15, E = 1..rates: energy per rate, total channel, in
  milli-units as long64-unsigned with scaler −3 (Wh, varh, VAh).
* 1-0:C.4.0.255 (class 5), C = 1, 2, 3, 4, 9, 10: demand, current and last average (mW, mvar,
  mVA: double-long-unsigned, scaler −3), capture time, start of the current period, period (s)
  and number of periods (sliding window; 1 = block). Period (8) and number of periods (9) are
  writable (common to all demand registers): the windows restart, recorded maxima are kept.
* 1-0:C.6.E.255 (class 4), E = 0 (all rates) .. rates: maximum demand with its capture time;
  method 1 reset ends the billing period (MD reset, like the script above).
* 0-0:0.1.0.255 billing period counter (class 1, double-long-unsigned), 0-0:0.1.2.255 time of
  the last billing (class 1, date-time, UTC).
* 1-0:99.2.0.255 daily profile and 0-0:98.1.0.255 billing profile (class 7, read-only).
* Capture objects of the profiles that are not registers elsewhere, each reading its column in
  the newest row (0 until captured): profile status 0-0:96.10.1.255 (class 1, long-unsigned),
  interval energy 1-0:C.29.0.255 for every base quantity and channel (class 3, long64-unsigned,
  scaler −3: Wh, varh, VAh), average voltage 1-0:32/52/72.27.0.255 (class 3, scaler −2, V).
* With ``serve_load_profile``: 1-0:99.1.0.255 (class 7) whose capture objects (3) and capture
  period (4, 60..3600 s dividing a day) are writable, which clears the buffer. With
  ``serve_clock``: 0-0:1.0.0.255 (class 8) in legal time: time (2, local date-time with its
  deviation and DST status bit), time zone (3), status (4), DST begin (5), end (6), deviation (7)
  and enabled (8) from the legal-time rules, all but 4 writable. Both are off while the base
  registry serves these objects itself.

Writes and actions are for the management association; the registry's access rules decide.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import (
    GXDLMSActivityCalendar,
    GXDLMSDemandRegister,
    GXDLMSExtendedRegister,
    GXDLMSRegisterActivation,
    GXDLMSScriptTable,
    GXDLMSSpecialDaysTable,
)

from meterd.core.billing import BILLING_COUNTER_OBIS, BILLING_PROFILE_OBIS
from meterd.core.calendar import (
    CalendarError,
    CalendarSet,
    DayProfile,
    Season,
    SpecialDay,
    SpecialDaysTable,
    SwitchPoint,
    WeekProfile,
    YearDate,
)
from meterd.core.demand import DemandQuantity
from meterd.core.energy import UNITS, Derived, Quantity, obis_c
from meterd.core.errors import MeterError
from meterd.core.legal_time import ClockSettings, DateTimePattern
from meterd.core.profile import (
    DAILY_PROFILE_OBIS,
    LOAD_PROFILE_OBIS,
    ColumnKind,
    ProfileChannel,
    ProfileConfig,
    capturable_channels,
)
from meterd.core.reading import Channel
from meterd.cosem import axdr, datetime_codec
from meterd.cosem.adapters import (
    DENIED,
    OK,
    OTHER_REASON,
    TYPE_UNMATCHED,
    AttributeTable,
    AttributeValue,
    ModelClock,
    ModelProfile,
    ValueData,
    ValueRegister,
    clock_quality,
)
from meterd.cosem.errors import ApduError
from meterd.cosem.objects import (
    ENERGY_UNITS,
    UNIT_V,
    UNIT_VA,
    UNIT_VAR,
    UNIT_W,
    Access,
    CosemContext,
    CosemEntry,
)
from meterd.cosem.profile import ProfileReader
from meterd.services.revenue import RevenueService

_log = logging.getLogger("meterd.cosem.revenue")

CALENDAR_LN = "0.0.13.0.0.255"
SPECIAL_DAYS_LN = "0.0.11.0.0.255"
TARIFF_SCRIPTS_LN = "0.0.10.0.100.255"
BILLING_SCRIPTS_LN = "0.0.10.0.1.255"
REGISTER_ACTIVATION_LN = "0.0.14.0.0.255"
CURRENT_RATE_LN = "0.0.96.14.0.255"
LAST_BILLING_LN = "0.0.0.1.2.255"
_WILD_YEAR = datetime_codec.YEAR_NOT_SPECIFIED
_DEMAND_UNITS = {DemandQuantity.ACTIVE_IMPORT: UNIT_W, DemandQuantity.ACTIVE_EXPORT: UNIT_W,
                 DemandQuantity.REACTIVE_IMPORT: UNIT_VAR, DemandQuantity.REACTIVE_EXPORT: UNIT_VAR,
                 DemandQuantity.APPARENT_IMPORT: UNIT_VA, DemandQuantity.APPARENT_EXPORT: UNIT_VA}
RATE_QUANTITIES: tuple[Quantity | Derived, ...] = (*Quantity, *Derived)


# --- A-XDR helpers ------------------------------------------------------------------------------

def _octets(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ApduError(f"octet-string expected, got {type(value).__name__}")
    return bytes(value)


def _items(value: Any, n: int | None = None) -> list[Any]:
    if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
        raise ApduError(f"structure of {n} elements expected")
    return list(value)


def encode_local_datetime(wall: _dt.datetime | None, year_wild: bool = False) -> bytes:
    """12-octet date-time of a naive local time, deviation unspecified (None: all wildcards)."""
    return datetime_codec.encode_wall(wall, year_wild)


def decode_local_datetime(raw: bytes) -> tuple[int | None, int, int, int, int, int] | None:
    """(year or None, month, day, hour, minute, second) of a local date-time; None if unset."""
    return datetime_codec.decode_wall(raw)


def _date5(date: YearDate) -> bytes:
    year = _WILD_YEAR if date.year is None else date.year
    dow = 0xFF if date.year is None else _dt.date(date.year, date.month, date.day).isoweekday()
    return struct.pack(">HBBB", year, date.month, date.day, dow)


def _from_date5(raw: bytes) -> YearDate:
    if len(raw) != 5:
        raise ApduError("date must be 5 octets")
    year, month, day, _dow = struct.unpack(">HBBB", raw)
    return YearDate(month, day, None if year == _WILD_YEAR else year)


def _time4(seconds: int) -> bytes:
    h, rem = divmod(seconds, 3600)
    return bytes((h, rem // 60, rem % 60, 0))


def _from_time4(raw: bytes) -> int:
    if len(raw) != 4:
        raise ApduError("time must be 4 octets")
    h, m, s = (0 if v == 0xFF else v for v in raw[:3])
    return h * 3600 + m * 60 + s


def _name(value: Any) -> str:
    return _octets(value).decode("ascii", "replace")


# --- calendar encoding ----------------------------------------------------------------------------

def encode_seasons(seasons: Sequence[Season]) -> bytes:
    """Attribute 3/7: array of structure(name, start date-time, week name)."""
    out = []
    for s in seasons:
        start = _dt.datetime(s.start.year or 2000, s.start.month, s.start.day)
        out.append(axdr.encode_structure(
            axdr.encode_value(axdr.OCTET_STRING, s.name),
            axdr.encode_value(axdr.OCTET_STRING, encode_local_datetime(start, year_wild=s.start.year is None)),
            axdr.encode_value(axdr.OCTET_STRING, s.week_name)))
    return axdr.encode_array(out)


def encode_weeks(weeks: Sequence[WeekProfile]) -> bytes:
    """Attribute 4/8: array of structure(name, Monday..Sunday day ids)."""
    return axdr.encode_array([axdr.encode_structure(
        axdr.encode_value(axdr.OCTET_STRING, w.name), *(axdr.encode_value(axdr.UINT8, d) for d in w.day_ids))
        for w in weeks])


def encode_days(days: Sequence[DayProfile]) -> bytes:
    """Attribute 5/9: array of structure(day id, array of (start time, script LN, selector = rate))."""
    script = axdr.obis_bytes(TARIFF_SCRIPTS_LN)
    return axdr.encode_array([axdr.encode_structure(
        axdr.encode_value(axdr.UINT8, d.day_id),
        axdr.encode_array([axdr.encode_structure(
            axdr.encode_value(axdr.OCTET_STRING, _time4(s.start_s)),
            axdr.encode_value(axdr.OCTET_STRING, script),
            axdr.encode_value(axdr.UINT16, s.rate)) for s in d.switches]))
        for d in days])


def decode_seasons(value: Any) -> tuple[Season, ...]:
    """Inverse of :func:`encode_seasons` (from gurux's parsed value)."""
    seasons = []
    for item in _items(value):
        name, start, week = _items(item, 3)
        when = decode_local_datetime(_octets(start))
        if when is None:
            raise ApduError("season start needs month and day")
        seasons.append(Season(_name(name), YearDate(when[1], when[2], when[0]), _name(week)))
    return tuple(seasons)


def decode_weeks(value: Any) -> tuple[WeekProfile, ...]:
    """Inverse of :func:`encode_weeks`."""
    weeks = []
    for item in _items(value):
        fields = _items(item, 8)
        weeks.append(WeekProfile.from_dict({"name": _name(fields[0]), "day_ids": [int(v) for v in fields[1:]]}))
    return tuple(weeks)


def decode_days(value: Any) -> tuple[DayProfile, ...]:
    """Inverse of :func:`encode_days` (the script selector is the rate)."""
    days = []
    for item in _items(value):
        day_id, schedule = _items(item, 2)
        switches = []
        for action in _items(schedule):
            start, _script, selector = _items(action, 3)
            switches.append(SwitchPoint(_from_time4(_octets(start)), int(selector)))
        days.append(DayProfile(int(day_id), tuple(switches)))
    return tuple(days)


class PassiveStaging:
    """The passive calendar as written so far (shared by every session of the meter).

    The activation time (attribute 10) is the meter's (``service.calendar.activate_passive_at``)
    unless a client wrote it in the current staging round; a round ends when a passive calendar
    is activated (at its time or by method 1), so a time that has passed never re-arms an
    activation when only the calendar itself is rewritten afterwards.
    """

    def __init__(self, service: RevenueService) -> None:
        self.service = service
        passive = service.calendar.passive
        self.name = passive.name if passive else ""
        self.seasons: tuple[Season, ...] = passive.seasons if passive else ()
        self.weeks: tuple[WeekProfile, ...] = passive.week_profiles if passive else ()
        self.days: tuple[DayProfile, ...] = passive.day_profiles if passive else ()
        self._written: tuple[int, _dt.datetime | None] | None = None  # (round, time) of a write

    @property
    def activate_at(self) -> _dt.datetime | None:
        """Activation time (naive local): written in this round, else the meter's."""
        written = self._written
        if written is not None and written[0] == self.service.calendar_activations:
            return written[1]
        self._written = None
        return self.service.calendar.activate_passive_at

    @activate_at.setter
    def activate_at(self, when: _dt.datetime | None) -> None:
        self._written = (self.service.calendar_activations, when)

    def build(self) -> CalendarSet:
        """The staged calendar (raises :class:`CalendarError` when inconsistent)."""
        return CalendarSet(self.name, self.seasons, self.weeks, self.days)

    def commit(self) -> None:
        """Hand the staged passive set to the meter if it is consistent."""
        try:
            passive = self.build()
            self.check_rates(passive)
        except CalendarError as exc:
            _log.info("passive calendar staged, not yet consistent: %s", exc)
            return
        self.service.set_passive_calendar(passive, self.activate_at)

    def check_rates(self, cal: CalendarSet) -> None:
        """Every rate of ``cal`` must exist in the meter."""
        top = self.service.tariff.rates
        for day in cal.day_profiles:
            for s in day.switches:
                if s.rate > top:
                    raise CalendarError(f"day {day.day_id} uses rate {s.rate} of {top}")


class ActivityCalendarObject(AttributeTable, GXDLMSActivityCalendar):  # type: ignore[misc]  # gurux is untyped
    """Activity calendar (class 20) 0-0:13.0.0.255."""

    def __init__(self, service: RevenueService, staging: PassiveStaging) -> None:
        super().__init__(CALENDAR_LN)
        self._svc = service
        self._staging = staging

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        active = self._svc.calendar.active
        st = self._staging
        return {
            2: lambda: axdr.encode_value(axdr.OCTET_STRING, active.name),
            3: lambda: encode_seasons(active.seasons), 4: lambda: encode_weeks(active.week_profiles),
            5: lambda: encode_days(active.day_profiles),
            6: lambda: axdr.encode_value(axdr.OCTET_STRING, st.name), 7: lambda: encode_seasons(st.seasons),
            8: lambda: encode_weeks(st.weeks), 9: lambda: encode_days(st.days),
            10: lambda: axdr.encode_value(axdr.OCTET_STRING, encode_local_datetime(st.activate_at)),
        }

    def write(self, e: Any) -> int:
        """SET attributes 6..10 (passive calendar, activation time)."""
        st = self._staging
        try:
            if e.index == 6:
                st.name = _name(e.value)
            elif e.index == 7:
                st.seasons = decode_seasons(e.value)
            elif e.index == 8:
                st.weeks = decode_weeks(e.value)
            elif e.index == 9:
                st.days = decode_days(e.value)
            elif e.index == 10:
                when = decode_local_datetime(_octets(e.value))
                st.activate_at = None if when is None or when[0] is None else _dt.datetime(
                    when[0], *when[1:])
            else:
                return DENIED
        except (ApduError, MeterError, ValueError, TypeError) as exc:
            _log.info("calendar attribute %d refused: %s", e.index, exc)
            return TYPE_UNMATCHED if isinstance(exc, ApduError | TypeError) else OTHER_REASON
        st.commit()
        return OK

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1:
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        try:
            passive = self._staging.build()
            self._staging.check_rates(passive)
            self._svc.set_passive_calendar(passive, None)
            self._svc.activate_passive_calendar()
        except CalendarError as exc:
            _log.info("calendar activation refused: %s", exc)
            e.error = ErrorCode.OTHER_REASON
        return None


class SpecialDaysObject(AttributeTable, GXDLMSSpecialDaysTable):  # type: ignore[misc]  # gurux is untyped
    """Special days table (class 11) 0-0:11.0.0.255."""

    def __init__(self, service: RevenueService) -> None:
        super().__init__(SPECIAL_DAYS_LN)
        self._svc = service

    @staticmethod
    def encode_entry(entry: SpecialDay) -> bytes:
        return axdr.encode_structure(axdr.encode_value(axdr.UINT16, entry.index),
                                     axdr.encode_value(axdr.OCTET_STRING, _date5(entry.date)),
                                     axdr.encode_value(axdr.UINT8, entry.day_id))

    @staticmethod
    def decode_entry(value: Any) -> SpecialDay:
        index, date, day_id = _items(value, 3)
        return SpecialDay(int(index), _from_date5(_octets(date)), int(day_id))

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_array([self.encode_entry(x) for x in self._svc.calendar.special_days.entries])}

    def _set(self, entries: Iterable[SpecialDay]) -> int:
        try:
            self._svc.set_special_days(SpecialDaysTable(tuple(sorted(entries, key=lambda x: x.index))))
        except CalendarError as exc:
            _log.info("special days refused: %s", exc)
            return OTHER_REASON
        return OK

    def write(self, e: Any) -> int:
        """SET attribute 2 (the whole table)."""
        if e.index != 2:
            return DENIED
        try:
            entries = [self.decode_entry(v) for v in _items(e.value)]
        except (ApduError, MeterError, ValueError, TypeError):
            return TYPE_UNMATCHED
        return self._set(entries)

    def invoke(self, settings: Any, e: Any) -> Any:
        current = {x.index: x for x in self._svc.calendar.special_days.entries}
        try:
            if e.index == 1:
                entry = self.decode_entry(e.parameters)
                current[entry.index] = entry
            elif e.index == 2:
                current.pop(int(e.parameters), None)
            else:
                e.error = ErrorCode.READ_WRITE_DENIED
                return None
        except (ApduError, MeterError, ValueError, TypeError):
            e.error = ErrorCode.UNMATCHED_TYPE
            return None
        if self._set(current.values()) != OK:
            e.error = ErrorCode.OTHER_REASON
        return None


class RevenueScriptTable(AttributeTable, GXDLMSScriptTable):  # type: ignore[misc]  # gurux is untyped
    """Script table (class 9): tariff scripts (one per rate) or the end-of-billing script (fixed)."""

    def __init__(self, ln: str, scripts: Sequence[tuple[int, bytes]],
                 execute: Callable[[int], bool] | None) -> None:
        super().__init__(ln)
        self._scripts = tuple(scripts)
        self._execute = execute

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_array([axdr.encode_structure(
            axdr.encode_value(axdr.UINT16, sid), axdr.encode_array([action]))
            for sid, action in self._scripts])}

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1 or self._execute is None or not isinstance(e.parameters, int):
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        if not self._execute(int(e.parameters)):
            e.error = ErrorCode.OTHER_REASON
        return None


def _action(service_id: int, class_id: int, ln: str, attribute: int, parameter: bytes) -> bytes:
    return axdr.encode_structure(axdr.encode_value(axdr.ENUM, service_id), axdr.encode_value(axdr.UINT16, class_id),
                                 axdr.encode_value(axdr.OCTET_STRING, axdr.obis_bytes(ln)),
                                 axdr.encode_value(axdr.INT8, attribute), parameter)


def _mask_name(rate: int) -> bytes:
    return f"RATE {rate}".encode("ascii")


def rate_register_ln(quantity: Quantity | Derived, rate: int) -> str:
    """1-0:C.8.E.255 of ``quantity`` (total channel) in rate E."""
    return f"1.0.{obis_c(quantity, Channel.TOTAL)}.8.{rate}.255"


def _force(service: RevenueService, rate: int) -> bool:
    """Force ``rate`` until the next calendar switch (tariff script / active mask write)."""
    try:
        until = service.force_rate(rate)
    except (MeterError, ValueError) as exc:
        _log.info("rate %d refused: %s", rate, exc)
        return False
    _log.info("rate %d in force until %s (tariff script)", rate, until.isoformat())
    return True


class RegisterActivationObject(AttributeTable, GXDLMSRegisterActivation):  # type: ignore[misc]  # gurux is untyped
    """Register activation (class 6) 0-0:14.0.0.255: one mask of rate registers per rate.

    Attribute 4 (active mask) follows the calendar; writing a mask name "RATE n" does what
    tariff script n does: rate n until the next switch of the calendar.
    """

    def __init__(self, service: RevenueService) -> None:
        super().__init__(REGISTER_ACTIVATION_LN)
        self._svc = service
        self._rates = service.tariff.rates

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        n = len(RATE_QUANTITIES)
        rates = range(1, self._rates + 1)
        return {
            2: lambda: axdr.encode_array([axdr.encode_structure(
                axdr.encode_value(axdr.UINT16, 3), axdr.encode_value(axdr.OCTET_STRING,
                                                                     axdr.obis_bytes(rate_register_ln(q, r))))
                for r in rates for q in RATE_QUANTITIES]),
            3: lambda: axdr.encode_array([axdr.encode_structure(
                axdr.encode_value(axdr.OCTET_STRING, _mask_name(r)),
                axdr.encode_array([axdr.encode_value(axdr.UINT8, (r - 1) * n + i + 1) for i in range(n)]))
                for r in rates]),
            4: lambda: axdr.encode_value(axdr.OCTET_STRING, _mask_name(self._svc.current_rate)),
        }

    def write(self, e: Any) -> int:
        """SET 4: the active mask, by name ("RATE n")."""
        if e.index != 4:
            return DENIED
        try:
            name = _octets(e.value).decode("ascii")
        except (ApduError, UnicodeDecodeError):
            return TYPE_UNMATCHED
        rate = next((r for r in range(1, self._rates + 1) if _mask_name(r).decode() == name), None)
        if rate is None:
            _log.info("register activation: no mask %r", name)
            return OTHER_REASON
        return OK if _force(self._svc, rate) else OTHER_REASON


class DemandObject(AttributeTable, GXDLMSDemandRegister):  # type: ignore[misc]  # gurux is untyped
    """Demand register (class 5) 1-0:C.4.0.255 (milli-units per hour, scaler −3).

    Attributes 8 (period, s: 60..3600 dividing a day) and 9 (number of periods, 1..60) are
    writable and shared by every demand register: a write restarts the windows (maximum demands
    recorded so far are kept) and is persisted with the revenue settings.
    """

    def __init__(self, service: RevenueService, quantity: DemandQuantity, model: Any) -> None:
        super().__init__(f"1.0.{quantity.value}.4.0.255")
        self._svc = service
        self._q = quantity
        self._model = model

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        d = self._svc.demand
        return {
            2: lambda: axdr.encode_value(axdr.UINT32, round(d.current_average(
                self._q, self._model.snapshot().registers))),
            3: lambda: axdr.encode_value(axdr.UINT32, round(d.last_average(self._q))),
            4: lambda: axdr.encode_scaler_unit(-3, _DEMAND_UNITS[self._q]),
            5: lambda: axdr.encode_value(axdr.UINT8, 0),
            6: lambda: _datetime_or_unset(d.last_capture_utc),
            7: lambda: _datetime_or_unset(d.start_utc),
            8: lambda: axdr.encode_value(axdr.UINT32, d.config.period_s),
            9: lambda: axdr.encode_value(axdr.UINT16, d.config.number_of_periods),
        }

    def write(self, e: Any) -> int:
        """SET 8 (period, s) or 9 (number of periods)."""
        config = self._svc.demand.config
        try:
            if isinstance(e.value, bool) or not isinstance(e.value, int):
                raise ApduError(f"unsigned integer expected, got {type(e.value).__name__}")
            if e.index == 8:
                self._svc.set_demand_config(int(e.value), config.number_of_periods)
            elif e.index == 9:
                self._svc.set_demand_config(config.period_s, int(e.value))
            else:
                return DENIED
        except ApduError as exc:
            _log.info("demand attribute %d refused: %s", e.index, exc)
            return TYPE_UNMATCHED
        except MeterError as exc:
            _log.info("demand attribute %d refused: %s", e.index, exc)
            return OTHER_REASON
        return OK


def _datetime_or_unset(utc: _dt.datetime | None) -> bytes:
    raw = datetime_codec.UNSPECIFIED if utc is None else datetime_codec.encode_utc(utc)
    return axdr.encode_value(axdr.OCTET_STRING, raw)


class MaxDemandObject(AttributeTable, GXDLMSExtendedRegister):  # type: ignore[misc]  # gurux is untyped
    """Maximum demand (class 4) 1-0:C.6.E.255; method 1 (reset) ends the billing period.

    Not writable: maximum demand is measured.
    """

    def __init__(self, service: RevenueService, quantity: DemandQuantity, rate: int,
                 bill: Callable[[], bool]) -> None:
        super().__init__(f"1.0.{quantity.value}.6.{rate}.255")
        self._svc = service
        self._q = quantity
        self._rate = rate
        self._bill = bill

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        md = self._svc.demand.max_demand(self._q, self._rate)
        return {
            2: lambda: axdr.encode_value(axdr.UINT32, round(md.value_milli)),
            3: lambda: axdr.encode_scaler_unit(-3, _DEMAND_UNITS[self._q]),
            4: lambda: axdr.encode_value(axdr.UINT8, 0),
            5: lambda: _datetime_or_unset(md.capture_utc),
        }

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1 or not self._bill():
            e.error = ErrorCode.READ_WRITE_DENIED if e.index != 1 else ErrorCode.TEMPORARY_FAILURE
        return None


class LoadProfileObject(ModelProfile):
    """Load profile 1-0:99.1.0.255 with writable capture objects (3) and capture period (4, s)."""

    def __init__(self, service: RevenueService) -> None:
        super().__init__(LOAD_PROFILE_OBIS, ProfileReader(service.load_profile,
                                                          service.load_profile.config.max_entries))
        self._svc = service

    def write(self, e: Any) -> int:
        """SET 3 (capture objects, from the meter's known columns) or 4 (period): clears the buffer."""
        current = self._svc.load_profile.config
        try:
            if e.index == 4:
                config = dataclasses.replace(current, capture_period_s=int(e.value))
            elif e.index == 3:
                config = dataclasses.replace(current, channels=self._channels(e.value))
            else:
                return DENIED
        except (ApduError, MeterError, ValueError, TypeError) as exc:
            _log.info("load profile attribute %d refused: %s", e.index, exc)
            return OTHER_REASON
        self._svc.set_load_profile_config(config)
        return OK

    def _channels(self, value: Any) -> tuple[ProfileChannel, ...]:
        known = capturable_channels()
        by_ref = {(ch.column.class_id, axdr.obis_bytes(ch.column.obis), ch.column.attribute): ch for ch in known}
        picked = []
        for item in _items(value):
            class_id, ln, attribute, _index = _items(item, 4)
            ch = by_ref.get((int(class_id), _octets(ln), int(attribute)))
            if ch is None:
                raise ApduError("capture object not known to the meter")
            picked.append(ch)
        return ProfileConfig(tuple(picked)).channels


class LegalClock(ModelClock):
    """Clock 0-0:1.0.0.255 in the legal time of the revenue service, its rules writable.

    Attribute 2 is local time with its deviation and the DST status bit (CET winter: deviation −60,
    status 0x00; CEST: −120, 0x80); a written time without deviation is local time under these
    rules (see :func:`meterd.cosem.adapters.decode_clock_datetime`). Time zone (3), status (4),
    DST begin/end/deviation/enabled (5–8) come from the same rules.
    """

    def __init__(self, ctx: CosemContext, service: RevenueService) -> None:
        super().__init__("0.0.1.0.0.255", ctx.model.now_utc, ctx.set_clock, lambda: service.legal,
                         clock_quality(ctx.model))
        self._svc = service

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        s = self._svc.config.clock
        return {
            **super().attribute_values(),
            5: lambda: axdr.encode_value(axdr.OCTET_STRING, _pattern_bytes(s.dst_begin)),
            6: lambda: axdr.encode_value(axdr.OCTET_STRING, _pattern_bytes(s.dst_end)),
            7: lambda: axdr.encode_value(axdr.INT8, s.dst_deviation_min),
            8: lambda: axdr.encode_value(axdr.BOOLEAN, s.dst_enabled),
        }

    def write(self, e: Any) -> int:
        """SET 2 (time, local with or without deviation) or the legal-time attributes 3, 5, 6, 7, 8."""
        if e.index == 2:
            return int(super().write(e))
        s = self._svc.config.clock
        try:
            changes: dict[int, Callable[[], ClockSettings]] = {
                3: lambda: dataclasses.replace(s, time_zone_min=int(e.value)),
                5: lambda: dataclasses.replace(s, dst_begin=_pattern_from(_octets(e.value))),
                6: lambda: dataclasses.replace(s, dst_end=_pattern_from(_octets(e.value))),
                7: lambda: dataclasses.replace(s, dst_deviation_min=int(e.value)),
                8: lambda: dataclasses.replace(s, dst_enabled=bool(e.value)),
            }
            if e.index not in changes:
                return DENIED
            new = changes[e.index]()
        except (ApduError, MeterError, ValueError, TypeError) as exc:
            _log.info("clock attribute %d refused: %s", e.index, exc)
            return OTHER_REASON
        self._svc.set_clock_settings(new)
        return OK


def _pattern_bytes(p: DateTimePattern | None) -> bytes:
    if p is None:
        return datetime_codec.UNSPECIFIED
    return datetime_codec.CosemDateTime(p.year, p.month, p.day_of_month, p.day_of_week, p.hour, p.minute, p.second,
                                        deviation_min=p.deviation_min).encode()


def _pattern_from(raw: bytes) -> DateTimePattern:
    f = datetime_codec.CosemDateTime.decode(raw)
    return DateTimePattern(month=datetime_codec.NOT_SPECIFIED if f.month is None else f.month,
                           day_of_month=f.day, day_of_week=f.weekday, hour=f.hour or 0, minute=f.minute or 0,
                           second=f.second or 0, year=f.year, deviation_min=f.deviation_min)


# --- capture objects of the profiles -------------------------------------------------------------

def _last_captured(service: RevenueService, channel: ProfileChannel) -> int:
    """The value ``channel`` had in the newest row of the load profile, else of the daily
    profile; 0 while neither profile has captured it."""
    for profile in (service.load_profile, service.daily_profile):
        value = profile.last_value(channel)
        if value is not None:
            return value
    return 0


def _capture_getter(service: RevenueService, channel: ProfileChannel, tag: int) -> Callable[[], tuple[int, int]]:
    return lambda: (tag, _last_captured(service, channel))


def capture_object_entries(service: RevenueService) -> Iterable[CosemEntry]:
    """The capture objects of the load and daily profiles that are not registers of their own:
    status 0-0:96.10.1.255 (class 1, long-unsigned: the :class:`ProfileStatus` word), interval
    energy 1-0:C.29.0.255 of every base quantity and channel (class 3, long64-unsigned, scaler −3:
    Wh, varh, VAh) and average voltage 1-0:32/52/72.27.0.255 (class 3, double-long-unsigned,
    scaler −2, V). Each reads the value of its column in the newest profile row, so a head end
    resolves every capture object a profile can be given (attribute 3 of 1-0:99.1.0.255)."""
    for ch in capturable_channels():
        column = ch.column
        if ch.kind is ColumnKind.STATUS:
            yield CosemEntry(ValueData(column.obis, _capture_getter(service, ch, axdr.UINT16)))
        elif ch.kind is ColumnKind.INTERVAL_ENERGY:
            assert ch.quantity is not None
            unit = ENERGY_UNITS[UNITS[ch.quantity]]
            yield CosemEntry(ValueRegister(column.obis, _capture_getter(service, ch, axdr.UINT64), -3, unit))
        elif ch.kind is ColumnKind.AVERAGE_VOLTAGE:
            yield CosemEntry(ValueRegister(column.obis, _capture_getter(service, ch, axdr.UINT32), -2, UNIT_V))


# --- the factory ----------------------------------------------------------------------------------

def _rate_getter(service: RevenueService, quantity: Quantity | Derived, rate: int) -> Callable[[], tuple[int, int]]:
    return lambda: (axdr.UINT64, service.tariff.get(quantity, Channel.TOTAL, rate))


def _tariff_scripts(rates: int) -> list[tuple[int, bytes]]:
    return [(r, _action(1, 6, REGISTER_ACTIVATION_LN, 4, axdr.encode_value(axdr.OCTET_STRING, _mask_name(r))))
            for r in range(1, rates + 1)]


LOAD_PROFILE_REPLACES = "1.0.99.1.0.255"
CLOCK_REPLACES = "0.0.1.0.0.255"


def revenue_factory(service: RevenueService, serve_load_profile: bool = False,
                    serve_clock: bool = False) -> Callable[[CosemContext], Iterable[CosemEntry]]:
    """The COSEM factory of the revenue function for ``daemon.cosem_factories``."""
    staging: list[PassiveStaging] = []

    def end_billing(ctx: CosemContext) -> Callable[[], bool]:
        def run() -> bool:
            now = ctx.model.now_utc()
            last = service.billing.last_billing_utc
            if last is not None and now <= last:
                return False
            service.mdi_reset(now)
            return True
        return run

    def objects(ctx: CosemContext) -> Iterable[CosemEntry]:
        if not staging:
            staging.append(PassiveStaging(service))
        manage = frozenset({1})
        bill = end_billing(ctx)
        yield CosemEntry(ActivityCalendarObject(service, staging[0]),
                         Access(write=frozenset({6, 7, 8, 9, 10}), methods=manage))
        yield CosemEntry(SpecialDaysObject(service), Access(write=frozenset({2}), methods=frozenset({1, 2})))
        yield CosemEntry(RevenueScriptTable(TARIFF_SCRIPTS_LN, _tariff_scripts(service.tariff.rates),
                                            lambda sid: _force(service, sid)), Access(methods=manage))
        billing_action = _action(2, 4, "1.0.1.6.0.255", 1, axdr.encode_value(axdr.INT8, 0))
        yield CosemEntry(RevenueScriptTable(BILLING_SCRIPTS_LN, [(1, billing_action)],
                                            lambda sid: sid == 1 and bill()), Access(methods=manage))
        yield CosemEntry(RegisterActivationObject(service), Access(write=frozenset({4})))
        yield CosemEntry(ValueData(CURRENT_RATE_LN, lambda: (axdr.UINT8, service.current_rate)))
        for rate in range(1, service.tariff.rates + 1):
            for q in RATE_QUANTITIES:
                unit = ENERGY_UNITS[UNITS[q]]
                yield CosemEntry(ValueRegister(rate_register_ln(q, rate), _rate_getter(service, q, rate), -3, unit))
        for dq in DemandQuantity:
            yield CosemEntry(DemandObject(service, dq, ctx.model), Access(write=frozenset({8, 9})))
            for rate in range(service.tariff.rates + 1):
                yield CosemEntry(MaxDemandObject(service, dq, rate, bill), Access(methods=manage))
        yield CosemEntry(ValueData(BILLING_COUNTER_OBIS, lambda: (axdr.UINT32, service.billing.counter)))
        yield CosemEntry(ValueData(LAST_BILLING_LN, lambda: (
            axdr.OCTET_STRING, _last_billing(service.billing.last_billing_utc))))
        capacity = {DAILY_PROFILE_OBIS: service.daily_profile.config.max_entries,
                    BILLING_PROFILE_OBIS: service.billing.max_periods}
        for ln in (DAILY_PROFILE_OBIS, BILLING_PROFILE_OBIS):
            buffer = service.profile(ln)
            assert buffer is not None
            yield CosemEntry(ModelProfile(ln, ProfileReader(buffer, max_entries=capacity[ln])))
        yield from capture_object_entries(service)
        if serve_load_profile:
            yield CosemEntry(LoadProfileObject(service), Access(write=frozenset({3, 4})))
        if serve_clock:
            yield CosemEntry(LegalClock(ctx, service), Access(public=True, write=frozenset({2, 3, 5, 6, 7, 8}),
                                                              methods=frozenset({1, 3, 6})))

    replaced = ({LOAD_PROFILE_REPLACES} if serve_load_profile else set()) | ({CLOCK_REPLACES} if serve_clock else set())
    objects.replaces = frozenset(replaced)  # type: ignore[attr-defined]
    return objects


def _last_billing(utc: _dt.datetime | None) -> bytes:
    return datetime_codec.UNSPECIFIED if utc is None else datetime_codec.encode_utc(utc)

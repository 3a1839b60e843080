"""COSEM objects of the PQ thresholds (writable by the management association) and the EN 50160 week.

Thresholds (class 3 registers, attribute 2 writable by the management association only, read by
the reader and management associations; V as double-long-unsigned, scaler −2; s as
double-long-unsigned, scaler 0). The OBIS codes are the Blue Book's limit codes for the voltage of
any phase (C = 12: D = 31 under limit threshold, 35 over limit threshold, 39 missing threshold,
43/44 time threshold for under/over limit) and the reference voltage for power-quality
measurement (1-0:0.6.4.255). Value group F numbers the thresholds of one quantity, so F = 255 is
the IEC 61000-4-30 event threshold and F = 1 the second threshold, the sustained
under/over-voltage (ref. §5.11):

* 1-0:0.6.4.255 Udin, the declared input voltage (V);
* 1-0:12.31.0.255 dip threshold, 1-0:12.35.0.255 swell threshold, 1-0:12.39.0.255 interruption
  threshold (V; the meter keeps them in % of Udin, so a new Udin moves them along);
* 1-0:12.31.0.1 / 1-0:12.35.0.1 sustained under-/over-voltage thresholds (V);
* 1-0:12.43.0.255 / 1-0:12.44.0.255 minimum duration of a sustained under-/over-voltage (s);
* 1-0:12.128.0.255 the hysteresis (V; project code, manufacturer range of value group D).

A write is validated as a whole by :class:`~meterd.pq.settings.PqSettings` (a dip threshold plus
hysteresis at or above Udin, an interruption threshold above the dip threshold …): a refused value
answers "other reason" and changes nothing; a value of the wrong type "type unmatched". A
change is persisted, applied to the running analysis and evented (186) by
:class:`~meterd.services.pq_thresholds.PqThresholds`.

EN 50160, the last closed week (read-only; project codes in the manufacturer range of value
group D, C and E naming the quantity as its instantaneous value does: C = 14 frequency, C = 12
voltage of any phase with E = 0 RMS, 124 THD, h harmonic h, 131 Plt, 132 u2; E = 1 for the
second band of the same quantity, the "at all times" band of frequency and voltage):

* 1-0:C.129.E.255 (class 3, long-unsigned, scaler −2, %): share of the week's unflagged values
  inside the limit band, of the worst phase (0 when not measured);
* 1-0:C.130.E.255 (class 1, unsigned): the limit's verdict, 0 compliant, 1 not compliant,
  2 not measured (also before the first week closed);
* 1-0:0.130.0.255 (class 1, unsigned): the week's verdict, same values;
* 1-0:0.131.0.255 (class 1, octet-string date-time, UTC): the start of that week (Monday 00:00
  UTC; "not specified" before the first week closed);
* 1-0:0.132.0.255 / 1-0:0.132.1.255 (class 3, long-unsigned): short / long supply interruptions
  that started in that week (measured and from the power-fail evidence).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable
from typing import Any

from gurux_dlms.objects import GXDLMSRegister

from meterd.cosem import axdr, datetime_codec
from meterd.cosem.adapters import OK, OTHER_REASON, TYPE_UNMATCHED, AttributeTable, AttributeValue, ValueData
from meterd.cosem.adapters import ValueRegister as _ValueRegister
from meterd.cosem.objects import (
    UNIT_NONE,
    UNIT_SECOND,
    UNIT_V,
    Access,
    CosemContext,
    CosemEntry,
    ObjectFactory,
)
from meterd.pq.en50160 import LIMITS, Limit, Verdict, WeekRecord
from meterd.pq.errors import PqConfigError
from meterd.pq.settings import PqSettings
from meterd.services.pq_thresholds import PqThresholds
from meterd.services.pq_week import WeekTracker

UNIT_PERCENT = 56
UDIN_OBIS = "1.0.0.6.4.255"
HYSTERESIS_OBIS = "1.0.12.128.0.255"
WEEK_VERDICT_OBIS = "1.0.0.130.0.255"
WEEK_START_OBIS = "1.0.0.131.0.255"
SHORT_INTERRUPTIONS_OBIS = "1.0.0.132.0.255"
LONG_INTERRUPTIONS_OBIS = "1.0.0.132.1.255"


def statistic_obis(limit: Limit) -> str:
    """1-0:C.129.E.255: share within the band of the last closed week (%)."""
    return f"1.0.{limit.obis_c}.129.{limit.obis_e}.255"


def verdict_obis(limit: Limit) -> str:
    """1-0:C.130.E.255: the limit's verdict of the last closed week."""
    return f"1.0.{limit.obis_c}.130.{limit.obis_e}.255"


class _Threshold:
    """How one threshold register reads and writes a :class:`PqSettings` field."""

    def __init__(self, obis: str, field: str, unit: int, scaler: int, volts_of_pct: bool) -> None:
        self.obis, self.field, self.unit, self.scaler, self.volts_of_pct = obis, field, unit, scaler, volts_of_pct

    def read(self, s: PqSettings) -> float:
        value = float(getattr(s, self.field))
        return s.volts(value) if self.volts_of_pct else value

    def change(self, s: PqSettings, raw: int) -> dict[str, float]:
        value = raw * 10.0 ** self.scaler
        if self.volts_of_pct:
            value = round(value / s.udin_v * 100.0, 9)
        return {self.field: value}


THRESHOLDS: tuple[_Threshold, ...] = (
    _Threshold(UDIN_OBIS, "udin_v", UNIT_V, -2, False),
    _Threshold("1.0.12.31.0.255", "dip_threshold_pct", UNIT_V, -2, True),
    _Threshold("1.0.12.35.0.255", "swell_threshold_pct", UNIT_V, -2, True),
    _Threshold("1.0.12.39.0.255", "interruption_threshold_pct", UNIT_V, -2, True),
    _Threshold("1.0.12.31.0.1", "undervoltage_threshold_pct", UNIT_V, -2, True),
    _Threshold("1.0.12.35.0.1", "overvoltage_threshold_pct", UNIT_V, -2, True),
    _Threshold("1.0.12.43.0.255", "undervoltage_min_duration_s", UNIT_SECOND, 0, False),
    _Threshold("1.0.12.44.0.255", "overvoltage_min_duration_s", UNIT_SECOND, 0, False),
    _Threshold(HYSTERESIS_OBIS, "hysteresis_pct", UNIT_V, -2, True),
)


class ThresholdRegister(AttributeTable, GXDLMSRegister):  # type: ignore[misc]  # gurux is untyped
    """A PQ threshold (class 3): value attribute 2 read from and written to :class:`PqThresholds`."""

    def __init__(self, spec: _Threshold, thresholds: PqThresholds, now_utc: Callable[[], _dt.datetime]) -> None:
        super().__init__(spec.obis)
        self._spec = spec
        self._thresholds = thresholds
        self._now = now_utc
        self.scaler_exponent = spec.scaler
        self.unit = spec.unit

    def attribute_values(self) -> dict[int, AttributeValue]:
        def value() -> bytes:
            v = self._spec.read(self._thresholds.settings)
            return axdr.encode_value(axdr.UINT32, max(0, min(round(v / 10.0 ** self._spec.scaler), 0xFFFF_FFFF)))
        return {2: value, 3: lambda: axdr.encode_scaler_unit(self._spec.scaler, self._spec.unit)}

    def write(self, e: Any) -> int:
        """SET attribute 2: the new threshold, validated with the others (refused: nothing changes)."""
        if e.index != 2:
            return super().write(e)  # type: ignore[no-any-return]
        if isinstance(e.value, bool) or not isinstance(e.value, int) or e.value < 0:
            return TYPE_UNMATCHED
        try:
            self._thresholds.change(self._spec.change(self._thresholds.settings, int(e.value)), self._now(), "dlms")
        except PqConfigError:
            return OTHER_REASON
        return OK


def _last(week: WeekTracker) -> WeekRecord | None:
    return week.last_closed()


def _statistic(week: WeekTracker, limit: Limit) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        record = _last(week)
        share = record.result(limit.key).within_pct if record is not None else None
        return axdr.UINT16, 0 if share is None or not math.isfinite(share) else round(share * 100)
    return read


def _verdict(week: WeekTracker, limit: Limit | None) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        record = _last(week)
        if record is None:
            return axdr.UINT8, int(Verdict.NOT_MEASURED)
        return axdr.UINT8, int(record.verdict if limit is None else record.result(limit.key).verdict)
    return read


def _week_start(week: WeekTracker) -> Callable[[], tuple[int, bytes]]:
    def read() -> tuple[int, bytes]:
        record = _last(week)
        return axdr.OCTET_STRING, (datetime_codec.encode_utc(record.start_utc) if record is not None
                                   else datetime_codec.UNSPECIFIED)
    return read


def _interruptions(week: WeekTracker, long: bool) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        record = _last(week)
        if record is None:
            return axdr.UINT16, 0
        return axdr.UINT16, min(record.long_interruptions if long else record.short_interruptions, 0xFFFF)
    return read


def pq_week_factory(thresholds: PqThresholds, week: WeekTracker | None) -> ObjectFactory:
    """The threshold objects (and, with the waveform analysis, the EN 50160 week's) for every session."""

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        for spec in THRESHOLDS:
            yield CosemEntry(ThresholdRegister(spec, thresholds, ctx.model.now_utc), Access(write=frozenset({2})))
        if week is None:
            return
        for limit in LIMITS:
            yield CosemEntry(_ValueRegister(statistic_obis(limit), _statistic(week, limit), -2, UNIT_PERCENT))
            yield CosemEntry(ValueData(verdict_obis(limit), _verdict(week, limit)))
        yield CosemEntry(ValueData(WEEK_VERDICT_OBIS, _verdict(week, None)))
        yield CosemEntry(ValueData(WEEK_START_OBIS, _week_start(week)))
        yield CosemEntry(_ValueRegister(SHORT_INTERRUPTIONS_OBIS, _interruptions(week, False), 0, UNIT_NONE))
        yield CosemEntry(_ValueRegister(LONG_INTERRUPTIONS_OBIS, _interruptions(week, True), 0, UNIT_NONE))

    return factory

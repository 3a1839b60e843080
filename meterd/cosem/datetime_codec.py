"""COSEM date-time (IEC 62056-6-2 §4.1.6.1, DLMS UA 1000-1 §4.1.6.1): the one codec of the meter.

Twelve octets, big-endian::

    year(2) month day day-of-week hour minute second hundredths deviation(2) clock-status

A field that is not specified is 0xFF (year 0xFFFF, deviation 0x8000); :class:`CosemDateTime`
carries it as None. Day of week 1 is Monday. The deviation is in minutes with the IDIS / gurux
sign ``UTC = local + deviation`` (−60 in CET, −120 in CEST). Clock status bit 0x80 is "daylight
saving active" (:class:`meterd.core.legal_time.ClockStatus`).

The meter writes four kinds of date-time, each with one function here:

* :func:`encode_utc`: an instant as UTC with deviation 0 (profile capture times, billing and
  credit times: the same bytes for every client; the profile buffers' hot path); a capture
  time carries the clock status it was captured with (0x01 invalid, 0x02 doubtful);
* :func:`encode_legal`: the clock 0-0:1.0.0.255, legal local time with its deviation and status;
* :func:`encode_wall`: a local wall time without deviation (calendar and schedule entries);
* :data:`UNSPECIFIED`: every field not specified (a time never set).

:func:`decode_utc` reads an absolute date-time sent by a client (clock writes, profile range
bounds); :func:`decode_wall` a wall time that may carry wildcards.
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass

from meterd.core.legal_time import ClockStatus, LegalTime, LegalTimeError, LocalTime
from meterd.cosem.errors import ApduError

UTC = _dt.UTC
DATETIME_LEN = 12
NOT_SPECIFIED = 0xFF
YEAR_NOT_SPECIFIED = 0xFFFF
DEVIATION_UNSPECIFIED = -0x8000  # 0x8000 on the wire
_STRUCT = struct.Struct(">HBBBBBBBhB")


@dataclass(frozen=True)
class CosemDateTime:
    """The fields of a COSEM date-time as sent; None = not specified (0xFF, 0xFFFF, 0x8000).

    ``weekday``: 1 (Monday) .. 7; ``hundredths``: hundredths of a second; ``deviation_min``:
    minutes, UTC = local + deviation; ``status``: the clock status bits.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    weekday: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    hundredths: int | None = None
    deviation_min: int | None = None
    status: int | None = None

    def encode(self) -> bytes:
        """The 12 octets."""
        def octet(value: int | None) -> int:
            return NOT_SPECIFIED if value is None else value

        return _STRUCT.pack(YEAR_NOT_SPECIFIED if self.year is None else self.year, octet(self.month),
                            octet(self.day), octet(self.weekday), octet(self.hour), octet(self.minute),
                            octet(self.second), octet(self.hundredths),
                            DEVIATION_UNSPECIFIED if self.deviation_min is None else self.deviation_min,
                            octet(self.status))

    @classmethod
    def decode(cls, raw: bytes) -> CosemDateTime:
        """The fields of 12 octets; raises :class:`ApduError` on another length."""
        if len(raw) != DATETIME_LEN:
            raise ApduError(f"date-time must be {DATETIME_LEN} octets, got {len(raw)}")
        year, *octets, deviation, status = _STRUCT.unpack(raw)
        month, day, weekday, hour, minute, second, hundredths = (None if v == NOT_SPECIFIED else v for v in octets)
        return cls(None if year == YEAR_NOT_SPECIFIED else year, month, day, weekday, hour, minute, second,
                   hundredths, None if deviation == DEVIATION_UNSPECIFIED else deviation,
                   None if status == NOT_SPECIFIED else status)


UNSPECIFIED = CosemDateTime().encode()
"""A date-time with every field not specified (FFFF FF FF FF FF FF FF FF 8000 FF)."""


def encode_utc(utc: _dt.datetime, status: int = 0) -> bytes:
    """An aware instant as UTC, deviation 0 (one struct pack: profile buffers' hot path);
    ``status``: the clock status of a captured time (0x01 invalid value, 0x02 doubtful value,
    :mod:`meterd.core.time_trust`), 0 for a trusted one and for dates that are not captures."""
    t = utc.astimezone(UTC)
    return _STRUCT.pack(t.year, t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second,
                        t.microsecond // 10000, 0, status)


def encode_legal(local: LocalTime, quality: int = 0) -> bytes:
    """Legal time (the clock 0-0:1.0.0.255): the local wall date-time, hundredths of a second, the
    deviation (minutes, UTC = local + deviation) and the clock status: 0x80 daylight saving, ORed
    with ``quality`` (0x01 invalid value, 0x02 doubtful value while the time is not trusted)."""
    w = local.wall
    return _STRUCT.pack(w.year, w.month, w.day, w.isoweekday(), w.hour, w.minute, w.second,
                        w.microsecond // 10000, local.deviation_min, int(local.status()) | quality)


def encode_wall(wall: _dt.datetime | None, year_wild: bool = False) -> bytes:
    """A naive local wall time to the second, hundredths 0, deviation and status not specified;
    ``year_wild``: every year (year and day of week not specified); None: :data:`UNSPECIFIED`."""
    if wall is None:
        return UNSPECIFIED
    return CosemDateTime(None if year_wild else wall.year, wall.month, wall.day,
                         None if year_wild else wall.isoweekday(), wall.hour, wall.minute, wall.second,
                         0).encode()


def decode_wall(raw: bytes) -> tuple[int | None, int, int, int, int, int] | None:
    """(year or None for every year, month, day, hour, minute, second) of a wall time, unspecified
    hour, minute and second read as 0; None when month or day is not specified (no time set)."""
    f = CosemDateTime.decode(raw)
    if f.month is None or f.day is None:
        return None
    return f.year, f.month, f.day, f.hour or 0, f.minute or 0, f.second or 0


def decode_utc(raw: bytes, legal: LegalTime | None = None) -> _dt.datetime:
    """An aware UTC datetime from an absolute 12-octet date-time; raises :class:`ApduError`.

    Year, month, day, hour and minute must be specified (second and hundredths not specified
    read as 0). With a deviation (−720…720 min) the instant is exact: UTC = date-time +
    deviation. With deviation 0x8000 (not specified) it is the local wall time of ``legal``
    (:meth:`LegalTime.utc_of_wall`, the rules of the clock 0-0:1.0.0.255): in the repeated hour of
    the DST end the status' daylight-saving bit (0x80) picks the pass, set the first (in DST),
    clear the second, status 0xFF (not specified) the first; a time in the skipped hour of the DST
    begin is read with the offset in force before it. Without ``legal`` it is taken as UTC.
    """
    f = CosemDateTime.decode(raw)
    if f.year is None or f.month is None or f.day is None or f.hour is None or f.minute is None:
        raise ApduError("wildcards are not accepted in an absolute date-time")
    try:
        local = _dt.datetime(f.year, f.month, f.day, f.hour, f.minute, f.second or 0, (f.hundredths or 0) * 10000,
                             tzinfo=UTC)
    except ValueError as exc:
        raise ApduError(f"invalid date-time: {exc}") from exc
    if f.deviation_min is None:
        return local if legal is None else _utc_of_wall(local.replace(tzinfo=None), f.status, legal)
    if not -720 <= f.deviation_min <= 720:
        raise ApduError(f"deviation {f.deviation_min} min out of range")
    return local + _dt.timedelta(minutes=f.deviation_min)


def _utc_of_wall(wall: _dt.datetime, status: int | None, legal: LegalTime) -> _dt.datetime:
    """UTC of a wall time sent without deviation; ``status`` is the date-time's clock status."""
    dst_hint = None if status is None else bool(status & ClockStatus.DAYLIGHT_SAVING_ACTIVE)
    try:
        return legal.utc_of_wall(wall, dst_hint)
    except LegalTimeError as exc:
        raise ApduError(str(exc)) from exc

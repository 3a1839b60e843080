"""The battery-backed real-time clock: Linux /dev/rtcN through its ioctls, and a simulated one.

struct rtc_time is nine ints (sec, min, hour, mday, mon 0–11, year − 1900, wday, yday, isdst);
the RTC is kept in UTC. RTC_VL_READ reports battery and validity flags on chips that support it
(PCF2127/2129, PCF8563, RX8010); elsewhere it fails and the flags are unknown (None).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import struct
from dataclasses import dataclass

UTC = _dt.UTC
RTC_RD_TIME = 0x80247009
RTC_SET_TIME = 0x4024700A
RTC_VL_READ = 0x80047013
_RTC_TIME = struct.Struct("9i")

VL_DATA_INVALID = 0x1
VL_BACKUP_LOW = 0x2
VL_BACKUP_EMPTY = 0x4


class RtcError(OSError):
    """The RTC cannot be read or written, or holds an invalid time."""


def pack_rtc_time(utc: _dt.datetime) -> bytes:
    """A UTC datetime as struct rtc_time (36 bytes)."""
    t = utc.astimezone(UTC)
    yday = t.timetuple().tm_yday - 1
    return _RTC_TIME.pack(t.second, t.minute, t.hour, t.day, t.month - 1, t.year - 1900,
                          (t.weekday() + 1) % 7, yday, 0)


def unpack_rtc_time(raw: bytes) -> _dt.datetime:
    """struct rtc_time to a UTC datetime; raises RtcError for an impossible date."""
    sec, minute, hour, mday, mon, year, *_ = _RTC_TIME.unpack(raw)
    try:
        return _dt.datetime(year + 1900, mon + 1, mday, hour, minute, sec, tzinfo=UTC)
    except ValueError as exc:
        raise RtcError(f"RTC holds an invalid time: {exc}") from None


class LinuxRtc:
    """/dev/rtcN (needs read/write access to the device)."""

    def __init__(self, path: str = "/dev/rtc0") -> None:
        self.path = path

    def _ioctl(self, request: int, arg: bytes) -> bytes:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return bytes(fcntl.ioctl(fd, request, arg))
        except OSError as exc:
            raise RtcError(exc.errno, f"{self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def read(self) -> _dt.datetime:
        """The RTC time (UTC)."""
        return unpack_rtc_time(self._ioctl(RTC_RD_TIME, bytes(_RTC_TIME.size)))

    def write(self, utc: _dt.datetime) -> None:
        """Set the RTC (UTC, whole seconds)."""
        self._ioctl(RTC_SET_TIME, pack_rtc_time(utc))

    def flags(self) -> int | None:
        """RTC_VL_READ flags, or None when the chip does not report them."""
        try:
            return int(struct.unpack("I", self._ioctl(RTC_VL_READ, bytes(4)))[0])
        except RtcError:
            return None


@dataclass
class SimRtc:
    """An RTC in memory: a time, validity flags, and a count of writes."""

    time_utc: _dt.datetime | None = None
    vl_flags: int | None = 0
    writes: int = 0

    def read(self) -> _dt.datetime:
        if self.time_utc is None or (self.vl_flags or 0) & VL_DATA_INVALID:
            raise RtcError("RTC time invalid (battery lost?)")
        return self.time_utc

    def write(self, utc: _dt.datetime) -> None:
        self.time_utc = utc.astimezone(UTC).replace(microsecond=0)
        self.writes += 1
        if self.vl_flags is not None:
            self.vl_flags &= ~VL_DATA_INVALID

    def flags(self) -> int | None:
        return self.vl_flags

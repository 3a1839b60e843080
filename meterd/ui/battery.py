"""The RTC backup battery as the meter LCD shows it: flags read on a period, one event per occurrence."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("meterd.display")


class RtcFlags(Protocol):
    """An RTC's ``RTC_VL_READ`` flags (``meterd.runtime.rtc.LinuxRtc`` and ``SimRtc`` fit)."""

    def flags(self) -> int | None:
        """The flags, None when the RTC reports none; OSError when unreadable."""
        ...


class LatchCell(Protocol):
    """Where the low-battery latch survives a restart (``meterd.store.json_file.JsonFile`` fits)."""

    def load(self) -> dict[str, Any]: ...

    def save(self, value: dict[str, Any]) -> None: ...


class BatteryWatch:
    """The RTC's backup battery: its flags read every ``period_s`` (s, monotonic).

    ``low`` is True (one of ``low_flags``, e.g. BACKUP_LOW or BACKUP_EMPTY, set), False, or None
    when the RTC reports no flags. ``record(detail)`` (BATTERY_VOLTAGE_LOW in the standard event
    log) is called once per occurrence: on the change to low, and not again until the battery has
    been seen good; the latch survives a restart through ``latch``.

    The same read tells whether the RTC still holds a trustworthy time: one of ``invalid_flags``
    (DATA_INVALID: the oscillator stopped, e.g. a supply loss with the battery gone) makes
    ``clock_invalid`` True (the meter's ``clock_invalid`` status bit) and calls
    ``record_invalid(detail)`` (CLOCK_INVALID) once per occurrence. It ends when the RTC reads
    valid again, or at :meth:`clock_set` (a clock set writes the RTC).
    """

    def __init__(self, rtc: RtcFlags, mono: Callable[[], float], period_s: float,
                 record: Callable[[dict[str, Any]], None], latch: LatchCell, low_flags: int,
                 invalid_flags: int = 0, record_invalid: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.rtc = rtc
        self._mono = mono
        self._period_s = period_s
        self._record = record
        self._latch = latch
        self._low_flags = low_flags
        self._invalid_flags = invalid_flags
        self._record_invalid = record_invalid
        self.clock_invalid = False
        self._latched = bool(latch.load().get("battery_low", False))
        self._next_mono = float("-inf")
        self._warned = False
        self.low: bool | None = None

    def poll(self) -> None:
        """Read the flags when due; record the event on a new low battery."""
        now = self._mono()
        if now < self._next_mono:
            return
        self._next_mono = now + self._period_s
        flags = self._flags()
        if flags is None:  # unreadable (no device, no flags, or the clock helper holds it): keep the last state
            return
        self._check_time(flags)
        self.low = bool(flags & self._low_flags)
        if self.low == self._latched:
            return
        self._latched = self.low
        if self.low:
            log.warning("RTC backup battery low (flags 0x%x)", flags)
            self._record({"flags": flags})
        self._latch.save({"battery_low": self._latched})

    def poll_now(self) -> None:
        """Read the flags at the next :meth:`poll` whatever the period (after a clock set)."""
        self._next_mono = float("-inf")

    def clock_set(self) -> None:
        """The meter's clock was set (and the RTC written with it): its time is valid again."""
        self.clock_invalid = False
        self.poll_now()

    def _check_time(self, flags: int) -> None:
        invalid = bool(flags & self._invalid_flags)
        if invalid and not self.clock_invalid:
            log.warning("RTC time invalid (flags 0x%x): the meter clock is not trustworthy", flags)
            if self._record_invalid is not None:
                self._record_invalid({"flags": flags})
        self.clock_invalid = invalid

    def _flags(self) -> int | None:
        try:
            return self.rtc.flags()
        except OSError as exc:  # no such device, no permission: the battery state is unknown
            if not self._warned:
                log.warning("RTC battery flags unreadable: %s", exc)
                self._warned = True
            return None

"""The alarm register 0-0:97.98.0.255 and its filter 0-0:97.98.10.255 (32 bits, bit per alarm).

Events set alarm bits (latching); a bit is set only if the same bit of the filter is 1 (IDIS
semantics: the filter enables alarms). Bits are cleared only by command, with a mask of the
bits to clear (DLMS write of the clear pattern). Bit numbers 0, 1, 8…13 follow IDIS alarm
register 1; the others (IDIS reserved or M-Bus bits, unused on this meter) are project bits.
Bits 5…7, 14, 15 and 31 are free. The register and filter survive restarts through
:class:`meterd.core.events.StateStore`.

Project bits 3 and 4 tell the head end of the supply itself: 3 "power restored" is set by the
power-up that ends every power failure (IDIS 2, recorded at restoration with the duration;
short and long failures alike, a long one also sets bit 2), 4 "supply disconnected locally" by
the meter opening the relay on its own (IDIS 64 local disconnection: credit exhausted, the
limiter or the over-current protection; the disconnector log says which).

Bit 0 "clock invalid" follows the clock status' invalid bit: set by the RTC's own report (IDIS 6)
and by the trusted-time event 182 when the time became invalid (the RTC lost its time over an
outage); 182 for a merely doubtful time (never synchronised, no sync for too long) sets no bit:
the status byte of the clock in every push says so.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from meterd.core import event_codes as ec
from meterd.core.events import EventEntry, StateStore
from meterd.core.time_trust import TrustState

ALARM_REGISTER_OBIS = "0.0.97.98.0.255"
ALARM_FILTER_OBIS = "0.0.97.98.10.255"
ALL_BITS = 0xFFFF_FFFF
STATE_KEY = "alarms"


class Alarm(enum.IntEnum):
    """Alarm bit numbers of the 32-bit alarm register."""

    CLOCK_INVALID = 0
    REPLACE_BATTERY = 1
    LONG_POWER_FAILURE = 2
    POWER_RESTORED = 3
    LOCAL_DISCONNECTION = 4
    PROGRAM_MEMORY_ERROR = 8
    RAM_ERROR = 9
    NV_MEMORY_ERROR = 10
    MEASUREMENT_SYSTEM_ERROR = 11
    WATCHDOG_ERROR = 12
    FRAUD_ATTEMPT = 13
    TERMINAL_COVER = 16
    MAGNETIC_FIELD = 17
    REVERSE_CURRENT = 18
    NEUTRAL_MISMATCH = 19
    MISSING_POTENTIAL = 20
    PHASE_SEQUENCE = 21
    CURRENT_WITHOUT_VOLTAGE = 22
    CURRENT_IMBALANCE = 23
    UNDER_VOLTAGE = 24
    OVER_VOLTAGE = 25
    MISSING_VOLTAGE = 26
    DISCONNECT_FAILURE = 27
    FIRMWARE_FAILURE = 28
    SECURITY = 29
    METER_COVER = 30

    @property
    def mask(self) -> int:
        """This alarm's bit as a mask."""
        return 1 << self.value


def _bits(*alarms: Alarm) -> int:
    mask = 0
    for alarm in alarms:
        mask |= alarm.mask
    return mask


def tamper_mask() -> int:
    """Every fraud/tamper alarm bit: what an STS ClearTamper token (class 2, subclass 5) clears."""
    return _bits(Alarm.FRAUD_ATTEMPT, Alarm.TERMINAL_COVER, Alarm.MAGNETIC_FIELD, Alarm.REVERSE_CURRENT,
                 Alarm.NEUTRAL_MISMATCH, Alarm.MISSING_POTENTIAL, Alarm.PHASE_SEQUENCE,
                 Alarm.CURRENT_WITHOUT_VOLTAGE, Alarm.CURRENT_IMBALANCE, Alarm.METER_COVER)


def _fraud(alarm: Alarm) -> int:
    return _bits(alarm, Alarm.FRAUD_ATTEMPT)


def _alarm_table() -> dict[int, int]:
    c = ec.code
    table = {
        c("CLOCK_INVALID"): _bits(Alarm.CLOCK_INVALID),
        c("REPLACE_BATTERY"): _bits(Alarm.REPLACE_BATTERY),
        c("BATTERY_VOLTAGE_LOW"): _bits(Alarm.REPLACE_BATTERY),
        c("LONG_POWER_FAILURE"): _bits(Alarm.LONG_POWER_FAILURE),
        c("POWER_UP"): _bits(Alarm.POWER_RESTORED),
        c("LOCAL_DISCONNECTION"): _bits(Alarm.LOCAL_DISCONNECTION),
        c("PROGRAM_MEMORY_ERROR"): _bits(Alarm.PROGRAM_MEMORY_ERROR),
        c("RAM_ERROR"): _bits(Alarm.RAM_ERROR),
        c("NV_MEMORY_ERROR"): _bits(Alarm.NV_MEMORY_ERROR),
        c("MEASUREMENT_SYSTEM_ERROR"): _bits(Alarm.MEASUREMENT_SYSTEM_ERROR),
        c("WATCHDOG_ERROR"): _bits(Alarm.WATCHDOG_ERROR),
        c("TERMINAL_COVER_REMOVED"): _fraud(Alarm.TERMINAL_COVER),
        c("METER_COVER_REMOVED"): _fraud(Alarm.METER_COVER),
        c("STRONG_DC_FIELD"): _fraud(Alarm.MAGNETIC_FIELD),
        c("NEUTRAL_MISMATCH"): _fraud(Alarm.NEUTRAL_MISMATCH),
        c("PHASE_SEQUENCE_REVERSAL"): _fraud(Alarm.PHASE_SEQUENCE),
        c("CURRENT_WITHOUT_VOLTAGE"): _fraud(Alarm.CURRENT_WITHOUT_VOLTAGE),
        c("PHASE_ASYMMETRY"): _fraud(Alarm.CURRENT_IMBALANCE),
        c("DISCONNECT_FAILURE"): _bits(Alarm.DISCONNECT_FAILURE),
        c("FIRMWARE_VERIFY_FAILED"): _bits(Alarm.FIRMWARE_FAILURE),
        c("FIRMWARE_ACTIVATION_FAILED"): _bits(Alarm.FIRMWARE_FAILURE),
        c("AUTHENTICATION_FAILURES"): _bits(Alarm.SECURITY),
        c("DECRYPTION_FAILURE"): _bits(Alarm.SECURITY),
        c("REPLAY_ATTACK"): _bits(Alarm.SECURITY),
    }
    for phase in ("L1", "L2", "L3"):
        table[c(f"REVERSE_CURRENT_{phase}")] = _fraud(Alarm.REVERSE_CURRENT)
        table[c(f"MISSING_POTENTIAL_{phase}")] = _fraud(Alarm.MISSING_POTENTIAL)
        table[c(f"UNDER_VOLTAGE_{phase}")] = _bits(Alarm.UNDER_VOLTAGE)
        table[c(f"OVER_VOLTAGE_{phase}")] = _bits(Alarm.OVER_VOLTAGE)
        table[c(f"MISSING_VOLTAGE_{phase}")] = _bits(Alarm.MISSING_VOLTAGE)
    return table


ALARMS_BY_CODE: Mapping[int, int] = MappingProxyType(_alarm_table())
_TIME_UNTRUSTED = ec.code("TIME_UNTRUSTED")


def alarm_mask(entry: EventEntry) -> int:
    """The alarm bits ``entry`` raises (before the filter): its code's, and "clock invalid" for a
    time untrusted (182) whose new state is invalid."""
    mask = ALARMS_BY_CODE.get(entry.code, 0)
    if entry.code == _TIME_UNTRUSTED and entry.detail.get("state") == TrustState.INVALID.value:
        mask |= Alarm.CLOCK_INVALID.mask
    return mask


def _check_mask(mask: int) -> int:
    if not 0 <= mask <= ALL_BITS:
        raise ValueError(f"alarm mask must be a 32-bit unsigned value, got {mask}")
    return mask


class AlarmRegister:
    """Latching alarm bits gated by a filter; set by events, cleared by command."""

    def __init__(self, filter_mask: int = ALL_BITS, store: StateStore | None = None) -> None:
        self._store = store
        self._register = 0
        self._filter = _check_mask(filter_mask)
        saved = store.load_state(STATE_KEY) if store is not None else None
        if saved is not None:
            self._register = _check_mask(int(str(saved.get("register", 0))))
            self._filter = _check_mask(int(str(saved.get("filter", filter_mask))))

    @property
    def value(self) -> int:
        """The alarm register (attribute 2 of 0-0:97.98.0.255)."""
        return self._register

    @property
    def filter(self) -> int:
        """The alarm filter (attribute 2 of 0-0:97.98.10.255); 1 = alarm enabled."""
        return self._filter

    def set_filter(self, mask: int) -> None:
        """Write the filter; bits already set in the register stay until cleared."""
        self._filter = _check_mask(mask)
        self._save()

    def raise_bits(self, mask: int) -> int:
        """Set the filtered bits of ``mask``; returns the bits newly set."""
        new = _check_mask(mask) & self._filter & ~self._register
        if new:
            self._register |= new
            self._save()
        return new

    def raise_alarm(self, alarm: Alarm) -> int:
        """Set one alarm (if enabled by the filter); returns the bits newly set."""
        return self.raise_bits(alarm.mask)

    def on_event(self, entry: EventEntry) -> None:
        """Event listener: set the alarms that ``entry``'s code raises."""
        mask = alarm_mask(entry)
        if mask:
            self.raise_bits(mask)

    def clear(self, mask: int = ALL_BITS) -> int:
        """Clear the bits of ``mask``; returns the bits that were set and are now cleared."""
        cleared = self._register & _check_mask(mask)
        if cleared:
            self._register &= ~cleared
            self._save()
        return cleared

    def active(self) -> list[Alarm]:
        """The alarms currently set, by bit number."""
        return [a for a in Alarm if self._register & a.mask]

    def _save(self) -> None:
        if self._store is not None:
            self._store.save_state(STATE_KEY, {"register": self._register, "filter": self._filter})

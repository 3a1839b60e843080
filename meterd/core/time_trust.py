"""Whether the meter's time can be trusted: a pure state machine fed with sync observations.

States (:class:`TrustState`):

* ``SYNCHRONISED``: the time source (NTP through chrony, or a DLMS clock write) set or confirmed
  the clock within the last ``max_unsynced_h`` hours;
* ``FREE_RUNNING``: it was synchronised once, but not for ``max_unsynced_h`` (h): the RTC's
  crystal alone keeps the time (doubtful);
* ``NEVER_SYNCHRONISED``: no sync since the meter was commissioned; the time is the RTC's as
  it came from the factory or the bench (doubtful);
* ``INVALID``: the RTC lost its time (backup battery gone over an outage: its data-invalid
  flag) and no sync, clock write or valid RTC since (invalid).

The clock status byte of a COSEM date-time (Blue Book, clock class 8 attribute 4) carries it:
0x01 "invalid value" while INVALID, 0x02 "doubtful value" while FREE_RUNNING or
NEVER_SYNCHRONISED, 0 while SYNCHRONISED (:meth:`TimeTrust.status_bits`).

A step of the clock by a source the meter does not drive (chrony stepping the system clock, a
simulated NTP step) is found by :class:`StepDetector`: meter UTC compared with the monotonic
clock from one cycle to the next. Steps larger than ``event_threshold_s`` (s) are reported, so
the legal-time code (tariffs, profiles, demand) and the event log treat them like a DLMS clock
write; smaller ones (slewing, read jitter) are not.

What survives a restart (:class:`TrustRecord`): the time and source of the last sync, and
whether the RTC was found invalid with no sync since.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from meterd.core.errors import ConfigError

CLOCK_STATUS_INVALID = 0x01
"""Clock status bit 0: invalid value (the time could not be recovered)."""
CLOCK_STATUS_DOUBTFUL = 0x02
"""Clock status bit 1: doubtful value (the time was recovered but is not guaranteed)."""
CLOCK_STATUS_DIFFERENT_BASE = 0x04
CLOCK_STATUS_INVALID_STATUS = 0x08
CLOCK_STATUS_DST = 0x80


class TrustState(enum.Enum):
    """How far the meter's time can be trusted."""

    SYNCHRONISED = "synchronised"
    FREE_RUNNING = "free_running"
    NEVER_SYNCHRONISED = "never_synchronised"
    INVALID = "invalid"


_BITS = {TrustState.SYNCHRONISED: 0, TrustState.FREE_RUNNING: CLOCK_STATUS_DOUBTFUL,
         TrustState.NEVER_SYNCHRONISED: CLOCK_STATUS_DOUBTFUL, TrustState.INVALID: CLOCK_STATUS_INVALID}


@dataclass(frozen=True)
class TrustSettings:
    """``max_unsynced_h`` (h) without a sync before the time is doubtful; ``event_threshold_s`` (s):
    the smallest clock step recorded as an adjustment."""

    max_unsynced_h: float = 24.0 * 7
    event_threshold_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_unsynced_h <= 0:
            raise ConfigError("meterd.toml", "time.max_unsynced_h", "must be > 0")
        if self.event_threshold_s <= 0:
            raise ConfigError("meterd.toml", "time.event_threshold_s", "must be > 0")


def _iso(utc: _dt.datetime | None) -> str | None:
    return None if utc is None else utc.isoformat()


@dataclass(frozen=True)
class TrustRecord:
    """What must survive a restart: the last sync (UTC, source: "ntp", "dlms:<association>"),
    and whether the RTC's time was lost with no sync since."""

    last_sync_utc: _dt.datetime | None = None
    last_sync_source: str = ""
    rtc_lost: bool = False

    def to_record(self) -> dict[str, object]:
        """A JSON-friendly record (saved with the energy checkpoint)."""
        return {"last_sync_utc": _iso(self.last_sync_utc), "last_sync_source": self.last_sync_source,
                "rtc_lost": self.rtc_lost}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> TrustRecord:
        """Inverse of :meth:`to_record`."""
        text = record.get("last_sync_utc")
        return cls(None if text is None else _dt.datetime.fromisoformat(str(text)),
                   str(record.get("last_sync_source", "")), bool(record.get("rtc_lost", False)))


@dataclass(frozen=True)
class TrustChange:
    """The state changed from ``old`` to ``new`` at ``utc``, for ``reason``."""

    old: TrustState
    new: TrustState
    utc: _dt.datetime
    reason: str

    @property
    def trusted(self) -> bool:
        """True when the time is trusted after the change."""
        return self.new is TrustState.SYNCHRONISED


class TimeTrust:
    """The trust state machine. Every input returns the change it caused, or None."""

    def __init__(self, settings: TrustSettings | None = None, record: TrustRecord | None = None) -> None:
        self.settings = settings or TrustSettings()
        self._record = record or TrustRecord()
        self._now: _dt.datetime | None = None
        self._state = self._derive(None)

    @property
    def record(self) -> TrustRecord:
        """The state to persist."""
        return self._record

    @property
    def state(self) -> TrustState:
        """The current state (as of the last input)."""
        return self._state

    def status_bits(self) -> int:
        """The clock status bits this state puts in every date-time the meter captures."""
        return _BITS[self._state]

    def restore(self, record: TrustRecord, now_utc: _dt.datetime | None = None) -> TrustChange | None:
        """Load a persisted record: a sync seen at this start before it was loaded is kept when
        newer, and an RTC found invalid at this start stays invalid."""
        mine = self._record
        if mine.last_sync_utc is not None and (record.last_sync_utc is None or mine.last_sync_utc > record.last_sync_utc):
            record = replace(record, last_sync_utc=mine.last_sync_utc, last_sync_source=mine.last_sync_source,
                             rtc_lost=False)
        self._record = replace(record, rtc_lost=record.rtc_lost or mine.rtc_lost)
        return self._move(now_utc or self._now, "restored")

    def rtc_lost(self, now_utc: _dt.datetime) -> TrustChange | None:
        """The RTC reports it lost its time (data-invalid flag): INVALID until a sync or a write."""
        self._record = replace(self._record, rtc_lost=True)
        return self._move(now_utc, "rtc time lost")

    def rtc_valid(self, now_utc: _dt.datetime) -> TrustChange | None:
        """The RTC holds a time again (a new battery, and set from the meter's clock): the state
        follows the last sync again."""
        self._record = replace(self._record, rtc_lost=False)
        return self._move(now_utc, "rtc time valid again")

    def synced(self, now_utc: _dt.datetime, source: str) -> TrustChange | None:
        """The time source confirmed the clock at ``now_utc`` (an NTP update, a DLMS clock write)."""
        self._record = TrustRecord(now_utc, source, rtc_lost=False)
        return self._move(now_utc, f"synchronised by {source}")

    def tick(self, now_utc: _dt.datetime) -> TrustChange | None:
        """Time passed (each cycle): SYNCHRONISED turns FREE_RUNNING after ``max_unsynced_h``."""
        return self._move(now_utc, f"no sync for {self.settings.max_unsynced_h:g} h")

    def unsynced_s(self, now_utc: _dt.datetime) -> float | None:
        """Seconds (s) since the last sync, None when never synchronised."""
        last = self._record.last_sync_utc
        return None if last is None else (now_utc - last).total_seconds()

    def _derive(self, now_utc: _dt.datetime | None) -> TrustState:
        rec = self._record
        if rec.rtc_lost:
            return TrustState.INVALID
        if rec.last_sync_utc is None:
            return TrustState.NEVER_SYNCHRONISED
        if now_utc is None:
            return TrustState.SYNCHRONISED
        age_s = abs((now_utc - rec.last_sync_utc).total_seconds())
        return TrustState.FREE_RUNNING if age_s > self.settings.max_unsynced_h * 3600.0 else TrustState.SYNCHRONISED

    def _move(self, now_utc: _dt.datetime | None, reason: str) -> TrustChange | None:
        if now_utc is not None:
            self._now = now_utc
        new = self._derive(self._now)
        old, self._state = self._state, new
        if new is old:
            return None
        return TrustChange(old, new, self._now or _dt.datetime.min.replace(tzinfo=_dt.UTC), reason)


@dataclass(frozen=True)
class ClockStep:
    """The clock stepped from ``old_utc`` to ``new_utc`` between two cycles; ``step_s`` (s)."""

    old_utc: _dt.datetime
    new_utc: _dt.datetime

    @property
    def step_s(self) -> float:
        """Signed size of the step (s): positive forward."""
        return (self.new_utc - self.old_utc).total_seconds()


class StepDetector:
    """Finds steps of meter UTC against the monotonic clock, larger than ``threshold_s`` (s).

    ``observe(utc, mono_s)`` once per cycle; ``rebase(utc, mono_s)`` after a clock change the
    meter made itself (a DLMS write), so it is not found a second time.
    """

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self._base: tuple[_dt.datetime, float] | None = None

    def rebase(self, utc: _dt.datetime, mono_s: float) -> None:
        """Take ``utc`` at ``mono_s`` as the reference."""
        self._base = (utc, mono_s)

    def observe(self, utc: _dt.datetime, mono_s: float) -> ClockStep | None:
        """The step since the last observation, or None when UTC moved with the monotonic clock."""
        base, self._base = self._base, (utc, mono_s)
        if base is None:
            return None
        expected = base[0] + _dt.timedelta(seconds=mono_s - base[1])
        if abs((utc - expected).total_seconds()) <= self.threshold_s:
            return None
        return ClockStep(expected, utc)

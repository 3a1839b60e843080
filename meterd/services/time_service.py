"""Trusted time in the meter: the trust state, clock steps made behind the meter's back, and events.

:class:`TimeService` is a cycle listener that runs *first* in each cycle, before the tariffs,
profiles and demand see the cycle's time:

1. a step of meter UTC against the monotonic clock larger than ``event_threshold_s`` (s) —
   chronyd stepping the system clock, the simulated NTP source stepping the simulated clock — is
   announced through ``announce_step(old, new, source)`` (the meter's clock listeners: the
   legal-time code of the revenue service, "clock adjusted" old/new in the standard event log,
   the RTC watch) exactly as a DLMS clock write is; ``source`` is "ntp" while the time source
   is synchronised, else "system";
2. the time source's latest observation: a newer reference update is a sync;
3. the RTC evidence: its data-invalid flag (the backup battery lost the time) makes the time
   INVALID until a sync, a clock write, or the RTC reading valid again (a new battery, set from
   the meter's clock); so does an outage over which the clock went back (the power-fail
   accounting's ``clock_suspect`` at start, :meth:`TimeService.outage_at_start`), until a sync
   or a clock write;
4. a state other than the one last recorded is recorded: TIME_UNTRUSTED (182) or TIME_TRUSTED
   (183) with the state, the previous one, the reason and the last sync in the detail (a new
   meter synchronised from its first cycle records nothing; the state last recorded survives
   restarts).

Every clock change the meter makes itself (a DLMS write, a routed step) reaches
:meth:`TimeService.on_clock_set`: the step detector is rebased, and a change from a source other
than "system" counts as a sync by that source. Its state (:class:`~meterd.core.time_trust.TrustRecord`)
is saved with the energy checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.energy import EnergyRegisters, RegisterKey
from meterd.core.ports import EventSink, MonoClock
from meterd.core.reading import Reading
from meterd.core.time_trust import (
    StepDetector,
    TimeTrust,
    TrustChange,
    TrustRecord,
    TrustSettings,
    TrustState,
)
from meterd.services.time_sync import SyncObservation, TimeSyncSource

log = logging.getLogger("meterd.time")

StepAnnouncer = Callable[[_dt.datetime, _dt.datetime, str], None]
SOURCE_NTP = "ntp"
SOURCE_SYSTEM = "system"


@dataclass(frozen=True)
class TimeView:
    """The meter's time trust: state, clock status bits (0x01 invalid, 0x02 doubtful), the last
    sync (UTC, source), seconds since it (s), the limit (h), clock steps routed since start, the
    time source's name and its latest observation."""

    state: TrustState
    clock_status: int
    last_sync_utc: _dt.datetime | None
    last_sync_source: str
    unsynced_s: int | None
    max_unsynced_h: float
    steps: int
    source: str | None
    sync: SyncObservation | None


class TimeService:
    """The meter's trusted time (a :class:`~meterd.services.metering.CycleListener` named "time")."""

    name = "time"

    def __init__(self, clock: MonoClock, settings: TrustSettings, source: TimeSyncSource | None,
                 announce_step: StepAnnouncer, events: EventSink | None = None,
                 rtc_invalid: Callable[[], bool] | None = None) -> None:
        self.clock = clock
        self.settings = settings
        self.source = source
        self.trust = TimeTrust(settings)
        self.detector = StepDetector(settings.event_threshold_s)
        self._announce = announce_step
        self._events = events
        self._rtc_invalid = rtc_invalid
        self._rtc_seen_invalid = False
        self.steps = 0
        self._announced = ""  # the state last recorded as an event ("" on a new meter)
        self._reason = ""
        self.last_step: tuple[_dt.datetime, _dt.datetime, str] | None = None

    # -- what others read ----------------------------------------------------------------------

    def status_bits(self) -> int:
        """Clock status bits (0x01 invalid value, 0x02 doubtful value) of the current state."""
        return self.trust.status_bits()

    def status_flags(self) -> set[str]:
        """Meter status flags: ``clock_invalid`` (INVALID), ``clock_doubtful`` (not synchronised)."""
        state = self.trust.state
        if state is TrustState.INVALID:
            return {"clock_invalid"}
        return set() if state is TrustState.SYNCHRONISED else {"clock_doubtful"}

    def observation(self) -> SyncObservation | None:
        """The time source's latest observation (None: no source, or it does not answer)."""
        return None if self.source is None else self.source.latest()

    def view(self, now_utc: _dt.datetime) -> TimeView:
        """The trust state as ``/status`` and ``meterctl status`` show it."""
        rec = self.trust.record
        since = self.trust.unsynced_s(now_utc)
        return TimeView(self.trust.state, self.status_bits(), rec.last_sync_utc, rec.last_sync_source,
                        None if since is None else round(since), self.settings.max_unsynced_h, self.steps,
                        None if self.source is None else self.source.name, self.observation())

    # -- inputs ----------------------------------------------------------------------------------

    def start(self, now_utc: _dt.datetime) -> None:
        """Before the first cycle: the source's first observation and the RTC's flag."""
        self.detector.rebase(now_utc, self.clock.mono())
        self._observe(now_utc)

    def outage_at_start(self, now_utc: _dt.datetime, clock_went_back: bool) -> None:
        """The outage that stopped the meter, as the power-fail accounting saw it at start: when
        the clock read earlier at start than when the supply went (``clock_went_back``), the RTC
        did not keep the time over the outage: INVALID until a sync or a clock write."""
        if clock_went_back:
            self._note(self.trust.rtc_lost(now_utc))

    def on_cycle(self, utc: _dt.datetime, deltas: Mapping[RegisterKey, int], registers: EnergyRegisters,
                 reading: Reading) -> None:
        """First listener of the cycle: route a step, then take the source's and the RTC's news."""
        step = self.detector.observe(utc, self.clock.mono())
        if step is not None:
            obs = self.observation()
            source = SOURCE_NTP if obs is not None and obs.synchronised else SOURCE_SYSTEM
            log.warning("clock stepped by %.3f s (%s): %s -> %s", step.step_s, source, step.old_utc.isoformat(),
                        step.new_utc.isoformat())
            self.steps += 1
            self.last_step = (step.old_utc, step.new_utc, source)
            self._announce(step.old_utc, step.new_utc, source)
        self._observe(utc)
        self._announce_state(utc)

    def on_clock_set(self, old_utc: _dt.datetime, new_utc: _dt.datetime, source: str) -> None:
        """A clock listener: the meter's clock changed (a write, or a step routed from here)."""
        self.detector.rebase(new_utc, self.clock.mono())
        if source != SOURCE_SYSTEM:
            self._rtc_seen_invalid = self._rtc_invalid is not None and self._rtc_invalid()
            self._note(self.trust.synced(new_utc, source))

    def _observe(self, utc: _dt.datetime) -> None:
        obs = self.observation()
        last = self.trust.record.last_sync_utc
        if (obs is not None and obs.synchronised and obs.last_update_utc is not None
                and (last is None or obs.last_update_utc > last) and obs.last_update_utc <= utc):
            self._note(self.trust.synced(obs.last_update_utc, SOURCE_NTP))
        invalid = self._rtc_invalid is not None and self._rtc_invalid()
        if invalid and not self._rtc_seen_invalid:
            self._note(self.trust.rtc_lost(utc))
        elif self._rtc_seen_invalid and not invalid and self.trust.record.rtc_lost:
            self._note(self.trust.rtc_valid(utc))
        self._rtc_seen_invalid = invalid
        self._note(self.trust.tick(utc))

    def _note(self, change: TrustChange | None) -> None:
        if change is None:
            return
        log.log(logging.INFO if change.trusted else logging.WARNING, "time %s (%s)", change.new.value, change.reason)
        self._reason = change.reason

    def _announce_state(self, utc: _dt.datetime) -> None:
        """Record the state when it differs from the one last recorded (kept across restarts): a
        new meter found synchronised at its first cycle records nothing, every other change is."""
        state = self.trust.state
        if state.value == self._announced:
            return
        first = self._announced == ""
        previous = self._announced
        self._announced = state.value
        if self._events is None or (first and state is TrustState.SYNCHRONISED):
            return
        rec = self.trust.record
        detail = {"state": state.value, "previous": previous, "reason": self._reason,
                  "last_sync": "" if rec.last_sync_utc is None else rec.last_sync_utc.isoformat(),
                  "source": rec.last_sync_source}
        trusted = state is TrustState.SYNCHRONISED
        self._events.record(ec.code("TIME_TRUSTED" if trusted else "TIME_UNTRUSTED"), utc, detail)

    # -- checkpoint state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The trust record and the state last recorded, saved with the energy checkpoint."""
        return {**self.trust.record.to_record(), "announced": self._announced}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load the saved trust record and the state last recorded."""
        self._note(self.trust.restore(TrustRecord.from_record(state)))
        self._announced = str(state.get("announced", ""))

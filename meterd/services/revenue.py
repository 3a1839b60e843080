"""Revenue use case: tariff split, demand, load/daily profiles and billing, once per metering cycle.

:class:`RevenueService` is a metering-cycle listener (``name``, ``on_cycle``, ``state_dict``,
``restore``). Time rules:

* A cycle reported at ``utc`` carries the energy of the interval ending at ``utc``. It is booked
  to the rate in force just before ``utc`` in legal time (see :mod:`meterd.core.legal_time` for
  the DST gap and repeated hour).
* Load-profile and demand boundaries are multiples of their period in local *normal* time
  (UTC + time zone, no DST), so they never repeat or vanish at DST changes. Daily-profile and
  billing boundaries are local midnights / the billing schedule in legal time.
* A boundary at ``b`` closes with the registers as they stood at ``b``: a cycle ending exactly at
  ``b`` belongs to the closing period; a cycle straddling ``b`` belongs to the next one.
* Supply down while cycles go on (every phase voltage below :data:`SUPPLY_DOWN_V`): the profile
  rows of those periods are marked PDN.
* Gaps: when cycles stop for longer than ``max_cycle_gap_s`` or :meth:`on_power_restore` reports
  an outage, every missed boundary is caught up at its own time (demand windows with no energy,
  profile rows marked PDN, daily rows, billing); profile catch-up is bounded by the ring depth.
* Clock set forward: boundaries skipped by the set are not executed, except billing, which runs
  once for the latest skipped schedule time. Clock set backward: no profile row, demand window or
  billing repeats; the next one happens when the clock passes the last one done. Either way the
  next profile rows carry CAD plus CLOCK_FORWARD / CLOCK_BACKWARD, and windows that contain the
  set are not used for maximum demand.

Persistence: profile rows and billing snapshots go to the stores at once (one transaction
each). Settings that change rarely (calendar with special days and passive set, clock time zone
and DST rules, load-profile capture objects and period) go to the settings store when they
change (:meth:`settings_dict`). Rate registers, demand, accumulators and schedule are in
:meth:`state_dict`, which the metering service saves with every energy checkpoint; it is kept
compact (times as POSIX seconds, registers as lists in a fixed order): about 0.5 KiB of JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from meterd.core import event_codes
from meterd.core.billing import BILLING_PROFILE_OBIS, BillingPeriods, BillingSchedule, BillingSnapshot
from meterd.core.calendar import ActivityCalendar, CalendarSet, SpecialDaysTable, single_rate_calendar
from meterd.core.demand import DemandConfig, DemandRegisters
from meterd.core.energy import EnergyRegisters, RegisterKey
from meterd.core.legal_time import ClockSettings, LegalTime, LocalTime
from meterd.core.model import ProfileBuffer, ProfileRow
from meterd.core.ports import EventSink
from meterd.core.profile import (
    DAILY_PROFILE_OBIS,
    LOAD_PROFILE_OBIS,
    LoadProfile,
    ProfileConfig,
    ProfileError,
    ProfileStatus,
    default_daily_profile_channels,
    default_load_profile_channels,
)
from meterd.core.reading import Channel, Reading
from meterd.core.tariff import TariffError, TariffRegisters

log = logging.getLogger("meterd.revenue")

STATE_VERSION = 2
SUPPLY_DOWN_V = 20.0  # a cycle with every phase below this (V) is a supply outage (PDN)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class ProfileStore(Protocol):
    """Durable profile rows (one transaction per row)."""

    def append_row(self, obis: str, row: ProfileRow) -> None:
        """Store one row of profile ``obis`` and trim the profile to its depth."""
        ...

    def load_rows(self, obis: str, limit: int) -> list[ProfileRow]:
        """The newest ``limit`` rows of ``obis``, oldest first."""
        ...

    def clear(self, obis: str) -> None:
        """Delete every row of ``obis`` (capture objects or period changed)."""
        ...

    def load_definition(self, obis: str) -> str | None:
        """The capture definition the stored rows of ``obis`` were made under, if recorded."""
        ...

    def redefine(self, obis: str, definition: str, clear: bool) -> None:
        """Record the capture definition of ``obis``, deleting its rows when ``clear``."""
        ...


class BillingStore(Protocol):
    """Durable billing snapshots (one transaction per snapshot)."""

    def save_snapshot(self, snapshot: BillingSnapshot) -> None:
        """Store one closed billing period."""
        ...

    def load_snapshots(self, limit: int) -> list[BillingSnapshot]:
        """The newest ``limit`` snapshots, oldest first."""
        ...


class SettingsStore(Protocol):
    """Durable revenue settings (calendar, clock rules, profile configuration): one JSON document."""

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace the stored settings."""
        ...

    def load_settings(self) -> dict[str, Any] | None:
        """The stored settings, or None."""
        ...


@dataclass(frozen=True)
class RevenueConfig:
    """Static revenue configuration (legal time, rates, demand, profiles, billing)."""

    clock: ClockSettings = field(default_factory=ClockSettings)
    rates: int = 4
    demand: DemandConfig = field(default_factory=DemandConfig)
    load_profile: ProfileConfig = field(default_factory=lambda: ProfileConfig(default_load_profile_channels()))
    daily_profile: ProfileConfig = field(
        default_factory=lambda: ProfileConfig(default_daily_profile_channels(), 86400, 400))
    billing: BillingSchedule = field(default_factory=BillingSchedule)
    billing_periods: int = 12
    max_cycle_gap_s: float = 10.0
    rate_channels: tuple[Channel, ...] | None = (Channel.TOTAL,)


def _ep(utc: _dt.datetime | None) -> int | float | None:
    """POSIX seconds (int when whole) for compact state."""
    if utc is None:
        return None
    delta = utc - _EPOCH
    return delta.total_seconds() if delta.microseconds else delta.days * 86400 + delta.seconds


def _from_ep(value: float | None) -> _dt.datetime | None:
    return None if value is None else _EPOCH + _dt.timedelta(seconds=value)


def _when(value: float | str) -> _dt.datetime:
    """A time from compact (POSIX seconds) or older (ISO text) state."""
    if isinstance(value, str):
        return _dt.datetime.fromisoformat(value)
    return _EPOCH + _dt.timedelta(seconds=value)


class RevenueService:
    """Tariffs, demand, profiles and billing driven by the metering cycle."""

    name = "revenue"

    def __init__(self, config: RevenueConfig | None = None, calendar: ActivityCalendar | CalendarSet | None = None,
                 profile_store: ProfileStore | None = None, billing_store: BillingStore | None = None,
                 settings_store: SettingsStore | None = None, events: EventSink | None = None) -> None:
        self.config = cfg = config or RevenueConfig()
        if calendar is None:
            calendar = single_rate_calendar()
        self.calendar = calendar if isinstance(calendar, ActivityCalendar) else ActivityCalendar(calendar)
        self.legal = LegalTime(cfg.clock)
        self.tariff = TariffRegisters(cfg.rates, cfg.rate_channels)
        self.demand = DemandRegisters(DemandConfig(cfg.demand.period_s, cfg.demand.number_of_periods, cfg.rates))
        self.load_profile = LoadProfile(LOAD_PROFILE_OBIS, cfg.load_profile)
        self.daily_profile = LoadProfile(DAILY_PROFILE_OBIS, cfg.daily_profile)
        self.billing = BillingPeriods(cfg.billing_periods, cfg.rates)
        self._profile_store = profile_store
        self._billing_store = billing_store
        self._registers: EnergyRegisters | None = None
        self._last_utc: _dt.datetime | None = None
        self._next: dict[str, _dt.datetime] = {}
        self._prev: dict[str, _dt.datetime] = {}
        self._next_event = _EPOCH
        self._outages: list[tuple[_dt.datetime, _dt.datetime]] = []
        self._rate = 1
        self._rate_lo = self._rate_hi = _EPOCH
        self.calendar_activations = 0  # passive calendars activated in this run (time or command)
        self._override: tuple[int, _dt.datetime, _dt.datetime] | None = None  # (rate, from, until)
        self._gap = _dt.timedelta(seconds=cfg.max_cycle_gap_s)
        self.events = events
        self._restart: set[str] = set()  # "demand", "lp", "daily": begin anew at the next cycle
        self._redefined: set[str] = set()  # profiles cleared at start: their saved state is void
        self._changes: list[dict[str, object]] = []  # configuration changes to record as events
        self._settings_store = settings_store
        if settings_store is not None:
            saved = settings_store.load_settings()
            if saved is not None:
                self.apply_settings(saved)
            else:
                self._save_settings()
        if profile_store is not None or billing_store is not None:
            self._load_stores()

    # -- the cycle --------------------------------------------------------------------------

    def on_cycle(self, utc: _dt.datetime, deltas: Mapping[RegisterKey, int], registers: EnergyRegisters,
                 reading: Reading | None = None) -> None:
        """Book one cycle ending at ``utc`` (aware): ``deltas`` (milli-units) are already in ``registers``."""
        self._registers = registers
        last = self._last_utc
        if last is None:
            self._start(utc, registers.snapshot(), deltas)
        elif utc < last:
            self.on_clock_set(last, utc)
        elif utc - last > self._gap:
            self._outages.append((last, utc))
        if self._restart and last is not None:
            self._begin_anew(last, self._totals_before(registers, deltas))
        if self._changes:
            self._record_changes(utc)
        rate = self._rate if self._rate_lo <= utc <= self._rate_hi else self._rate_for(utc)
        if utc > self._next_event:
            self._run_due(utc, self._totals_before(registers, deltas), inclusive=False)
        self.tariff.apply(deltas, rate)
        if reading is not None:
            p = reading.phases
            volts = (p[0].voltage_v, p[1].voltage_v, p[2].voltage_v)
            self.load_profile.add_voltages(volts)
            if max(volts) < SUPPLY_DOWN_V:
                self.load_profile.pending |= ProfileStatus.PDN
                self.daily_profile.pending |= ProfileStatus.PDN
        if utc == self._next_event:
            self._run_due(utc, registers.snapshot(), inclusive=True)
        self._last_utc = utc

    @staticmethod
    def _totals_before(registers: EnergyRegisters, deltas: Mapping[RegisterKey, int]) -> dict[RegisterKey, int]:
        totals = registers.snapshot()
        for key, delta in deltas.items():
            totals[key] -= delta
        return totals

    def _start(self, utc: _dt.datetime, totals: dict[RegisterKey, int],
               deltas: Mapping[RegisterKey, int]) -> None:
        """First cycle ever: open every period at ``utc`` with the registers before this cycle."""
        before = dict(totals)
        for key, delta in deltas.items():
            before[key] -= delta
        if not self.demand.started:
            self.demand.begin(utc, before)
        self.load_profile.start(before)
        self.daily_profile.start(before)
        self.tariff.reconcile(before, self._rate_for(utc))
        self._restart.clear()
        self._schedule_all(utc)
        self._reconcile_with_stores()

    def _begin_anew(self, utc: _dt.datetime, totals: dict[RegisterKey, int]) -> None:
        """Begin the periods whose configuration changed at ``utc`` with the registers ``totals``
        as they stood then (the last cycle of the previous run, or of the old configuration)."""
        for kind in sorted(self._restart):
            if kind == "demand":
                self.demand.begin(utc, totals)
            else:
                (self.load_profile if kind == "lp" else self.daily_profile).start(totals)
            self._prev.pop(kind, None)
            self._schedule(kind, utc)
        self._restart.clear()

    def _changed(self, obj: str, text: str) -> None:
        """A configuration change of the meter (logged now, recorded as an event at the next cycle)."""
        log.warning("%s: %s", obj, text)
        self._changes.append({"object": obj, "change": text})

    def _record_changes(self, utc: _dt.datetime) -> None:
        if self.events is not None:
            code = event_codes.code("PARAMETERS_CHANGED")
            for detail in self._changes:
                self.events.record(code, utc, detail)
        self._changes.clear()

    # -- boundaries ---------------------------------------------------------------------------

    def _regular_after(self, utc: _dt.datetime, period_s: int) -> _dt.datetime:
        """First boundary strictly after ``utc`` of a period aligned in local normal time."""
        offset_s = self.config.clock.normal_offset_min * 60
        local_s = (utc - _EPOCH).total_seconds() + offset_s
        n = math.floor(local_s / period_s) + 1
        return _EPOCH + _dt.timedelta(seconds=n * period_s - offset_s)

    def _after(self, kind: str, utc: _dt.datetime) -> _dt.datetime:
        if kind == "demand":
            return self._regular_after(utc, self.demand.config.period_s)
        if kind == "lp":
            return self._regular_after(utc, self.load_profile.config.capture_period_s)
        if kind == "daily":
            return self.legal.next_local_midnight(utc)
        wall = self.config.billing.next_after(self.legal.local(utc).wall)
        return self.legal.to_utc(wall)

    def _schedule_all(self, utc: _dt.datetime) -> None:
        for kind in ("demand", "lp", "daily", "billing"):
            self._schedule(kind, utc)

    def _schedule(self, kind: str, after: _dt.datetime) -> None:
        """Next boundary of ``kind`` after ``after`` and after the last one done (never repeats)."""
        done = self._prev.get(kind)
        self._next[kind] = self._after(kind, after if done is None else max(after, done))
        self._next_event = min(self._next.values())

    def _run_due(self, utc: _dt.datetime, totals: dict[RegisterKey, int], inclusive: bool) -> None:
        """Execute every boundary before ``utc`` (or at it, when ``inclusive``) in time order."""
        while True:
            kind, when = min(self._next.items(), key=lambda item: item[1])
            if when > utc or (when == utc and not inclusive):
                break
            self._execute(kind, when, totals, utc)
        self._prune_outages()

    def _execute(self, kind: str, when: _dt.datetime, totals: dict[RegisterKey, int], now: _dt.datetime) -> None:
        prev = self._prev.get(kind)
        if kind == "demand":
            self.demand.close(when, totals, self._rate_for(when))
        elif kind == "lp":
            self._capture(self.load_profile, when, prev, totals)
        elif kind == "daily":
            self._capture(self.daily_profile, when, prev, totals)
        else:
            self._bill(when, "schedule", totals)
        self._prev[kind] = when
        self._schedule(kind, self._skip_far(kind, when, now))

    def _skip_far(self, kind: str, when: _dt.datetime, now: _dt.datetime) -> _dt.datetime:
        """Bound catch-up after a long gap: only the last ``depth`` periods are replayed."""
        if kind == "lp":
            depth = self.load_profile.config.capture_period_s * self.load_profile.config.max_entries
        elif kind == "demand":
            depth = self.demand.config.window_s * 2
        else:
            return when
        earliest = now - _dt.timedelta(seconds=depth)
        return max(when, earliest)

    def _capture(self, profile: LoadProfile, when: _dt.datetime, prev: _dt.datetime | None,
                 totals: dict[RegisterKey, int]) -> None:
        status = ProfileStatus(0)
        if self.legal.local(when).dst_active:
            status |= ProfileStatus.DST
        start = prev if prev is not None else when - _dt.timedelta(seconds=profile.capture_period_s)
        if any(a < when and b > start for a, b in self._outages):
            status |= ProfileStatus.PDN
        row = profile.capture(when, totals, status)
        if self._profile_store is not None:
            self._profile_store.append_row(profile.obis, row)

    def _prune_outages(self) -> None:
        horizon = min(self._prev.values(), default=None)
        if horizon is not None and self._outages:
            day = _dt.timedelta(days=1)
            self._outages = [(a, b) for a, b in self._outages if b > horizon - day]

    def _bill(self, when: _dt.datetime, reason: str, totals: Mapping[RegisterKey, int]) -> BillingSnapshot:
        snap = self.billing.close_period(when, reason, totals, self.tariff, self.demand)
        if self._billing_store is not None:
            self._billing_store.save_snapshot(snap)
        return snap

    # -- tariff ---------------------------------------------------------------------------------

    def _rate_for(self, utc: _dt.datetime) -> int:
        """Rate of the interval ending at ``utc``; caches it until the next possible change."""
        wall = self.legal.tariff_wall(utc)
        planned = self.calendar.activate_passive_at
        if self.calendar.activate_if_due(wall):
            self._activated(utc if planned is None else min(utc, self.legal.to_utc(planned)))
            self._rate_hi = _EPOCH
            self._save_settings()
        rate = self.calendar.rate_before(wall)
        # The rate of an interval ending at t changes only for t just after a switch instant, a
        # DST edge or the activation time; it holds up to and including that instant.
        tiny = _dt.timedelta(microseconds=1)
        candidates = [self.legal.to_utc(self.calendar.next_switch_after(wall - tiny))]
        change = self.legal.next_change(utc - tiny)
        if change is not None:
            candidates.append(change)
        due = self.calendar.activate_passive_at if self.calendar.passive is not None else None
        if due is not None:
            candidates.append(self.legal.to_utc(due))
        override = self._override
        if override is not None:
            forced, since, until = override
            if since < utc <= until:
                rate = forced
                candidates.append(until)
            elif utc <= since:
                candidates.append(since)
            else:
                self._override = None
        later = [c for c in candidates if c >= utc]
        self._rate, self._rate_lo = rate, utc
        self._rate_hi = min(later) if later else utc
        return rate

    def force_rate(self, rate: int) -> _dt.datetime:
        """Tariff script ``rate`` of 0-0:10.0.100.255 (or the register activation mask "RATE n"
        written to 0-0:14.0.0.255): energy after the last cycle goes to ``rate`` until the next
        switch time of the calendar's day profile (or local midnight, or the passive calendar's
        activation), then the calendar rules again. Returns that end (UTC); raises
        :class:`~meterd.core.tariff.TariffError` for a rate the meter does not have or
        :class:`ValueError` before the first cycle."""
        if not 1 <= rate <= self.tariff.rates:
            raise TariffError(f"rate {rate} outside 1..{self.tariff.rates}")
        now = self._last_utc
        if now is None:
            raise ValueError("no metering cycle yet")
        self._override = None
        self._rate_for(now)  # the calendar's own next change after now
        until = self._rate_hi if self._rate_hi > now else self.legal.to_utc(
            self.calendar.next_switch_after(self.legal.tariff_wall(now)))
        self._override = (rate, now, until)
        self._rate_lo = self._rate_hi = _EPOCH
        self._rate = rate
        log.info("rate %d forced until %s", rate, until.isoformat())
        return until

    def _activated(self, utc: _dt.datetime) -> None:
        """The passive calendar became active at ``utc``: count it and record TOU_ACTIVATED."""
        self.calendar_activations += 1
        self._override = None  # a forced rate ends at a calendar activation
        log.info("calendar %r activated", self.calendar.active.name)
        if self.events is not None:
            self.events.record(event_codes.code("TOU_ACTIVATED"), utc,
                               {"object": "0.0.13.0.0.255", "calendar": self.calendar.active.name})

    @property
    def forced_rate(self) -> tuple[int, _dt.datetime] | None:
        """(rate, until UTC) while a tariff script holds a rate against the calendar, else None."""
        return None if self._override is None else (self._override[0], self._override[2])

    @property
    def current_rate(self) -> int:
        """Currently active rate (0-0:96.14.0.255), as of the last cycle."""
        return self._rate

    # -- events from the metering service -----------------------------------------------------

    def on_clock_set(self, old_utc: _dt.datetime, new_utc: _dt.datetime, source: str = "") -> None:
        """The meter clock was set from ``old_utc`` to ``new_utc`` (``source`` is informative)."""
        self._rate_lo = self._rate_hi = _EPOCH
        if self._last_utc is None or new_utc == old_utc:
            return
        forward = new_utc > old_utc
        flags = ProfileStatus.CAD | (ProfileStatus.CLOCK_FORWARD if forward else ProfileStatus.CLOCK_BACKWARD)
        self.load_profile.pending |= flags
        self.daily_profile.pending |= flags
        self.demand.mark_disturbed()
        if forward:
            self._forward(new_utc)
        self._last_utc = new_utc

    def _forward(self, new_utc: _dt.datetime) -> None:
        """Skip boundaries jumped over; bill once for the latest skipped schedule time."""
        missed_billing: _dt.datetime | None = None
        while self._next["billing"] <= new_utc:
            missed_billing = self._next["billing"]
            self._schedule("billing", missed_billing)
        if missed_billing is not None and self._registers is not None:
            self._prev["billing"] = missed_billing
            self._bill(missed_billing, "schedule", self._registers.snapshot())
        for kind in ("demand", "lp", "daily"):
            if self._next[kind] <= new_utc:
                self._schedule(kind, new_utc)

    def on_power_restore(self, down_utc: _dt.datetime, up_utc: _dt.datetime) -> None:
        """Supply was lost from ``down_utc`` to ``up_utc``: profile periods touched get PDN."""
        self._outages.append((down_utc, up_utc))

    def mdi_reset(self, utc: _dt.datetime) -> BillingSnapshot:
        """End the billing period on command (MD reset) at ``utc``, with the latest registers."""
        totals = self._registers.snapshot() if self._registers is not None else self.tariff.totals()
        return self._bill(utc, "command", totals)

    # -- configuration ------------------------------------------------------------------------

    def set_clock_settings(self, settings: ClockSettings) -> None:
        """Write time zone / DST attributes of the clock; schedules are recomputed."""
        self.config = dataclasses.replace(self.config, clock=settings)
        self.legal = LegalTime(settings)
        self._rate_lo = self._rate_hi = _EPOCH
        if self._last_utc is not None:
            self._schedule_all(self._last_utc)
        self._save_settings()

    def set_load_profile_config(self, config: ProfileConfig) -> None:
        """Write capture objects / period of the load profile: its buffer is cleared."""
        self.load_profile.reconfigure(config)
        if self._profile_store is not None:
            self._profile_store.redefine(LOAD_PROFILE_OBIS, config.definition(), clear=True)
        if self._registers is not None:
            self.load_profile.start(self._registers.snapshot())
        self._prev.pop("lp", None)
        if self._last_utc is not None:
            self._schedule("lp", self._last_utc)
        self._save_settings()

    def set_demand_config(self, period_s: int, number_of_periods: int) -> None:
        """Write the demand period (s) and number of periods (class 5 attributes 8 and 9 of
        1-0:C.4.0.255): validated (raises :class:`~meterd.core.demand.DemandError`), the windows
        restart now, recorded maxima are kept, and the setting is persisted."""
        new = DemandConfig(period_s, number_of_periods, self.config.rates)
        if new == self.demand.config:
            return
        old = self.demand.config
        self.config = dataclasses.replace(self.config, demand=new)
        self.demand = self.demand.reconfigured(new)
        self._changed("1.0.1.4.0.255", f"demand {old.period_s} s x {old.number_of_periods} -> "
                                        f"{new.period_s} s x {new.number_of_periods}: windows restarted")
        if self._last_utc is not None and self._registers is not None:
            self._restart.add("demand")
            self._begin_anew(self._last_utc, self._registers.snapshot())
            self._record_changes(self._last_utc)
        self._save_settings()

    def set_passive_calendar(self, passive: CalendarSet, activate_at_local: _dt.datetime | None) -> None:
        """Write the passive calendar and its activation time (naive local)."""
        self.calendar.set_passive(passive, activate_at_local)
        self._rate_lo = self._rate_hi = _EPOCH
        self._save_settings()

    def set_special_days(self, table: SpecialDaysTable) -> None:
        """Write the special days table (0-0:11.0.0.255)."""
        self.calendar.set_special_days(table)
        self._rate_lo = self._rate_hi = _EPOCH
        self._save_settings()

    def activate_passive_calendar(self) -> None:
        """Class 20 method 1: the passive calendar becomes active now."""
        self.calendar.activate_passive()
        if self._last_utc is not None:
            self._activated(self._last_utc)
        else:
            self.calendar_activations += 1
        self._rate_lo = self._rate_hi = _EPOCH
        self._save_settings()

    # -- settings -------------------------------------------------------------------------------

    def settings_dict(self) -> dict[str, Any]:
        """Rarely changing settings (calendar, clock rules, load-profile configuration, demand
        period and number of periods)."""
        d = self.config.demand
        return {"calendar": self.calendar.to_dict(), "clock": self.config.clock.to_dict(),
                "load_profile": self.load_profile.config.to_dict(),
                "demand": {"period_s": d.period_s, "number_of_periods": d.number_of_periods}}

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """Load :meth:`settings_dict` output (at start, before the checkpoint is restored)."""
        self.calendar = ActivityCalendar.from_dict(settings["calendar"])
        clock = ClockSettings.from_dict(settings["clock"])
        self.config = dataclasses.replace(self.config, clock=clock)
        self.legal = LegalTime(clock)
        lp_config = ProfileConfig.from_dict(settings["load_profile"])
        if lp_config != self.load_profile.config:
            self.load_profile.reconfigure(lp_config)
        demand = settings.get("demand")
        if demand is not None:
            config = DemandConfig(int(demand["period_s"]), int(demand["number_of_periods"]), self.config.rates)
            self.config = dataclasses.replace(self.config, demand=config)
            if self.demand.config != config and not self.demand.started:
                self.demand = DemandRegisters(config)
        self._rate_lo = self._rate_hi = _EPOCH

    def _save_settings(self) -> None:
        if self._settings_store is not None:
            self._settings_store.save_settings(self.settings_dict())

    # -- accessors ----------------------------------------------------------------------------

    def local_time(self, utc: _dt.datetime) -> LocalTime:
        """Legal time at ``utc``."""
        return self.legal.local(utc)

    def profile(self, obis: str) -> ProfileBuffer | None:
        """Load profile 1-0:99.1.0.255, daily profile 1-0:99.2.0.255, billing profile 0-0:98.1.0.255."""
        buffers: dict[str, ProfileBuffer] = {
            LOAD_PROFILE_OBIS: self.load_profile, DAILY_PROFILE_OBIS: self.daily_profile,
            BILLING_PROFILE_OBIS: self.billing,
        }
        return buffers.get(obis)

    # -- persistence ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Compact JSON-able state for the energy checkpoint (rows, snapshots and settings live in
        their stores; without a settings store the settings are included)."""
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "last": _ep(self._last_utc),
            "next": {k: _ep(v) for k, v in self._next.items()},
            "prev": {k: _ep(v) for k, v in self._prev.items()},
            "out": [[_ep(a), _ep(b)] for a, b in self._outages],
            "rates": self.tariff.to_compact(),
            "md": self.demand.to_compact(),
            "lp": self.load_profile.state_dict(),
            "dp": self.daily_profile.state_dict(),
        }
        if self._override is not None:
            rate, since, until = self._override
            state["force"] = [rate, _ep(since), _ep(until)]
        if self._settings_store is None:
            state["settings"] = self.settings_dict()
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`state_dict` output, then reconcile with the rows already in the stores.

        The configuration in force wins over the saved state, as on a meter whose parameters were
        changed: rate registers are widened (new rates at 0) or narrowed (the energy of removed
        rates stays in the totals only); demand windows restart with the new period and number
        of periods (recorded maxima are kept); a profile whose capture objects or period changed
        is cleared. Each change is logged and recorded as a PARAMETERS_CHANGED event.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"revenue state version {state.get('version')!r} is not {STATE_VERSION}")
        if "settings" in state:
            self.apply_settings(state["settings"])
        self.tariff = self._fit_tariff(TariffRegisters.from_compact(state["rates"]))
        self.demand = self._fit_demand(DemandRegisters.from_compact(state["md"]))
        self._sync_definitions()
        for kind, profile, key in (("lp", self.load_profile, "lp"), ("daily", self.daily_profile, "dp")):
            if profile.obis in self._redefined:
                self._restart.add(kind)
                continue
            try:
                profile.restore_state(state[key])
            except ProfileError as exc:
                profile.reconfigure(profile.config)
                self._restart.add(kind)
                self._changed(profile.obis, f"capture objects changed, accumulators restarted ({exc})")
        self._last_utc = _from_ep(state.get("last"))
        self._next = {k: _when(v) for k, v in state["next"].items()}
        self._prev = {k: _when(v) for k, v in state["prev"].items()}
        self._outages = [(_when(a), _when(b)) for a, b in state["out"]]
        force = state.get("force")
        self._override = None
        if force is not None and 1 <= int(force[0]) <= self.tariff.rates:
            self._override = (int(force[0]), _when(force[1]), _when(force[2]))
        self._rate_lo = self._rate_hi = _EPOCH
        self._load_stores()

    def _fit_tariff(self, saved: TariffRegisters) -> TariffRegisters:
        """The saved rate registers in the configured number of rates and channels."""
        cfg = self.config
        channels = tuple(Channel) if cfg.rate_channels is None else tuple(cfg.rate_channels)
        if saved.rates == cfg.rates and saved.channels == channels:
            return saved
        fitted, dropped = saved.resized(cfg.rates, cfg.rate_channels)
        text = f"rates {saved.rates} -> {cfg.rates}"
        if dropped:
            parts = [f"{key[0].value + key[1].obis_offset}.8 {value / 1000:.3f}"
                     for key, value in sorted(dropped.items(), key=lambda kv: (kv[0][1].obis_offset, kv[0][0].value))]
            text += "; energy of removed rates kept in the totals only (Wh, varh, VAh): " + ", ".join(parts)
        self._changed("0.0.14.0.0.255", text)
        return fitted

    def _fit_demand(self, saved: DemandRegisters) -> DemandRegisters:
        """The saved demand registers under the configured period, number of periods and rates."""
        d = self.config.demand
        want = DemandConfig(d.period_s, d.number_of_periods, self.config.rates)
        if saved.config == want:
            return saved
        old = saved.config
        self._changed("1.0.1.4.0.255", f"demand {old.period_s} s x {old.number_of_periods}, {old.rates} rates -> "
                                        f"{want.period_s} s x {want.number_of_periods}, {want.rates} rates: "
                                        "windows restarted, maxima kept")
        self._restart.add("demand")
        return saved.reconfigured(want)

    def _sync_definitions(self) -> None:
        """Clear stored rows made under another capture definition (objects or period)."""
        store = self._profile_store
        if store is None:
            return
        for profile in (self.load_profile, self.daily_profile):
            definition = profile.config.definition()
            stored = store.load_definition(profile.obis)
            if stored == definition:
                continue
            stale = stored is not None
            if stored is None:  # rows from before definitions were recorded: judge by their width
                rows = store.load_rows(profile.obis, 1)
                stale = bool(rows) and len(rows[-1].values) != len(profile.config.channels) - 1
            store.redefine(profile.obis, definition, clear=stale)
            if stale:
                profile.clear()
                self._redefined.add(profile.obis)
                self._changed(profile.obis, "capture objects or capture period changed: buffer cleared")

    def _load_stores(self) -> None:
        """Reload rows and snapshots; never repeat a boundary the stores already hold."""
        self._sync_definitions()
        for profile in (self.load_profile, self.daily_profile):
            if self._profile_store is None:
                break
            profile.clear()
            for row in self._profile_store.load_rows(profile.obis, profile.config.max_entries):
                profile.append(row)
        if self._billing_store is not None:
            self.billing = BillingPeriods(self.config.billing_periods, self.config.rates)
            for snap in self._billing_store.load_snapshots(self.config.billing_periods):
                self.billing.add(snap)
        self._reconcile_with_stores()

    def _reconcile_with_stores(self) -> None:
        """Rows or snapshots newer than the checkpoint exist: do not repeat their boundaries."""
        done = {"lp": self.load_profile.last_row, "daily": self.daily_profile.last_row}
        for kind, row in done.items():
            self._not_before(kind, None if row is None else row.utc)
        self._not_before("billing", self.billing.last_billing_utc)
        if self._next:
            self._next_event = min(self._next.values())

    def _not_before(self, kind: str, done: _dt.datetime | None) -> None:
        if done is not None and kind in self._next and self._next[kind] <= done:
            self._prev[kind] = done
            self._schedule(kind, done)

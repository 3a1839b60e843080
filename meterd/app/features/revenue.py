"""Revenue functions of the meter: time-of-use tariffs, maximum demand, load profiles, billing.

Wires :class:`meterd.services.revenue.RevenueService` into the daemon:

* the service is a metering-cycle listener (its compact state rides in the energy checkpoint)
  and a clock listener (clock sets mark the profiles and skip or hold boundaries);
* profile rows go to ``<state_dir>/profiles.db``, billing snapshots and the settings document
  (calendar, clock rules, load-profile configuration, written when they change) to
  ``<state_dir>/billing.db``. Settings written remotely (DLMS) survive restarts; editing the
  ``[revenue]`` section of the config file replaces them at the next start, and the state
  saved under the old section is fitted to the new one as on a re-parameterised meter (rate
  registers widened at 0 or narrowed, the removed rates' energy staying in the totals; demand
  windows restarted, maxima kept; a load profile with other capture objects or period
  cleared), each change logged and recorded as a PARAMETERS_CHANGED event;
* ``daemon.meter.profiles``: load profile 1-0:99.1.0.255, daily profile 1-0:99.2.0.255 and
  billing profile 0-0:98.1.0.255;
* COSEM objects from :mod:`meterd.cosem.objects_revenue` (calendar, special days, scripts,
  register activation, rate registers, demand, maximum demand, billing objects);
* supply outages mark the profile rows PDN (cycles without voltage, or a pause in the cycles
  longer than ``max_cycle_gap_s``, e.g. the meter was off);
* ``daemon.services["revenue"]``, ``status_extras["tariff"]`` and the routes
  ``GET /tariff`` (current rate, calendar summary, rate registers, maximum demand) and
  ``POST /billing/reset`` (end the billing period now: MD reset).

Section ``[revenue]`` (units in the names): ``time_zone_min`` (DLMS convention, UTC = local
normal time + time_zone: CET is −60), ``dst`` ("eu": last Sunday of March/October 01:00 UTC;
"none"), ``rates`` (1..8), ``calendar`` (a table like ``config/tariff-example.toml``; empty:
the built-in three-rate calendar with a weekday peak), demand subperiod and number of
subperiods (1 = block demand), load-profile period/depth/channels, daily depth, billing day and
time (local), periods kept, and ``max_cycle_gap_s`` (a longer pause between cycles is an outage).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from meterd.api.server import ApiError
from meterd.app.config import choices, rng
from meterd.core.billing import BILLING_PROFILE_OBIS, BillingSchedule
from meterd.core.calendar import (
    ActivityCalendar,
    CalendarError,
    CalendarSet,
    SpecialDaysTable,
)
from meterd.core.demand import DemandConfig, DemandQuantity
from meterd.core.energy import Quantity
from meterd.core.errors import MeterError
from meterd.core.legal_time import ClockSettings, eu_clock_settings
from meterd.core.profile import (
    DAILY_PROFILE_OBIS,
    LOAD_PROFILE_OBIS,
    ColumnKind,
    ProfileChannel,
    ProfileConfig,
    default_daily_profile_channels,
    default_load_profile_channels,
)
from meterd.core.reading import PHASES, Channel
from meterd.cosem.objects_revenue import revenue_factory
from meterd.services.revenue import RevenueConfig, RevenueService
from meterd.store.billing_store import SqliteBillingStore
from meterd.store.profile_store import SqliteProfileStore

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.revenue")


def default_calendar() -> dict[str, Any]:
    """Three rates: 1 off-peak, 2 shoulder, 3 peak on weekdays (17:00–20:00 in winter,
    11:00–15:00 in summer); weekends and public holidays off-peak except a daytime shoulder."""
    def day(day_id: int, *switches: tuple[str, int]) -> dict[str, Any]:
        return {"day_id": day_id, "switches": [{"start": t, "rate": r} for t, r in switches]}

    return {
        "name": "PMM3R",
        "seasons": [{"name": "winter", "start": {"month": 10, "day": 1}, "week_name": "winter"},
                    {"name": "summer", "start": {"month": 4, "day": 1}, "week_name": "summer"}],
        "week_profiles": [{"name": "winter", "day_ids": [1, 1, 1, 1, 1, 3, 3]},
                          {"name": "summer", "day_ids": [2, 2, 2, 2, 2, 3, 3]}],
        "day_profiles": [
            day(1, ("00:00", 1), ("07:00", 2), ("17:00", 3), ("20:00", 2), ("22:00", 1)),
            day(2, ("00:00", 1), ("07:00", 2), ("11:00", 3), ("15:00", 2), ("22:00", 1)),
            day(3, ("00:00", 1), ("08:00", 2), ("20:00", 1)),
        ],
        "special_days": [{"index": i, "date": {"month": m, "day": d}, "day_id": 3}
                         for i, (m, d) in enumerate(((1, 1), (5, 1), (12, 25), (12, 26)), start=1)],
    }


def build_calendar(data: Mapping[str, Any], rates: int) -> ActivityCalendar:
    """The activity calendar of a ``[revenue.calendar]`` table; rates must be 1..``rates``."""
    try:
        active = CalendarSet.from_dict(dict(data))
        special = SpecialDaysTable.from_dict({"entries": list(data.get("special_days", []))})
        calendar = ActivityCalendar(active, special)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"calendar: missing or malformed {exc}") from None
    except CalendarError as exc:
        raise ValueError(f"calendar: {exc}") from None
    used = {s.rate for d in active.day_profiles for s in d.switches}
    if max(used) > rates:
        raise ValueError(f"calendar uses rate {max(used)} but rates = {rates}")
    return calendar


_CHANNEL_NAMES: dict[str, ProfileChannel] = {
    **{f"{q.name.lower()}_interval": ProfileChannel(ColumnKind.INTERVAL_ENERGY, q) for q in Quantity},
    **{f"{q.name.lower()}_register": ProfileChannel(ColumnKind.CUMULATIVE_ENERGY, q) for q in Quantity},
    **{f"voltage_{ph.value.lower()}": ProfileChannel(ColumnKind.AVERAGE_VOLTAGE, None, ph) for ph in PHASES},
    "status": ProfileChannel(ColumnKind.STATUS),
}


def profile_channels(names: tuple[str, ...]) -> tuple[ProfileChannel, ...]:
    """Load-profile capture objects from names (the clock always comes first); () = default."""
    if not names:
        return default_load_profile_channels()
    unknown = [n for n in names if n not in _CHANNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown profile channels {unknown} (known: {', '.join(sorted(_CHANNEL_NAMES))})")
    return (ProfileChannel(ColumnKind.CLOCK), *(_CHANNEL_NAMES[n] for n in names))


@dataclass(frozen=True)
class RevenueSection:
    """``[revenue]``: legal time, rates and calendar, demand, profiles, billing (see module doc)."""

    time_zone_min: int = field(default=-60, metadata=rng(-840, 720))
    dst: str = field(default="eu", metadata=choices("eu", "none"))
    rates: int = field(default=3, metadata=rng(1, 8))
    calendar: dict[str, Any] = field(default_factory=dict)
    demand_period_s: int = field(default=900, metadata=rng(60, 3600))
    demand_periods: int = field(default=1, metadata=rng(1, 60))
    profile_period_s: int = field(default=900, metadata=rng(60, 3600))
    profile_depth: int = field(default=5760, metadata=rng(96, 100_000))
    profile_channels: tuple[str, ...] = ()
    daily_depth: int = field(default=400, metadata=rng(31, 5000))
    billing_day: int = field(default=1, metadata=rng(1, 28))
    billing_hour: int = field(default=0, metadata=rng(0, 23))
    billing_minute: int = field(default=0, metadata=rng(0, 59))
    billing_periods: int = field(default=12, metadata=rng(12, 120))
    max_cycle_gap_s: float = field(default=10.0, metadata=rng(1, 86_400))

    def __post_init__(self) -> None:
        try:
            self.revenue_config(1.0)
            build_calendar(self.calendar or default_calendar(), self.rates)
        except MeterError as exc:
            raise ValueError(str(exc)) from None

    def clock_settings(self) -> ClockSettings:
        """Legal-time rules of the clock object."""
        if self.dst == "eu":
            return eu_clock_settings(-self.time_zone_min)
        return ClockSettings(self.time_zone_min)

    def revenue_config(self, cycle_s: float) -> RevenueConfig:
        """The service configuration; the outage threshold is at least three metering cycles."""
        return RevenueConfig(
            clock=self.clock_settings(), rates=self.rates,
            demand=DemandConfig(self.demand_period_s, self.demand_periods, self.rates),
            load_profile=ProfileConfig(profile_channels(self.profile_channels), self.profile_period_s,
                                       self.profile_depth),
            daily_profile=ProfileConfig(default_daily_profile_channels(), 86400, self.daily_depth),
            billing=BillingSchedule(self.billing_day, self.billing_hour, self.billing_minute),
            billing_periods=self.billing_periods, max_cycle_gap_s=max(self.max_cycle_gap_s, 3 * cycle_s))

    def fingerprint(self) -> str:
        """Hash of the settings this section gives (a changed file replaces stored settings)."""
        raw = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


SECTION = RevenueSection


class _FileBoundSettings:
    """The settings store, tagged with the config fingerprint: settings stored under another
    version of the ``[revenue]`` section are not loaded (the file wins after an edit)."""

    def __init__(self, store: SqliteBillingStore, fingerprint: str) -> None:
        self._store = store
        self._fingerprint = fingerprint

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        self._store.save_settings({**settings, "config": self._fingerprint})

    def load_settings(self) -> dict[str, Any] | None:
        saved = self._store.load_settings()
        if saved is None or saved.pop("config", None) != self._fingerprint:
            return None
        return saved


def attach(daemon: Daemon) -> None:
    """Build the revenue service with its stores and hook it into the meter."""
    cfg = daemon.cfg
    section: RevenueSection = cfg.feature("revenue")
    meter = daemon.meter
    assert meter is not None
    config = section.revenue_config(cfg.meter.cycle_s)
    profiles = SqliteProfileStore(cfg.state_dir / "profiles.db",
                                  {LOAD_PROFILE_OBIS: section.profile_depth, DAILY_PROFILE_OBIS: section.daily_depth})
    billing = SqliteBillingStore(cfg.state_dir / "billing.db", keep=section.billing_periods)
    calendar = build_calendar(section.calendar or default_calendar(), section.rates)
    service = RevenueService(config, calendar, profiles, billing,
                             _FileBoundSettings(billing, section.fingerprint()), daemon.services.get("events"))
    meter.listeners.append(service)
    meter.clock_listeners.append(service.on_clock_set)
    for obis in (LOAD_PROFILE_OBIS, DAILY_PROFILE_OBIS, BILLING_PROFILE_OBIS):
        buffer = service.profile(obis)
        assert buffer is not None
        meter.profiles[obis] = buffer
    daemon.services["revenue"] = service
    daemon.cosem_factories.append(revenue_factory(service, serve_load_profile=True, serve_clock=True))
    daemon.status_extras["tariff"] = lambda: {"rate": service.current_rate,
                                              "billing_counter": service.billing.counter}
    daemon.closers.extend((profiles.close, billing.close))
    _routes(daemon, service)
    daemon.info["tariff"] = (f"{section.rates} rates, calendar {service.calendar.active.name!r}, "
                             f"profile {section.profile_period_s // 60} min")


def tariff_view(service: RevenueService, utc: _dt.datetime) -> dict[str, Any]:
    """``GET /tariff``: current rate (and a rate forced by a tariff script, until when), legal time, calendar summary, rate registers (Wh, varh,
    VAh), maximum demand (W, var, VA, with UTC time) and billing state."""
    local = service.local_time(utc)
    cal = service.calendar
    rates = {str(r): {q.name.lower(): service.tariff.get(q, Channel.TOTAL, r) / 1000.0 for q in Quantity}
             for r in range(1, service.tariff.rates + 1)}
    md: dict[str, dict[str, Any]] = {}
    for q in DemandQuantity:
        for r in range(service.tariff.rates + 1):
            m = service.demand.max_demand(q, r)
            md.setdefault(q.name.lower(), {})[str(r)] = {
                "value": m.value_w, "utc": None if m.capture_utc is None else m.capture_utc.isoformat()}
    return {
        "rate": service.current_rate,
        "forced_rate": None if service.forced_rate is None else {
            "rate": service.forced_rate[0], "until_utc": service.forced_rate[1].isoformat()},
        "local_time": local.wall.isoformat(), "dst_active": local.dst_active,
        "calendar": {"active": cal.active.name, "passive": None if cal.passive is None else cal.passive.name,
                     "activate_passive_at": None if cal.activate_passive_at is None
                     else cal.activate_passive_at.isoformat(),
                     "seasons": [s.name for s in cal.active.seasons],
                     "special_days": len(cal.special_days.entries)},
        "rate_registers": rates,
        "max_demand": md,
        "demand": {"period_s": service.demand.config.period_s,
                   "number_of_periods": service.demand.config.number_of_periods},
        "billing": {"counter": service.billing.counter,
                    "last_utc": None if service.billing.last_billing_utc is None
                    else service.billing.last_billing_utc.isoformat()},
        "load_profile": {"period_s": service.load_profile.capture_period_s,
                         "entries": service.load_profile.entries_in_use()},
    }


def _routes(daemon: Daemon, service: RevenueService) -> None:
    def now() -> _dt.datetime:
        assert daemon.meter is not None
        return daemon.meter.now_utc()

    def get_tariff(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, tariff_view(service, now())

    def post_billing_reset(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        last = service.billing.last_billing_utc
        utc = now()
        if last is not None and utc <= last:
            raise ApiError(409, "a billing period already ended at this time")
        snap = service.mdi_reset(utc)
        log.info("billing period %d ended on command", snap.counter)
        return 200, {"counter": snap.counter, "utc": snap.utc.isoformat(), "reason": snap.reason}

    daemon.api.route("GET", "/tariff", get_tariff)
    daemon.api.route("POST", "/billing/reset", post_billing_reset)

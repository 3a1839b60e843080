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
* ``ctx.meter.profiles``: load profile 1-0:99.1.0.255, daily profile 1-0:99.2.0.255 and
  billing profile 0-0:98.1.0.255;
* COSEM objects from :mod:`meterd.cosem.objects_revenue` (calendar, special days, scripts,
  register activation, rate registers, demand, maximum demand, billing objects);
* supply outages mark the profile rows PDN (cycles without voltage, or a pause in the cycles
  longer than ``max_cycle_gap_s``, e.g. the meter was off);
* provides the :class:`~meterd.services.revenue.RevenueService`; ``status_extras["tariff"]`` and
  the routes ``GET /tariff`` (current rate, calendar summary, rate registers, maximum demand) and
  ``POST /billing/reset`` (end the billing period now: MD reset), :mod:`meterd.api.revenue_views`;
* events (settings changes) go to the event recorder (needed, from supervision).

Section ``[revenue]`` (units in the names): ``time_zone_min`` (DLMS convention, UTC = local
normal time + time_zone: CET is −60), ``dst`` ("eu": last Sunday of March/October 01:00 UTC;
"none"), ``rates`` (1..8), ``calendar`` (a table like ``config/tariff-example.toml``; empty:
the built-in three-rate calendar with a weekday peak), demand subperiod and number of
subperiods (1 = block demand), load-profile period/depth/channels, daily depth, billing day and
time (local), periods kept, and ``max_cycle_gap_s`` (a longer pause between cycles is an outage).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from meterd.api.revenue_views import revenue_routes
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.core.billing import BILLING_PROFILE_OBIS, BillingSchedule
from meterd.core.demand import DemandConfig
from meterd.core.errors import MeterError
from meterd.core.events import EventRecorder
from meterd.core.legal_time import ClockSettings, eu_clock_settings
from meterd.core.profile import (
    DAILY_PROFILE_OBIS,
    LOAD_PROFILE_OBIS,
    ProfileConfig,
    default_daily_profile_channels,
)
from meterd.cosem.objects_revenue import revenue_factory
from meterd.services.revenue import RevenueConfig, RevenueService
from meterd.services.revenue_setup import build_calendar, default_calendar, profile_channels
from meterd.store.billing_store import FingerprintedSettings, SqliteBillingStore
from meterd.store.profile_store import SqliteProfileStore


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


def attach(ctx: FeatureContext) -> None:
    """Build the revenue service with its stores and hook it into the meter."""
    cfg, meter = ctx.cfg, ctx.meter
    section: RevenueSection = cfg.feature("revenue")
    events = ctx.registry.need(EventRecorder, by="revenue")
    config = section.revenue_config(cfg.meter.cycle_s)
    profiles = SqliteProfileStore(cfg.state_dir / "profiles.db",
                                  {LOAD_PROFILE_OBIS: section.profile_depth, DAILY_PROFILE_OBIS: section.daily_depth})
    billing = SqliteBillingStore(cfg.state_dir / "billing.db", keep=section.billing_periods)
    calendar = build_calendar(section.calendar or default_calendar(), section.rates)
    service = RevenueService(config, calendar, profiles, billing,
                             FingerprintedSettings(billing, section.fingerprint()), events)
    meter.listeners.append(service)
    meter.clock_listeners.append(service.on_clock_set)
    for obis in (LOAD_PROFILE_OBIS, DAILY_PROFILE_OBIS, BILLING_PROFILE_OBIS):
        buffer = service.profile(obis)
        assert buffer is not None
        meter.profiles[obis] = buffer
    ctx.registry.provide(RevenueService, service, by="revenue")
    ctx.cosem_factories.append(revenue_factory(service, serve_load_profile=True, serve_clock=True))
    ctx.status_extras["tariff"] = lambda: {"rate": service.current_rate,
                                           "billing_counter": service.billing.counter}
    ctx.closers.extend((profiles.close, billing.close))
    revenue_routes(ctx.api, service, meter.now_utc)
    ctx.info["tariff"] = (f"{section.rates} rates, calendar {service.calendar.active.name!r}, "
                          f"profile {section.profile_period_s // 60} min")

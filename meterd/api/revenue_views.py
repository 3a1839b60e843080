"""The local API of the revenue functions: ``GET /tariff``, ``GET /load-profile``, ``POST /billing/reset``."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from typing import Any

from meterd.api.schema import EMPTY
from meterd.api.server import ApiError, ApiServer
from meterd.core.demand import DemandQuantity
from meterd.core.energy import Quantity
from meterd.core.profile import ColumnKind, ProfileChannel
from meterd.core.reading import Channel
from meterd.services.revenue import RevenueService

log = logging.getLogger("meterd.revenue")


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


LOAD_PROFILE_ROWS = 96  # rows ``GET /load-profile`` returns: a day of 15-minute periods


def load_profile_view(service: RevenueService) -> dict[str, Any]:
    """``GET /load-profile``: the newest :data:`LOAD_PROFILE_ROWS` rows of the load profile
    1-0:99.1.0.255 (capture period s; columns by OBIS after the clock, each with its unit: energy
    in Wh or varh (the buffer's milli-units scaled), average voltage in V, status as its bits)."""
    profile = service.load_profile
    channels = profile.config.channels[1:]
    scale = {ColumnKind.INTERVAL_ENERGY: 1e-3, ColumnKind.CUMULATIVE_ENERGY: 1e-3, ColumnKind.AVERAGE_VOLTAGE: 1e-2}
    columns = [{"obis": c.column.obis, "kind": c.kind.value, "channel": c.channel.value,
                "quantity": None if c.quantity is None else c.quantity.name.lower(), "unit": _profile_unit(c)}
               for c in channels]
    newest = profile.entries_in_use()
    rows = profile.rows_by_entry(max(newest - LOAD_PROFILE_ROWS + 1, 1), 0)
    return {"obis": profile.obis, "period_s": profile.capture_period_s, "columns": columns,
            "rows": [{"utc": r.utc.isoformat(),
                      "values": [round(float(v) * scale[c.kind], 3) if c.kind in scale else v
                                 for c, v in zip(channels, r.values, strict=True)]} for r in rows]}


def _profile_unit(channel: ProfileChannel) -> str:
    if channel.kind is ColumnKind.AVERAGE_VOLTAGE:
        return "V"
    if channel.quantity is None:
        return ""
    return "varh" if "REACTIVE" in channel.quantity.name else "VAh" if "APPARENT" in channel.quantity.name else "Wh"


def revenue_routes(api: ApiServer, service: RevenueService, now: Callable[[], _dt.datetime]) -> None:
    """``GET /tariff`` (:func:`tariff_view` at ``now()``) and ``POST /billing/reset`` (end the
    billing period now: MD reset; 409 when one already ended at this time)."""

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

    def get_load_profile(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The newest rows of the load profile 1-0:99.1.0.255 (Wh, varh, V per capture period)."""
        return 200, load_profile_view(service)

    api.route("GET", "/tariff", get_tariff,
              description="Active rate, rate registers (Wh) and maximum demand (W) with their times.")
    api.route("GET", "/load-profile", get_load_profile,
              description="The newest rows of the load profile 1-0:99.1.0.255 (Wh, varh, V per capture period).")
    api.route("POST", "/billing/reset", post_billing_reset, body=EMPTY,
              description="End the billing period now (maximum demand reset).")

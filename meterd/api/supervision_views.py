"""The local API of the supervision: event logs and the alarm register."""

from __future__ import annotations

from typing import Any

from meterd.api.schema import Body, Field
from meterd.api.server import ApiError, ApiServer
from meterd.api.tokens import Role
from meterd.core.alarms import ALL_BITS
from meterd.core.clock import Clock
from meterd.core.event_codes import LOG_OBIS, LogId
from meterd.services.supervision import Supervision


def alarms_view(supervision: Supervision) -> dict[str, Any]:
    """Alarm register and filter (hex) and the names of the alarms set."""
    return {"register": f"0x{supervision.alarm_register():08X}", "filter": f"0x{supervision.alarm_filter():08X}",
            "active": [a.name.lower() for a in supervision.alarms.active()]}


def _limit(body: dict[str, Any]) -> int:
    limit = body.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ApiError(400, "limit must be an integer 1..10000")
    return limit


def events_view(supervision: Supervision, limit: int, log_name: str | None = None) -> dict[str, Any]:
    """The newest ``limit`` events, newest first, across all logs or from one log."""
    if log_name is None:
        return {"events": supervision.recent_events(limit)}
    try:
        log_id = LogId(log_name)
    except ValueError:
        raise ApiError(400, f"unknown log {log_name!r} (known: {', '.join(x.value for x in LogId)})") from None
    entries = supervision.recorder.log(log_id).entries()[::-1][:limit]
    return {"log": log_id.value, "obis": LOG_OBIS[log_id].profile, "events": [e.as_dict() for e in entries]}


def supervision_routes(api: ApiServer, supervision: Supervision, clock: Clock) -> None:
    """``GET /events`` (newest 50 across logs), ``POST /events {"limit": N, "log": name}``,
    ``POST /alarms/clear {"mask": M}`` (default all bits)."""

    def get_events(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, events_view(supervision, 50)

    def post_events(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("log")
        return 200, events_view(supervision, _limit(body), None if name is None else str(name))

    def clear_alarms(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mask = body.get("mask", ALL_BITS)
        if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask <= ALL_BITS:
            raise ApiError(400, "mask must be a 32-bit unsigned integer")
        cleared = supervision.clear_alarms(clock.utc(), mask)
        return 200, {"cleared": f"0x{cleared:08X}", **alarms_view(supervision)}

    api.route("GET", "/events", get_events, description="The newest 50 events across all logs, newest first.")
    api.route("POST", "/events", post_events, role=Role.READ,  # a query: a read token may ask it
              description="The newest events, from all logs or one.",
              body=Body((Field("limit", int, "events (newest first)", minimum=1, maximum=10_000),
                         Field("log", str, "one log: standard, fraud, disconnector, power_quality, ..."))))
    api.route("POST", "/alarms/clear", clear_alarms, description="Clear alarm register bits (0-0:97.98.0.255).",
              body=Body((Field("mask", int, "bits to clear (default all)", minimum=0, maximum=ALL_BITS),)))

"""The local API of the power-quality chain: its status (``status.power_quality``, ``GET /pq``), the
EN 50160 weeks (``GET /pq/en50160``), the run-time thresholds (``GET``/``POST /pq/thresholds``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from meterd.api.schema import Body, Field
from meterd.api.server import ApiError, ApiServer
from meterd.pq.aggregation import Aggregate
from meterd.pq.en50160 import LIMITS, LimitResult, WeekRecord
from meterd.pq.errors import PqConfigError
from meterd.pq.source import ROW_NAMES
from meterd.services.power_quality import PowerQualityService, event_detail
from meterd.services.pq_interruptions import InterruptionLog
from meterd.services.pq_thresholds import PqThresholds
from meterd.services.pq_week import WeekTracker


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or value != value else round(value, digits)


def pq_view(service: PowerQualityService, source: str, cycle: dict[str, float], detail: bool = False) -> dict[str, Any]:
    """Status of the PQ chain: source, indicative, THD (%), frequency (Hz), Pst, Plt, events, and
    ``cycle``: the analysis cost per cycle (ms, mean and max)."""
    v = service.values()
    view: dict[str, Any] = {
        "enabled": True, "source": source, "indicative": service.indicative,
        "thd_pct": {k: _round(x) for k, x in sorted(v.thd_pct.items()) if _exists(k, service.phases)},
        "frequency_hz": _round(v.frequency_hz, 3), "pst": {str(p): _round(x.pst, 3) for p, x in v.pst.items()},
        "plt": {str(p): _round(x, 3) for p, x in v.plt.items()},
        "plt_flagged": {str(p): x for p, x in v.plt_flagged.items()}, "active_events": list(v.active_events),
        "events": service.event_count, "cycle": cycle, "phases": service.phases,
    }
    short = v.aggregates.get("150-cycle") or v.aggregates.get("180-cycle")
    if service.phases == 3 and short is not None:
        view["unbalance_pct"] = {"u2": _round(short.u2_pct, 3), "u0": _round(short.u0_pct, 3)}
    ten = v.aggregates.get("10-min")
    if ten is not None:
        view["ten_min"] = ten_minute_view(ten, service.phases, detail)
    if detail:
        view["recent_events"] = [{"utc": e.start_utc.isoformat(), **event_detail(e)} for e in service.recent]
        view["harmonic_pct"] = {k: [_round(x) for x in r[2:]] for k, r in sorted(v.harmonic_pct.items())
                                if _exists(k, service.phases)}
        view["profile_rows"] = service.profile.entries_in_use()
        if service.interruptions is not None:
            view["interruptions"] = interruptions_view(service.interruptions)
    if service.week is not None:  # the status: the last closed week's verdict (cheap); GET /pq: more
        last = service.week.last_closed()
        view["en50160"] = {"last_week_start_utc": last.start_utc.isoformat() if last is not None else None,
                           "last_week_verdict": last.verdict.name.lower() if last is not None else None}
        if detail:
            current = service.week.current()
            view["en50160"] = {
                "last_week": week_view(last, {lim.key: lim.required_pct for lim in LIMITS}) if last else None,
                "current_week": {"start_utc": current.start_utc.isoformat(), "verdict": current.verdict.name.lower(),
                                 "intervals": current.intervals, "failed": list(current.failed)}
                if current is not None else None}
    return view


def _exists(name: str, phases: int) -> bool:
    """Whether channel ``name`` ("U2", "IN", ...) exists on a supply of ``phases`` phases."""
    return name == "IN" or int(name[1]) <= phases


def _channels(phases: int) -> list[tuple[int, str]]:
    """(row, name) of the U and I channels that exist: L1–L3 (3P4W) or L1 (1P2W)."""
    return [(r, n) for r, n in enumerate(ROW_NAMES[:6]) if int(n[1]) <= phases]


def ten_minute_view(ten: Aggregate, phases: int, detail: bool = False) -> dict[str, Any]:
    """The last 10-min values of unbalance (3P4W), THDS40, THDG40, PWHD, TIHDS40 (%) and, in ``detail``, the
    interharmonic centred subgroups h = 0…50 (% of the fundamental), with the interval's flags."""
    channels = _channels(phases)
    view: dict[str, Any] = {"end_utc": ten.end_utc.isoformat(), "flagged": bool(ten.flagged), "partial": bool(ten.partial)}
    if phases == 3:
        view["u2_pct"], view["u0_pct"] = _round(ten.u2_pct, 3), _round(ten.u0_pct, 3)
    for key, values in (("thds40_pct", ten.thds40_pct), ("thdg40_pct", ten.thdg40_pct), ("pwhd_pct", ten.pwhd_pct),
                        ("tihds40_pct", ten.tihds40_pct)):
        view[key] = {name: _round(values[r]) for r, name in channels}
    ih = ten.interharmonic_subgroup_pct()
    if detail and ih is not None:
        view["interharmonic_subgroup_pct"] = {name: [_round(float(x), 3) for x in ih[r]] for r, name in channels}
    return view


def limit_view(result: LimitResult) -> dict[str, Any]:
    """One EN 50160 limit of a week: verdict, share within the band (%), percentiles, counts."""
    return {"key": result.key, "verdict": result.verdict.name.lower(), "within_pct": _round(result.within_pct, 3),
            "p95": _round(result.p95, 4), "p5": _round(result.p5, 4), "values": result.n_values,
            "flagged": result.n_flagged, "outside": result.n_outside, "worst_phase": result.worst_phase}


def week_view(record: WeekRecord, required: dict[str, float]) -> dict[str, Any]:
    """An EN 50160 week: its span, verdict, 10-min intervals, interruptions and each limit's result
    (with the share ``required`` by the standard, %)."""
    return {"start_utc": record.start_utc.isoformat(), "end_utc": record.end_utc.isoformat(),
            "verdict": record.verdict.name.lower(), "intervals": record.intervals,
            "flagged_intervals": record.flagged_intervals, "short_interruptions": record.short_interruptions,
            "long_interruptions": record.long_interruptions, "failed": list(record.failed),
            "limits": [{**limit_view(r), "required_pct": required.get(r.key)} for r in record.results]}


def en50160_view(week: WeekTracker, history: int = 4) -> dict[str, Any]:
    """``GET /pq/en50160``: the running week so far, the last closed weeks (newest last)."""
    required = {limit.key: limit.required_pct for limit in LIMITS}
    current = week.current()
    return {"limits": [{"key": limit.key, "clause": f"EN 50160 {limit.clause}", "text": limit.text,
                        "low": limit.low, "high": limit.high, "required_pct": limit.required_pct}
                       for limit in LIMITS],
            "current": week_view(current, required) if current is not None else None,
            "closed": [week_view(r, required) for r in week.closed[-history:]]}


def thresholds_view(thresholds: PqThresholds) -> dict[str, Any]:
    """``GET /pq/thresholds``: the PQ settings in force (Udin in V, thresholds and hysteresis in %
    of Udin, minimum durations in s)."""
    return {"settings": thresholds.values()}


def interruptions_view(log: InterruptionLog, limit: int = 20) -> list[dict[str, Any]]:
    """The newest interruption records: start/end UTC, duration (s), source ("waveform" or
    "power_fail": the meter was unpowered), estimated start."""
    return [{"start_utc": r.start_utc.isoformat(), "end_utc": r.end_utc.isoformat(),
             "duration_s": round(r.duration_s, 3), "long": r.long, "source": r.source,
             "estimated_start": r.estimated_start} for r in log.recent(limit)]


_THRESHOLD_FIELDS = (
    Field("udin_v", float, "declared input voltage Udin (V)", minimum=1.0),
    Field("dip_threshold_pct", float, "dip threshold (% of Udin)"),
    Field("swell_threshold_pct", float, "swell threshold (% of Udin)"),
    Field("interruption_threshold_pct", float, "interruption threshold (% of Udin)"),
    Field("hysteresis_pct", float, "hysteresis (% of Udin)"),
    Field("undervoltage_threshold_pct", float, "sustained under-voltage threshold (% of Udin)"),
    Field("overvoltage_threshold_pct", float, "sustained over-voltage threshold (% of Udin)"),
    Field("undervoltage_min_duration_s", float, "minimum duration of a sustained under-voltage (s)", minimum=0.0),
    Field("overvoltage_min_duration_s", float, "minimum duration of a sustained over-voltage (s)", minimum=0.0),
)


def pq_week_routes(api: ApiServer, thresholds: PqThresholds, week: WeekTracker | None,
                   now_utc: Callable[[], _dt.datetime]) -> None:
    """``GET``/``POST /pq/thresholds`` (POST needs the control role) and ``GET /pq/en50160``."""

    def get_thresholds(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, thresholds_view(thresholds)

    def post_thresholds(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not body:
            raise ApiError(400, "body needs at least one setting")
        try:
            changes = thresholds.change(body, now_utc(), "api")
        except PqConfigError as exc:
            raise ApiError(400, f"refused, nothing changed: {exc}") from None
        return 200, {**thresholds_view(thresholds),
                     "changed": [{"name": c.name, "old": c.old, "new": c.new} for c in changes]}

    api.route("GET", "/pq/thresholds", get_thresholds,
              description="The PQ event thresholds in force (Udin V, thresholds % of Udin, durations s).")
    api.route("POST", "/pq/thresholds", post_thresholds, body=Body(_THRESHOLD_FIELDS),
              description="Change PQ event thresholds: validated together, persisted, applied, evented (186).")
    if week is not None:
        api.route("GET", "/pq/en50160", lambda _body: (200, en50160_view(week)),
                  description="EN 50160 weekly statistics: the running week and the last closed weeks.")


def en50160_table(view: dict[str, Any]) -> str:
    """The verdict per quantity of an EN 50160 week view (:func:`week_view`) as a text table."""
    lines = [f"EN 50160 week from {view['start_utc'][:10]}: {view['verdict'].upper().replace('_', ' ')}"
             f" ({view['intervals']} intervals, {view['flagged_intervals']} flagged;"
             f" interruptions {view['short_interruptions']} short, {view['long_interruptions']} long)"]
    lines.append(f"{'limit':<18}{'verdict':<15}{'within %':>10}{'required %':>12}{'p95':>10}{'values':>8}"
                 f"{'flagged':>9}")
    for r in view["limits"]:
        within = "-" if r["within_pct"] is None else f"{r['within_pct']:.2f}"
        p95 = "-" if r["p95"] is None else f"{r['p95']:.3f}"
        lines.append(f"{r['key']:<18}{r['verdict'].replace('_', ' '):<15}{within:>10}{r['required_pct']:>12g}"
                     f"{p95:>10}{r['values']:>8}{r['flagged']:>9}")
    return "\n".join(lines)

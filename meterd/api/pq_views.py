"""The local API of the power-quality chain: its status (``status.power_quality``, ``GET /pq``)."""

from __future__ import annotations

from typing import Any

from meterd.pq.aggregation import Aggregate
from meterd.pq.source import ROW_NAMES
from meterd.services.power_quality import PowerQualityService, event_detail


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
    view: dict[str, Any] = {"end_utc": ten.end_utc.isoformat(), "flagged": ten.flagged, "partial": ten.partial}
    if phases == 3:
        view["u2_pct"], view["u0_pct"] = _round(ten.u2_pct, 3), _round(ten.u0_pct, 3)
    for key, values in (("thds40_pct", ten.thds40_pct), ("thdg40_pct", ten.thdg40_pct), ("pwhd_pct", ten.pwhd_pct),
                        ("tihds40_pct", ten.tihds40_pct)):
        view[key] = {name: _round(values[r]) for r, name in channels}
    ih = ten.interharmonic_subgroup_pct()
    if detail and ih is not None:
        view["interharmonic_subgroup_pct"] = {name: [_round(float(x), 3) for x in ih[r]] for r, name in channels}
    return view

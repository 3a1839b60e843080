"""The local API of the power-quality chain: its status (``status.power_quality``, ``GET /pq``)."""

from __future__ import annotations

from typing import Any

from meterd.services.power_quality import PowerQualityService, event_detail


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or value != value else round(value, digits)


def pq_view(service: PowerQualityService, source: str, cycle: dict[str, float], detail: bool = False) -> dict[str, Any]:
    """Status of the PQ chain: source, indicative, THD (%), frequency (Hz), Pst, Plt, events, and
    ``cycle``: the analysis cost per cycle (ms, mean and max)."""
    v = service.values()
    view: dict[str, Any] = {
        "enabled": True, "source": source, "indicative": service.indicative,
        "thd_pct": {k: _round(x) for k, x in sorted(v.thd_pct.items())},
        "frequency_hz": _round(v.frequency_hz, 3), "pst": {str(p): _round(x.pst, 3) for p, x in v.pst.items()},
        "plt": {str(p): _round(x, 3) for p, x in v.plt.items()},
        "plt_flagged": {str(p): x for p, x in v.plt_flagged.items()}, "active_events": list(v.active_events),
        "events": service.event_count, "cycle": cycle,
    }
    if detail:
        view["recent_events"] = [{"utc": e.start_utc.isoformat(), **event_detail(e)} for e in service.recent]
        view["harmonic_pct"] = {k: [_round(x) for x in r[2:]] for k, r in sorted(v.harmonic_pct.items())}
        view["profile_rows"] = service.profile.entries_in_use()
    return view

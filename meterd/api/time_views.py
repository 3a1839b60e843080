"""JSON of the meter's time trust (``/time``, ``/status`` ``time``, ``meterctl status``)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from meterd.services.time_service import TimeView


def _iso(utc: _dt.datetime | None) -> str | None:
    return None if utc is None else utc.isoformat()


def time_json(view: TimeView) -> dict[str, Any]:
    """The trust state, clock status bits, last sync and the time source's latest observation
    (offset in s, positive: the clock is fast of the reference)."""
    sync = view.sync
    return {"state": view.state.value, "clock_status": view.clock_status,
            "last_sync_utc": _iso(view.last_sync_utc), "last_sync_source": view.last_sync_source,
            "unsynced_s": view.unsynced_s, "max_unsynced_h": view.max_unsynced_h, "steps": view.steps,
            "source": view.source,
            "sync": None if sync is None else {
                "synchronised": sync.synchronised, "reference": sync.reference, "stratum": sync.stratum,
                "offset_s": sync.offset_s, "leap": sync.leap, "last_update_utc": _iso(sync.last_update_utc)}}

"""The RTC's battery-backed tamper timestamp: a terminal cover opened while the meter was off."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
from pathlib import Path

from meterd.services.supervision import Supervision

log = logging.getLogger("meterd.supervision")


def read_rtc_tamper_latch(path: Path | None, supervision: Supervision, now_utc: _dt.datetime,
                          cover_open_now: bool) -> None:
    """At start: a cover opened while the meter was unpowered, latched by the RTC's battery-backed
    timestamp input (PCF2127/2129, RV3028: sysfs ``timestamp0``, seconds since the epoch, 0 when
    nothing was latched). One "cover removed" at the latched time; "cover closed" at start when
    the cover input (``cover_open_now``, debounced) already shows it closed, else when it closes
    (:meth:`Supervision.on_latched_cover_open`). Then cleared (write 0) when the driver allows it;
    the stored latch time avoids repeats. Absent file (no such RTC, or the simulator): nothing to do."""
    if path is None or not path.exists():
        return
    try:
        text = path.read_text(encoding="ascii").strip()
        seconds = int(text) if text else 0
    except (OSError, ValueError) as exc:
        log.warning("RTC tamper timestamp %s unreadable: %s", path, exc)
        return
    if seconds <= 0:
        return
    opened = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    if supervision.on_latched_cover_open(opened, now_utc, cover_open_now):
        log.warning("terminal cover was opened while unpowered, at %s (RTC latch)", opened.isoformat())
    # a read-only latch is cleared by the RTC driver itself; the stored time avoids repeats
    with contextlib.suppress(OSError):
        path.write_text("0", encoding="ascii")

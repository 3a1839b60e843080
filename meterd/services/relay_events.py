"""The disconnect control's event sink: the event recorder, with the last events kept for the status."""

from __future__ import annotations

import datetime as _dt
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from meterd.core.errors import MeterError
from meterd.core.ports import EventSink

log = logging.getLogger("meterd.load_control")


class RelayEvents:
    """Forwards the load-control service's events to the meter's event recorder and keeps the
    last ``keep`` for the status view. A code the recorder does not know is logged and counted,
    never lost silently, and never stops the relay logic."""

    def __init__(self, recorder: EventSink, keep: int = 20) -> None:
        self._recorder = recorder
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.unrecorded = 0

    def record(self, code: int, utc: _dt.datetime, detail: Mapping[str, object] | None = None) -> None:
        """Record event ``code`` at ``utc`` with ``detail``."""
        self.recent.append({"code": code, "utc": utc.isoformat(), **(detail or {})})
        try:
            self._recorder.record(code, utc, detail)
        except MeterError as exc:
            self.unrecorded += 1
            log.warning("disconnector event %d not recorded: %s", code, exc)

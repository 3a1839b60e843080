"""Pushes to the head end: push setups (class 40 v2), DataNotifications, the durable queue.

``[push]`` configures the four push setups (:mod:`meterd.cosem.objects_push`: on connectivity
0-0:25.9.0.255, scheduled 0-1:25.9.0.255, alarm 0-4:25.9.0.255, on installation
0-7:25.9.0.255): ``destination`` ("host:port" of the head end's listener; "" leaves every setup
without one until the head end writes attribute 3), ``transport`` (tcp/udp), ``client_sap`` (the
wPort the wrapper frames go to), ``security`` ("ciphered": general-glo-ciphering with the DLMS
keys, pushes off when the DLMS server has no keys; "none": plain APDUs), the retry rules
(``retries``, ``repetition_min_s``, ``repetition_exponent`` in percent, ``repetition_max_s``), the
scheduled push's ``randomisation_s`` and the time of day ``daily_at`` ("HH:MM", legal time) of the
push action schedule 0-0:15.0.4.255 (written over DLMS, the schedule wins), the queue bound
``max_messages``, ``park_s`` (s) after which messages whose retries ran out are tried again, and
``send_timeout_s`` (s) per connection. Settings written over DLMS are kept in ``push.db`` and win
over the file.

Per cycle: a newly set alarm bit (the alarm register 0-0:97.98.0.255 through its filter) queues
the alarm push; the push action schedule (class 22, through the push script table
0-0:10.0.108.255) the scheduled push; a medium coming up the on-connectivity
push (and new attempts for parked messages); the first start of the meter's life the
on-installation push. Messages leave through the :class:`~meterd.services.uplink.Uplink` the
media feature provides, or a :class:`~meterd.runtime.direct_uplink.DirectUplink` (the OS's
routing) without one. ``/push`` and ``meterctl push`` show each setup and the queue; ``/status``
has ``push``; ``/metrics`` has the backlog.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.features.dlms import DlmsSecurity, registry_for
from meterd.core.events import EventRecorder
from meterd.core.legal_time import ClockSettings, LegalTime
from meterd.cosem.objects import CosemEntry
from meterd.cosem.objects_push import NotificationSealer, ObjectCapture, management_objects, push_factory
from meterd.cosem.security import MemoryCounterStore
from meterd.runtime.direct_uplink import DirectUplink
from meterd.runtime.push_sender import PushSender
from meterd.services.metering import CycleResult
from meterd.services.push import (
    ALARM_OBIS,
    ON_CONNECTIVITY_OBIS,
    ON_INSTALLATION_OBIS,
    SCHEDULED_OBIS,
    OperationMethod,
    PushEngine,
    PushKind,
    PushSchedule,
    PushSettings,
    PushStatus,
    RepetitionDelay,
    Transport,
    daily_schedule,
    default_objects,
)
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.services.uplink import Uplink
from meterd.store.push_queue import SqlitePushQueue

log = logging.getLogger("meterd.push")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class PushSection:
    """``[push]`` (see the module docstring)."""

    enabled: bool = True
    destination: str = ""
    transport: str = field(default="tcp", metadata=choices("tcp", "udp"))
    client_sap: int = field(default=102, metadata=rng(1, 255))
    security: str = field(default="ciphered", metadata=choices("ciphered", "none"))
    daily_at: str = "00:05"
    randomisation_s: int = field(default=0, metadata=rng(0, 65535))
    retries: int = field(default=3, metadata=rng(0, 255))
    repetition_min_s: int = field(default=10, metadata=rng(1, 65535))
    repetition_exponent: int = field(default=200, metadata=rng(100, 65535))
    repetition_max_s: int = field(default=600, metadata=rng(0, 65535))
    max_messages: int = field(default=1000, metadata=rng(10, 100000))
    park_s: float = field(default=3600.0, metadata=rng(10, 86400))
    send_timeout_s: float = field(default=10.0, metadata=rng(0.1, 300))


SECTION = PushSection

SETUPS = ((ON_CONNECTIVITY_OBIS, PushKind.CONNECTIVITY), (SCHEDULED_OBIS, PushKind.SCHEDULED),
          (ALARM_OBIS, PushKind.ALARM), (ON_INSTALLATION_OBIS, PushKind.INSTALLATION))


def setups_of(section: PushSection) -> list[PushSettings]:
    """The four push setups as the configuration file defines them."""
    base = PushSettings("", PushKind.ALARM, (), Transport.TCP if section.transport == "tcp" else Transport.UDP,
                        section.destination, (), 0, section.retries,
                        RepetitionDelay(section.repetition_min_s, section.repetition_exponent,
                                        section.repetition_max_s), section.client_sap,
                        OperationMethod.CONFIRMED_TRANSPORT)
    return [replace(base, obis=obis, kind=kind, objects=default_objects(obis, kind),
                    randomisation_s=section.randomisation_s if kind is PushKind.SCHEDULED else 0)
            for obis, kind in SETUPS]


def daily_time(text: str) -> tuple[int, int]:
    """(hour, minute) of "HH:MM" (ValueError otherwise)."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"[push] daily_at must be HH:MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def status_view(status: PushStatus) -> dict[str, Any]:
    """The push status as the API shows it."""
    return {"medium": status.medium, "uplink_up": status.uplink_up, "queued": status.queued,
            "max_messages": status.max_messages, "dropped": status.dropped,
            "setups": [{"obis": s.obis, "kind": s.kind, "destination": s.destination, "transport": s.transport,
                        "queued": s.queued, "parked": s.parked, "sent": s.sent,
                        "failed_attempts": s.failed_attempts, "last_sent_utc": s.last_sent_utc}
                       for s in status.setups]}


def attach(ctx: FeatureContext) -> None:
    """Open the queue, build the engine and hook it into the cycle, DLMS and the API."""
    section: PushSection = ctx.cfg.feature("push")
    if not section.enabled:
        ctx.info["push"] = "off ([push] enabled = false)"
        return
    hour, minute = daily_time(section.daily_at)
    events = ctx.registry.need(EventRecorder, by="push")
    supervision = ctx.registry.find(Supervision)
    security = ctx.registry.find(DlmsSecurity)
    if section.security == "ciphered" and security is None:
        ctx.info["push"] = "off (ciphered pushes need the DLMS keys, and the DLMS server has none)"
        log.warning("pushes off: [push] security = \"ciphered\" and the DLMS server has no keys")
        return
    uplink: Uplink = ctx.registry.find(Uplink) or DirectUplink()  # type: ignore[type-abstract]
    store = SqlitePushQueue(ctx.cfg.state_dir / "push.db")
    ctx.closers.append(store.close)
    if section.security == "ciphered" and security is not None:
        sealer = NotificationSealer(security.keys, security.store)
    else:
        sealer = NotificationSealer(None, MemoryCounterStore())

    def objects() -> list[CosemEntry]:
        title = security.keys.current.server_system_title if security is not None else bytes(8)
        counters = security.store if security is not None else MemoryCounterStore()
        return management_objects(registry_for(ctx), ctx.meter, title, counters)

    engine = PushEngine(setups_of(section), store, uplink, ObjectCapture(objects, ctx.meter), sealer, ctx.clock,
                        ctx.clock.utc, events, max_messages=section.max_messages, park_s=section.park_s,
                        send_timeout_s=section.send_timeout_s)
    schedule = PushSchedule(engine, store, daily_schedule(hour, minute))
    revenue = ctx.registry.find(RevenueService)
    utc_only = LegalTime(ClockSettings())
    ctx.registry.provide(PushEngine, engine, by="push")
    ctx.registry.provide(PushSchedule, schedule, by="push")
    ctx.cosem_factories.append(push_factory(engine, events, schedule))

    def cycle(_result: CycleResult) -> None:
        try:
            engine.watch_uplink()
            engine.installed()
            if supervision is not None:
                engine.watch_alarms(supervision.alarm_register())
            schedule.tick(ctx.clock.utc(), revenue.legal if revenue is not None else utc_only)
        except Exception:  # noqa: BLE001 - metering goes on whatever a push capture does
            log.exception("push triggers failed this cycle")

    ctx.cycle_hooks.append(cycle)
    ctx.status_extras["push"] = lambda: status_view(engine.status())
    ctx.api.route("GET", "/push", lambda _body: (200, status_view(engine.status())))
    ctx.info["push"] = (f"{section.destination or 'no destination'} ({section.transport}, "
                        f"{'ciphered' if sealer.ciphered else 'plain'}, medium {uplink.state().medium})")


async def start(ctx: FeatureContext) -> None:
    """Start the delivery task."""
    engine = ctx.registry.find(PushEngine)
    if engine is not None:
        ctx.links.append(PushSender(engine).start())

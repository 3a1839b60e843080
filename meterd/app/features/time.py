"""Trusted time: chronyd (or the simulated NTP source), the trust state and its clock status bits.

Section ``[time]``:

* ``source``: ``"auto"`` (``sim`` on the simulated meter, ``chrony`` on a Pi), ``"chrony"``,
  ``"sim"``, or ``"none"`` (no time daemon: only DLMS clock writes synchronise the meter);
* ``max_unsynced_h`` (h): without a sync for this long the time is doubtful (free-running);
* ``event_threshold_s`` (s): a clock step larger than this made behind the meter's back (chronyd's
  ``makestep``; keep it equal to chrony's step threshold) is handled as a clock set: "clock
  adjusted" old/new time (IDIS 4/5) with the source ``ntp`` (or ``system`` while unsynchronised)
  in the detail, and the legal-time rules of a DLMS clock write for tariffs, profiles and demand;
* ``chronyc``, ``chrony_host``, ``poll_s`` (s): how chronyd is read (``chronyc -c -n -h
  <host> tracking`` and ``sources`` every ``poll_s``; ``127.0.0.1``: chronyd's UDP command port,
  monitoring commands only, so meterd needs no access to chronyd's control socket);
* ``sim_ntp``: the simulated NTP server answers from the start (false: it never appears until
  the rig's ``ntp_lost`` fault is cleared or the signal ``ntp_reachable`` is true);
  ``sim_poll_s`` (s): the simulated chronyd's poll interval.

The service (:class:`~meterd.services.time_service.TimeService`) is the meter's first cycle
listener (it must see a step before the tariffs and profiles see the cycle's time) and a clock
listener; it provides the status flags ``clock_invalid`` / ``clock_doubtful`` (bits 8 and 13 of
0-0:96.5.0.255, whence the clock status 0x01 / 0x02 of the clock 0-0:1.0.0.255), the clock status
of every event recorded while the time is not trusted, and CIV (with TIME_INVALID) in the status
word of the load and daily profiles' periods; ``/time`` and ``/status`` ``time`` show it.

RTC evidence: the display's RTC watch (:class:`~meterd.ui.battery.BatteryWatch`) reads the
RTC's data-invalid flag (the backup battery lost the time); while it is set and no sync or clock
write came since, the time is INVALID. So is it after an outage over which the clock went back
(the supervision's :class:`~meterd.core.power_fail.PowerFailure` at start, ``clock_suspect``). In simulation, a sync also rewrites the simulated RTC, as
the kernel's 11-minute mode (chrony's ``rtcsync``) does on a Pi.

Simulation: scenario signals ``ntp_jump`` (s: the NTP server's time jumps) and ``ntp_reachable``
(true/false); rig faults ``ntp_jump`` and ``ntp_lost`` (:mod:`meterd.app.sim_faults`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hw.chrony import Chronyc
from meterd.api.time_views import time_json
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.core.events import EventRecorder
from meterd.core.power_fail import PowerFailure
from meterd.core.profile import ProfileStatus
from meterd.core.time_trust import CLOCK_STATUS_INVALID, TrustSettings, TrustState
from meterd.runtime.rtc import SimRtc
from meterd.runtime.time_sync_chrony import ChronySync
from meterd.services.metering import CycleResult
from meterd.services.revenue import RevenueService
from meterd.services.time_service import TimeService
from meterd.services.time_sync import SimNtpSource, TimeSyncSource
from meterd.ui.meter_display import MeterDisplay

log = logging.getLogger("meterd.time")


@dataclass(frozen=True)
class TimeSection:
    """``[time]``: time source, trust limits (h, s), chronyd access, the simulated NTP source."""

    source: str = field(default="auto", metadata=choices("auto", "chrony", "sim", "none"))
    max_unsynced_h: float = field(default=168.0, metadata=rng(0.1, 8760.0))
    event_threshold_s: float = field(default=1.0, metadata=rng(0.1, 3600.0))
    chronyc: str = "chronyc"
    chrony_host: str = "127.0.0.1"
    poll_s: float = field(default=16.0, metadata=rng(1.0, 3600.0))
    sim_ntp: bool = True
    sim_poll_s: float = field(default=64.0, metadata=rng(1.0, 86_400.0))


SECTION = TimeSection


def _source(ctx: FeatureContext, cfg: TimeSection) -> TimeSyncSource | None:
    kind = cfg.source
    if kind == "auto":
        kind = "sim" if ctx.hardware.sim is not None else "chrony"
    if kind == "sim":
        return SimNtpSource(ctx.clock, reachable=cfg.sim_ntp, poll_s=cfg.sim_poll_s, makestep_s=cfg.event_threshold_s)
    if kind == "chrony":
        return ChronySync(Chronyc(cfg.chrony_host, cfg.chronyc), cfg.poll_s)
    return None


def attach(ctx: FeatureContext) -> None:
    """The time service: first cycle listener, clock listener, status flags, events, routes."""
    cfg: TimeSection = ctx.cfg.feature("time")
    events = ctx.registry.find(EventRecorder)
    display = ctx.registry.find(MeterDisplay)
    watch = display.battery if display is not None else None
    source = _source(ctx, cfg)
    service = TimeService(ctx.clock, TrustSettings(cfg.max_unsynced_h, cfg.event_threshold_s), source,
                          ctx.meter.clock_changed, events,
                          rtc_invalid=(lambda: watch.clock_invalid) if watch is not None else None)
    ctx.meter.listeners.insert(0, service)  # before the tariffs and profiles see the cycle's time
    ctx.meter.clock_listeners.append(service.on_clock_set)
    ctx.meter.status_sources.append(service.status_flags)
    if events is not None:
        events.clock_status = service.status_bits
    sim_ntp = source if isinstance(source, SimNtpSource) else None
    if sim_ntp is not None:
        sim_ntp.poll()
        _sim_signals(ctx, sim_ntp)
    service.start(ctx.clock.utc())
    outage = ctx.registry.find(PowerFailure)  # the outage that stopped the meter, if any
    if outage is not None:
        service.outage_at_start(ctx.clock.utc(), outage.clock_suspect)
    revenue = ctx.registry.find(RevenueService)
    if revenue is not None:  # billing captures carry the clock status too
        revenue.billing.clock_status = service.status_bits
    clock = ctx.clock
    seen_sync = [service.trust.record.last_sync_utc]

    def after_cycle(_result: CycleResult) -> None:
        if sim_ntp is not None:
            sim_ntp.poll()  # may step the simulated clock: found at the next cycle, as chronyd's step
        bits = service.status_bits()
        if bits and revenue is not None:  # the periods in progress are captured with CIV
            flags = ProfileStatus.CIV | (ProfileStatus.TIME_INVALID if bits & CLOCK_STATUS_INVALID else 0)
            revenue.load_profile.pending |= flags
            revenue.daily_profile.pending |= flags
        synced = service.trust.record.last_sync_utc
        if (watch is not None and watch.clock_invalid and isinstance(watch.rtc, SimRtc)
                and service.trust.state is TrustState.SYNCHRONISED and synced != seen_sync[0]):
            watch.rtc.write(clock.utc())  # a fresh sync: the kernel's 11-minute mode writes the RTC
            watch.clock_set()
        seen_sync[0] = synced

    ctx.cycle_hooks.append(after_cycle)
    ctx.registry.provide(TimeService, service, by="time")
    ctx.status_extras["time"] = lambda: time_json(service.view(clock.utc()))

    def time_route(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The meter's time trust: state, clock status, last sync, the time source."""
        return 200, time_json(service.view(clock.utc()))

    ctx.api.route("GET", "/time", time_route,
                  description="The meter's time trust: state, clock status, last sync, the time source.")


async def start(ctx: FeatureContext) -> None:
    """Poll chronyd from the loop (a Pi)."""
    service = ctx.registry.find(TimeService)
    if service is not None and isinstance(service.source, ChronySync):
        service.source.start()
        ctx.links.append(service.source)


def _sim_signals(ctx: FeatureContext, ntp: SimNtpSource) -> None:
    """Scenario signals of the simulated NTP server: ``ntp_jump`` (s) and ``ntp_reachable``."""
    sim = ctx.hardware.sim
    if sim is None:
        return

    def jump(value: Any) -> None:
        ntp.jump(float(value))

    sim.extra_signals["ntp_jump"] = jump
    sim.extra_signals["ntp_reachable"] = lambda value: ntp.set_reachable(bool(value))

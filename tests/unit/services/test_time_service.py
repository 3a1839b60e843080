"""The time service on a manual clock: steps routed with their source, syncs, RTC evidence, events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.core.energy import EnergyRegisters
from meterd.core.time_trust import TrustSettings, TrustState
from meterd.services.time_service import TimeService
from meterd.services.time_sync import SimNtpSource, SyncObservation

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, dt.datetime, dict[str, Any]]] = []

    def record(self, code: int, utc: dt.datetime, detail: Any = None) -> None:
        self.recorded.append((ec.lookup(code).name, utc, dict(detail or {})))


class Source:
    name = "fake"

    def __init__(self) -> None:
        self.obs: SyncObservation | None = None

    def latest(self) -> SyncObservation | None:
        return self.obs


def _service(source: Any, rtc: list[bool] | None = None) -> tuple[TimeService, SimClock, Events, list[Any]]:
    clock, events, steps = SimClock(T0), Events(), []
    service = TimeService(clock, TrustSettings(max_unsynced_h=1, event_threshold_s=1), source,
                          lambda old, new, src: steps.append((old, new, src)), events,
                          rtc_invalid=(lambda: rtc[0]) if rtc is not None else None)
    service.start(clock.utc())
    return service, clock, events, steps


def _cycle(service: TimeService, clock: SimClock, s: float = 1.0) -> None:
    clock.advance(s)
    service.on_cycle(clock.utc(), {}, EnergyRegisters(), None)  # type: ignore[arg-type]


def test_a_step_without_a_synchronised_source_is_a_system_step_and_no_sync():
    service, clock, events, steps = _service(None)
    _cycle(service, clock)
    clock.set_utc(clock.utc() + dt.timedelta(hours=2))  # someone ran "date -s"
    _cycle(service, clock)
    assert len(steps) == 1 and steps[0][2] == "system"
    assert (steps[0][1] - steps[0][0]).total_seconds() == 7200
    service.on_clock_set(steps[0][0], steps[0][1], "system")  # the meter's listeners call back
    assert service.trust.state is TrustState.NEVER_SYNCHRONISED
    assert [name for name, _, _ in events.recorded] == ["TIME_UNTRUSTED"]


def test_small_offsets_are_not_steps_and_ntp_updates_are_syncs():
    source = Source()
    service, clock, events, steps = _service(source)
    clock.set_utc(clock.utc() + dt.timedelta(seconds=0.5))  # slewed away: below the threshold
    _cycle(service, clock)
    assert steps == []
    source.obs = SyncObservation(True, "192.0.2.1", 2, 0.001, "normal", clock.utc())
    _cycle(service, clock)
    assert service.trust.state is TrustState.SYNCHRONISED
    # a new meter whose first cycle found no sync says so, then that it is trusted; an hour and a
    # second later without an update: doubtful
    assert [(n, d["state"]) for n, _, d in events.recorded] == [("TIME_UNTRUSTED", "never_synchronised"),
                                                                ("TIME_TRUSTED", "synchronised")]
    _cycle(service, clock, 3601)
    assert service.trust.state is TrustState.FREE_RUNNING
    assert [(n, d["state"]) for n, _, d in events.recorded][2:] == [("TIME_UNTRUSTED", "free_running")]


def test_the_simulated_source_steps_the_clock_and_the_service_routes_it_as_ntp():
    clock = SimClock(T0)
    ntp = SimNtpSource(clock, poll_s=64, makestep_s=1)
    steps: list[Any] = []
    service = TimeService(clock, TrustSettings(event_threshold_s=1), ntp, lambda *a: steps.append(a))
    ntp.poll()
    service.start(clock.utc())
    ntp.jump(-600)
    clock.advance(1)
    service.on_cycle(clock.utc(), {}, EnergyRegisters(), None)  # type: ignore[arg-type]
    ntp.poll()
    clock.advance(1)
    service.on_cycle(clock.utc(), {}, EnergyRegisters(), None)  # type: ignore[arg-type]
    assert len(steps) == 1 and steps[0][2] == "ntp" and ntp.steps == 1
    assert (steps[0][1] - steps[0][0]).total_seconds() == -600


def test_rtc_invalid_until_a_write_and_the_state_is_saved_with_the_checkpoint():
    rtc = [False]
    service, clock, events, _ = _service(None, rtc)
    service.on_clock_set(clock.utc(), clock.utc(), "dlms:management")
    _cycle(service, clock)
    assert service.trust.state is TrustState.SYNCHRONISED
    rtc[0] = True
    _cycle(service, clock)
    assert service.trust.state is TrustState.INVALID and service.status_flags() == {"clock_invalid"}
    state = service.state_dict()
    assert state["rtc_lost"] and state["announced"] == "invalid"
    again, clock2, events2, _ = _service(None, [True])
    again.restore(state)
    _cycle(again, clock2)
    assert again.trust.state is TrustState.INVALID and events2.recorded == []  # nothing repeated
    service.on_clock_set(clock.utc(), clock.utc(), "dlms:management")
    _cycle(service, clock)
    assert service.trust.state is TrustState.SYNCHRONISED
    assert [d["state"] for _, _, d in events.recorded] == ["invalid", "synchronised"]


def test_an_outage_over_which_the_clock_went_back_makes_the_time_invalid():
    service, clock, events, _ = _service(None)
    service.outage_at_start(clock.utc(), clock_went_back=False)
    assert service.trust.state is TrustState.NEVER_SYNCHRONISED
    service.outage_at_start(clock.utc(), clock_went_back=True)
    _cycle(service, clock)
    assert service.trust.state is TrustState.INVALID
    assert [d["state"] for _, _, d in events.recorded] == ["invalid"]
    service.on_clock_set(clock.utc(), clock.utc(), "dlms:management")
    assert service.trust.state is TrustState.SYNCHRONISED

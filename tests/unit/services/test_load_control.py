"""Load-control service on the simulated relay: class 70 through the service API, limiter and
credit, retries on feedback mismatch, persistence before the pulse, restart without a pulse."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from hw.changeover import Changeover
from hw.relay import LatchingRelay, ManualScheduler, RelayFault, RelayTiming, SimRelay, build_sim_relay
from meterd.core.clock import SimClock
from meterd.core.disconnect import TRANSITION_EVENT, TRANSITIONS, ActionResult, ControlState, Trigger
from meterd.core.disconnect import DisconnectorEvent as Ev
from meterd.core.limiter import LimiterConfig, LimiterState
from meterd.core.reading import PhaseValues, Reading
from meterd.core.supply import Source, SupplyConfig
from meterd.services.load_control import LoadControl, LoadControlConfig, RelayRecord
from meterd.store.relay_store import RelayStore

D, C, R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION


@dataclass
class Sink:
    events: list[tuple[int, dt.datetime, dict[str, Any]]] = field(default_factory=list)

    def record(self, code: int, utc: dt.datetime, detail: dict[str, Any]) -> None:
        self.events.append((code, utc, detail))

    def codes(self) -> list[int]:
        return [c for c, _, _ in self.events]


class Rig:
    """Clock, scheduler, mock pins, simulated relay, store and the service."""

    def __init__(self, tmp_path: Path, mode: int = 1, initial_closed: bool = True,
                 limiter: LimiterConfig | None = None, supply: SupplyConfig | None = None,
                 feedback_pin: int | None = 25) -> None:
        self.clock = SimClock(start_mono=500.0)
        self.sched = ManualScheduler(self.clock)
        self.factory = MockFactory()
        self.relay, self.sim = build_sim_relay(self.clock, self.sched, self.factory,
                                               feedback_pin=feedback_pin, initial_closed=initial_closed)
        self.store = RelayStore(tmp_path / "relay.db")
        self.sink = Sink()
        self.changeover = Changeover.from_pins(17, 27, self.sched, pin_factory=self.factory) if supply else None
        self.config = LoadControlConfig(control_mode=mode, limiter=limiter or LimiterConfig(), supply=supply)
        self.lc = self.new_service()

    def new_service(self) -> LoadControl:
        return LoadControl(self.relay, self.store, self.sink, self.clock, self.sched, self.config,
                           changeover=self.changeover)

    def settle(self, seconds: float = 3.0) -> None:
        self.sched.advance(seconds)

    def close(self) -> None:
        self.store.close()
        self.factory.reset()


@pytest.fixture
def rig(tmp_path: Path):
    made: list[Rig] = []

    def make(**kw: Any) -> Rig:
        r = Rig(tmp_path, **kw)
        r.lc.start()
        r.settle()
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def reading(t: float, power_w: float) -> Reading:
    phase = PhaseValues(voltage_v=230.0, current_a=power_w / 690.0, active_power_w=power_w / 3)
    return Reading(mono_s=t, phases=(phase, phase, phase), energy={}, total_active_power_w=power_w)


def set_state(r: Rig, state: ControlState) -> None:
    """Drive the service into ``state`` through legal triggers (mode 5 allows every path)."""
    if state is D:
        r.lc.command(Trigger.REMOTE_DISCONNECT)
    elif state is R:
        r.lc.command(Trigger.LOCAL_DISCONNECT)
    r.settle()
    assert r.lc.control_state is state


# ------------------------------------------------------------------ class 70 through the service


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_every_transition_through_the_service(rig, name: str) -> None:
    t = TRANSITIONS[name]
    mode = 2 if name == "a" else 5
    r = rig(mode=mode)
    set_state(r, t.source)
    pulses_before = r.sim.operations
    outcome = r.lc.command(t.trigger)
    r.settle()
    assert outcome.transition == name and r.lc.control_state is t.target
    wanted = t.target is C
    assert r.sim.closed is wanted and r.lc.output_state is wanted
    moved = (t.source is C) != wanted
    assert r.sim.operations - pulses_before == int(moved)
    code, utc, detail = r.sink.events[-1]
    assert detail["transition"] == name and code == int(TRANSITION_EVENT[name])
    assert utc == r.clock.utc() - dt.timedelta(seconds=3.0)


def test_remote_methods_return_the_dlms_result(rig) -> None:
    r = rig(mode=1)
    assert r.lc.remote_disconnect() == ActionResult.SUCCESS
    r.settle()
    assert r.lc.control_state is D and not r.sim.closed and Ev.REMOTE_DISCONNECTION in r.sink.codes()
    assert r.lc.remote_reconnect() == ActionResult.SUCCESS          # d: ready, still open
    r.settle()
    assert r.lc.control_state is R and not r.sim.closed
    assert r.lc.button_pressed().transition == "e"
    r.settle()
    assert r.sim.closed and r.lc.output_state


def test_mode_0_remote_disconnect_denied(rig) -> None:
    r = rig(mode=0)
    assert r.lc.remote_disconnect() == ActionResult.READ_WRITE_DENIED
    r.settle()
    assert r.sim.closed and r.sim.operations == 0


def test_manual_disconnect_refused_in_mode_3(rig) -> None:
    r = rig(mode=3)
    assert r.lc.button_pressed(long_press=True).refusal is not None
    r.settle()
    assert r.sim.closed


def test_set_control_mode_0_reconnects(rig) -> None:
    r = rig(mode=1)
    r.lc.remote_disconnect()
    r.settle()
    r.lc.set_control_mode(0)
    r.settle()
    assert r.lc.control_state is C and r.sim.closed


# ------------------------------------------------------------------ limiter and credit


LIM = LimiterConfig(threshold_normal=10_000.0, min_over_threshold_duration_s=10.0,
                    min_under_threshold_duration_s=5.0, reconnect_delay_s=30.0, max_reconnect_attempts=1)


def run_cycles(r: Rig, seconds: int, power_w: float) -> None:
    for _ in range(seconds):
        r.settle(1.0)
        r.lc.on_reading(reading(r.clock.mono(), power_w if r.sim.closed else 0.0))
    r.settle(0.1)                                # let a pulse started by the last cycle finish


def test_short_overload_does_not_trip(rig) -> None:
    r = rig(mode=5, limiter=LIM)
    run_cycles(r, 9, 15_000.0)
    run_cycles(r, 30, 2_000.0)
    assert r.sim.closed and r.lc.control_state is C and r.sim.operations == 0


def test_sustained_overload_trips_reconnects_then_locks_out(rig) -> None:
    r = rig(mode=5, limiter=LIM)
    run_cycles(r, 11, 15_000.0)
    assert not r.sim.closed and r.lc.control_state is R
    assert Ev.LIMITER_THRESHOLD_EXCEEDED in r.sink.codes() and Ev.LOCAL_DISCONNECTION in r.sink.codes()
    run_cycles(r, 35, 15_000.0)                 # load still there, but relay open -> 0 W seen
    assert r.sim.closed and r.lc.control_state is C
    assert Ev.LIMITER_THRESHOLD_OK in r.sink.codes() and Ev.LOCAL_RECONNECTION in r.sink.codes()
    run_cycles(r, 11, 15_000.0)                 # trips again: attempt limit 1 reached
    assert not r.sim.closed and r.lc.limiter.state is LimiterState.LOCKED_OUT
    assert Ev.LIMITER_LOCKOUT in r.sink.codes()
    run_cycles(r, 300, 15_000.0)
    assert not r.sim.closed                      # no automatic reconnection in lockout
    assert r.lc.button_pressed().transition == "e"   # a person clears the lockout
    r.settle()
    assert r.sim.closed and r.lc.limiter.state is LimiterState.ARMED


def test_limiter_reconnect_needs_button_in_mode_1(rig) -> None:
    r = rig(mode=1, limiter=LIM)
    run_cycles(r, 11, 15_000.0)
    run_cycles(r, 40, 1_000.0)
    assert r.lc.control_state is R and not r.sim.closed
    r.lc.button_pressed()
    r.settle()
    assert r.sim.closed


def test_sts_power_limit_trips(rig) -> None:
    r = rig(mode=5, limiter=LIM)
    r.lc.set_max_power_w(3_000.0)
    assert Ev.LIMITER_THRESHOLD_CHANGED in r.sink.codes()
    run_cycles(r, 11, 4_000.0)
    assert not r.sim.closed


def test_credit_blocks_manual_reconnect_until_restored(rig) -> None:
    r = rig(mode=5)
    r.lc.credit_disconnect()
    r.settle()
    assert not r.sim.closed and r.lc.control_state is R
    blocked = r.lc.button_pressed()
    assert blocked.action_result is ActionResult.TEMPORARY_FAILURE
    r.settle()
    assert not r.sim.closed
    assert r.lc.credit_reconnect().transition == "h"
    r.settle()
    assert r.sim.closed


def test_remote_disconnect_is_not_undone_by_credit_or_limiter(rig) -> None:
    r = rig(mode=5)
    r.lc.remote_disconnect()
    r.lc.credit_disconnect()
    r.settle()
    assert r.lc.credit_reconnect().accepted is False
    r.settle()
    assert r.lc.control_state is D and not r.sim.closed


# ------------------------------------------------------------------ relay faults


def test_welded_contact_bounded_retries_then_fault(rig) -> None:
    r = rig(mode=1)
    r.sim.fault = RelayFault.WELDED
    r.lc.remote_disconnect()
    r.settle(60.0)
    failures = r.sink.codes().count(Ev.DISCONNECT_RECONNECT_FAILURE)
    assert failures == 1 + r.config.max_retries
    assert r.sink.codes().count(Ev.RELAY_FAULT_RETRIES_EXHAUSTED) == 1
    assert r.relay.pulses == 1 + r.config.max_retries
    assert r.lc.status().relay_fault and r.lc.output_state is True   # physically still closed
    r.settle(600.0)
    assert r.relay.pulses == 1 + r.config.max_retries                # no endless pulsing
    assert r.sched.pending() == 0


def test_new_command_after_fault_gets_a_fresh_bounded_budget(rig) -> None:
    r = rig(mode=1)
    r.sim.fault = RelayFault.WELDED
    r.lc.remote_disconnect()
    r.settle(60.0)
    r.sim.fault = RelayFault.NONE              # repaired / unstuck
    assert r.lc.remote_disconnect() == ActionResult.SUCCESS
    r.settle(10.0)
    assert not r.sim.closed and not r.lc.status().relay_fault


def test_transient_mismatch_recovers_on_retry(rig) -> None:
    r = rig(mode=1)
    r.sim.fault = RelayFault.NO_FEEDBACK
    r.lc.remote_disconnect()
    r.settle(0.2)
    r.sim.fault = RelayFault.NONE
    r.sim.sync_feedback()
    r.settle(5.0)
    assert r.sink.codes().count(Ev.DISCONNECT_RECONNECT_FAILURE) == 1
    assert not r.lc.status().relay_fault and r.lc.output_state is False


# ------------------------------------------------------------------ persistence and restart


def test_saved_before_the_pulse(tmp_path: Path) -> None:
    r = Rig(tmp_path, mode=1)
    r.lc.start()
    r.settle()
    seen: list[RelayRecord | None] = []
    original = r.relay.operate

    def spy(close: bool, on_done: Any = None) -> None:
        seen.append(r.store.load())
        original(close, on_done)

    r.relay.operate = spy  # type: ignore[method-assign]
    r.lc.remote_disconnect()
    r.settle()
    assert seen[0] is not None and seen[0].pending and seen[0].relay_closed is False
    assert seen[0].control_state == int(D) and seen[0].operation_count == 1
    final = r.store.load()
    assert final is not None and not final.pending and final.last_change_utc == r.lc.status().last_change_utc
    r.close()


def test_restart_restores_state_without_a_pulse(tmp_path: Path) -> None:
    r = Rig(tmp_path, mode=2)
    r.lc.start()
    r.settle()
    r.lc.remote_disconnect()
    r.settle()
    ops, pulses = r.sim.operations, r.relay.pulses
    count = r.lc.status().operation_count
    # restart: new driver and service on the same pins and database; the contact is still open
    r.relay.close()
    r.relay = LatchingRelay.from_pins(23, 24, 25, r.clock, r.sched, pin_factory=r.factory)
    r.store.close()
    r.store = RelayStore(tmp_path / "relay.db")
    lc = r.new_service()
    lc.start()
    r.settle(5.0)
    assert r.relay.pulses == 0 and r.sim.operations == ops and pulses == 1
    assert lc.control_state is D and lc.control_mode == 2 and lc.output_state is False
    assert lc.status().operation_count == count
    r.close()


def test_restart_pulses_when_contact_differs(tmp_path: Path) -> None:
    r = Rig(tmp_path, mode=1)
    r.store.save(RelayRecord(control_state=int(D), control_mode=1, relay_closed=False, operation_count=7))
    r.lc.start()                                   # sim contact is closed, record says open
    r.settle()
    assert r.relay.pulses == 1 and not r.sim.closed and r.lc.status().operation_count == 8
    r.close()


def test_restart_without_feedback_trusts_non_pending_record(tmp_path: Path) -> None:
    r = Rig(tmp_path, mode=1, initial_closed=False, feedback_pin=None)
    r.store.save(RelayRecord(control_state=int(D), control_mode=1, relay_closed=False, operation_count=3))
    r.lc.start()
    r.settle()
    assert r.relay.pulses == 0
    r.store.save(RelayRecord(control_state=int(D), control_mode=1, relay_closed=False, operation_count=4,
                             pending=True))
    lc = r.new_service()
    lc.start()
    r.settle()
    assert r.relay.pulses == 1                     # pending: power was lost mid-operation
    r.close()


def test_first_start_on_fresh_meter_connects(tmp_path: Path) -> None:
    r = Rig(tmp_path, mode=1, initial_closed=False)
    r.lc.start()
    r.settle()
    assert r.sim.closed and r.store.load() is not None
    r.close()


def test_store_refuses_counter_going_backwards(tmp_path: Path) -> None:
    from meterd.core.errors import StateError

    with RelayStore(tmp_path / "r.db") as store:
        store.save(RelayRecord(1, 1, True, operation_count=5))
        with pytest.raises(StateError):
            store.save(RelayRecord(1, 1, True, operation_count=4))
        mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = store._db.execute("PRAGMA synchronous").fetchone()[0]
        assert mode == "wal" and sync == 2


# ------------------------------------------------------------------ supply changeover


def test_supply_swap_drives_changeover_and_logs(rig) -> None:
    r = rig(supply=SupplyConfig(loss_duration_s=2.0, restore_duration_s=5.0))
    for _ in range(4):
        r.lc.on_supply_voltages(230.0, 230.0)
        r.settle(1.0)
    for _ in range(4):
        r.lc.on_supply_voltages(0.0, 230.0)
        r.settle(1.0)
    assert r.changeover is not None and r.changeover.closed("solar") and not r.changeover.closed("grid")
    assert Ev.SUPPLY_SWAP_TO_SOLAR in r.sink.codes()
    for _ in range(8):
        r.lc.on_supply_voltages(230.0, 230.0)
        r.settle(1.0)
    assert r.changeover.closed("grid") and r.lc.status().supply is Source.GRID
    assert Ev.SUPPLY_SWAP_TO_GRID in r.sink.codes()


def test_interlock_never_violated_in_long_sim(rig) -> None:
    r = rig(mode=5, limiter=LIM)
    for i in range(20):
        r.lc.remote_disconnect() if i % 2 == 0 else r.lc.remote_reconnect()
        r.settle(0.3)
        r.lc.button_pressed()
        r.settle(2.0)
    assert r.sim.overlaps == 0
    assert isinstance(r.sim, SimRelay) and r.relay.timing == RelayTiming()


@pytest.mark.parametrize("mode", range(7))
def test_random_trigger_sequences_keep_relay_and_state_in_step(rig, mode: int) -> None:
    import random

    rnd = random.Random(1000 + mode)
    r = rig(mode=mode)
    for _ in range(60):
        trigger = rnd.choice(list(Trigger))
        before = r.lc.control_state
        outcome = r.lc.command(trigger)
        r.settle(rnd.choice((0.01, 0.2, 2.0)))
        assert outcome.accepted or r.lc.control_state is before
    r.settle(5.0)
    assert r.sim.closed is (r.lc.control_state is C) is r.lc.output_state
    assert r.sim.overlaps == 0 and not r.lc.status().relay_fault
    record = r.store.load()
    assert record is not None and record.control_state == int(r.lc.control_state) and not record.pending
    assert record.operation_count == r.relay.pulses


def test_events_land_in_the_disconnector_log(tmp_path: Path) -> None:
    from meterd.core.event_codes import LogId
    from meterd.core.events import EventRecorder

    r = Rig(tmp_path, mode=1)
    recorder = EventRecorder()
    lc = LoadControl(r.relay, r.store, recorder, r.clock, r.sched, r.config)
    lc.start()
    r.settle()
    lc.remote_disconnect()
    r.settle()
    codes = [e.code for e in recorder.recent(10)]
    assert codes == [int(Ev.REMOTE_DISCONNECTION)]
    assert [e.code for e in recorder.log(LogId.DISCONNECTOR).entries()] == codes
    r.close()

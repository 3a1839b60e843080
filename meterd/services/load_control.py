"""Load control: turns disconnect-control triggers, limiter decisions, credit requests, button
presses and supply changes into relay and changeover commands.

One :class:`LoadControl` owns the class 70 state (:class:`~meterd.core.disconnect.DisconnectControl`),
the class 71 limiter (:class:`~meterd.core.limiter.Limiter`) and, optionally, the grid/solar
selector (:class:`~meterd.core.supply.SupplySelector`). It runs on the meter's single owner loop.

Relay policy:

* the relay position, the class 70 state and mode, the operation counter and the last change time
  are saved (``RelayStateStore``) *before* each coil pulse, marked pending, and confirmed after the
  auxiliary contact has been checked;
* a feedback mismatch logs DISCONNECT_RECONNECT_FAILURE and is retried, after the relay's minimum
  interval, at most ``max_retries`` times; then RELAY_FAULT_RETRIES_EXHAUSTED is logged and the
  relay is left alone until a new command arrives (no endless pulsing);
* at start-up the persisted position is restored *without a pulse* when the auxiliary contact
  already shows it (or, without feedback, when the last save was not pending).

Local disconnect causes (limiter, credit) are kept as a set: a local or manual reconnection is
refused while another cause is still active (e.g. a button press while credit is exhausted).
Remote reconnection is the utility's decision and is not blocked by local causes, but it does
not clear them. Events go to an ``EventSink`` with the codes of
:class:`~meterd.core.disconnect.DisconnectorEvent`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from meterd.core.clock import Clock
from meterd.core.disconnect import (
    TRANSITION_EVENT,
    ActionResult,
    ControlState,
    DisconnectControl,
    DisconnectorEvent,
    Outcome,
    Refusal,
    Trigger,
)
from meterd.core.limiter import ActionKind, Cause, Limiter, LimiterAction, LimiterConfig, LimiterState
from meterd.core.ports import EventSink
from meterd.core.reading import Reading
from meterd.core.supply import Source, SupplyConfig, SupplySelector, SwapEvent, SwapReason

# ---------------------------------------------------------------------------- ports


class RelayResult(Protocol):
    """What the relay reports after a pulse (``hw.relay.OperationResult`` fits)."""

    @property
    def commanded_closed(self) -> bool: ...

    @property
    def sensed_closed(self) -> bool | None: ...

    @property
    def ok(self) -> bool: ...


class RelayActuator(Protocol):
    """The disconnect relay (``hw.relay.LatchingRelay`` fits)."""

    @property
    def busy(self) -> bool: ...

    def operate(self, close: bool, on_done: Callable[[Any], None] | None = None) -> None: ...

    def sensed_closed(self) -> bool | None: ...

    def ready_in_s(self) -> float: ...


class ChangeoverActuator(Protocol):
    """The grid/solar changeover (``hw.changeover.Changeover`` fits)."""

    @property
    def selected(self) -> str: ...

    @property
    def busy(self) -> bool: ...

    def select(self, source: str, on_done: Callable[[str], None] | None = None) -> bool: ...


class Scheduler(Protocol):
    """Runs a callback after a delay (s); an asyncio loop fits."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


@dataclass(frozen=True)
class RelayRecord:
    """Persisted disconnector state.

    control_state / control_mode: class 70 attributes 3 and 4; relay_closed: the commanded relay
    position; operation_count: coil pulses over the meter's life; last_change_utc: time of the
    last pulse; pending: saved before a pulse whose feedback has not been checked yet;
    limiter_state / limiter_attempts / limiter_cause: the class 71 limiter's trip or lockout
    and its automatic reconnection count (a restart must not clear a lockout); local_causes:
    the local disconnect causes holding the supply off ("limiter", "credit");
    max_power_w / max_phase_unbalance_w: the STS class 2 subclass 0 / 6 limits (W, None = no
    limit; a token cannot be entered twice, so they must survive a restart); limiter_config: the
    class 71 settings last written over DLMS (None = the configuration file's); supply_source:
    the grid/solar source the changeover selected last (None without a changeover).
    """

    control_state: int
    control_mode: int
    relay_closed: bool
    operation_count: int = 0
    last_change_utc: _dt.datetime | None = None
    pending: bool = False
    limiter_state: str = LimiterState.ARMED.value
    limiter_attempts: int = 0
    limiter_cause: str | None = None
    local_causes: tuple[str, ...] = ()
    max_power_w: float | None = None
    max_phase_unbalance_w: float | None = None
    limiter_config: LimiterConfig | None = None
    supply_source: str | None = None


class RelayStateStore(Protocol):
    """Durable storage of :class:`RelayRecord` (``meterd.store.relay_store.RelayStore`` fits)."""

    def load(self) -> RelayRecord | None: ...

    def save(self, record: RelayRecord) -> None: ...


# ---------------------------------------------------------------------------- service


@dataclass(frozen=True)
class LoadControlConfig:
    """control_mode: class 70 mode at first start (later the persisted one wins);
    max_retries: extra pulses after a feedback mismatch; limiter: class 71 settings;
    supply: changeover settings (None = single source)."""

    control_mode: int = 1
    max_retries: int = 2
    limiter: LimiterConfig = field(default_factory=LimiterConfig)
    supply: SupplyConfig | None = None


@dataclass(frozen=True)
class LoadControlStatus:
    """A snapshot for displays and the API."""

    control_state: ControlState
    control_mode: int
    output_state: bool
    relay_fault: bool
    operation_count: int
    last_change_utc: _dt.datetime | None
    limiter_state: LimiterState
    local_causes: frozenset[str]
    supply: Source | None
    limiter_attempts: int = 0


LIMITER_CAUSE = "limiter"
CREDIT_CAUSE = "credit"


class LoadControl:
    """Disconnector, limiter, credit, buttons and supply changeover in one owner."""

    def __init__(self, relay: RelayActuator, store: RelayStateStore, events: EventSink, clock: Clock,
                 scheduler: Scheduler, config: LoadControlConfig | None = None,
                 changeover: ChangeoverActuator | None = None) -> None:
        self.config = config or LoadControlConfig()
        self._relay = relay
        self._store = store
        self._events = events
        self._clock = clock
        self._scheduler = scheduler
        self._changeover = changeover
        self.dc = DisconnectControl(self.config.control_mode)
        self.limiter = Limiter(self.config.limiter)
        self.supply = SupplySelector(self.config.supply) if self.config.supply else None
        self._causes: set[str] = set()
        self._written_config: LimiterConfig | None = None   # class 71 settings written over DLMS
        self._record = RelayRecord(int(self.dc.control_state), self.dc.control_mode, True)
        self._position: bool | None = None   # verified (or trusted) relay position
        self._attempt = 0
        self._fault = False
        self._retry_pending = False
        self.started = False

    # ------------------------------------------------------------------ start-up

    def start(self) -> None:
        """Restore the persisted state; pulse only if the relay is not already there."""
        record = self._store.load()
        if record is not None:
            self.dc = DisconnectControl(record.control_mode, ControlState(record.control_state))
            self._record = record
            self._restore_local(record)
        else:
            self._record = replace(self._record, relay_closed=self.dc.wanted_output)
        sensed = self._relay.sensed_closed()
        wanted = self.dc.wanted_output
        if sensed == wanted or (sensed is None and record is not None and not record.pending):
            self._position = wanted
            self.dc.output_state = wanted
            self._save(pending=False)
        else:
            self.dc.output_state = bool(sensed)
        self.started = True
        self._drive(fresh=True)
        self._drive_changeover()

    def _restore_local(self, record: RelayRecord) -> None:
        if record.limiter_config is not None:
            self._written_config = record.limiter_config
            self.limiter.set_config(record.limiter_config)
        self.limiter.set_max_power_w(record.max_power_w)
        self.limiter.set_max_phase_unbalance_w(record.max_phase_unbalance_w)
        if self.supply is not None and record.supply_source is not None:
            self.supply.restore(Source(record.supply_source))
        cause = Cause(record.limiter_cause) if record.limiter_cause else None
        self.limiter.restore(LimiterState(record.limiter_state), record.limiter_attempts, cause,
                             self._clock.mono())
        self._causes = set(record.local_causes)

    # ------------------------------------------------------------------ class 70 API

    def remote_disconnect(self) -> ActionResult:
        """Class 70 method 1; returns the DLMS action result."""
        return self.command(Trigger.REMOTE_DISCONNECT).action_result

    def remote_reconnect(self) -> ActionResult:
        """Class 70 method 2; returns the DLMS action result."""
        return self.command(Trigger.REMOTE_RECONNECT).action_result

    def manual_disconnect(self) -> Outcome:
        """Customer disconnect button (transition f)."""
        return self.command(Trigger.MANUAL_DISCONNECT)

    def manual_reconnect(self) -> Outcome:
        """Customer reconnect button (transition e)."""
        return self.command(Trigger.MANUAL_RECONNECT)

    def button_pressed(self, long_press: bool = False) -> Outcome:
        """The meter/CIU push button: a press reconnects when ready for reconnection; a long
        press (held >= 3 s, timed by the caller) disconnects when connected."""
        if long_press and self.dc.control_state is ControlState.CONNECTED:
            return self.manual_disconnect()
        return self.manual_reconnect()

    def set_control_mode(self, mode: int) -> None:
        """Write class 70 attribute 4 (mode 0 forces connected)."""
        self.dc.set_control_mode(mode)
        self._save(pending=self._record.pending)
        self._drive(fresh=True)

    @property
    def control_state(self) -> ControlState:
        """Class 70 attribute 3."""
        return self.dc.control_state

    @property
    def control_mode(self) -> int:
        """Class 70 attribute 4."""
        return self.dc.control_mode

    @property
    def output_state(self) -> bool:
        """Class 70 attribute 2: the physical relay position (True = connected)."""
        return self.dc.output_state

    def command(self, trigger: Trigger, cause: str | None = None) -> Outcome:
        """Run one class 70 trigger through the table, the local-cause check and the relay."""
        outcome = self.dc.evaluate(trigger)
        if outcome.accepted and self._blocked(trigger, outcome, cause):
            outcome = Outcome(trigger, outcome.before, outcome.before, refusal=Refusal.BLOCKED)
        if not outcome.accepted:
            return outcome
        self.dc.apply(trigger)
        if trigger in (Trigger.MANUAL_RECONNECT, Trigger.REMOTE_RECONNECT) and outcome.after is ControlState.CONNECTED:
            self._clear_limiter()
        if outcome.transition is not None:
            self._log(TRANSITION_EVENT[outcome.transition], trigger=trigger.value,
                      transition=outcome.transition, before=int(outcome.before),
                      after=int(outcome.after), cause=cause)
            self._save(pending=self._record.pending)
        self._drive(fresh=cause is None or outcome.changed)
        return outcome

    def _blocked(self, trigger: Trigger, outcome: Outcome, cause: str | None) -> bool:
        if trigger not in (Trigger.MANUAL_RECONNECT, Trigger.LOCAL_RECONNECT):
            return False
        if outcome.after is not ControlState.CONNECTED:
            return False
        others = self._causes - {cause} if cause else set(self._causes)
        if trigger is Trigger.MANUAL_RECONNECT:
            others.discard(LIMITER_CAUSE)   # a person overrides the limiter, not the credit
        return bool(others)

    def _clear_limiter(self) -> None:
        self._causes.discard(LIMITER_CAUSE)
        self.limiter.clear()

    # ------------------------------------------------------------------ credit

    def credit_disconnect(self) -> Outcome:
        """The credit account ran out: local disconnection (g)."""
        self._causes.add(CREDIT_CAUSE)
        outcome = self.command(Trigger.LOCAL_DISCONNECT, cause=CREDIT_CAUSE)
        self._save(pending=self._record.pending)
        return outcome

    def credit_reconnect(self) -> Outcome:
        """Credit is available again: local reconnection (h) if nothing else holds the supply off
        and the control mode allows it; otherwise the meter waits for a button press."""
        self._causes.discard(CREDIT_CAUSE)
        outcome = self.command(Trigger.LOCAL_RECONNECT, cause=CREDIT_CAUSE)
        self._save(pending=self._record.pending)
        return outcome

    # ------------------------------------------------------------------ limiter

    def set_max_power_w(self, limit_w: float | None) -> None:
        """Maximum power limit (W) from an STS class 2 token; None or 0 removes it."""
        old = self.limiter.max_power_w
        self.limiter.set_max_power_w(limit_w)
        self._save(pending=self._record.pending)
        self._log(DisconnectorEvent.LIMITER_THRESHOLD_CHANGED, source="sts", old_w=old,
                  new_w=self.limiter.max_power_w)

    def set_max_phase_unbalance_w(self, limit_w: float | None) -> None:
        """Maximum phase power unbalance limit (W) from an STS class 2 subclass 6 token; None or
        0 removes it. Saved before the event is logged."""
        old = self.limiter.max_phase_unbalance_w
        self.limiter.set_max_phase_unbalance_w(limit_w)
        self._save(pending=self._record.pending)
        self._log(DisconnectorEvent.LIMITER_THRESHOLD_CHANGED, source="sts", limit="phase_unbalance",
                  old_w=old, new_w=self.limiter.max_phase_unbalance_w)

    def set_limiter_config(self, config: LimiterConfig) -> None:
        """New class 71 settings (DLMS write); they replace the configuration file's, also after a
        restart."""
        old = self.limiter.config
        self.limiter.set_config(config)
        self._written_config = config
        self._save(pending=self._record.pending)
        self._log(DisconnectorEvent.LIMITER_THRESHOLD_CHANGED, source="dlms",
                  old_normal=old.threshold_normal, new_normal=config.threshold_normal,
                  old_emergency=old.threshold_emergency, new_emergency=config.threshold_emergency)

    def on_reading(self, reading: Reading) -> None:
        """Feed one metering cycle to the limiter and act on its decisions."""
        for action in self.limiter.evaluate(reading, self._clock.utc()):
            self._limiter_action(action)

    def _limiter_action(self, action: LimiterAction) -> None:
        detail = {"cause": action.cause.value, "value": action.value, "threshold": action.threshold}
        if action.kind is ActionKind.DISCONNECT:
            code = (DisconnectorEvent.OVERCURRENT_TRIP if action.cause is Cause.OVERCURRENT
                    else DisconnectorEvent.LIMITER_THRESHOLD_EXCEEDED)
            self._log(code, **detail)
            self._causes.add(LIMITER_CAUSE)
            self.command(Trigger.LOCAL_DISCONNECT, cause=LIMITER_CAUSE)
        elif action.kind is ActionKind.LOCKOUT:
            self._log(DisconnectorEvent.LIMITER_LOCKOUT, attempts=self.limiter.attempts, **detail)
        else:
            self._log(DisconnectorEvent.LIMITER_THRESHOLD_OK, attempt=self.limiter.attempts, **detail)
            self._causes.discard(LIMITER_CAUSE)
            self.command(Trigger.LOCAL_RECONNECT, cause=LIMITER_CAUSE)
        self._save(pending=self._record.pending)

    # ------------------------------------------------------------------ supply changeover

    def on_supply_voltages(self, grid_voltage_v: float, solar_voltage_v: float | None,
                           solar_present: bool | None = None) -> SwapEvent | None:
        """Feed the grid voltage (V) and the solar source's voltage (V) or, from a voltage-detect
        input, its presence; swaps the changeover when the selector says so."""
        if self.supply is None:
            return None
        event = self.supply.update(grid_voltage_v, solar_voltage_v, self._clock.mono(), solar_present)
        if event is not None:
            self._log(_swap_code(event), reason=event.reason.value, from_source=event.from_source.value,
                      to_source=event.to_source.value, grid_v=event.grid_voltage_v,
                      solar_v=event.solar_voltage_v, solar_present=event.solar_present)
            self._save(pending=self._record.pending)
        self._drive_changeover()
        return event

    def _drive_changeover(self, _done: str | None = None) -> None:
        if self._changeover is None or self.supply is None or self._changeover.busy:
            return
        if self._changeover.selected != self.supply.active.value:
            self._changeover.select(self.supply.active.value, self._drive_changeover)

    # ------------------------------------------------------------------ relay

    def _drive(self, fresh: bool = False) -> None:
        """Bring the relay to the wanted position (one pulse at a time, bounded retries)."""
        if fresh:
            self._attempt = 0
            self._fault = False
        if not self.started or self._relay.busy or self._retry_pending:
            return
        wanted = self.dc.wanted_output
        if self._position == wanted and not self._record.pending:
            return
        if self._fault:
            return
        wait_s = self._relay.ready_in_s()
        if wait_s > 0:
            self._retry_pending = True
            self._scheduler.call_later(wait_s, self._retry)
            return
        self._pulse(wanted)

    def _retry(self) -> None:
        self._retry_pending = False
        self._drive()

    def _pulse(self, close: bool) -> None:
        self._attempt += 1
        self._record = replace(self._record, relay_closed=close,
                               operation_count=self._record.operation_count + 1,
                               last_change_utc=self._clock.utc())
        self._save(pending=True)
        self._position = None
        self._relay.operate(close, self._on_relay_done)

    def _on_relay_done(self, result: RelayResult) -> None:
        sensed = result.sensed_closed
        self.dc.output_state = result.commanded_closed if sensed is None else sensed
        if result.ok:
            self._position = result.commanded_closed
            self._save(pending=False)
        else:
            self._position = sensed
            self._mismatch(result)
        self._drive()

    def _mismatch(self, result: RelayResult) -> None:
        self._log(DisconnectorEvent.DISCONNECT_RECONNECT_FAILURE, commanded=result.commanded_closed,
                  sensed=result.sensed_closed, attempt=self._attempt)
        if self._attempt > self.config.max_retries:
            self._fault = True
            self._save(pending=False)
            self._log(DisconnectorEvent.RELAY_FAULT_RETRIES_EXHAUSTED, commanded=result.commanded_closed,
                      sensed=result.sensed_closed, attempts=self._attempt)

    # ------------------------------------------------------------------ persistence, events, status

    def _save(self, pending: bool) -> None:
        lim = self.limiter
        self._record = replace(self._record, control_state=int(self.dc.control_state),
                               control_mode=self.dc.control_mode, pending=pending,
                               limiter_state=lim.state.value, limiter_attempts=lim.attempts,
                               limiter_cause=lim.trip_cause.value if lim.trip_cause else None,
                               local_causes=tuple(sorted(self._causes)), max_power_w=lim.max_power_w,
                               max_phase_unbalance_w=lim.max_phase_unbalance_w,
                               limiter_config=self._written_config,
                               supply_source=self.supply.active.value if self.supply else None)
        self._store.save(self._record)

    def _log(self, code: DisconnectorEvent, **detail: Any) -> None:
        self._events.record(int(code), self._clock.utc(), {"event": code.name.lower(), **detail})

    def status(self) -> LoadControlStatus:
        """Current state for displays and the local API."""
        return LoadControlStatus(
            control_state=self.dc.control_state, control_mode=self.dc.control_mode,
            output_state=self.dc.output_state, relay_fault=self._fault,
            operation_count=self._record.operation_count, last_change_utc=self._record.last_change_utc,
            limiter_state=self.limiter.state, local_causes=frozenset(self._causes),
            supply=self.supply.active if self.supply else None, limiter_attempts=self.limiter.attempts)


def _swap_code(event: SwapEvent) -> DisconnectorEvent:
    if event.reason is SwapReason.BOTH_LOST:
        return DisconnectorEvent.SUPPLY_BOTH_LOST
    if event.to_source is Source.SOLAR:
        return DisconnectorEvent.SUPPLY_SWAP_TO_SOLAR
    return DisconnectorEvent.SUPPLY_SWAP_TO_GRID

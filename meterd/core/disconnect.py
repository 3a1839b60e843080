"""Disconnect control (COSEM interface class 70, OBIS 0-0:96.3.10.255) as a transition table.

States (attribute 3, control_state): 0 disconnected, 1 connected, 2 ready_for_reconnection.
Control modes (attribute 4, control_mode) 0-6 enable subsets of the transitions a-h of the
Blue Book (DLMS UA 1000-1) state diagram:

====  ==================  ==========================  ======================================
 id   trigger             from -> to                  meaning
====  ==================  ==========================  ======================================
 a    remote_reconnect    disconnected -> connected    direct remote reconnection
 b    remote_disconnect   connected -> disconnected
 c    remote_disconnect   ready -> disconnected
 d    remote_reconnect    disconnected -> ready        remote release, customer confirms
 e    manual_reconnect    ready -> connected           button on the meter / CIU
 f    manual_disconnect   connected -> ready           button on the meter / CIU
 g    local_disconnect    connected -> ready           limiter, credit, protection
 h    local_reconnect     ready -> connected           limiter / credit recovered
====  ==================  ==========================  ======================================

Mode 0 keeps the object connected and refuses every trigger. output_state (attribute 2) is the
physical position reported by the relay (True = closed/connected); the wanted position is
:attr:`DisconnectControl.wanted_output`. Also defined here, in one place: the event codes of the
disconnector control log (0-0:99.98.2.255, codes in 0-0:96.11.2.255) used by load control.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meterd.core.errors import MeterError


class ControlModeError(MeterError, ValueError):
    """A control_mode outside 0..6 was given."""


class ControlState(enum.IntEnum):
    """Class 70 attribute 3."""

    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


class Trigger(enum.Enum):
    """What asks for a transition."""

    REMOTE_DISCONNECT = "remote_disconnect"
    REMOTE_RECONNECT = "remote_reconnect"
    MANUAL_DISCONNECT = "manual_disconnect"
    MANUAL_RECONNECT = "manual_reconnect"
    LOCAL_DISCONNECT = "local_disconnect"
    LOCAL_RECONNECT = "local_reconnect"

    @property
    def disconnects(self) -> bool:
        """True for the three disconnect triggers."""
        return self.value.endswith("_disconnect")


@dataclass(frozen=True)
class Transition:
    """One row of the class 70 state diagram."""

    name: str
    trigger: Trigger
    source: ControlState
    target: ControlState


_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION

TRANSITIONS: dict[str, Transition] = {
    t.name: t for t in (
        Transition("a", Trigger.REMOTE_RECONNECT, _D, _C),
        Transition("b", Trigger.REMOTE_DISCONNECT, _C, _D),
        Transition("c", Trigger.REMOTE_DISCONNECT, _R, _D),
        Transition("d", Trigger.REMOTE_RECONNECT, _D, _R),
        Transition("e", Trigger.MANUAL_RECONNECT, _R, _C),
        Transition("f", Trigger.MANUAL_DISCONNECT, _C, _R),
        Transition("g", Trigger.LOCAL_DISCONNECT, _C, _R),
        Transition("h", Trigger.LOCAL_RECONNECT, _R, _C),
    )
}
"""The class 70 transitions a-h, keyed by their letter."""

MODE_TRANSITIONS: dict[int, frozenset[str]] = {
    0: frozenset(),
    1: frozenset("bcfgde"),
    2: frozenset("bcfgae"),
    3: frozenset("bcgde"),
    4: frozenset("bcgae"),
    5: frozenset("bcfgdeh"),
    6: frozenset("bcgdeh"),
}
"""Transitions enabled by each control_mode (class 70 attribute 4)."""


class Refusal(enum.Enum):
    """Why a trigger was not carried out."""

    NOT_IN_MODE = "not enabled in this control_mode"
    NOT_FROM_STATE = "no transition from the present control_state"
    BLOCKED = "blocked by an active local disconnect cause"


class ActionResult(enum.IntEnum):
    """DLMS Action-Result codes returned for class 70 methods."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OTHER_REASON = 250


_REFUSAL_RESULT = {
    Refusal.NOT_IN_MODE: ActionResult.READ_WRITE_DENIED,
    Refusal.NOT_FROM_STATE: ActionResult.OTHER_REASON,
    Refusal.BLOCKED: ActionResult.TEMPORARY_FAILURE,
}


@dataclass(frozen=True)
class Outcome:
    """Result of a trigger: accepted (with the transition taken, or None for "already there") or
    refused with a reason. ``action_result`` is what a DLMS method answer carries."""

    trigger: Trigger
    before: ControlState
    after: ControlState
    transition: str | None = None
    refusal: Refusal | None = None

    @property
    def accepted(self) -> bool:
        """True unless refused."""
        return self.refusal is None

    @property
    def changed(self) -> bool:
        """True when control_state changed."""
        return self.before != self.after

    @property
    def action_result(self) -> ActionResult:
        """DLMS Action-Result for this outcome."""
        if self.refusal is None:
            return ActionResult.SUCCESS
        return _REFUSAL_RESULT[self.refusal]


class DisconnectorEvent(enum.IntEnum):
    """Event codes of the disconnector control log (0-0:96.11.2.255).

    59-69 follow the IDIS event code table for the disconnector control log (the same numbers as
    ``meterd.core.event_codes``); 234-239 are project codes in the block that table keeps free
    (195-255), used here for relay faults, limiter lockout, over-current and the supply changeover.
    """

    READY_FOR_MANUAL_RECONNECTION = 59
    MANUAL_DISCONNECTION = 60
    MANUAL_CONNECTION = 61
    REMOTE_DISCONNECTION = 62
    REMOTE_CONNECTION = 63
    LOCAL_DISCONNECTION = 64
    LIMITER_THRESHOLD_EXCEEDED = 65
    LIMITER_THRESHOLD_OK = 66
    LIMITER_THRESHOLD_CHANGED = 67
    DISCONNECT_RECONNECT_FAILURE = 68
    LOCAL_RECONNECTION = 69
    RELAY_FAULT_RETRIES_EXHAUSTED = 234
    LIMITER_LOCKOUT = 235
    OVERCURRENT_TRIP = 236
    SUPPLY_SWAP_TO_SOLAR = 237
    SUPPLY_SWAP_TO_GRID = 238
    SUPPLY_BOTH_LOST = 239


TRANSITION_EVENT: dict[str, DisconnectorEvent] = {
    "a": DisconnectorEvent.REMOTE_CONNECTION,
    "b": DisconnectorEvent.REMOTE_DISCONNECTION,
    "c": DisconnectorEvent.REMOTE_DISCONNECTION,
    "d": DisconnectorEvent.READY_FOR_MANUAL_RECONNECTION,
    "e": DisconnectorEvent.MANUAL_CONNECTION,
    "f": DisconnectorEvent.MANUAL_DISCONNECTION,
    "g": DisconnectorEvent.LOCAL_DISCONNECTION,
    "h": DisconnectorEvent.LOCAL_RECONNECTION,
}
"""The event logged for each transition."""


class DisconnectControl:
    """Class 70 state: control_state, control_mode and the physical output_state."""

    def __init__(self, control_mode: int = 1, control_state: ControlState = ControlState.CONNECTED,
                 output_state: bool | None = None) -> None:
        _check_mode(control_mode)
        self._mode = control_mode
        self._state = ControlState.CONNECTED if control_mode == 0 else control_state
        self.output_state = self.wanted_output if output_state is None else output_state

    @property
    def control_state(self) -> ControlState:
        """Attribute 3."""
        return self._state

    @property
    def control_mode(self) -> int:
        """Attribute 4 (0-6)."""
        return self._mode

    @property
    def wanted_output(self) -> bool:
        """Relay position the control state asks for (True = closed)."""
        return self._state is ControlState.CONNECTED

    def set_control_mode(self, mode: int) -> ControlState:
        """Write attribute 4; mode 0 forces the connected state. Returns the new control_state."""
        _check_mode(mode)
        self._mode = mode
        if mode == 0:
            self._state = ControlState.CONNECTED
        return self._state

    def allowed(self, trigger: Trigger) -> list[Transition]:
        """Transitions this trigger may take in the present control_mode."""
        return [TRANSITIONS[n] for n in sorted(MODE_TRANSITIONS[self._mode])
                if TRANSITIONS[n].trigger is trigger]

    def evaluate(self, trigger: Trigger) -> Outcome:
        """What ``trigger`` would do now, without doing it."""
        before = self._state
        candidates = self.allowed(trigger)
        if not candidates:
            return Outcome(trigger, before, before, refusal=Refusal.NOT_IN_MODE)
        for t in candidates:
            if t.source is before:
                return Outcome(trigger, before, t.target, transition=t.name)
        if self._already_there(trigger, candidates):
            return Outcome(trigger, before, before)
        return Outcome(trigger, before, before, refusal=Refusal.NOT_FROM_STATE)

    def apply(self, trigger: Trigger) -> Outcome:
        """Carry out ``trigger`` if the table allows it; the state is unchanged on refusal."""
        outcome = self.evaluate(trigger)
        if outcome.accepted:
            self._state = outcome.after
        return outcome

    def _already_there(self, trigger: Trigger, candidates: list[Transition]) -> bool:
        if any(t.target is self._state for t in candidates):
            return True
        if trigger.disconnects:
            return self._state is not ControlState.CONNECTED
        return self._state is ControlState.CONNECTED


def _check_mode(mode: int) -> None:
    if mode not in MODE_TRANSITIONS:
        raise ControlModeError(f"control_mode must be 0..6, got {mode!r}")

"""Class 70 disconnect control: every transition a-h in every control mode, refusals, results."""

from __future__ import annotations

import pytest

from meterd.core.disconnect import (
    MODE_TRANSITIONS,
    TRANSITION_EVENT,
    TRANSITIONS,
    ActionResult,
    ControlModeError,
    ControlState,
    DisconnectControl,
    DisconnectorEvent,
    Refusal,
    Trigger,
)

D, C, R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION


def test_table_matches_blue_book_diagram() -> None:
    expected = {
        "a": (Trigger.REMOTE_RECONNECT, D, C), "b": (Trigger.REMOTE_DISCONNECT, C, D),
        "c": (Trigger.REMOTE_DISCONNECT, R, D), "d": (Trigger.REMOTE_RECONNECT, D, R),
        "e": (Trigger.MANUAL_RECONNECT, R, C), "f": (Trigger.MANUAL_DISCONNECT, C, R),
        "g": (Trigger.LOCAL_DISCONNECT, C, R), "h": (Trigger.LOCAL_RECONNECT, R, C),
    }
    assert {n: (t.trigger, t.source, t.target) for n, t in TRANSITIONS.items()} == expected


def test_mode_table() -> None:
    assert MODE_TRANSITIONS[0] == frozenset()
    assert MODE_TRANSITIONS[1] == set("bcdefg")
    assert MODE_TRANSITIONS[2] == set("abcefg")
    assert MODE_TRANSITIONS[3] == set("bcdeg")
    assert MODE_TRANSITIONS[4] == set("abceg")
    assert MODE_TRANSITIONS[5] == set("bcdefgh")
    assert MODE_TRANSITIONS[6] == set("bcdegh")


CASES = [(mode, name) for mode in range(7) for name in TRANSITIONS]


@pytest.mark.parametrize(("mode", "name"), CASES)
def test_every_transition_in_every_mode(mode: int, name: str) -> None:
    t = TRANSITIONS[name]
    dc = DisconnectControl(control_mode=mode, control_state=t.source)
    start = dc.control_state
    outcome = dc.apply(t.trigger)
    if name in MODE_TRANSITIONS[mode]:
        assert outcome.accepted and outcome.transition == name
        assert dc.control_state is t.target
        assert outcome.action_result is ActionResult.SUCCESS
        assert dc.wanted_output is (t.target is C)
    else:
        assert outcome.transition != name
        if outcome.transition is None:
            assert dc.control_state is start


@pytest.mark.parametrize("trigger", list(Trigger))
def test_mode_0_refuses_everything_and_stays_connected(trigger: Trigger) -> None:
    dc = DisconnectControl(control_mode=0, control_state=D)
    assert dc.control_state is C
    outcome = dc.apply(trigger)
    assert outcome.refusal is Refusal.NOT_IN_MODE
    assert outcome.action_result is ActionResult.READ_WRITE_DENIED
    assert dc.control_state is C


def test_remote_reconnect_direct_in_modes_2_and_4_via_ready_otherwise() -> None:
    for mode, target in ((1, R), (2, C), (3, R), (4, C), (5, R), (6, R)):
        dc = DisconnectControl(control_mode=mode, control_state=D)
        assert dc.apply(Trigger.REMOTE_RECONNECT).after is target, mode


def test_manual_disconnect_refused_in_modes_3_4_6() -> None:
    for mode in (3, 4, 6):
        dc = DisconnectControl(control_mode=mode)
        outcome = dc.apply(Trigger.MANUAL_DISCONNECT)
        assert outcome.refusal is Refusal.NOT_IN_MODE
        assert dc.control_state is C


def test_local_reconnect_cannot_undo_remote_disconnect() -> None:
    dc = DisconnectControl(control_mode=5, control_state=D)
    outcome = dc.apply(Trigger.LOCAL_RECONNECT)
    assert outcome.refusal is Refusal.NOT_FROM_STATE
    assert outcome.action_result is ActionResult.OTHER_REASON
    assert dc.control_state is D


def test_manual_reconnect_refused_when_disconnected() -> None:
    dc = DisconnectControl(control_mode=1, control_state=D)
    assert dc.apply(Trigger.MANUAL_RECONNECT).refusal is Refusal.NOT_FROM_STATE


def test_goal_already_reached_is_success_without_transition() -> None:
    dc = DisconnectControl(control_mode=1, control_state=D)
    outcome = dc.apply(Trigger.REMOTE_DISCONNECT)
    assert outcome.accepted and outcome.transition is None and not outcome.changed
    dc = DisconnectControl(control_mode=1, control_state=C)
    assert dc.apply(Trigger.REMOTE_RECONNECT).action_result is ActionResult.SUCCESS
    dc = DisconnectControl(control_mode=1, control_state=R)
    assert dc.apply(Trigger.LOCAL_DISCONNECT).transition is None


def test_set_control_mode_0_forces_connected_and_rejects_bad_modes() -> None:
    dc = DisconnectControl(control_mode=1, control_state=D)
    assert dc.set_control_mode(0) is C
    with pytest.raises(ControlModeError):
        dc.set_control_mode(7)
    with pytest.raises(ControlModeError):
        DisconnectControl(control_mode=-1)


def test_every_transition_has_an_event_code() -> None:
    assert set(TRANSITION_EVENT) == set(TRANSITIONS)
    assert TRANSITION_EVENT["b"] is DisconnectorEvent.REMOTE_DISCONNECTION
    assert int(DisconnectorEvent.LIMITER_THRESHOLD_EXCEEDED) == 65


def test_event_codes_agree_with_the_meter_code_table() -> None:
    """Every code is either the same disconnector-log event in meterd.core.event_codes or not
    used there for anything else."""
    from meterd.core import event_codes

    for event in DisconnectorEvent:
        known = event_codes.EVENT_CODES.get(int(event))
        if known is not None:
            assert event_codes.LogId.DISCONNECTOR in known.logs, event
    assert event_codes.EVENT_CODES[62].name == "REMOTE_DISCONNECTION"

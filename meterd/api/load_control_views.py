"""The local API of the disconnect control: ``GET /relay``, ``POST /relay``, ``POST /relay/button``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meterd.api.schema import Body, Field
from meterd.api.server import ApiError, ApiServer
from meterd.core.disconnect import ControlState, Outcome, Trigger
from meterd.services.load_control import LoadControl, LoadControlStatus

_ACTIONS: dict[str, Trigger] = {
    "disconnect": Trigger.MANUAL_DISCONNECT,
    "reconnect": Trigger.MANUAL_RECONNECT,
    "remote_disconnect": Trigger.REMOTE_DISCONNECT,
    "remote_reconnect": Trigger.REMOTE_RECONNECT,
}


def relay_view(st: LoadControlStatus, lc: LoadControl, button_presses: int, recent_events: list[dict[str, Any]],
               solar_present: bool | None = None, sim_relay: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON view of the load-control state (``GET /relay`` and ``status.relay``): relay and
    class 70 state, the limiter (thresholds in W or A, maxima in W), the button, the last five
    events, the supply source and, in simulation, the simulated relay's contacts."""
    lim = lc.limiter
    view: dict[str, Any] = {
        "output_state": "connected" if st.output_state else "disconnected",
        "control_state": st.control_state.name.lower(), "control_mode": st.control_mode,
        "relay_fault": st.relay_fault, "operation_count": st.operation_count,
        "last_change_utc": st.last_change_utc.isoformat() if st.last_change_utc else None,
        "limiter": {"state": st.limiter_state.value, "attempts": st.limiter_attempts,
                    "monitored": lim.config.monitored.name.lower(),
                    "threshold_normal": lim.config.threshold_normal,
                    "threshold_emergency": lim.config.threshold_emergency,
                    "max_power_w": lim.max_power_w, "max_phase_unbalance_w": lim.max_phase_unbalance_w,
                    "trip_cause": lim.trip_cause.value if lim.trip_cause else None},
        "local_causes": sorted(st.local_causes),
        "button_presses": button_presses,
        "recent_events": recent_events[-5:],
    }
    if st.supply is not None:
        view["supply"] = st.supply.value
        if solar_present is not None:
            view["solar_present"] = solar_present
    if sim_relay is not None:
        view["sim"] = sim_relay
    return view


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    """JSON view of a class 70 trigger's outcome."""
    return {"trigger": outcome.trigger.value, "accepted": outcome.accepted, "transition": outcome.transition,
            "before": ControlState(outcome.before).name.lower(), "after": ControlState(outcome.after).name.lower(),
            "refusal": outcome.refusal.value if outcome.refusal else None,
            "action_result": int(outcome.action_result)}


def relay_routes(api: ApiServer, lc: LoadControl, view: Callable[[], dict[str, Any]],
                 press: Callable[[bool], Outcome]) -> None:
    """``GET /relay`` (``view()``), ``POST /relay {"action": ..., "control_mode": 0..6}`` and
    ``POST /relay/button {"long": bool}`` (``press(long)``: one press of the relay button)."""

    def get_relay(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, view()

    def post_relay(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "control_mode" in body:
            mode = body["control_mode"]
            if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 6:
                raise ApiError(400, "control_mode must be an integer 0..6")
            lc.set_control_mode(mode)
            if "action" not in body:
                return 200, {"relay": view()}
        action = body.get("action")
        if action not in _ACTIONS:
            raise ApiError(400, f"action must be one of {', '.join(sorted(_ACTIONS))}")
        outcome = lc.command(_ACTIONS[str(action)])
        return (200 if outcome.accepted else 409), {**outcome_dict(outcome), "relay": view()}

    def post_button(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        long_press = body.get("long", False)
        if not isinstance(long_press, bool):
            raise ApiError(400, "long must be true or false")
        outcome = press(long_press)
        return (200 if outcome.accepted else 409), {**outcome_dict(outcome), "relay": view()}

    api.route("GET", "/relay", get_relay,
              description="Relay and disconnect control state, control mode, limiter, recent relay events.")
    api.route("POST", "/relay", post_relay, description="A local or remote disconnect/reconnect, or the control mode.",
              body=Body((Field("action", str, "what to do", choices=tuple(sorted(_ACTIONS))),
                         Field("control_mode", int, "disconnect control mode (0-0:96.3.10.255)", minimum=0, maximum=6))))
    api.route("POST", "/relay/button", post_button, description="Press the relay button.",
              body=Body((Field("long", bool, "a long press (local disconnect)"),)))

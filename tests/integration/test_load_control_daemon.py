"""A real meterd process: remote disconnection over DLMS (gurux, management HLS-GMAC) cuts the
metered current; the relay state shows in the status; after SIGTERM and a new start the relay is
still open without another coil pulse; local reconnection over the API brings the load back."""

from __future__ import annotations

import time
from typing import Any

from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSDisconnectControl

from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import SocketIO
from tests.meterd_process import MeterdProcess


def wait_for(meter: MeterdProcess, predicate: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view = meter.status()
        if predicate(view):
            return view
        assert time.monotonic() < deadline, f"not reached: {view.get('relay')}"
        time.sleep(0.05)


def currents(view: dict[str, Any]) -> list[float]:
    return [view["phases"][p]["current_a"] for p in ("L1", "L2", "L3")]


def test_remote_disconnect_survives_a_restart_without_a_pulse(tmp_path):
    meter = MeterdProcess(tmp_path, speed="20")
    try:
        assert meter.view["relay"]["output_state"] == "connected"
        io = SocketIO(meter.dlms_port)
        gs = GuruxSession(make_client(1, invocation_counter=1), io.send, io.receive)
        gs.connect()
        try:
            gs.method(GXDLMSDisconnectControl("0.0.96.3.10.255"), 1, 0, DataType.INT8)
        finally:
            gs.close()
        view = wait_for(meter, lambda v: v["relay"]["output_state"] == "disconnected" and max(currents(v)) == 0.0)
        assert view["relay"]["control_state"] == "disconnected" and view["relay"]["operation_count"] == 1
        code, relay = meter.api("GET", "/relay")
        assert code == 200 and relay["last_change_utc"] is not None
    finally:
        assert meter.stop() == 0
    again = MeterdProcess(tmp_path, speed="20")
    try:
        view = again.status()
        time.sleep(0.5)
        view = again.status()
        assert view["relay"]["output_state"] == "disconnected" and view["relay"]["operation_count"] == 1
        assert view["relay"]["sim"]["contact_closed"] is False and max(currents(view)) == 0.0
        code, answer = again.api("POST", "/relay", {"action": "remote_reconnect"})
        assert code == 200 and answer["transition"] == "d"   # mode 5: ready for the customer
        code, answer = again.api("POST", "/relay/button", {})
        assert code == 200 and answer["transition"] == "e"
        view = wait_for(again, lambda v: min(currents(v)) > 4.9)
        assert view["relay"]["operation_count"] == 2
    finally:
        assert again.stop() == 0

"""Media fallback decisions on a manual clock: switch within the bound, back with hysteresis, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.services.media import MediaPolicy, MediaSelector

POLICY = MediaPolicy(check_period_s=10.0, recheck_s=2.0, confirm_failures=2, connect_timeout_s=3.0,
                     standby_check_s=60.0, switch_back_s=300.0)


class Events:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def record(self, code: int, utc: dt.datetime, detail: Any = None) -> None:
        self.entries.append((ec.lookup(code).name, dict(detail or {})))

    def names(self) -> list[str]:
        return [n for n, _ in self.entries]


def drive(sel: MediaSelector, clock: SimClock, seconds: float, reachable: Callable[[str], bool],
          step_s: float = 0.5, timeout_s: float = 0.0) -> list[tuple[float, str]]:
    """Run the selector's due checks every ``step_s`` for ``seconds``; a failing check costs
    ``timeout_s`` of meter time. Returns (t, medium) at each change of the current medium."""
    changes: list[tuple[float, str]] = []
    start = clock.mono()
    last = sel.state().current
    while clock.mono() - start < seconds:
        for name in sel.due():
            sel.started(name)
            ok = reachable(name)
            if not ok and timeout_s:
                clock.advance(timeout_s)
            sel.result(name, ok, "" if ok else "connect timed out")
        if sel.state().current != last:
            last = sel.state().current
            changes.append((clock.mono() - start, last))
        clock.advance(step_s)
    return changes


def test_primary_cut_switches_within_the_bound_and_back_with_hysteresis() -> None:
    clock, events = SimClock(), Events()
    sel = MediaSelector(["ethernet", "cellular"], POLICY, clock, events)
    cut: set[str] = set()
    drive(sel, clock, 30, lambda m: m not in cut)
    assert sel.state().current == "ethernet" and sel.state().up
    assert events.entries == []
    cut.add("ethernet")
    changes = drive(sel, clock, 60, lambda m: m not in cut, timeout_s=POLICY.connect_timeout_s)
    assert changes and changes[0][1] == "cellular"
    assert changes[0][0] <= POLICY.switch_bound_s()
    assert sel.state().up
    assert events.names() == ["MEDIUM_UNHEALTHY", "MEDIUM_SWITCHED"]
    assert events.entries[1][1]["from"] == "ethernet" and events.entries[1][1]["to"] == "cellular"
    cut.clear()
    changes = drive(sel, clock, 600, lambda m: m not in cut)
    assert [m for _, m in changes] == ["ethernet"]
    # back only after the primary passed every check for switch_back_s, and within one standby check more
    assert POLICY.switch_back_s <= changes[0][0] <= POLICY.switch_back_s + POLICY.standby_check_s + 1
    assert events.names()[2:] == ["MEDIUM_HEALTHY", "MEDIUM_SWITCHED"]


def test_a_flapping_primary_does_not_drag_the_traffic_back() -> None:
    clock, events = SimClock(), Events()
    sel = MediaSelector(["ethernet", "cellular"], POLICY, clock, events)
    drive(sel, clock, 20, lambda m: True)
    flaps = {"t": 0}

    def reachable(medium: str) -> bool:
        if medium == "cellular":
            return True
        flaps["t"] += 1
        return flaps["t"] % 4 != 0  # the Ethernet fails every fourth check
    drive(sel, clock, 20, lambda m: m != "ethernet", timeout_s=1.0)
    assert sel.state().current == "cellular"
    changes = drive(sel, clock, 3600, reachable)
    assert changes == []  # never healthy for 300 s in a row
    assert sel.switches == 1


def test_no_medium_is_one_event_and_the_uplink_is_down() -> None:
    clock, events = SimClock(), Events()
    sel = MediaSelector(["ethernet", "cellular"], POLICY, clock, events)
    drive(sel, clock, 15, lambda m: True)
    drive(sel, clock, 600, lambda m: False, timeout_s=1.0)
    state = sel.state()
    assert not state.up and "no medium" in state.reason and "connect timed out" in state.reason
    assert events.names().count("NO_MEDIUM") == 1
    assert sel.state().current == "cellular"  # the last one that worked stays current
    drive(sel, clock, 120, lambda m: m == "cellular")
    assert sel.state().current == "cellular" and sel.state().up
    assert events.names()[-1] == "MEDIUM_HEALTHY"


def test_a_send_failure_asks_for_a_check_now() -> None:
    clock = SimClock()
    sel = MediaSelector(["ethernet"], POLICY, clock, None)
    sel.started("ethernet")
    sel.result("ethernet", True)
    assert sel.due() == []
    sel.send_failed("ethernet")
    assert sel.due() == ["ethernet"]
    sel.started("ethernet")
    sel.result("ethernet", True)
    sel.check_soon("ethernet")
    assert sel.due() == ["ethernet"]
    sel.check_soon("nothing")  # an unknown medium is ignored


def test_policy_bound_and_validation() -> None:
    assert POLICY.switch_bound_s() == 10 + 2 + 3 * 3
    with pytest.raises(ValueError):
        MediaPolicy(confirm_failures=0)
    with pytest.raises(ValueError):
        MediaSelector(["a", "a"], POLICY, SimClock(), None)

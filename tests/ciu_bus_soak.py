"""A CIU and a meter on the simulated 2-wire RS-485 bus for a stretch of simulated time: a customer
types tokens (key by key) and short codes at random moments while the meter pushes STATUS every
5 s. Used by the soak test and by ``bench/bench_ciu_bus.py``; no real time passes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ciu.core.state import CiuState, Screen
from ciu.runtime.client import CiuLinkClient
from hw.serial_link import BusDrivers, SimWire, WireFaults
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import LinkDown, LinkEndpoint, LinkEvent, Message, MessageReceived, MsgKind, Role
from meterd.services.ciu_service import CiuService

PAIR_KEY = bytes(range(32))  # throwaway test key
#: Driver timing of a kernel RS-485 port with ``rs485-rts-delay = <1 1>`` (ms) and its latency.
DRIVERS = BusDrivers(turn_on_s=0.001, turn_off_s=0.002)
KEY_INTERVAL_S = 0.25  # a customer types about four keys a second


def rand_source(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


@dataclass
class SoakReport:
    """What one run saw: tokens typed and applied, latencies (s, ENTER to result on the CIU screen)."""

    seconds: float
    tokens_typed: list[str] = field(default_factory=list)
    tokens_applied: list[str] = field(default_factory=list)
    results_shown: int = 0
    token_latency_s: list[float] = field(default_factory=list)
    short_codes: int = 0
    short_code_latency_s: list[float] = field(default_factory=list)
    status_sent: int = 0
    status_received: int = 0
    status_pending: int = 0
    link_downs: list[str] = field(default_factory=list)
    collisions: int = 0
    meter_stats: Any = None
    ciu_stats: Any = None

    @property
    def status_ratio(self) -> float:
        """STATUS messages shown on the CIU / sent by the meter (the last one may still be on its way)."""
        done = self.status_sent - self.status_pending
        return self.status_received / done if done else 1.0

    @staticmethod
    def quantile(values: list[float], q: float) -> float:
        """Nearest-rank quantile (q in 0..1)."""
        ordered = sorted(values)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class _Meter:
    def __init__(self) -> None:
        self.applied: list[str] = []

    def submit_token(self, digits: str) -> dict[str, Any]:
        if digits in self.applied:
            return {"accepted": False, "code": "used"}
        self.applied.append(digits)
        return {"accepted": True, "code": "accepted", "amount": 10.0, "credit": 10.0 * len(self.applied), "unit": "kWh"}

    def display_data(self) -> dict[str, Any]:
        return {"credit": 10.0 * len(self.applied), "unit": "kWh", "relay": True, "power_w": 2300.0}


def run_soak(seconds: float, seed: int = 1, dt_s: float = 0.01, faults: WireFaults | None = None) -> SoakReport:
    """Run the bus for ``seconds`` of simulated time, stepping every ``dt_s`` (s, like the CIU's loop)."""
    rng = random.Random(seed)
    clock = SimClock()
    wire = SimWire(clock.mono, baud=9600, faults=faults, seed=seed, drivers=DRIVERS)
    meter = _Meter()
    report = SoakReport(seconds)
    service = CiuService(LinkEndpoint(Role.METER, clock, rand_source(seed + 1), PAIR_KEY), clock, meter.submit_token,
                         meter.display_data, utc_s=lambda: int(clock.utc_timestamp()))
    link_send = service.link.send

    def counting_send(message: Message) -> bytes:
        if message.kind is MsgKind.STATUS:
            report.status_sent += 1
        return link_send(message)

    service.link.send = counting_send  # type: ignore[method-assign]
    ids = iter(range(1, 10**9))
    state = CiuState(clock, lambda: next(ids))
    client = CiuLinkClient(state, LinkEndpoint(Role.CIU, clock, rand_source(seed + 2), PAIR_KEY), wire.b)

    def note(events: list[LinkEvent]) -> None:
        for event in events:
            if isinstance(event, LinkDown):
                report.link_downs.append(event.reason)
            elif isinstance(event, MessageReceived) and event.message.kind is MsgKind.STATUS:
                report.status_received += 1

    keys: list[tuple[float, str]] = []  # (when, key) still to type
    entered: tuple[float, str] | None = None  # (ENTER time, "token" | "code")
    typing = "token"
    next_entry = 2.0 + rng.uniform(0.0, 10.0)
    steps = int(round(seconds / dt_s))
    for _ in range(steps):
        clock.advance(dt_s)
        now = clock.mono()
        note(service.receive_bytes(wire.a.read()))
        note(service.poll())
        out = service.data_to_send()
        if out:
            wire.a.write(out)
        while keys and keys[0][0] <= now:
            _, key = keys.pop(0)
            client.press(key)
            if key == "ENTER":
                entered = (now, typing)
        note(client.pump())
        view = state.view()
        if entered is not None:
            at, what = entered
            if what == "token" and view.screen is Screen.RESULT:
                report.token_latency_s.append(now - at)
                report.results_shown += 1
                entered = None
            elif what == "code" and view.screen is Screen.INFO:
                report.short_code_latency_s.append(now - at)
                entered = None
        if not keys and entered is None and now >= next_entry and view.screen is not Screen.WAITING:
            if rng.random() < 0.8:
                digits = f"{len(report.tokens_typed):04d}" + "".join(rng.choice("0123456789") for _ in range(16))
                report.tokens_typed.append(digits)
                typed, typing = [*digits, "ENTER"], "token"
            else:
                report.short_codes += 1
                typed, typing = [rng.choice("1234567"), "ENTER"], "code"
            keys = [(now + KEY_INTERVAL_S * (i + 1), key) for i, key in enumerate(typed)]
            next_entry = now + len(typed) * KEY_INTERVAL_S + rng.uniform(3.0, 40.0)
    report.tokens_applied = list(meter.applied)
    report.collisions = wire.collisions
    report.status_pending = service.link.pending_messages
    report.meter_stats, report.ciu_stats = service.link.stats, client.link.stats
    return report

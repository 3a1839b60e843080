"""The modem's supervision on a manual clock: back-off, events, diagnostics, connection windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.core.modem import (
    Bearer,
    ModemState,
    ModemStatus,
    RadioSignal,
    Registration,
    SimState,
    Technology,
)
from meterd.services.interfaces import InterfaceBoard
from meterd.services.modem import ModemSettings, ModemSupervisor, Window

REGISTERED = ModemStatus(state=ModemState.REGISTERED, model="EG25", sim=SimState.READY,
                         registration=Registration.HOME, operator_name="Op", operator_code="00101",
                         technology=Technology.LTE, quality_pct=70, signal=RadioSignal(-65, -95, -10, 12))


class Events:
    def __init__(self) -> None:
        self.entries: list[tuple[float, str, dict[str, Any]]] = []
        self.clock: SimClock | None = None

    def record(self, code: int, utc: dt.datetime, detail: Any = None) -> None:
        self.entries.append((utc.timestamp(), ec.lookup(code).name, dict(detail or {})))

    def names(self) -> list[str]:
        return [n for _, n, _ in self.entries]


class ScriptedModem:
    """A modem stack that brings the bearer up ``delay_s`` after a connect, unless refused."""

    def __init__(self, clock: SimClock, delay_s: float = 5.0) -> None:
        self.clock = clock
        self.delay_s = delay_s
        self.status = REGISTERED
        self.connects: list[float] = []
        self.disconnects = 0
        self.pending_until: float | None = None
        self.refuse = False
        self.supervisor: ModemSupervisor | None = None

    def connect(self, settings: ModemSettings) -> None:
        assert settings.apn == "iot.example"
        self.connects.append(self.clock.mono())
        if not self.refuse:
            self.pending_until = self.clock.mono() + self.delay_s

    def disconnect(self) -> None:
        self.disconnects += 1
        self.set(replace(self.status, bearer=Bearer()))

    def set(self, status: ModemStatus) -> None:
        self.status = status
        assert self.supervisor is not None
        self.supervisor.observe(status)

    def step(self) -> None:
        if self.pending_until is not None and self.clock.mono() >= self.pending_until:
            self.pending_until = None
            self.set(replace(self.status, state=ModemState.CONNECTED,
                             bearer=Bearer(True, "wwan0", "10.64.1.2", 30, "10.64.1.1", ("10.0.0.53",))))


def build(settings: ModemSettings | None = None) -> tuple[SimClock, ScriptedModem, ModemSupervisor, Events,
                                                          InterfaceBoard]:
    clock = SimClock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    events = Events()
    board = InterfaceBoard(clock.utc, None)
    modem = ScriptedModem(clock)
    sup = ModemSupervisor(settings or ModemSettings("iot.example", reconnect_min_s=10, reconnect_max_s=160,
                                                    connect_timeout_s=60, stable_s=300),
                          modem, clock, events, board)
    modem.supervisor = sup
    return clock, modem, sup, events, board


def run(clock: SimClock, modem: ScriptedModem, sup: ModemSupervisor, seconds: int) -> None:
    for _ in range(seconds):
        modem.step()
        sup.tick()
        clock.advance(1.0)


def test_connects_when_registered_and_reports_the_bearer() -> None:
    clock, modem, sup, events, board = build()
    run(clock, modem, sup, 5)
    assert modem.connects == []  # nothing observed yet: no attempt in the dark
    modem.set(REGISTERED)
    run(clock, modem, sup, 10)
    assert len(modem.connects) == 1
    assert sup.connected and events.names() == ["MODEM_BEARER_UP"]
    assert events.entries[0][2]["ipv4"] == "10.64.1.2"
    view = sup.view()
    assert view["bearer"]["interface"] == "wwan0" and view["operator"]["name"] == "Op"
    assert view["technology"] == "lte" and view["signal"]["rsrp_dbm"] == -95 and view["csq"] == 24
    state = board.state("modem")
    assert state is not None and state.on


def test_bearer_dropping_every_few_minutes_for_an_hour() -> None:
    clock, modem, sup, events, board = build()
    modem.set(REGISTERED)
    drops = 0
    for minute in range(60):
        run(clock, modem, sup, 60)
        if minute % 4 == 3 and sup.connected:  # the network drops the bearer every 4 minutes
            modem.set(replace(modem.status, state=ModemState.REGISTERED, bearer=Bearer()))
            drops += 1
    names = events.names()
    assert names.count("MODEM_BEARER_LOST") == drops == sup.drops == 15
    assert names.count("MODEM_BEARER_UP") == drops + (1 if sup.connected else 0)
    lost = [d for _, n, d in events.entries if n == "MODEM_BEARER_LOST"]
    assert all(d["reason"] == "bearer disconnected" and 170 <= d["up_s"] <= 240 for d in lost)
    # every reconnect waited the back-off, never hammered
    gaps = [b - a for a, b in zip(modem.connects, modem.connects[1:], strict=False)]
    assert min(gaps) >= 10
    state = board.state("modem")
    assert state is not None and state.times_off == drops


def test_back_off_doubles_while_attempts_fail_and_resets_after_a_stable_bearer() -> None:
    clock, modem, sup, events, _board = build()
    modem.refuse = True
    modem.set(REGISTERED)
    run(clock, modem, sup, 1000)
    starts = [t - modem.connects[0] for t in modem.connects]
    gaps = [round(b - a) for a, b in zip(starts, starts[1:], strict=False)]
    # attempt, 60 s time-out, then waits of 10, 20, 40, 80, 160 s (capped) after each
    assert gaps[:5] == [70, 80, 100, 140, 220]
    assert sup.backoff_s == 160
    assert "no bearer" in sup.last_error
    modem.refuse = False
    run(clock, modem, sup, 400)
    assert sup.connected
    run(clock, modem, sup, 400)  # stable
    modem.set(replace(modem.status, bearer=Bearer()))
    assert sup.backoff_s == 10
    t_drop = clock.mono()
    run(clock, modem, sup, 30)
    assert modem.connects[-1] - t_drop == 10


def test_no_sim_and_no_registration_say_so_and_never_dial() -> None:
    clock, modem, sup, events, board = build()
    modem.set(replace(REGISTERED, sim=SimState.MISSING, state=ModemState.FAILED, failed_reason="sim-missing",
                      registration=Registration.UNKNOWN))
    run(clock, modem, sup, 600)
    assert modem.connects == []
    assert events.names() == ["MODEM_FAULT"]
    assert events.entries[0][2]["fault"] == "modem failed (sim-missing)"
    state = board.state("modem")
    assert state is not None and not state.on and "sim-missing" in state.reason
    modem.set(replace(REGISTERED, registration=Registration.SEARCHING))
    run(clock, modem, sup, 600)
    assert modem.connects == [] and events.names() == ["MODEM_FAULT", "MODEM_FAULT"]
    assert sup.view()["fault"] == "not registered"
    modem.set(REGISTERED)
    run(clock, modem, sup, 30)
    assert sup.connected and events.names()[-1] == "MODEM_BEARER_UP"


def test_deregistration_drops_the_bearer_with_the_reason() -> None:
    clock, modem, sup, events, _board = build()
    modem.set(REGISTERED)
    run(clock, modem, sup, 30)
    modem.set(replace(modem.status, registration=Registration.NOT_REGISTERED, state=ModemState.ENABLED,
                      bearer=Bearer()))
    assert events.names()[-2:] == ["MODEM_FAULT", "MODEM_BEARER_LOST"]
    assert events.entries[-1][2]["reason"] == "not registered"


def test_connection_windows() -> None:
    settings = ModemSettings("iot.example", mode="windows", windows=(Window.parse("00:10-00:20"),),
                             reconnect_min_s=10)
    clock, modem, sup, _events, _board = build(settings)
    modem.set(REGISTERED)
    run(clock, modem, sup, 590)
    assert modem.connects == [] and not sup.allowed_now()
    run(clock, modem, sup, 60)
    assert sup.connected
    run(clock, modem, sup, 600)
    assert not sup.connected and modem.disconnects == 1
    assert Window.parse("23:00-01:00").contains(0) and not Window.parse("23:00-01:00").contains(7200)


def test_a_locked_sim_gets_the_pin_once_and_never_again_after_a_refusal() -> None:
    clock = SimClock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    modem = ScriptedModem(clock)
    pin = {"value": ""}
    sup = ModemSupervisor(ModemSettings("iot.example", reconnect_min_s=10), modem, clock, Events(), None,
                          has_pin=lambda: bool(pin["value"]))
    modem.supervisor = sup
    locked = replace(REGISTERED, state=ModemState.LOCKED, sim=SimState.LOCKED, registration=Registration.UNKNOWN)
    modem.set(locked)
    modem.refuse = True
    run(clock, modem, sup, 300)
    assert modem.connects == []  # no PIN: nothing to try
    pin["value"] = "1234"
    run(clock, modem, sup, 1)
    assert len(modem.connects) == 1  # the PIN goes with Simple.Connect
    sup.connect_failed("org.freedesktop.ModemManager1.Error.MobileEquipment.IncorrectPassword")
    run(clock, modem, sup, 3600)
    assert len(modem.connects) == 1 and sup.view()["pin_refused"] is True
    assert not sup.connect_now()
    sup.pin_changed()  # a new PIN provisioned (DLMS 0-0:25.4.0.255 attribute 3)
    modem.refuse = False
    run(clock, modem, sup, 10)
    assert len(modem.connects) == 2 and sup.connected

"""Pushes and communication media together, in a whole simulated meter (the daemon's own wiring,
stepped on its manual clock): alarms reach a head end's listener (dlms-cosem decoding) over the
primary medium, over the fallback while the primary is cut, and over the primary again after
the switch back; modem faults for an hour on a cellular-only meter keep pushes queued and
deliver them afterwards, while metering stays exactly that of a meter without them.

Each medium is a loopback source address (Ethernet 127.0.0.2, the cellular bearer 127.0.0.3,
which the modem supervision takes from ModemManager's bearer), so the listener sees which
medium carried each message. The health checks and the push deliveries run after each cycle,
as their tasks do in the daemon, so the run is deterministic."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meterd.app.features.comms import Comms, ModemSection
from meterd.app.features.dlms import DlmsSecurity
from meterd.app.sim_faults import KINDS
from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.energy import Quantity
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.core.modem import Bearer, ModemState, ModemStatus, Registration, SimState, Technology
from meterd.core.reading import Channel
from meterd.services.push import ALARM_OBIS, ON_CONNECTIVITY_OBIS, PushEngine
from tests.push_listener import PushListener, Received
from tests.simmeter import SimMeter

ETHERNET, CELLULAR = "127.0.0.2", "127.0.0.3"
MODEM = ModemSection(enabled=True, bus="system", reconnect_min_s=2.0, reconnect_max_s=16.0, connect_timeout_s=10.0,
                     stable_s=30.0)
# switch within 4 s of a cut, back after 5 s of good checks
POLICY: dict[str, Any] = dict(enabled=True, media=("ethernet", "cellular"), ethernet_source=ETHERNET,
                              check_period_s=1.0, recheck_s=0.5, confirm_failures=2, connect_timeout_s=0.5,
                              standby_check_s=2.0, switch_back_s=5.0, switch_within_s=4.0, modem=MODEM)
REGISTERED = ModemStatus(state=ModemState.REGISTERED, sim=SimState.READY, registration=Registration.HOME,
                         technology=Technology.LTE, quality_pct=60)
BEARER_UP = dataclasses.replace(REGISTERED, state=ModemState.CONNECTED,
                                bearer=Bearer(True, "wwan0", CELLULAR, 24))
COVER = Alarm.TERMINAL_COVER.mask | Alarm.FRAUD_ATTEMPT.mask
MAGNET = Alarm.MAGNETIC_FIELD.mask | Alarm.FRAUD_ATTEMPT.mask


def _setup_of(r: Received) -> str:
    return ".".join(str(b) for b in r.values.value[0].value)


def _alarms(listener: PushListener) -> list[tuple[int, str]]:
    """(alarm descriptor, source address) of every alarm push received, in order."""
    assert listener.errors == []
    return [(r.values.value[4].value, r.source) for r in listener.received if _setup_of(r) == ALARM_OBIS]


def _events(meter: SimMeter) -> list[tuple[str, dict[str, Any]]]:
    log = meter.service(EventRecorder).log(LogId.COMMUNICATION)
    return [(ec.lookup(e.code).name, dict(e.detail or {})) for e in log.entries()]


async def _step(meter: SimMeter, seconds: float, cycle_s: float = 0.5) -> None:
    """Meter cycles, each followed by the due health checks and push deliveries (their tasks' work)."""
    comms, engine = meter.service(Comms), meter.service(PushEngine)
    for _ in range(round(seconds / cycle_s)):
        meter.run(cycle_s, cycle_s)
        for name in comms.selector.due():
            await comms.uplink.check_now(name)
        if engine.has_due():
            await engine.deliver_due()


async def _alarm_within(meter: SimMeter, listener: PushListener, count: int, within_s: float = 5.0) -> None:
    """Step until ``count`` alarm pushes arrived, at most ``within_s`` of meter time."""
    start = meter.clock.mono()
    while len(_alarms(listener)) < count:
        assert meter.clock.mono() - start < within_s, f"alarm push {count} not at the head end within {within_s} s"
        await _step(meter, 0.5)


def _tamper(meter: SimMeter, kind: str) -> Callable[[], None]:
    """A tamper through the rig-fault interface; calling the result ends it."""
    return KINDS[kind].start(meter.world, {})


def _clear_alarms(meter: SimMeter, *ended: Callable[[], None]) -> None:
    """The tampers ``ended`` end, the head end clears the alarm bits (so the next tamper pushes again)."""
    for end in ended:
        end()
    code, _body = meter.daemon.api.routes[("POST", "/alarms/clear")]({})
    assert code == 200


async def _started(tmp_path: Path, listener: PushListener, media: dict[str, Any],
                   **push: Any) -> SimMeter:
    port = await listener.start()
    meter = SimMeter(tmp_path, push={"destination": f"127.0.0.1:{port}", **push},
                     comms={**POLICY, **media, "head_end": f"127.0.0.1:{port}"})
    keys = meter.service(DlmsSecurity).keys.current
    listener.keys = (keys.global_unicast_key, keys.authentication_key)
    return meter


def test_alarms_arrive_over_the_fallback_while_the_primary_is_cut_and_none_is_lost(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path, listener, {})
        try:
            comms, engine = meter.service(Comms), meter.service(PushEngine)
            assert comms.modem is not None
            comms.modem.observe(BEARER_UP)  # what ModemManager reports: a bearer with its address
            await _step(meter, 3)
            start = await listener.wait_for(2)  # on connectivity, on installation
            assert {r.source for r in start} == {ETHERNET}
            assert comms.selector.health("cellular").healthy is True  # the fallback is checked in standby

            # 1. a tamper over the primary
            cover = _tamper(meter, "terminal_cover_open")
            await _alarm_within(meter, listener, 1)
            assert _alarms(listener) == [(COVER, ETHERNET)]
            _clear_alarms(meter, cover)

            # 2. the primary is cut while a tamper's push is under way (queued, not sent yet): its
            #    attempt fails on the cut medium, the meter switches, the retry goes over the fallback
            magnet = _tamper(meter, "magnet")
            for _ in range(10):
                if engine.queued():
                    break
                meter.run(0.5, 0.5)
            assert engine.queued() == 1
            undo = KINDS["medium_cut"].start(meter.world, {"medium": "ethernet"})
            t_cut = meter.clock.mono()
            while comms.selector.state().current != "cellular":
                assert meter.clock.mono() - t_cut <= 4.0, "no switch within switch_within_s"
                await _step(meter, 0.5)
            await _step(meter, 0.5)  # the retry: at once on the new medium, not after the repetition delay (10 s)
            assert engine.queued() == 0 and meter.clock.mono() - t_cut <= 4.5
            assert engine.status().setups[2].failed_attempts == 1  # the one attempt on the cut medium
            assert _alarms(listener)[1:] == [(MAGNET, CELLULAR)]
            _clear_alarms(meter, magnet)

            # 3. during the cut: straight over the fallback, in the cycle of the tamper
            cover = _tamper(meter, "terminal_cover_open")
            await _alarm_within(meter, listener, 3)
            assert _alarms(listener)[2:] == [(COVER, CELLULAR)]
            _clear_alarms(meter, cover)

            # 4. the primary is back: the meter stays on the fallback for switch_back_s of good checks
            undo()
            t_back = meter.clock.mono()
            while comms.selector.state().current != "ethernet":
                assert meter.clock.mono() - t_back <= 10.0, "no switch back"
                await _step(meter, 0.5)
            assert meter.clock.mono() - t_back >= 5.0
            _tamper(meter, "magnet")
            await _alarm_within(meter, listener, 4)
            assert _alarms(listener)[3:] == [(MAGNET, ETHERNET)]

            # none lost, none twice: every message once, in the order raised; the queue is empty
            got = await listener.wait_for(len(listener.received))
            ids = [r.invoke_id for r in got]
            assert len(ids) == len(set(ids)) and engine.queued() == 0 and engine.dropped == 0
            assert [d for d, _ in _alarms(listener)] == [COVER, MAGNET, COVER,
                                                         MAGNET]
            # the uplink never went down: a switch is no new connectivity, so no on-connectivity push
            assert [_setup_of(r) for r in got].count(ON_CONNECTIVITY_OBIS) == 1
            events = _events(meter)
            switches = [(d["from"], d["to"]) for n, d in events if n == "MEDIUM_SWITCHED"]
            assert switches == [("ethernet", "cellular"), ("cellular", "ethernet")]
            names = [n for n, _ in events]
            assert names.count("MEDIUM_UNHEALTHY") == 1 and names.count("MEDIUM_HEALTHY") == 1
            assert "NO_MEDIUM" not in names
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


def test_an_hour_of_modem_faults_queues_pushes_and_leaves_metering_untouched(tmp_path: Path) -> None:
    """A cellular-only meter: every 6 minutes the bearer drops for 2 minutes, twice because of a
    modem fault (no SIM, then no registration), a tamper raised during those two. Each tamper's
    push waits for the bearer and arrives once; every return of the bearer is an on-connectivity
    push; the registers are those of a meter without comms, to the Wh."""
    no_bearer = dataclasses.replace(REGISTERED, bearer=Bearer(False, "", "", 0))
    no_sim = dataclasses.replace(REGISTERED, sim=SimState.MISSING, state=ModemState.FAILED,
                                 failed_reason="sim-missing")
    searching = dataclasses.replace(REGISTERED, registration=Registration.SEARCHING)
    # minute of the hour -> what ModemManager reports from then on
    script = {m: BEARER_UP for m in range(0, 60, 6)}
    script.update({m + 4: no_bearer for m in range(0, 60, 6)})
    script.update({16: no_sim, 40: searching})
    tampers = {17: "terminal_cover_open", 41: "magnet"}  # raised during the modem faults
    CYCLE_S = 10  # noqa: N806 - metering cycles of 10 s: an hour in 360 cycles of each meter

    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path / "m", listener, {"media": ("cellular",)})
        ref = SimMeter(tmp_path / "ref")
        try:
            comms, engine = meter.service(Comms), meter.service(PushEngine)
            assert comms.modem is not None
            ended: Callable[[], None] | None = None
            for second in range(0, 3600, CYCLE_S):
                minute, s = divmod(second, 60)
                if s == 0 and minute in script:
                    comms.modem.observe(script[minute])
                if s == 30 and minute in tampers:
                    ended = _tamper(meter, tampers[minute])
                if s == 50 and minute in tampers:
                    assert engine.queued() == 1 and not engine.status().uplink_up  # kept, waiting
                if s == 10 and minute - 2 in tampers and ended is not None:  # delivered since the bearer's return
                    assert engine.queued() == 0
                    _clear_alarms(meter, ended)
                    ended = None
                await _step(meter, CYCLE_S, cycle_s=CYCLE_S)
                ref.daemon.step(CYCLE_S)
            for q in (Quantity.ACTIVE_IMPORT, Quantity.APPARENT_IMPORT, Quantity.ACTIVE_EXPORT):
                assert meter.meter.registers.get(q, Channel.TOTAL) == ref.meter.registers.get(q, Channel.TOTAL)
            assert meter.meter.registers.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL) > 0
            got = await listener.wait_for(len(listener.received))
            assert {r.source for r in got} == {CELLULAR}
            assert len({r.invoke_id for r in got}) == len(got) and engine.queued() == 0 and engine.dropped == 0
            assert [d for d, _ in _alarms(listener)] == [COVER, MAGNET]
            assert engine.status().setups[2].failed_attempts == 0  # no medium: nothing tried, no retry used
            # the bearer came back 10 times (every 6 minutes): 10 on-connectivity pushes
            assert [_setup_of(r) for r in got].count(ON_CONNECTIVITY_OBIS) == 10
            names = [n for n, _ in _events(meter)]
            assert names.count("MODEM_BEARER_UP") == 10 and names.count("MODEM_BEARER_LOST") == 10
            assert names.count("MODEM_FAULT") == 2 and names.count("NO_MEDIUM") == 10
            assert names.count("PUSH_BACKLOG_DELIVERED") == 2
            view = meter.daemon.status_extras["modem"]()
            assert view["drops"] == 10 and view["connects"] == 10
            interfaces = meter.daemon.status_extras["interfaces"]()
            assert interfaces["modem"]["times_off"] == 10
            assert {k: v["times_off"] for k, v in interfaces.items() if k != "modem" and v["times_off"]} == {}
        finally:
            meter.close()
            ref.close()
            await listener.stop()

    asyncio.run(scenario())

"""Alarm pushes of a whole simulated meter (the daemon's own wiring, stepped) to a head end's
listener that dlms-cosem parses on loopback: the relay opening when the credit runs out, the
supply coming back after a power cut, the RTC losing its time (and the alarm filter holding
that back)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meterd.app.features.dlms import DlmsSecurity
from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.alarms import ALL_BITS, Alarm
from meterd.core.sts.vending import credit_token
from meterd.services.load_control import LoadControl
from meterd.services.payment import PaymentService
from meterd.services.push import ALARM_OBIS, PushEngine
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.services.supervision import Supervision
from tests.push_listener import PushListener, Received
from tests.simmeter import SimMeter

# prepaid, never a friendly period, no emergency credit: the relay opens when the credit is gone
PREPAID = {"mode": "prepaid", "friendly_hours": "", "friendly_weekdays": (), "friendly_holidays": False,
           "emergency_amount": 0, "emergency_threshold": 0}


def _setup_of(r: Received) -> str:
    return ".".join(str(b) for b in r.values.value[0].value)


def _alarms(listener: PushListener) -> list[tuple[int, int]]:
    """(alarm register, alarm descriptor) of every alarm push received, in order."""
    assert listener.errors == []
    return [(r.values.value[3].value, r.values.value[4].value) for r in listener.received
            if _setup_of(r) == ALARM_OBIS]


async def _arrived(listener: PushListener, count: int) -> PushListener:
    """The listener once ``count`` notifications arrived (bounded wait)."""
    await listener.wait_for(count)
    return listener


async def _step(meter: SimMeter, seconds: float) -> None:
    """Metering cycles of 1 s, with the push engine's delivery after each (as its task does)."""
    engine = meter.service(PushEngine)
    for _ in range(round(seconds)):
        meter.run(1.0)
        if engine.has_due():
            await engine.deliver_due()


async def _started(tmp_path: Path, listener: PushListener, prepare: Callable[[SimMeter], None] | None = None,
                   **sections: dict[str, Any]) -> SimMeter:
    """A meter pushing to ``listener`` (``prepare`` run before its first cycle), past its start
    pushes (on connectivity, on installation)."""
    meter = SimMeter(tmp_path, push={"destination": f"127.0.0.1:{await listener.start()}"}, **sections)
    if prepare is not None:
        prepare(meter)
    keys = meter.service(DlmsSecurity).keys.current
    listener.keys = (keys.global_unicast_key, keys.authentication_key)
    await _step(meter, 2)
    await listener.wait_for(2)
    return meter


def _buy_100_wh(meter: SimMeter) -> None:
    cipher = sts_cipher_factory(7, sim_key_register(PaymentSection()).key)
    assert meter.service(PaymentService).submit_token(credit_token(cipher, 100, 1), "keypad").result == "Accept"


def test_the_relay_opening_on_exhausted_credit_is_pushed_in_its_cycle(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path, listener, _buy_100_wh, payment=PREPAID)
        try:
            payment, relay = meter.service(PaymentService), meter.service(LoadControl)
            assert relay.output_state and _alarms(listener) == []
            seconds = 0
            while relay.output_state and seconds < 300:  # the simulated load uses the 0.1 kWh up
                await _step(meter, 1)
                seconds += 1
            assert not relay.output_state and payment.relay_off
            assert meter.service(PushEngine).status().setups[2].sent == 1  # delivered in the opening cycle
            [(register, descriptor)] = _alarms(await _arrived(listener, 3))
            assert descriptor == Alarm.LOCAL_DISCONNECTION.mask and register & descriptor
            opened = [e for e in meter.service(Supervision).recent_events(10) if e["name"] == "LOCAL_DISCONNECTION"]
            assert [e["detail"]["cause"] for e in opened] == ["credit"]
            await _step(meter, 5)
            assert len(_alarms(listener)) == 1  # latched: no second push until the bit is cleared
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


def test_a_power_cut_is_pushed_when_the_supply_is_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path, listener)
        try:
            meter.world.inject({"kind": "power_cut", "duration_s": 20})
            await _step(meter, 15)
            assert _alarms(listener) == []  # down: nothing to say yet
            await _step(meter, 10)
            [(register, descriptor)] = _alarms(await _arrived(listener, 3))
            assert descriptor == Alarm.POWER_RESTORED.mask  # a short failure: bit 2 stays clear
            assert register & Alarm.POWER_RESTORED.mask and not register & Alarm.LONG_POWER_FAILURE.mask
            names = [e["name"] for e in meter.service(Supervision).recent_events(5)]
            assert "POWER_UP" in names and "SHORT_POWER_FAILURE" in names
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


def test_a_power_cut_that_stopped_the_meter_is_pushed_after_its_restart(tmp_path: Path) -> None:
    """The Pi's own supply goes: the last gasp, the stop, and "power restored" set at the start
    of the next run, before the push feature's first cycle."""
    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path, listener)
        meter.world.inject({"kind": "power_cut"})
        await _step(meter, 3)
        meter.close()
        assert _alarms(listener) == []
        meter = SimMeter(tmp_path, push={"destination": f"127.0.0.1:{listener.port}"})
        try:
            assert meter.service(Supervision).alarm_register() == Alarm.POWER_RESTORED.mask  # before a cycle
            await _step(meter, 1)
            await listener.wait_for(4)  # this run's on-connectivity push and the alarm
            assert _alarms(listener) == [(Alarm.POWER_RESTORED.mask, Alarm.POWER_RESTORED.mask)]
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("clock_alarms", [True, False], ids=["filter allows", "filter holds back"])
def test_the_rtc_losing_its_time_is_pushed_as_clock_invalid_when_the_filter_allows(
        tmp_path: Path, clock_alarms: bool) -> None:
    clock_bits = Alarm.CLOCK_INVALID.mask | Alarm.REPLACE_BATTERY.mask
    filter_mask = ALL_BITS if clock_alarms else ALL_BITS & ~clock_bits

    async def scenario() -> None:
        listener = PushListener()
        meter = await _started(tmp_path, listener, supervision={"alarm_filter": filter_mask})
        try:
            meter.world.inject({"kind": "rtc_battery_lost", "when": "now"})
            await _step(meter, 3)
            names = [e["name"] for e in meter.service(Supervision).recent_events(10)]
            assert "CLOCK_INVALID" in names and "TIME_UNTRUSTED" in names
            if clock_alarms:
                [(register, descriptor)] = _alarms(await _arrived(listener, 3))
                assert descriptor & Alarm.CLOCK_INVALID.mask and register & clock_bits == clock_bits
            else:
                assert _alarms(listener) == [] and meter.service(Supervision).alarm_register() == 0
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())

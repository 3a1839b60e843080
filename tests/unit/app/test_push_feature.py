"""Pushes of a whole simulated meter (the daemon's own wiring, stepped) to a head end's listener
that dlms-cosem parses on loopback: a tamper, the daily schedule with the load profile, a
listener that is away across a restart of the meter."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from meterd.app.features.dlms import DlmsSecurity
from meterd.core.alarms import Alarm
from meterd.core.single_action import DatePattern, ExecutionTime, TimePattern
from meterd.cosem.datetime_codec import decode_utc
from meterd.services.push import (
    ALARM_OBIS,
    ON_CONNECTIVITY_OBIS,
    ON_INSTALLATION_OBIS,
    SCHEDULED_OBIS,
    PushEngine,
    PushSchedule,
)
from tests.push_listener import PushListener, Received
from tests.simmeter import SimMeter


def _meter(state: Path, port: int, **push: Any) -> SimMeter:
    return SimMeter(state, push={"destination": f"127.0.0.1:{port}", **push})


def _keys(meter: SimMeter) -> tuple[bytes, bytes]:
    k = meter.service(DlmsSecurity).keys.current
    return k.global_unicast_key, k.authentication_key


def _setup_of(r: Received) -> str:
    return ".".join(str(b) for b in r.values.value[0].value)


async def _step(meter: SimMeter, seconds: float, cycle_s: float = 1.0) -> None:
    """Meter cycles of ``cycle_s``, with the push engine's delivery after each (as its task does)."""
    engine = meter.service(PushEngine)
    for _ in range(round(seconds / cycle_s)):
        meter.run(cycle_s, cycle_s)
        if engine.has_due():
            await engine.deliver_due()


def test_a_tamper_reaches_the_head_end_ciphered_within_5_s(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener()
        meter = _meter(tmp_path, await listener.start())
        try:
            listener.keys = _keys(meter)
            await _step(meter, 2)
            start = await listener.wait_for(2)
            assert sorted(_setup_of(r) for r in start) == [ON_CONNECTIVITY_OBIS, ON_INSTALLATION_OBIS]
            meter.world.inject({"kind": "terminal_cover_open"})
            engine, injected = meter.service(PushEngine), meter.clock.mono()
            while engine.status().setups[2].sent == 0 and meter.clock.mono() - injected < 10:
                await _step(meter, 1)
            assert meter.clock.mono() - injected <= 5.0  # simulated seconds from the tamper to the head end
            alarm = (await listener.wait_for(3))[2]
            assert listener.errors == []
            assert alarm.system_title == meter.service(DlmsSecurity).keys.current.server_system_title
            assert alarm.prioritized and _setup_of(alarm) == ALARM_OBIS
            assert (alarm.source_wport, alarm.destination_wport) == (1, 102)
            values = [v.value for v in alarm.values.value]
            assert bytes(values[1]).decode() == meter.daemon.meter.identity.serial
            cover = Alarm.TERMINAL_COVER.mask | Alarm.FRAUD_ATTEMPT.mask
            assert values[3] & cover == cover and values[4] == cover  # register, descriptor
            assert meter.service(PushEngine).queued() == 0
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


def _rows(received: list[Received]) -> list[dt.datetime]:
    """Capture times of every load-profile row the scheduled pushes carried, in order."""
    out = []
    for r in received:
        if _setup_of(r) != SCHEDULED_OBIS:
            continue
        for row in r.values.value[4].value:
            out.append(decode_utc(bytes(row.value[0].value)))
    return out


def _scheduled_run(tmp_path: Path, pushes: int, hourly: bool) -> None:
    """``pushes`` scheduled pushes, daily at 00:15 legal time (CET in sim.toml: 23:15 UTC), or
    (short form) hourly at :15 through a schedule with a wildcard hour, as the head end may write
    it; every load-profile row until the last push is in exactly one of them."""
    async def scenario() -> None:
        listener = PushListener()
        meter = _meter(tmp_path, await listener.start(), daily_at="00:15")
        try:
            listener.keys = _keys(meter)
            period = 3600 if hourly else 86400
            if hourly:
                schedule = meter.service(PushSchedule)
                assert schedule.put(replace(schedule.get(), times=(
                    ExecutionTime(TimePattern(None, 15, 0, 0), DatePattern()),)))
            # one cycle per load-profile period; the first cycle (00:15 UTC) starts the schedule, so
            # the hourly form's first push is at 01:15 and it needs an hour more
            await _step(meter, period * pushes + (3600 if hourly else 0), cycle_s=900)
            await listener.wait_for(len(listener.received))
            scheduled = [r for r in listener.received if _setup_of(r) == SCHEDULED_OBIS]
            assert listener.errors == []
            assert len(scheduled) == pushes
            stamps = [r.date_time for r in scheduled]
            assert all(s is not None and s.minute == 15 and (hourly or s.hour == 23) for s in stamps)
            assert len(set(stamps)) == pushes
            profile = meter.daemon.meter.profile("1.0.99.1.0.255")
            assert profile is not None
            last = stamps[-1]
            assert last is not None
            every = [row.utc for row in profile.rows_between(dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                                                               last.replace(tzinfo=dt.UTC))]
            pushed = _rows(scheduled)
            assert len(pushed) == len(set(pushed))  # none twice
            assert pushed == every  # all until the last push, in order
            assert len(every) >= (4 if hourly else 96) * pushes - 4
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())


def test_scheduled_pushes_carry_every_load_profile_row_once_short_form(tmp_path: Path) -> None:
    _scheduled_run(tmp_path, 6, hourly=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 30 simulated days, 2880 cycles: longer than the default 300 s on a loaded host
def test_the_daily_push_carries_every_load_profile_row_once_over_30_days(tmp_path: Path) -> None:
    _scheduled_run(tmp_path, 30, hourly=False)


def test_pushes_wait_for_an_absent_head_end_across_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener()
        port = await listener.start()
        meter = _meter(tmp_path, port, retries=1, repetition_min_s=5, repetition_max_s=5)
        listener.keys = _keys(meter)
        await _step(meter, 2)
        await listener.wait_for(2)
        await listener.stop()  # the head end goes away
        meter.world.inject({"kind": "terminal_cover_open"})
        await _step(meter, 30)  # tried, retried after 5 s, then kept
        meter.world.inject({"kind": "magnet"})
        await _step(meter, 30)
        engine = meter.service(PushEngine)
        queued = engine.queued()
        assert queued == 2 and engine.status().setups[2].parked == 2
        code, view = meter.daemon.api.routes[("GET", "/push")]({})
        assert code == 200 and view["queued"] == 2 and view["medium"] == "os"
        assert [s["parked"] for s in view["setups"] if s["obis"] == ALARM_OBIS] == [2]
        metrics = generate_latest(meter.daemon.api.metrics_registry).decode()
        assert "meterd_push_backlog 2.0" in metrics and "meterd_push_parked 2.0" in metrics
        meter.close()

        meter = _meter(tmp_path, port, retries=1, repetition_min_s=5, repetition_max_s=5)
        try:
            engine = meter.service(PushEngine)
            assert engine.queued() == 2  # the restart's own on-connectivity push comes with the first cycle
            await listener.start(port)  # the head end is back
            await _step(meter, 2)
            got = await listener.wait_for(5)
            assert listener.errors == []
            ids = [r.invoke_id for r in got]
            assert len(ids) == len(set(ids)) == 5  # none lost, none twice
            alarms = [r for r in got if _setup_of(r) == ALARM_OBIS]
            assert [r.values.value[4].value for r in alarms] == [
                Alarm.TERMINAL_COVER.mask | Alarm.FRAUD_ATTEMPT.mask, Alarm.MAGNETIC_FIELD.mask]
            assert engine.queued() == 0
        finally:
            meter.close()
            await listener.stop()

    asyncio.run(scenario())

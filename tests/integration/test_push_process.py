"""A real meterd pushes a tamper to a head end's listener (dlms-cosem on loopback): the tamper is
injected through the local API (rig fault), the ciphered alarm notification arrives, captured
within 5 s of meter time after the tamper event."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from meterd.core.alarms import Alarm
from tests.dlms_fakes import SERVER_TITLE, TEST_GAK, TEST_GUEK
from tests.meterd_process import MeterdProcess
from tests.push_listener import PushListener

ALARM_LN = bytes((0, 4, 25, 9, 0, 255))


def test_a_tamper_in_a_real_meterd_reaches_the_listener(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = PushListener((TEST_GUEK, TEST_GAK))
        port = await listener.start()
        meter = await asyncio.to_thread(lambda: MeterdProcess(tmp_path, "10", destination=f'"127.0.0.1:{port}"'))
        try:
            await listener.wait_for(2, 30.0)  # installation and connectivity
            code, _ = await asyncio.to_thread(meter.api, "POST", "/sim/fault", {"kind": "terminal_cover_open"})
            assert code == 200
            got = await listener.wait_for(3, 30.0)
            alarm = next(r for r in got if bytes(r.values.value[0].value) == ALARM_LN)
            assert listener.errors == [] and alarm.system_title == SERVER_TITLE and alarm.prioritized
            cover = Alarm.TERMINAL_COVER.mask | Alarm.FRAUD_ATTEMPT.mask
            assert alarm.values.value[4].value == cover
            _, events = await asyncio.to_thread(meter.api, "POST", "/events", {"limit": 50})
            removed = next(e for e in events["events"] if e["name"] == "TERMINAL_COVER_REMOVED")
            tamper_utc = dt.datetime.fromisoformat(removed["utc"])
            assert alarm.date_time is not None
            captured = alarm.date_time.replace(tzinfo=dt.UTC)
            assert dt.timedelta(0) <= captured - tamper_utc <= dt.timedelta(seconds=5)
            _, push = await asyncio.to_thread(meter.api, "GET", "/push")
            assert push["queued"] == 0 and push["medium"] == "os"
        finally:
            assert await asyncio.to_thread(meter.stop) == 0
            await listener.stop()

    asyncio.run(scenario())

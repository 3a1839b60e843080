"""The EN 50160 week on the whole simulated meter: the 10-s frequency values of the interval that
ends the week (Monday 00:00 UTC) reach the week's statistics through the PQ chain, the week closes
with that interval, is not compliant (49.3 Hz is outside 50 Hz ±1 %), event 187 is recorded, and
the verdict is readable over DLMS (1-0:14.130.0.255, 1-0:0.130.0.255), the API and `meterctl pq`'s
table."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

from meterd.api.pq_views import en50160_table
from meterd.app.features.dlms import registry_for
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.pq.en50160 import Verdict
from meterd.services.power_quality import PowerQualityService
from tests.dlms_fakes import make_keyring
from tests.dlms_gurux_client import connect_in_memory
from tests.simmeter import SimMeter

MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def test_a_week_closes_on_the_meter_and_reads_over_dlms_and_the_api(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, sim={"start_utc": (MONDAY - dt.timedelta(seconds=35)).isoformat()},
                     display={"kind": "dummy"}, power_quality={"enabled": True})
    try:
        meter.world.grid.set_frequency(49.3)
        meter.run(45)
        week = meter.service(PowerQualityService).week
        assert week is not None
        record = week.last_closed()
        assert record is not None and record.start_utc == MONDAY - dt.timedelta(days=7)
        frequency = record.result("frequency")
        assert frequency.verdict is Verdict.NOT_COMPLIANT and frequency.n_values >= 2
        assert frequency.within_pct == 0.0 and abs(frequency.p95 - 98.6) < 0.01  # type: ignore[operator]
        assert record.result("frequency_always").verdict is Verdict.COMPLIANT  # within +4 %/−6 %
        assert record.verdict is Verdict.NOT_COMPLIANT and record.intervals == 1 and record.flagged_intervals == 1
        assert record.result("voltage").verdict is Verdict.NOT_MEASURED  # the partial interval is flagged
        plt = record.result("plt")  # Monday 00:00 also ends a 2-h interval: its Plt (1 of 12 Pst) is flagged
        assert plt.verdict is Verdict.NOT_MEASURED and plt.n_flagged == 3
        [event] = [e for e in meter.service(EventRecorder).log(LogId.POWER_QUALITY).entries() if e.code == 187]
        assert event.utc == MONDAY and "frequency" in str(event.detail["failed"])

        factory = build_session_factory(meter.meter, MemoryCounterStore(), make_keyring(),
                                        ServerConfig(link="wrapper", registry=registry_for(meter.daemon.context()),
                                                     link_name="tcp"))
        gs, _ = connect_in_memory(factory(), 17)
        try:
            assert gs.read(GXDLMSData("1.0.0.130.0.255"), 2) == 1  # the week: not compliant
            assert gs.read(GXDLMSData("1.0.14.130.0.255"), 2) == 1  # frequency ±1 %: not compliant
            assert gs.read(GXDLMSData("1.0.14.130.1.255"), 2) == 0  # +4/−6 %: compliant
            assert gs.read(GXDLMSData("1.0.12.130.132.255"), 2) == 2  # u2: not measured
            share = GXDLMSRegister("1.0.14.129.1.255")
            gs.read(share, 3)
            assert gs.read(share, 2) == 100.0
        finally:
            gs.close()

        status, view = asyncio.run(meter.daemon.api.dispatch("GET", "/pq", {}))
        assert status == 200 and view["en50160"]["last_week"]["verdict"] == "not_compliant"
        table = en50160_table(view["en50160"]["last_week"])
        assert "NOT COMPLIANT" in table.splitlines()[0]
        assert any(line.startswith("frequency ") and "not compliant" in line for line in table.splitlines())
        assert any(line.startswith("unbalance ") and "not measured" in line for line in table.splitlines())
        status, history = asyncio.run(meter.daemon.api.dispatch("GET", "/pq/en50160", {}))
        assert status == 200 and [w["verdict"] for w in history["closed"]] == ["not_compliant"]
    finally:
        meter.close()

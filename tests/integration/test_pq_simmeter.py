"""Power quality through the whole simulated meter: the evening scenario's dip on L2 (180 V for 2 s)
becomes exactly one dip record in the power-quality log with its start, duration and residual; the
THD, status and COSEM registers follow the grid; the chip fallback marks values indicative."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.services.power_quality import PowerQualityService
from tests.simmeter import SimMeter

REPO = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 6, 1, 17, 0, tzinfo=dt.UTC)


def pq_log(meter: SimMeter) -> list[tuple[str, dt.datetime, dict[str, object]]]:
    log = meter.service(EventRecorder).log(LogId.POWER_QUALITY)
    return [(ec.lookup(e.code).name, e.utc, dict(e.detail)) for e in log.entries()]


def test_evening_scenario_dip_gives_one_dip_record(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"},
                     power_quality={"enabled": True})
    try:
        meter.run(3)
        t0 = meter.clock.utc()
        meter.world.load_scenario((REPO / "config/scenarios/evening.toml").read_text(), "evening")
        started = time.process_time()
        meter.run(320)
        cpu_ms = (time.process_time() - started) / 320 * 1000
        dips = [e for e in pq_log(meter) if e[0] == "VOLTAGE_DIP"]
        assert len(dips) == 1
        _, utc, detail = dips[0]
        assert abs((utc - (t0 + dt.timedelta(seconds=240))).total_seconds()) <= 0.020  # Urms(1/2): a one-cycle window
        assert detail["duration_s"] == pytest.approx(2.0, abs=0.020)
        assert detail["residual_v"] == pytest.approx(180.0, abs=1.0)
        assert detail["phases"] == "2" and detail["worst_phase"] == 2
        assert [e[0] for e in pq_log(meter)] == ["VOLTAGE_DIP"]  # 60 s minimum: no under-voltage event
        status = meter.daemon.status_extras["power_quality"]()
        assert status["indicative"] is False and status["source"] == "waveform"
        assert status["thd_pct"]["I1"] == pytest.approx(100 * (0.25**2 + 0.12**2) ** 0.5, rel=0.01)
        assert status["thd_pct"]["U1"] < 0.1
        assert cpu_ms < 200, f"{cpu_ms:.1f} ms per cycle"
    finally:
        meter.close()


def test_chip_fallback_is_indicative(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, display={"kind": "dummy"}, power_quality={"source": "chip", "chip_period_s": 5.0})
    try:
        meter.world.set_load({"phase": "all", "current_a": 10.0})
        meter.world.grid.set_phase("L1", i_harmonics=((3, 0.2, 0.0), (5, 0.1, 0.0)))
        meter.run(12)
        status = meter.daemon.status_extras["power_quality"]()
        assert status["indicative"] is True and status["source"] == "chip"
        values = meter.service(PowerQualityService).values()
        assert values.harmonic_pct["I1"][3] == pytest.approx(20.0, abs=0.05)
        assert values.harmonic_pct["I1"][5] == pytest.approx(10.0, abs=0.05)
        assert values.harmonic_pct["I1"][33] != values.harmonic_pct["I1"][33]  # NaN above order 32
    finally:
        meter.close()


def test_chain_can_be_disabled(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, display={"kind": "dummy"}, power_quality={"enabled": False})
    try:
        meter.run(2)
        assert meter.daemon.status_extras["power_quality"]() == {"enabled": False}
        assert PowerQualityService not in meter.daemon.registry
    finally:
        meter.close()

"""A single-phase two-wire (1P2W) meter end to end in the simulator: ``[power_quality] phases = 1``.

The simulated grid is wired alike (L2, L3 dark, the neutral carrying I1); the monitor measures U1,
I1 and IN only; an interruption of L1 alone is an interruption (the polyphase rule over the one
channel there is); the 10-min values, the PQ profile, the DLMS objects and the status show L1
only, without unbalance.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import N_ROWS, ROW_I1, ROW_IN, ROW_U1, WaveformBlock
from meterd.services.power_quality import CLOCK_OBIS, FLAG_OBIS, PowerQualityService
from tests.simmeter import SimMeter

START = dt.datetime(2026, 6, 1, 17, 9, 52, tzinfo=dt.UTC)  # 8 s before a 10-min tick
FS = 8000.0


def _object_names(meter: SimMeter) -> set[str]:
    names: set[str] = set()
    for factory in meter.daemon.cosem_factories:
        if getattr(factory, "__qualname__", "").split(".")[0] in ("pq_factory", "quantities_factory"):
            names |= {entry.obj.logicalName for entry in factory(None)}
    return names


def test_single_phase_meter_in_the_simulator(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"},
                     power_quality={"enabled": True, "phases": 1})
    try:
        grid = meter.world.grid
        assert grid.phases == 1 and [p.on for p in grid.state.phases] == [True, False, False]
        with pytest.raises(Exception, match="1P2W"):
            grid.set_phase("L2", voltage_v=230.0)
        block = grid.waveform_block(0, 800)
        assert not block[2:6].any() and np.allclose(block[6], block[1])  # the neutral carries I1
        meter.world.load_scenario('[[events]]\nat_s = 3\nphase = "L1"\nvoltage_v = 0.0\n'
                                  '[[events]]\nat_s = 3.5\nphase = "L1"\nvoltage_v = 230.0\n', "cut")
        meter.run(14)
        service = meter.service(PowerQualityService)
        assert service.phases == 1 and service.monitor is not None
        log = [ec.lookup(e.code).name for e in meter.service(EventRecorder).log(LogId.POWER_QUALITY).entries()]
        assert "SHORT_INTERRUPTION" in log and "VOLTAGE_DIP" in log
        values = service.values()
        assert set(values.thd_pct) == {"U1", "I1", "IN"} and set(values.rms_10cycle) == {"U1", "I1", "IN"}
        assert set(values.urms_half_v) == {1} and set(values.pst) <= {1}
        ten = values.aggregates["10-min"]
        assert ten.u2_pct is None and ten.u0_pct is None and ten.flagged
        rows = service.profile.rows_by_entry(1, 0)
        columns = [c.obis for c in service.profile.columns]
        assert columns == [CLOCK_OBIS, "1.0.32.5.0.255", "1.0.32.7.124.255", "1.0.32.7.130.255",
                           "1.0.32.7.134.255", "1.0.32.7.136.255", "1.0.32.7.139.255", FLAG_OBIS]
        assert len(rows) == 1 and len(rows[0].values) == len(columns) - 1 and rows[0].values[-1] == 1
        # the 8 s measured before the tick hold 0.5 s at 0 V: RMS = 230 V · sqrt(7.5 / 8)
        assert rows[0].values[0] == pytest.approx(230.0 * (7.5 / 8) ** 0.5, abs=0.5)
        names = _object_names(meter)
        assert {"1.0.32.7.124.255", "1.0.31.7.124.255", "1.0.32.7.134.255", "1.0.32.7.137.255",
                "1.0.32.7.130.255"} <= names
        assert not any(n.split(".")[2] in ("52", "72", "51", "71", "12") for n in names)
        status = meter.daemon.status_extras["power_quality"]()
        assert status["phases"] == 1 and "unbalance_pct" not in status
        assert set(status["pst"]) <= {"1"} and "u2_pct" not in status["ten_min"]
        assert set(status["ten_min"]["thds40_pct"]) == {"U1", "I1"}
    finally:
        meter.close()


def test_monitor_of_one_phase_ignores_the_other_rows() -> None:
    """Whatever arrives on the rows of L2 and L3, a 1P2W monitor reports L1 alone."""
    t = np.arange(int(4 * FS)) / FS
    rows = np.zeros((N_ROWS, t.size))
    rows[ROW_U1] = np.sqrt(2) * 230 * np.sin(2 * np.pi * 50 * t)
    rows[ROW_I1] = rows[ROW_IN] = np.sqrt(2) * 5 * np.sin(2 * np.pi * 50 * t)
    rows[2] = 7.0  # noise on an unconnected input
    monitor = PqMonitor(PqSettings(phases=1))
    utc = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    events = monitor.feed(WaveformBlock(0, rows, FS, utc))
    values = monitor.latest()
    assert events == [] and values.active_events == ()  # U2 at 0 V is no interruption, no dip
    assert set(values.urms_half_v) == {1}
    short = values.aggregates["150-cycle"]
    assert short.u2_pct is None and not short.flagged
    assert short.rms[ROW_U1] == pytest.approx(230.0, rel=1e-4)

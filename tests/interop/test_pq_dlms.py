"""Power quality over DLMS with gurux's client (a library we did not write), on a whole simulated
meter: THD, harmonics, Pst/Plt, 10-min RMS, the interval flag and the "indicative" status read as
registers; the power-quality profile 1-0:99.14.0.255 read by range after the meter restarted
(its rows come back from SQLite, not from memory)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.services.power_quality import PowerQualityService
from tests.dlms_fakes import make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop
START = dt.datetime(2026, 6, 1, 17, 8, 40, tzinfo=dt.UTC)
TICK = dt.datetime(2026, 6, 1, 17, 10, tzinfo=dt.UTC)  # the 10-min boundary crossed 80 s after START
PQ_PROFILE = "1.0.99.14.0.255"


def open_meter(state_dir: Path, start: dt.datetime) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": start.isoformat()}, display={"kind": "dummy"},
                    power_quality={"enabled": True})


def as_utc(value: object) -> dt.datetime:
    """gurux's GXDateTime → aware UTC datetime."""
    return value.value.astimezone(dt.UTC)  # type: ignore[attr-defined]


def test_pq_registers_and_profile_by_range_after_restart(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = open_meter(tmp_path, START)
    try:
        grid = meter.world.grid
        grid.set_phase("L1", u_harmonics=((5, 0.04, 0.0), (7, 0.03, 0.0)))
        meter.world.load_scenario('[[events]]\nat_s = 30\nphase = "L3"\nvoltage_v = 150.0\n'
                                  '[[events]]\nat_s = 31\nphase = "L3"\nvoltage_v = 230.0\n', "dip")
        meter.run(100)
        service = meter.service(PowerQualityService)
        values = service.values()
        rows = service.profile.rows_by_entry(1, 0)
        assert [r.utc for r in rows] == [TICK]
        stored = rows[0].values
        assert stored[-1] == 1  # the dip on L3 flags the interval
        with Client(meter, 17) as gs:
            thd = gs.read(GXDLMSRegister("1.0.32.7.124.255"), 2)
            assert thd == round(values.thd_pct["U1"] * 100)
            assert thd / 100 == pytest.approx(5.0, abs=0.05)  # sqrt(4² + 3²) %
            assert gs.read(GXDLMSRegister("1.0.32.7.5.255"), 2) / 100 == pytest.approx(4.0, abs=0.02)
            assert gs.read(GXDLMSRegister("1.0.32.7.7.255"), 2) / 100 == pytest.approx(3.0, abs=0.02)
            assert gs.read(GXDLMSRegister("1.0.52.7.5.255"), 2) < 2  # L2 is clean (< 0.02 %)
            pst = gs.read(GXDLMSRegister("1.0.52.7.130.255"), 2)
            assert pst == round(values.pst[2].pst * 1000) and pst > 0
            plt = gs.read(GXDLMSRegister("1.0.52.7.131.255"), 2)
            assert plt == 0 and 2 not in values.plt  # no 2-h interval yet: no Plt
            rms = GXDLMSRegister("1.0.32.5.0.255")
            assert gs.read(rms, 2) / 100 == pytest.approx(230.0 * (1 + 0.04**2 + 0.03**2) ** 0.5, abs=0.1)
            assert gs.read(GXDLMSData("0.0.96.10.4.255"), 2) == 1
            assert gs.read(GXDLMSData("0.0.96.10.5.255"), 2) == 0  # waveform analysis: not indicative
            assert gs.read(GXDLMSData("0.0.96.10.6.255"), 2) == 0  # no Plt, no Plt flag
    finally:
        meter.close()
    meter = open_meter(tmp_path, START + dt.timedelta(seconds=130))
    try:
        meter.run(2)
        with Client(meter, 17) as gs:
            pg = GXDLMSProfileGeneric(PQ_PROFILE)
            gs.read(pg, 3)
            assert [c[0].logicalName for c in pg.captureObjects][:2] == ["0.0.1.0.0.255", "1.0.32.5.0.255"]
            assert gs.read(pg, 7) == 1
            got = gs.rows_by_range(pg, TICK - dt.timedelta(minutes=30), TICK + dt.timedelta(minutes=30))
            assert len(got) == 1 and as_utc(got[0][0]) == TICK
            assert [float(x) for x in got[0][1:]] == pytest.approx([float(x) for x in stored], abs=0.011)
            assert gs.rows_by_range(pg, TICK + dt.timedelta(seconds=1), TICK + dt.timedelta(minutes=30)) == []
            # the register reads 0 until the restarted analysis closes an interval
            assert gs.read(GXDLMSData("0.0.96.10.4.255"), 2) == 0
    finally:
        meter.close()

"""Unbalance, THD40, PWHD and interharmonics of a three-phase meter in the simulator: the 10-min
values in the PQ profile, the DLMS objects and the status (``meterctl pq``); profile rows stored
before the new columns existed come back in the new layout.

Expected unbalance of L1 at 95 % (L2, L3 at 230 V, 120° apart), from the definitions:
U_neg = U_zero = (0.95 − 1)/3 · 230 V and U_pos = (0.95 + 2)/3 · 230 V, so u2 = u0 = 0.05 / 2.95.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from meterd.core.model import ProfileRow
from meterd.cosem import axdr
from meterd.services.power_quality import (
    COLUMNS,
    FLAG_OBIS,
    PQ_PROFILE_OBIS,
    U0_OBIS,
    U2_OBIS,
    PowerQualityService,
    PqProfile,
)
from meterd.store.profile_store import SqliteProfileStore
from tests.simmeter import SimMeter

START = dt.datetime(2026, 6, 1, 17, 9, 52, tzinfo=dt.UTC)  # 8 s before a 10-min tick
U2_PCT = 0.05 / 2.95 * 100
CLASS_A_PCT = 0.15


def _objects(meter: SimMeter) -> dict[str, object]:
    out: dict[str, object] = {}
    for factory in meter.daemon.cosem_factories:
        if getattr(factory, "__qualname__", "").split(".")[0] == "quantities_factory":
            out |= {entry.obj.logicalName: entry.obj for entry in factory(None)}
    return out


def _read(obj: object) -> bytes:
    value = obj.attribute_values()[2]  # type: ignore[attr-defined]
    return value() if callable(value) else value  # type: ignore[no-any-return]


def test_ten_minute_quantities_in_profile_dlms_and_status(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, sim={"start_utc": START.isoformat()}, display={"kind": "dummy"},
                     power_quality={"enabled": True})
    try:
        meter.world.grid.set_phase("L1", voltage_v=0.95 * 230.0, u_harmonics=((17, 0.02, 0.0), (5, 0.03, 0.0)))
        meter.run(10)
        service = meter.service(PowerQualityService)
        ten = service.values().aggregates["10-min"]
        assert ten.u2_pct == pytest.approx(U2_PCT, abs=CLASS_A_PCT)
        assert ten.u0_pct == pytest.approx(U2_PCT, abs=CLASS_A_PCT)
        assert ten.flagged and ten.partial  # the first interval after a start
        pwhd = (17 * 2.0**2) ** 0.5
        assert ten.pwhd_pct[0] == pytest.approx(pwhd, rel=0.01)
        assert ten.thds40_pct[0] == pytest.approx((2.0**2 + 3.0**2) ** 0.5, rel=0.01)
        columns = [c.obis for c in service.profile.columns]
        assert columns == [c.obis for c in COLUMNS] and columns[-1] == FLAG_OBIS
        row = service.profile.rows_by_entry(1, 0)[0].values
        assert row[columns.index(U2_OBIS) - 1] == pytest.approx(U2_PCT, abs=CLASS_A_PCT)
        assert row[columns.index(U0_OBIS) - 1] == pytest.approx(U2_PCT, abs=CLASS_A_PCT)
        assert row[columns.index("1.0.32.7.136.255") - 1] == pytest.approx(pwhd, rel=0.01)
        assert row[-1] == 1
        objects = _objects(meter)
        u2 = _read(objects[U2_OBIS])
        assert u2[0] == axdr.UINT16 and int.from_bytes(u2[1:3], "big") == round(ten.u2_pct * 100)
        pwhd_l1 = _read(objects["1.0.32.7.136.255"])
        assert int.from_bytes(pwhd_l1[1:3], "big") / 100 == pytest.approx(pwhd, rel=0.01)
        array = _read(objects["1.0.52.7.137.255"])
        assert array[:2] == bytes((axdr.ARRAY, 51)) and len(array) == 2 + 51 * 3
        status = meter.daemon.status_extras["power_quality"]()
        assert json.loads(json.dumps(status)) == status  # the API sends it as JSON: plain types only
        code, pq = asyncio.run(meter.daemon.api.dispatch("GET", "/pq", {}))
        assert code == 200 and json.loads(json.dumps(pq)) == pq
        assert status["phases"] == 3
        assert status["ten_min"]["u2_pct"] == pytest.approx(U2_PCT, abs=CLASS_A_PCT)
        assert status["unbalance_pct"]["u2"] == pytest.approx(U2_PCT, abs=CLASS_A_PCT)  # the 150-cycle value
        assert status["ten_min"]["pwhd_pct"]["U1"] == pytest.approx(pwhd, rel=0.01)
    finally:
        meter.close()


def test_rows_of_the_earlier_layout_come_back_with_the_new_columns_zero(tmp_path: Path) -> None:
    utc = dt.datetime(2026, 6, 1, 17, 10, tzinfo=dt.UTC)
    legacy = ProfileRow(utc, (230.1, 230.2, 230.3, 1.5, 1.6, 1.7, 0.2, 0.3, 0.4, 1))
    with SqliteProfileStore(tmp_path / "pq.db", depth={PQ_PROFILE_OBIS: 10}) as store:
        store.append_row(PQ_PROFILE_OBIS, legacy)
    with SqliteProfileStore(tmp_path / "pq.db", depth={PQ_PROFILE_OBIS: 10}) as store:
        restored = PqProfile(10, store).rows_by_entry(1, 0)
        assert len(restored) == 1 and len(restored[0].values) == len(COLUMNS) - 1
        assert restored[0].values[:9] == legacy.values[:9] and restored[0].values[-1] == 1
        assert set(restored[0].values[9:-1]) == {0}
        assert PqProfile(10, store, phases=1).entries_in_use() == 0  # a 3P4W row is no 1P2W row

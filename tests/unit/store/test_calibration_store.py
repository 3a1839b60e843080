"""The calibration file: round trip, and every way it can be unusable."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest

from meterd.core.calibration import CalibrationValues
from meterd.core.calibration_record import CalibrationDocumentError, CalibrationProblem, CalibrationRecord
from meterd.store.calibration_store import CalibrationStore

SERIAL = "PMM1221000001"


def _record(serial: str = SERIAL) -> CalibrationRecord:
    return CalibrationRecord(calibration_id=f"{serial}-C001-20260101T000000Z", revision=1, serial=serial,
                             utc=_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC), operator="A. Technician",
                             reference_instrument="RS-3 #1234", uncertainty_pct=0.02,
                             values=CalibrationValues().with_phase(0, energy_gain=123, phase_delay=0x8011),
                             points=({"current_a": 5.0, "power_factor": "1", "errors_pct": [0.01, 0.0, -0.02]},))


def _problem(store: CalibrationStore) -> CalibrationProblem:
    with pytest.raises(CalibrationDocumentError) as info:
        store.load()
    return info.value.problem


def test_round_trip(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, SERIAL)
    store.save(_record())
    assert store.load() == _record()
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_corrupted_tampered_foreign(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, SERIAL)
    assert _problem(store) is CalibrationProblem.MISSING
    store.path.write_text("{not json")
    assert _problem(store) is CalibrationProblem.CORRUPTED
    store.save(_record())
    doc = json.loads(store.path.read_text())
    doc["record"]["operator"] = "someone else"
    store.path.write_text(json.dumps(doc))
    assert _problem(store) is CalibrationProblem.CORRUPTED
    doc = json.loads(store.path.read_text())
    doc["format"] = 2
    store.path.write_text(json.dumps(doc))
    assert _problem(store) is CalibrationProblem.CORRUPTED
    CalibrationStore(tmp_path, "PMM1221000099").save(_record("PMM1221000099"))
    assert _problem(store) is CalibrationProblem.FOREIGN
    with pytest.raises(ValueError, match="cannot be stored"):
        store.save(_record("PMM1221000099"))

"""A simulated day of metering with a metering-IC fault every 10 minutes, against the grid's truth.

Short form (``make test``): 80 simulated minutes, each fault kind at least once; full form
(``PMM_SOAK=1``, ``-m slow``): 24 hours, 144 faults. Billed energy = true energy − the energy the
meter records as not measured during its fault episodes, within 0.01 %; no export billed on an
import load; every chip fault left a measurement-system event; one daemon throughout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.atm90e36.faults import ChipFault
from tests.fault_day import FaultDay, run_fault_day


def check(day: FaultDay) -> None:
    assert abs(day.unexplained_pct) <= 0.01, day
    assert day.billed_wh <= day.true_wh  # never phantom energy
    assert day.export_wh == 0.0
    assert not day.unlogged, day.unlogged  # a stalled loop too, though the chip kept its energy
    assert 0 < day.estimate_wh <= day.flagged_true_wh + 1e-6  # lost energy lies inside flagged intervals
    assert not day.rebuilt


def test_fault_every_10_minutes_short_form(tmp_path: Path) -> None:
    day = run_fault_day(tmp_path, hours=80 / 60)
    assert set(day.injected) == {k.value for k in ChipFault}
    check(day)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fault_every_10_minutes_for_a_day(tmp_path: Path) -> None:
    day = run_fault_day(tmp_path, hours=24)
    assert day.injected_total == 144
    check(day)

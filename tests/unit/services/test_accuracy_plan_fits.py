"""The accuracy test asks only for runs the meter's ring of cycle samples holds, and says which
resolution would fit before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from meterd.core.calibration import CalibrationRejected
from meterd.services.accuracy_test import (
    Nameplate,
    check_plan_fits,
    class_05s_plan,
    no_load_cycles,
    run_accuracy,
)
from meterd.services.calibration import SAMPLES_KEPT

#: the simulated PMM1221: one register count is one chip count of 0.1 Wh
PLATE = Nameplate(energy_resolution_mwh=100.0)


@pytest.mark.parametrize("resolution_pct", [0.02, 0.01])
def test_the_class_05s_plan_fits_the_ring_down_to_the_reference_standards_uncertainty(resolution_pct: float) -> None:
    check_plan_fits(PLATE, class_05s_plan(PLATE), resolution_pct, SAMPLES_KEPT)


def test_a_finer_resolution_is_refused_naming_the_finest_that_fits() -> None:
    with pytest.raises(CalibrationRejected, match=r"0\.005 % needs 30036 cycles .* keeps 16200: .* 0\.00928 %"):
        check_plan_fits(PLATE, class_05s_plan(PLATE), 0.005, SAMPLES_KEPT)
    check_plan_fits(PLATE, class_05s_plan(PLATE), 0.00928, SAMPLES_KEPT)


def test_a_no_load_test_longer_than_the_ring_is_refused() -> None:
    slow = Nameplate(led_imp_per_kwh=10.0, max_current_a=10.0)  # Δt = 8696 min
    assert no_load_cycles(slow) == 521_740
    with pytest.raises(CalibrationRejected, match="no-load test needs 521742 cycles"):
        check_plan_fits(slow, class_05s_plan(slow), 0.02, SAMPLES_KEPT)


class _Untouched:
    """A meter, source and reference that fail when the run uses them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the run started ({name})")


def test_the_run_is_refused_before_it_touches_the_meter() -> None:
    never = _Untouched()
    with pytest.raises(CalibrationRejected, match="keeps 16200"):
        run_accuracy(never, never, never, PLATE, {}, None, 0.005, samples_kept=SAMPLES_KEPT)  # type: ignore[arg-type]


def test_a_starting_test_longer_than_the_ring_is_refused() -> None:
    coarse = Nameplate(energy_resolution_mwh=1e6, starting_current_a=0.02)  # 1 kWh a count at 13.8 W
    with pytest.raises(CalibrationRejected, match="starting current test needs 391307 cycles"):
        check_plan_fits(coarse, class_05s_plan(coarse), 0.02, SAMPLES_KEPT)

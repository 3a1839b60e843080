"""Shared test set-up: every test runs on simulated hardware (gpiozero mock pins)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")


@pytest.fixture
def mock_pins():
    """A fresh gpiozero MockFactory for the test, reset afterwards."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


def soak_enabled() -> bool:
    """Long soak tests run in full only with PMM_SOAK=1; CI runs their short form."""
    return os.environ.get("PMM_SOAK") == "1"


@pytest.fixture
def manual_mono():
    """Monotonic seconds a test moves by hand (:class:`tests.fakes.ManualMono`, from 100 s)."""
    from tests.fakes import ManualMono

    return ManualMono()


@pytest.fixture
def ram_tmp_path():
    """A fresh directory on a RAM file system (:mod:`tests.ram_dir`), removed afterwards: for
    state directories of tests that prove what the meter computes, never its durability."""
    from tests.ram_dir import ram_directory

    with ram_directory() as path:
        yield path


LONG_MODULES_FIRST = (
    # test modules of more than ~10 s of worker time, longest first (``make test`` with
    # ``--durations``). ``make test`` hands whole modules to its two workers in collection order
    # (``--dist loadfile``), so the long ones start at once, each module's fixtures run on one
    # worker only, and the run ends on short unit tests instead of waiting for a long tail.
    "integration/test_revenue_simmeter.py",
    "integration/test_accuracy.py",
    "integration/test_disk_full.py",
    "integration/test_storage_damage.py",
    "interop/test_dlms_matrix.py",
    "integration/test_durability.py",
    "integration/test_revenue_config_change.py",
    "integration/test_write_budget.py",
    "integration/test_firmware_over_dlms.py",
    "integration/test_calibration_meterctl.py",
    "interop/test_meterd_dlms.py",
    "integration/test_revenue_60days.py",
    "integration/test_firmware_cycle.py",
    "integration/test_processes.py",
    "integration/test_fault_day.py",
    "integration/test_readme_commands.py",
    "unit/repo/test_lint.py",
    "integration/test_rig_link_faults.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the long modules of :data:`LONG_MODULES_FIRST` first, in that order; every other
    test keeps its place relative to the others (and every module its own order)."""
    rank = {name: i for i, name in enumerate(LONG_MODULES_FIRST)}
    here = Path(__file__).parent

    def key(item: pytest.Item) -> int:
        try:
            module = Path(item.path).relative_to(here).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(module, len(rank))

    items.sort(key=key)  # stable: ties keep the collection order

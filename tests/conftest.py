"""Shared test set-up: every test runs on simulated hardware (gpiozero mock pins)."""

from __future__ import annotations

import os

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

"""Every exception class defined in ``hw`` derives from :class:`hw.errors.HwError`, and keeps the
built-in base its callers catch."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hw
import hw.serial_link
from hw.errors import HwError
from hw.sim.grid import GridError
from hw.sim.scenario import ScenarioError
from hw.spi import SpiDeviceMissing, SpiError
from meterd.runtime import dlms_serial


def _hw_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(hw.__path__, "hw."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_every_hw_exception_derives_from_hw_error() -> None:
    found = _hw_exceptions()
    assert len(found) >= 15  # the walk reached the drivers
    assert [cls.__qualname__ for cls in found if not issubclass(cls, HwError)] == []


def test_built_in_bases_callers_catch_are_kept() -> None:
    assert issubclass(SpiError, OSError)
    assert issubclass(SpiDeviceMissing, FileNotFoundError)
    assert issubclass(GridError, ValueError)
    assert issubclass(ScenarioError, ValueError)


def test_one_serial_link_error() -> None:
    assert dlms_serial.SerialLinkError is hw.serial_link.SerialLinkError

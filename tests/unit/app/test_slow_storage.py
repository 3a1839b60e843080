"""Slow storage in simulation: each energy-database write takes longer while it lasts."""

from __future__ import annotations

import pytest

from tests.simmeter import SimMeter


def test_slow_storage_delays_each_database_write_for_its_duration(tmp_path):
    meter = SimMeter(tmp_path / "state")
    try:
        store = meter.daemon.store
        assert store is not None
        slept: list[float] = []
        store.sleep = slept.append
        meter.meter.persist()
        assert slept == []
        assert meter.world.slow_storage(0.25, duration_s=5.0) == {"slow_storage_s": 0.25, "duration_s": 5.0}
        meter.meter.persist()
        assert slept == [0.25]
        meter.run(6)  # the slow storage ends after 5 meter seconds
        slept.clear()
        meter.meter.persist()
        assert slept == []
        with pytest.raises(ValueError):
            meter.world.slow_storage(31.0)
    finally:
        meter.close()


def test_slow_storage_from_the_configuration(tmp_path):
    meter = SimMeter(tmp_path / "state", sim={"slow_storage_s": 0.5})
    try:
        assert meter.daemon.store is not None
        slept: list[float] = []
        meter.daemon.store.sleep = slept.append  # no real waiting in the test
        assert meter.world.storage_delay() == 0.5
        meter.run(3)
        assert meter.world.storage_delay() == 0.5  # until changed
        meter.meter.persist()
        assert slept == [0.5]
        meter.world.slow_storage(0.0)
        assert meter.world.storage_delay() == 0.0
    finally:
        meter.close()

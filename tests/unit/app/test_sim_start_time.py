"""The simulated clock starts at the time of day with ``[sim] start_utc = "now"`` (what
config/sim.toml, and so `make run`, has), at a fixed time otherwise (tests, reproducible runs)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from meterd.app.config import SimSection
from meterd.app.daemon import Daemon
from meterd.app.features import load_config
from meterd.core.errors import ConfigError
from tests.paths import SIM_CONFIG
from tests.simmeter import TEST_START_UTC, SimMeter, sim_config_file


def test_now_is_the_present_second_and_a_time_is_kept() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = SimSection(start_utc="now").start()
    assert before <= start <= dt.datetime.now(dt.UTC) and start.microsecond == 0
    assert SimSection(start_utc="2030-05-06T07:08:09+00:00").start() == dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def test_make_run_starts_at_the_time_of_day_and_tests_at_their_fixed_time(tmp_path: Path) -> None:
    assert load_config(SIM_CONFIG).sim.start_utc == "now"
    cfg = load_config(SIM_CONFIG)
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=str(tmp_path / "now")))
    daemon = Daemon(cfg)
    daemon.build()
    try:
        assert daemon.clock is not None
        assert abs((daemon.clock.utc() - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    finally:
        daemon.close()
    meter = SimMeter(tmp_path / "fixed")
    try:
        assert meter.clock is not None and meter.clock.utc() == dt.datetime.fromisoformat(TEST_START_UTC)
    finally:
        meter.close()


def test_a_start_time_that_is_neither_a_time_nor_now_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sim.start_utc"):
        load_config(sim_config_file(tmp_path, start_utc='"tomorrow"'))

"""Daemon.step: one metering cycle, the one the asyncio loop and the in-process meter both run."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from meterd.app.features import MODULES, load_config
from meterd.app.features import supervision as supervision_feature
from meterd.core.clock import SimClock
from meterd.services.metering import CycleResult
from tests.paths import SIM_CONFIG
from tests.simmeter import SimMeter


class FakeNotifier:
    """A systemd notifier with a watchdog every 0 s (due at each cycle)."""

    watchdog_interval_s = 0.0

    def __init__(self) -> None:
        self.sent: list[str] = []

    def watchdog(self) -> bool:
        self.sent.append("WATCHDOG=1")
        return True

    def status(self, status: str) -> bool:
        self.sent.append(f"STATUS={status}")
        return True


def test_step_advances_the_sim_clock_runs_the_cycle_and_every_hook_in_order(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    try:
        clock = meter.clock
        assert isinstance(clock, SimClock)
        seen: list[tuple[str, Any]] = []
        meter.daemon.cycle_hooks.insert(0, lambda result: seen.append(("first", result)))
        meter.daemon.cycle_hooks.append(lambda result: seen.append(("last", clock.utc())))
        before, cycles = clock.utc(), meter.meter.cycles
        result = meter.daemon.step(2.0)
        assert isinstance(result, CycleResult)
        assert clock.utc() - before == _dt.timedelta(seconds=2)
        assert meter.meter.cycles == cycles + 1 and meter.meter.last_reading is result.reading
        assert seen == [("first", result), ("last", clock.utc())]
        meter.daemon.step()  # [meter] cycle_s
        assert clock.utc() - before == _dt.timedelta(seconds=2 + meter.daemon.cfg.meter.cycle_s)
    finally:
        meter.close()


def test_step_pings_the_watchdog_with_a_status_line_when_due(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    try:
        notifier = FakeNotifier()
        meter.daemon.notifier = notifier  # type: ignore[assignment]
        meter.daemon.step()
        assert notifier.sent[0] == "WATCHDOG=1" and notifier.sent[1].startswith("STATUS=metering: P=")
    finally:
        meter.close()


def test_features_attach_in_order_and_the_config_knows_every_section() -> None:
    names = [name for name, _ in MODULES]
    # the pushes come after the DLMS server: they seal with its keys and capture its objects
    assert names[0] == "supervision" and names[-2:] == ["dlms", "push"]
    cfg = load_config(SIM_CONFIG)
    assert isinstance(cfg.feature("supervision"), supervision_feature.SupervisionSection)
    assert set(cfg.features) >= {name for name, mod in MODULES if mod.SECTION is not None}

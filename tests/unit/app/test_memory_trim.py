"""The running daemon gives the allocator's free memory back once started and then periodically."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meterd.app import daemon as daemon_module
from meterd.app.daemon import Daemon
from tests.simmeter import sim_config


def test_trims_after_start_up_and_every_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(daemon_module, "trim", lambda: calls.append(len(sleeps)) or True)
    monkeypatch.setattr(daemon_module.asyncio, "sleep", no_wait)
    daemon = Daemon(sim_config(tmp_path))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(daemon._trim_memory())
    assert calls == [0, 1, 2]  # at once, then after each period
    assert sleeps == [daemon_module.TRIM_PERIOD_S] * 3 and daemon_module.TRIM_PERIOD_S == 60.0

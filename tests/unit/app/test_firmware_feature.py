"""The firmware feature in an in-process meter: it provides the installer, and without the
simulated board (no launcher booted one) the engine says it is unavailable, refuses nothing it
has not read, and the meter runs as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meterd.services.firmware import FirmwareEngineError, FirmwareService
from meterd.services.firmware_port import FirmwareInstaller
from tests.simmeter import SimMeter


def test_the_installer_is_provided_and_reports_no_engine_without_a_board(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path / "state")
    try:
        installer = meter.service(FirmwareInstaller)  # type: ignore[type-abstract]
        assert installer is meter.service(FirmwareService)
        running = installer.running()
        assert running.compatible == "pmm1221-rpi4" and len(running.metrology_checksum) == 64
        assert running.metrology_id.startswith("PMM-CORE ")
        meter.run(3)
        api = meter.daemon.api
        code, view = asyncio.run(api.dispatch("GET", "/firmware", {}))
        assert code == 200 and view["engine"].startswith("unavailable: no simulated board")
        assert view["phase"] == "idle" and view["outcome"] == "none"
        code, answer = asyncio.run(api.dispatch("POST", "/firmware/verify", {"bundle": str(tmp_path / "x.raucb")}))
        assert code == 503 and "unavailable" in answer["error"]
        code, answer = asyncio.run(api.dispatch("POST", "/firmware/install", {"bundle": "relative.raucb"}))
        assert code == 400
        with pytest.raises(FirmwareEngineError):
            asyncio.run(installer.verify(tmp_path / "x.raucb"))
        code, status = asyncio.run(api.dispatch("GET", "/status", {}))
        assert status["firmware"]["engine"] == "unavailable" and status["firmware"]["last_update"] == "none"
    finally:
        meter.close()

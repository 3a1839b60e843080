"""Software identification of the running firmware on the meter LCD and over DLMS, with and
without an update engine: the same values in both places."""

from __future__ import annotations

import asyncio
import hashlib
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from meterd.app import features
from meterd.core.firmware import FirmwareIdentity
from meterd.services.firmware_port import FirmwareInstaller
from meterd.ui.meter_display import MeterDisplay
from meterd.ui.screens import ITEMS_BY_ID, render_item
from tests.fakes import FakeInstaller
from tests.simmeter import SimMeter


def shown(meter: SimMeter, item: str) -> Any:
    display = meter.service(MeterDisplay)
    code, view = asyncio.run(meter.daemon.api.dispatch("POST", "/display/show", {"item": item}))
    assert code == 200 and item in (view["item"], view["obis"])
    return display.data()


def test_without_an_engine_the_package_version_and_metrology_digest(tmp_path: Path) -> None:
    """Identified as the update engine identifies what runs: "PMM-CORE <package version>" and the
    SHA-256 over the metrology sources (path, NUL, content), here computed independently."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for package in ("meterd/core", "meterd/bridge", "hw/atm90e36"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    version = metadata.version("pmm-reference-meter")
    meter = SimMeter(tmp_path)
    try:
        data = shown(meter, "1-0:0.2.0.255")
        assert data.firmware_id == f"PMM-CORE {version}"
        assert data.firmware_checksum == digest.hexdigest()
        status = meter.daemon.context().status_extras["image_transfer"]()
        assert status["status_name"] == "not_initiated" and status["running"] == version
    finally:
        meter.close()


def test_with_an_engine_its_running_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeInstaller(running=FirmwareIdentity("1.4.0", "pmm1221-rpi4", "PMM-CORE 1.2", "0123abcd" * 8, "B"))
    module = types.SimpleNamespace(
        SECTION=features.firmware.SECTION,  # in place of the RAUC engine
        attach=lambda ctx: ctx.registry.provide(FirmwareInstaller, fake, by="firmware"))  # type: ignore[type-abstract]
    modules = [(n, module if n == "firmware" else m) for n, m in features.MODULES]
    monkeypatch.setattr(features, "MODULES", tuple(modules))
    meter = SimMeter(tmp_path)
    try:
        data = shown(meter, "firmware")
        assert data.firmware_id == "PMM-CORE 1.2"
        image = render_item(ITEMS_BY_ID["firmware"], data)
        assert image.getbbox() is not None
        data = shown(meter, "firmware_sig")
        assert data.firmware_checksum == "0123abcd" * 8
        blank = render_item(ITEMS_BY_ID["firmware_sig"], data.__class__())
        assert render_item(ITEMS_BY_ID["firmware_sig"], data).tobytes() != blank.tobytes()
    finally:
        meter.close()

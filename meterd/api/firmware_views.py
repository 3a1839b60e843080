"""The local operator's firmware update (``meterctl firmware``), without DLMS.

* ``GET /firmware``: the running version, slot and metrology identification, RAUC's slots, the
  update in progress and how the last one ended;
* ``POST /firmware/verify {"bundle": path}``: the verdict on a bundle on the meter's file
  system (nothing installed): 200 when it may be installed ("firmware ready", IDIS 17), 422
  with the reason when refused ("verification failed", 231, with reason and detail);
* ``POST /firmware/install {"bundle": path}``: verified again, installed to the inactive slot,
  the meter restarts into it for a trial (202); refused: 422 as above, nothing installed; the
  engine unavailable or an update in progress: 503 / 409.

Both POST routes need the control role on TCP. A bundle path is the meter's own (meterctl makes
it absolute); the bundle is read by RAUC, never by this view.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from meterd.api.schema import Body, Field
from meterd.api.server import ApiError, ApiServer
from meterd.core import event_codes as ec
from meterd.core.clock import Clock
from meterd.core.firmware import BundleVerdict
from meterd.services.firmware import FirmwareEngineError, FirmwareService

Record = Callable[[int, _dt.datetime, Mapping[str, object]], object]
_BUNDLE = Body((Field("bundle", str, "absolute path of the RAUC bundle on the meter", required=True),))


def verdict_view(verdict: BundleVerdict) -> dict[str, Any]:
    """A verdict as JSON."""
    ident = verdict.identity
    return {"ok": verdict.ok, "reason": verdict.reason.value if verdict.reason is not None else None,
            "detail": verdict.detail,
            "bundle": None if ident is None else {"version": ident.version, "compatible": ident.compatible,
                                                  "metrology_id": ident.metrology_id,
                                                  "metrology_checksum": ident.metrology_checksum, "slot": ident.slot}}


def record_verdict(record: Record, clock: Clock, verdict: BundleVerdict, running: str) -> None:
    """The verdict in the firmware log: "firmware ready" (17) or "verification failed" (231)."""
    version = verdict.identity.version if verdict.identity is not None else ""
    if verdict.ok:
        record(ec.code("FIRMWARE_READY"), clock.utc(), {"version": version, "running_version": running})
    else:
        assert verdict.reason is not None
        record(ec.code("FIRMWARE_VERIFY_FAILED"), clock.utc(),
               {"reason": verdict.reason.value, "detail": verdict.detail[:200], "version": version,
                "running_version": running})


def _bundle(body: Mapping[str, Any]) -> Path:
    path = Path(str(body["bundle"]))
    if not path.is_absolute():
        raise ApiError(400, "bundle: expected an absolute path on the meter")
    return path


def firmware_routes(api: ApiServer, service: FirmwareService, record: Record, clock: Clock) -> None:
    """Register the routes (module docstring)."""

    def status(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The running firmware, the slots and the last update."""
        return 200, service.view()

    async def verify(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Verify a bundle (signature, completeness, hardware, versions); installs nothing."""
        try:
            verdict = await service.verify(_bundle(body))
        except FirmwareEngineError as exc:
            raise ApiError(503, f"update engine: {exc}") from None
        record_verdict(record, clock, verdict, service.running().version)
        return (200 if verdict.ok else 422), verdict_view(verdict)

    async def install(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Install a bundle to the inactive slot and restart into it for a trial."""
        try:
            verdict = await service.activate(_bundle(body), clock.utc())
        except FirmwareEngineError as exc:
            busy = "in progress" in str(exc)
            raise ApiError(409 if busy else 503, f"update engine: {exc}") from None
        if not verdict.ok:
            record_verdict(record, clock, verdict, service.running().version)
            return 422, verdict_view(verdict)
        return 202, {**verdict_view(verdict), "rebooting": True}

    api.route("GET", "/firmware", status, description="The running firmware, the slots and the last update.")
    api.route("POST", "/firmware/verify", verify, body=_BUNDLE,
              description="Verify a bundle (signature, completeness, hardware, versions); installs nothing.")
    api.route("POST", "/firmware/install", install, body=_BUNDLE,
              description="Install a bundle to the inactive slot and restart into it for a trial.")

"""Firmware image transfer over DLMS, its scheduled activation and the firmware identification.

Wires :class:`meterd.services.image_transfer.ImageTransferService`:

* the image on the data partition (:class:`~meterd.store.image_store.ImageStore` in
  ``<state_dir>/<directory>``, at most ``max_image_bytes``; data and CRCs synced every
  ``sync_blocks`` blocks), so an interrupted transfer resumes across a restart of meterd;
* the update engine (:class:`~meterd.services.firmware_port.FirmwareInstaller`), found in the
  registry when the ``firmware`` feature provides it (attached before this one); without it the
  meter still receives images and keeps their continuity, but cannot verify or activate them
  (said once in the log): a meter without an update engine is a legitimate configuration;
* another device's update (:class:`~meterd.services.image_target.ImageTarget`, the ``ciu``
  feature's when the CIU's update is on): a bundle whose compatible string is the CIU's is
  verified for the CIU and, at activation, carried to it (docs/firmware.md, "A CIU bundle over
  DLMS");
* the engine's verification and installation run as tasks on the event loop; when no loop runs
  (a meter stepped in-process) they run to their end at once;
* the activation schedule 0-0:15.0.2.255 checked every metering cycle against the meter clock,
  in legal time (the revenue feature's rules when present, else UTC);
* COSEM objects (:mod:`meterd.cosem.objects_firmware`): 0-0:44.0.0.255, 0-0:15.0.2.255,
  0-0:10.0.107.255 and the identification 1-0:0.2.0.255, 1-0:0.2.8.255, 0-0:0.2.0.255 (served
  on every DLMS link: TCP wrapper, RS-485 HDLC, optical port); the transfer's methods only for
  the management association;
* ``/status`` shows ``image_transfer`` (status, blocks, identifier) and ``firmware`` lines go to
  the display's scroll list (legal metrology's software identification).

Events go to the supervision's event recorder (needed): see the service's docstring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from meterd.app.config import rng
from meterd.app.feature_api import FeatureContext
from meterd.app.features.firmware import code_identity
from meterd.core.events import EventRecorder
from meterd.core.legal_time import ClockSettings, LegalTime
from meterd.cosem.config import ServerConfig
from meterd.cosem.objects_firmware import firmware_factory
from meterd.services.firmware_port import FirmwareInstaller
from meterd.services.image_target import ImageTarget
from meterd.services.image_transfer import ImageTransferService
from meterd.services.metering import CycleResult
from meterd.services.revenue import RevenueService
from meterd.store.image_store import ImageStore
from meterd.ui.meter_display import MeterDisplay

log = logging.getLogger("meterd.image_transfer")
CIPHERED_ACTION_OVERHEAD = 64  # octets of an image_block_transfer request around its block (ciphered)


@dataclass(frozen=True)
class ImageTransferSection:
    """``[image_transfer]``: ``enabled`` (image_transfer_enabled), ``block_size`` (octets per
    block; with the request around it it must fit the DLMS server's PDU), ``max_image_bytes``
    (the largest image accepted), ``directory`` (under the state directory), ``sync_blocks``
    (blocks written between two syncs of the image files)."""

    enabled: bool = True
    block_size: int = field(default=512, metadata=rng(64, ServerConfig.max_pdu - CIPHERED_ACTION_OVERHEAD))
    max_image_bytes: int = field(default=128 * 1024 * 1024, metadata=rng(1024, 2**31 - 1))
    directory: str = "image"
    sync_blocks: int = field(default=16, metadata=rng(1, 4096))


SECTION = ImageTransferSection
_UTC_RULES = LegalTime(ClockSettings())


class TaskSpawner:
    """Runs the engine's coroutines as tasks of the running event loop (references kept until
    they end); without a running loop, to their end at once."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(coro)
            return
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def attach(ctx: FeatureContext) -> None:
    """Open the image store, build the service, add the COSEM objects, the cycle hook, the status
    and the display's identification lines."""
    section: ImageTransferSection = ctx.cfg.feature("image_transfer")
    events = ctx.registry.need(EventRecorder, by="image_transfer")
    installer = ctx.registry.find(FirmwareInstaller)  # type: ignore[type-abstract]  # a Protocol as the key
    target = ctx.registry.find(ImageTarget)  # type: ignore[type-abstract]  # the CIU, when its update is on
    revenue = ctx.registry.find(RevenueService)
    store = ImageStore(ctx.cfg.under_state(section.directory), section.max_image_bytes, section.sync_blocks)
    ctx.closers.append(store.close)
    service = ImageTransferService(
        store, events, ctx.clock.utc, installer, code_identity(""), section.block_size,
        (lambda: revenue.legal) if revenue is not None else (lambda: _UTC_RULES), TaskSpawner(),
        targets=(target,) if target is not None else ())
    ctx.registry.provide(ImageTransferService, service, by="image_transfer")
    if installer is None:
        log.info("no firmware update engine: DLMS image transfer receives images but cannot verify or activate")
    ctx.cosem_factories.append(firmware_factory(service, section.enabled))

    def tick(_result: CycleResult) -> None:
        service.tick()

    ctx.cycle_hooks.append(tick)
    ctx.status_extras["image_transfer"] = lambda: status(service)
    display = ctx.registry.find(MeterDisplay)
    if display is not None:
        display.add_identification(lambda: (service.identity().metrology_id, service.identity().metrology_checksum))


async def start(ctx: FeatureContext) -> None:
    """After the update engine's start (``firmware`` comes first): judge an activation made
    before the restart by the version that runs now."""
    ctx.registry.need(ImageTransferService, by="image_transfer").start()


def status(service: ImageTransferService) -> dict[str, Any]:
    """``/status`` ``image_transfer``: status (0..7 and its name), blocks received and expected,
    the image identifier, the next scheduled activation (UTC) and the running identity."""
    cur = service.files.current()
    ident = service.identity()
    nxt = service.runner.next_utc
    return {"status": int(service.status), "status_name": service.status.name.lower(), "target": service.target,
            "identifier": cur[0].hex() if cur else "", "size": cur[1] if cur else 0,
            "blocks": service.files.count() if cur else 0, "first_missing": service.first_not_transferred(),
            "activation_at": nxt.isoformat() if nxt else None, "running": ident.version,
            "metrology_id": ident.metrology_id}

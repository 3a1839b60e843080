"""Another device the meter's DLMS image transfer (0-0:44.0.0.255) can deliver a bundle to.

The image transfer receives a bundle and, by default, hands it to the meter's own update engine
(:class:`~meterd.services.firmware_port.FirmwareInstaller`). A device behind the meter (the CIU)
offers an :class:`ImageTarget`: at verification the image transfer asks each target whether the
bundle is for it (its RAUC compatible string, read from the bundle's manifest); the first that
claims it verifies it (signature, compatibility, versions: the same checks as the meter's, before
anything is carried) and, at activation, takes it over. The image identifier the head end gives
at ``image_transfer_initiate`` does not choose the target: the signed manifest does.

A target's activation only begins the delivery (the CIU's is carried over the MCU-CIU link for
minutes to hours); the image transfer then asks :meth:`ImageTarget.delivery` each metering cycle
until the device has confirmed the new firmware (:attr:`Delivery.DONE`) or gone back to the old
one (:attr:`Delivery.FAILED`).
"""

from __future__ import annotations

import datetime as _dt
import enum
from pathlib import Path
from typing import Protocol

from meterd.core.firmware import BundleVerdict


class Delivery(enum.Enum):
    """How a target's update of a version stands."""

    RUNNING = "running"  # carried, installed or in its trial boot
    DONE = "done"        # the device runs the new version and confirmed its slot
    FAILED = "failed"    # refused by the device, its install failed, or it rolled back


class ImageTarget(Protocol):
    """A device the image transfer delivers to (module docstring)."""

    @property
    def name(self) -> str:
        """Short name for the log, the events and the image's state (e.g. ``ciu``)."""
        ...

    async def claims(self, bundle: Path) -> bool:
        """Whether ``bundle`` is for this device: its manifest's compatible string is the
        device's (read without verifying the signature: :meth:`verify` does that)."""
        ...

    async def verify(self, bundle: Path) -> BundleVerdict:
        """Check the bundle for the device (signature, compatibility, minimum version, no
        downgrade unless allowed); records nothing (the image transfer logs the verdict)."""
        ...

    async def activate(self, bundle: Path, utc: _dt.datetime) -> BundleVerdict:
        """Verify again and begin the delivery (the target keeps its own copy of the bundle).
        A refusal the target has recorded itself raises
        :class:`~meterd.services.firmware_port.EngineFailure` with ``recorded``."""
        ...

    def delivery(self, version: str) -> Delivery:
        """Where the update to ``version`` begun by :meth:`activate` stands."""
        ...

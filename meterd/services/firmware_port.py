"""What the DLMS image transfer (and the API) need of the update engine.

Implemented by the firmware service over RAUC (real and file-backed slots alike); the image
transfer object and its activation schedule only speak to this port. Every method is
asynchronous because the engine runs external programs (``rauc info``, ``rauc install``) that
take seconds: the event loop never waits on them.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Protocol

from meterd.core.errors import MeterError
from meterd.core.firmware import BundleVerdict, FirmwareIdentity


class EngineFailure(MeterError):
    """The update engine itself failed (not a refused bundle, which is a verdict). ``recorded``:
    the engine has already put "activation failed" (232) with the reason and the versions in the
    firmware log, so the caller must not record it again."""

    def __init__(self, message: str, recorded: bool = False) -> None:
        super().__init__(message)
        self.recorded = recorded


class FirmwareInstaller(Protocol):
    """The A/B update engine as the transfer side sees it."""

    def running(self) -> FirmwareIdentity:
        """The identity of the firmware running now (1-0:0.2.0.255 / 1-0:0.2.8.255)."""
        ...

    async def verify(self, bundle: Path) -> BundleVerdict:
        """Check the complete bundle: signature against the keyring, completeness, hardware,
        minimum version, no downgrade unless allowed. Installs nothing; records nothing (the
        caller logs the verdict)."""
        ...

    async def activate(self, bundle: Path, utc: _dt.datetime) -> BundleVerdict:
        """Verify again, install to the inactive slot and restart into it for one trial boot
        (tryboot). Returns the verdict; when it is ok the meter is about to restart. A failure
        of the engine raises :class:`EngineFailure` (``recorded`` when the engine logged it)."""
        ...

"""Firmware identity and the verdict on an update bundle: what the DLMS image transfer, the
update engine, the event log and the display share.

The meter runs from one of two root-filesystem slots (A/B). An update is a signed bundle: a
RAUC bundle whose manifest carries the release version, the compatible hardware string, the
identifier of the legally relevant software (the metrology core) and its checksum. These types
carry no I/O; the engine that reads bundles and switches slots lives behind
:class:`meterd.services.firmware_port.FirmwareInstaller`.

OBIS: active firmware identifier 1-0:0.2.0.255, its signature (checksum) 1-0:0.2.8.255; image
transfer 0-0:44.0.0.255; image activation schedule 0-0:15.0.2.255.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RejectReason(Enum):
    """Why a bundle is refused before anything is installed (each goes to the firmware log)."""

    SIGNATURE = "signature"            # not signed by a key in the keyring, or tampered
    TRUNCATED = "truncated"            # not a complete bundle (size, squashfs or CMS damaged)
    HARDWARE = "hardware"              # compatible string is not this board's
    DOWNGRADE = "downgrade"            # older than the running version, downgrades not allowed
    TOO_OLD = "too_old"                # below the configured minimum version
    MALFORMED = "malformed"            # manifest lacks the version or metrology identification
    NO_IMAGE = "no_image"              # activation asked for with no verified image
    CIU_UNKNOWN = "ciu_unknown"        # a CIU bundle, but no CIU with the update protocol identified itself


@dataclass(frozen=True)
class FirmwareIdentity:
    """What runs, or what a bundle would install: ``version`` (e.g. "1.4.0"), ``compatible``
    (the hardware string, e.g. "pmm1221-rpi4"), ``metrology_id`` (identifier of the legally
    relevant software, e.g. "PMM-CORE 1.2") and ``metrology_checksum`` (hex SHA-256 of it),
    ``slot`` ("A"/"B", empty for a bundle not installed)."""

    version: str
    compatible: str
    metrology_id: str
    metrology_checksum: str
    slot: str = ""


@dataclass(frozen=True)
class BundleVerdict:
    """The outcome of verifying a bundle: ``identity`` when it could be read; ``reason`` None
    when it may be installed; ``detail`` a one-line human explanation (never a traceback)."""

    identity: FirmwareIdentity | None
    reason: RejectReason | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None and self.identity is not None


class UpdateOutcome(Enum):
    """How the last update ended, as the booted slot finds it at start."""

    NONE = "none"                      # no update since the last start
    CONFIRMED = "confirmed"            # new slot booted, self-check passed, slot marked good
    SELF_CHECK_FAILED = "self_check_failed"  # new slot booted, self-check failed, going back
    ROLLED_BACK = "rolled_back"        # the old slot booted again after a failed try


def version_key(version: str) -> tuple[int, ...]:
    """A comparable key of a dotted numeric version ("1.10.2" > "1.9.9"); a non-numeric part
    raises ValueError (such a bundle is MALFORMED)."""
    parts = version.strip().split(".")
    if not parts or any(not p.isdigit() for p in parts):
        raise ValueError(f"not a dotted numeric version: {version!r}")
    return tuple(int(p) for p in parts)

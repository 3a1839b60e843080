"""The CIU's rules for an update bundle and for the boot after an install (pure, no I/O).

The same rules as the meter's update engine (docs/firmware.md), applied by the CIU to its own
bundle: the signature is RAUC's (checked before these rules run), then the bundle must be for
this board's compatible string, carry a dotted numeric version, not be below ``min_version`` and,
unless ``allow_downgrade``, not be older than the running version. After the install the CIU
boots the new slot once (tryboot); :func:`boot_verdict` says what a start finds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


def version_key(version: str) -> tuple[int, ...]:
    """A comparable key of a dotted numeric version; ValueError for anything else."""
    parts = version.strip().split(".")
    if not parts or any(not p.isdigit() for p in parts):
        raise ValueError(f"not a dotted numeric version: {version!r}")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class UpdatePolicy:
    """``compatible``: this board's RAUC compatible string; ``min_version``; ``allow_downgrade``."""

    compatible: str
    min_version: str = "0.0.0"
    allow_downgrade: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a bundle is refused: ``reason`` (``hardware``, ``malformed``, ``too_old``,
    ``downgrade``, ``signature``, ``truncated``, ``checksum``) and one line of ``detail``."""

    reason: str
    detail: str


def judge(compatible: str, version: str, running: str, policy: UpdatePolicy) -> Refusal | None:
    """The verdict on a bundle whose signature RAUC accepted: None when it may be installed."""
    try:
        key = version_key(version)
    except ValueError:
        return Refusal("malformed", f"version {version!r} is not dotted numeric")
    if compatible != policy.compatible:
        return Refusal("hardware", f"bundle is for {compatible!r}, this CIU is {policy.compatible!r}")
    if key < version_key(policy.min_version):
        return Refusal("too_old", f"version {version} is below the minimum {policy.min_version}")
    try:
        older = key < version_key(running)
    except ValueError:
        older = False  # a running version that is not numeric (none installed yet) is no bound
    if older and not policy.allow_downgrade:
        return Refusal("downgrade", f"version {version} is older than the running {running}; downgrades are off")
    return None


class BootVerdict(enum.Enum):
    """What a start of the CIU finds about the last install."""

    NONE = "none"            # no install pending
    TRIAL = "trial"          # the new slot's trial boot: run the self-check
    RETRIAL = "retrial"      # the CIU started again within the same trial: it crashed; fail the trial
    ROLLED_BACK = "rolled_back"  # the old slot runs again: the trial did not confirm


@dataclass(frozen=True)
class TrialRecord:
    """Written before the install: the versions, the slot tried (A/B), the bundle's SHA-256,
    how often the CIU started in the trial, and why the trial failed (when it did)."""

    from_version: str
    to_version: str
    slot: str
    sha256: str
    starts: int = 0
    failure: str = ""


def boot_verdict(record: TrialRecord | None, booted_slot: str, trial: bool) -> BootVerdict:
    """The verdict of a start: ``booted_slot`` and ``trial`` are what the firmware reported."""
    if record is None:
        return BootVerdict.NONE
    if trial and booted_slot == record.slot:
        return BootVerdict.RETRIAL if record.starts >= 1 else BootVerdict.TRIAL
    return BootVerdict.ROLLED_BACK

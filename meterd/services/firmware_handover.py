"""What the old slot leaves on the data partition for the slot it hands over to.

Both slots share the data partition (``[storage] state_dir``: energy, profiles, events, credit,
keys, calibration). Before an update is installed the running slot writes a :class:`Handover`
there: both identities, the target slot, and the energy registers; at its clean stop for the
trial reboot it writes the registers once more, after its final synced save. The slot that boots
next reads it: the trial slot runs its self-check against it (its registers must continue
exactly from the old slot's), the old slot, booted again, finds a trial that did not confirm and
records the rollback with both versions. The record is removed when the update has ended.

Stages: ``installing`` (before ``rauc install``), ``installed`` (the inactive slot holds the new
image; the trial reboot is next), ``trial`` (the new slot started its self-check; ``attempts``
counts its starts), ``failed`` (the self-check failed; ``failure`` says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meterd.core.energy import Quantity, RegisterKey
from meterd.core.firmware import FirmwareIdentity
from meterd.core.reading import Channel

STAGES = ("installing", "installed", "trial", "failed")


def register_name(key: RegisterKey) -> str:
    """``active_import/total`` style name of a register key (stable across versions)."""
    return f"{key[0].name.lower()}/{key[1].name.lower()}"


def registers_from_names(values: Mapping[str, int]) -> dict[RegisterKey, int]:
    """The inverse of :func:`register_name` (unknown names are skipped: a newer slot's)."""
    out: dict[RegisterKey, int] = {}
    for name, value in values.items():
        q, _, c = name.partition("/")
        try:
            out[(Quantity[q.upper()], Channel[c.upper()])] = int(value)
        except KeyError:
            continue
    return out


def _identity(d: Mapping[str, Any]) -> FirmwareIdentity:
    return FirmwareIdentity(version=str(d.get("version", "")), compatible=str(d.get("compatible", "")),
                            metrology_id=str(d.get("metrology_id", "")),
                            metrology_checksum=str(d.get("metrology_checksum", "")), slot=str(d.get("slot", "")))


def _identity_dict(i: FirmwareIdentity) -> dict[str, str]:
    return {"version": i.version, "compatible": i.compatible, "metrology_id": i.metrology_id,
            "metrology_checksum": i.metrology_checksum, "slot": i.slot}


@dataclass(frozen=True)
class Handover:
    """An update in progress: ``old`` runs (or ran) in ``old.slot``, ``new`` goes to ``new.slot``.

    ``registers`` (mWh per register, :func:`register_name`) and ``registers_utc``: the old slot's
    registers at install time, replaced by those of its final synced save when ``final`` is
    True; ``stage`` (:data:`STAGES`), ``attempts`` (starts of the trial slot), ``failure`` (why the
    self-check failed), ``started_utc`` (ISO 8601, when the install began).
    """

    old: FirmwareIdentity
    new: FirmwareIdentity
    stage: str
    registers: Mapping[str, int] = field(default_factory=dict)
    registers_utc: str = ""
    final: bool = False
    attempts: int = 0
    failure: str = ""
    started_utc: str = ""

    def but(self, **changes: Any) -> Handover:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The stored form (JSON)."""
        return {"old": _identity_dict(self.old), "new": _identity_dict(self.new), "stage": self.stage,
                "registers": dict(self.registers), "registers_utc": self.registers_utc, "final": self.final,
                "attempts": self.attempts, "failure": self.failure, "started_utc": self.started_utc}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Handover | None:
        """The record, or None when ``d`` is empty or not a handover (a damaged file)."""
        try:
            stage = str(d["stage"])
            if stage not in STAGES:
                return None
            return cls(old=_identity(d["old"]), new=_identity(d["new"]), stage=stage,
                       registers={str(k): int(v) for k, v in dict(d.get("registers") or {}).items()},
                       registers_utc=str(d.get("registers_utc", "")), final=bool(d.get("final", False)),
                       attempts=int(d.get("attempts", 0)), failure=str(d.get("failure", "")),
                       started_utc=str(d.get("started_utc", "")))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

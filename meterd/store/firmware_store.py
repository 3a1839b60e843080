"""The update engine's records on the data partition: ``<state_dir>/firmware.json``.

One JSON object, replaced atomically (:mod:`meterd.store.json_file`): ``handover`` (the update
in progress, :class:`~meterd.services.firmware_handover.Handover`, absent when none) and
``last`` (how the last update ended: outcome, versions, detail, UTC time). Both slots read and
write the same file, so its form only ever gains keys: a slot ignores keys it does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hw.source_digest import sources_digest
from meterd.services.firmware_handover import Handover
from meterd.store.json_file import JsonFile

FILE_NAME = "firmware.json"

#: The legally relevant software (the metrology core): the pure core (registers, energy, tariffs,
#: credit), the chip bridge and the ATM90E36 driver. Its SHA-256 is the identification shown as
#: 1-0:0.2.8.255's companion and carried in each bundle's manifest.
METROLOGY_SOURCES = ("meterd/core", "meterd/bridge", "hw/atm90e36")
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def metrology_digest(root: Path = SOURCE_ROOT) -> str:
    """Hex SHA-256 over the metrology sources under ``root`` (path and content of every ``.py``
    file, in path order): the same on the meter and in the bundle build."""
    return sources_digest(root, METROLOGY_SOURCES)


class FirmwareStore:
    """The handover record and the last outcome, in ``state_dir/firmware.json``."""

    def __init__(self, state_dir: Path) -> None:
        self._file = JsonFile(Path(state_dir) / FILE_NAME)

    @property
    def path(self) -> Path:
        return self._file.path

    def handover(self) -> Handover | None:
        """The update in progress, or None."""
        raw = self._file.load().get("handover")
        return Handover.from_dict(raw) if isinstance(raw, dict) else None

    def save_handover(self, handover: Handover | None) -> None:
        """Write (or, with None, remove) the update in progress, synced."""
        doc = self._file.load()
        if handover is None:
            doc.pop("handover", None)
        else:
            doc["handover"] = handover.as_dict()
        self._file.save(doc)

    def last(self) -> dict[str, Any]:
        """How the last update ended ({} before the first)."""
        raw = self._file.load().get("last")
        return dict(raw) if isinstance(raw, dict) else {}

    def finish(self, last: dict[str, Any]) -> None:
        """The update has ended: ``last`` recorded and the handover removed, in one write."""
        doc = self._file.load()
        doc.pop("handover", None)
        doc["last"] = last
        self._file.save(doc)

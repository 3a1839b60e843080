"""The meter's side of a CIU update on the data partition: the bundle being carried to the CIU
and the job's record, so a transfer survives a restart of meterd and resumes where the CIU is.

``<state_dir>/ciu-update/bundle.raucb``: the verified bundle (a copy: the operator's file may go);
``<state_dir>/ciu-update/job.json``: the job (transfer number, SHA-256, size in B, versions,
phase) and the CIU's last identification (so DLMS and the LCD show it while the link is down),
replaced atomically (write, fsync, rename).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class CiuUpdateFiles:
    """The two files under ``<state_dir>/ciu-update/``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "ciu-update"

    @property
    def bundle_path(self) -> Path:
        return self.dir / "bundle.raucb"

    def load(self) -> dict[str, Any]:
        """The record (empty when there is none or it cannot be read)."""
        try:
            doc = json.loads((self.dir / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def save(self, record: dict[str, Any]) -> None:
        """Replace the record atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "job.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "job.json")

    def take_bundle(self, source: Path) -> None:
        """Copy ``source`` to the bundle being carried (synced before the job names it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "bundle.raucb.tmp"
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.bundle_path)

    def read_block(self, offset: int, size: int) -> bytes:
        """``size`` octets of the bundle from ``offset`` (B)."""
        with open(self.bundle_path, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)

    def drop_bundle(self) -> None:
        """Remove the carried bundle (the job ended)."""
        self.bundle_path.unlink(missing_ok=True)

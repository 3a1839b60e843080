"""Small JSON state files, replaced atomically (write a temporary file, fsync, rename).

One writer for every little JSON file of the meter (the CIU token results, the display's battery
latch): a crash leaves either the old or the new file, never a torn one. A missing or unreadable
file reads as ``{}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    """Replace ``path`` with ``value`` as JSON: write a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh, separators=(",", ":"), sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class JsonFile:
    """One JSON object in one file, read with :func:`read_json`, written with :func:`write_json_atomic`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """The stored object ({} when missing or unreadable)."""
        return read_json(self.path)

    def save(self, value: dict[str, Any]) -> None:
        """Replace the stored object atomically."""
        write_json_atomic(self.path, value)

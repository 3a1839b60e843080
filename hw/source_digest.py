"""The software signature of a set of source packages: one SHA-256 over their ``.py`` files.

Shared by the meter (its metrology core, 1-0:0.2.8.255) and the CIU (its own software), so both
compute the signature the bundle build writes into a manifest the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def sources_digest(root: Path, packages: Iterable[str]) -> str:
    """Hex SHA-256 over the path (relative to ``root``, then a NUL) and content of every ``.py``
    file under each of ``packages``, in package order and, within one, in path order."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()

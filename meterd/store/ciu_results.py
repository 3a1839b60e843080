"""The CIU link's recent token results and last token, kept across meter restarts (one JSON file).

Written after each applied token, before its result is sent, so a CIU that resends a request
after a meter restart gets its original answer (the STS decoder's TID memory still guards the
credit). An unreadable file counts as empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meterd.proto.ciu_link import FieldValue
from meterd.store.json_file import read_json, write_json_atomic

Results = list[tuple[int, dict[str, FieldValue]]]


def _scalars(value: Any) -> dict[str, FieldValue]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, bool | int | str)}


def _request_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class JsonResultStore:
    """The CIU service's ``ResultStore``: results by request id and the last token in one JSON
    file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[Results, dict[str, FieldValue]]:
        """(request id, result fields) pairs, oldest first, and the last-token fields."""
        saved = read_json(self.path)
        entries = saved.get("results")
        entries = entries if isinstance(entries, list) else []
        results = [(int(e[0]), _scalars(e[1])) for e in entries
                   if isinstance(e, list) and len(e) == 2 and _request_id(e[0]) and isinstance(e[1], dict)]
        return results, _scalars(saved.get("last_token"))

    def save(self, results: Results, last_token: dict[str, FieldValue]) -> None:
        """Replace the stored results and last token."""
        write_json_atomic(self.path, {"version": 1, "results": [[rid, fields] for rid, fields in results],
                                      "last_token": last_token})

"""A board's calibration as data: the registers with who, when, against what, and a digest.

:class:`CalibrationRecord` is what the meter stores on its data partition (never in code or on
the read-only root): the calibration registers (:class:`~meterd.core.calibration.CalibrationValues`),
the board's serial it is bound to, an identifier and revision, the date (UTC), the operator, the
reference instrument and its uncertainty (%), and a free note. :func:`record_digest` is the SHA-256
of its canonical JSON (sorted keys, no spaces, ASCII), which the file carries next to it: any
change to the record that does not recompute the digest is found (:func:`verify_document`).
:data:`FORMAT` versions the document.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meterd.core.calibration import CalibrationValues

FORMAT = 1
"""Version of the stored document; a reader refuses a format it does not know."""


class CalibrationProblem(enum.Enum):
    """Why the stored calibration cannot be used (each one a metrology fault)."""

    MISSING = "missing"
    CORRUPTED = "corrupted"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class CalibrationRecord:
    """One calibration of one board; ``uncertainty_pct``: the reference's expanded uncertainty (%)."""

    calibration_id: str
    revision: int
    serial: str
    utc: _dt.datetime
    operator: str
    reference_instrument: str
    uncertainty_pct: float
    values: CalibrationValues
    note: str = ""
    points: tuple[Mapping[str, Any], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The record as plain JSON values."""
        return {"calibration_id": self.calibration_id, "revision": self.revision, "serial": self.serial,
                "utc": self.utc.isoformat(), "operator": self.operator,
                "reference_instrument": self.reference_instrument, "uncertainty_pct": self.uncertainty_pct,
                "values": self.values.as_dict(), "note": self.note, "points": [dict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationRecord:
        """From :meth:`as_dict`'s form; ValueError/KeyError/TypeError when malformed."""
        utc = _dt.datetime.fromisoformat(str(data["utc"]))
        if utc.tzinfo is None:
            raise ValueError("calibration date without a UTC offset")
        return cls(calibration_id=str(data["calibration_id"]), revision=int(data["revision"]),
                   serial=str(data["serial"]), utc=utc, operator=str(data["operator"]),
                   reference_instrument=str(data["reference_instrument"]),
                   uncertainty_pct=float(data["uncertainty_pct"]),
                   values=CalibrationValues.from_dict(data["values"]), note=str(data.get("note", "")),
                   points=tuple(dict(p) for p in data.get("points", [])))


def canonical_json(value: Mapping[str, Any]) -> str:
    """The canonical JSON text the digest is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_digest(record: CalibrationRecord) -> str:
    """SHA-256 (hex) of the record's canonical JSON."""
    return hashlib.sha256(canonical_json(record.as_dict()).encode("ascii")).hexdigest()


def document(record: CalibrationRecord) -> dict[str, Any]:
    """The stored document: format, record, digest."""
    return {"format": FORMAT, "record": record.as_dict(), "sha256": record_digest(record)}


class CalibrationDocumentError(ValueError):
    """A stored calibration that cannot be used; ``problem`` says why."""

    def __init__(self, problem: CalibrationProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def verify_document(doc: Mapping[str, Any], serial: str) -> CalibrationRecord:
    """The record of a stored document, checked: known format, digest, well-formed, and bound to
    this board's ``serial``; :class:`CalibrationDocumentError` (CORRUPTED or FOREIGN) otherwise."""
    if doc.get("format") != FORMAT:
        raise CalibrationDocumentError(CalibrationProblem.CORRUPTED,
                                       f"calibration file format {doc.get('format')!r}, expected {FORMAT}")
    raw = doc.get("record")
    if not isinstance(raw, dict):
        raise CalibrationDocumentError(CalibrationProblem.CORRUPTED, "calibration file has no record")
    digest = hashlib.sha256(canonical_json(raw).encode("ascii")).hexdigest()
    if digest != doc.get("sha256"):
        raise CalibrationDocumentError(CalibrationProblem.CORRUPTED,
                                       "calibration file digest does not match its content (altered or damaged)")
    try:
        record = CalibrationRecord.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationDocumentError(CalibrationProblem.CORRUPTED, f"calibration record malformed: {exc}") from exc
    if record.serial != serial:
        raise CalibrationDocumentError(CalibrationProblem.FOREIGN,
                                       f"calibration {record.calibration_id} belongs to board {record.serial},"
                                       f" not to this meter {serial}")
    return record

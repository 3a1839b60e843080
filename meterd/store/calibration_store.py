"""The board's calibration file on the data partition (``<state_dir>/calibration.json``).

Written atomically (temporary file, fsync, rename: a crash leaves the old or the new calibration,
never a torn one) as the document of :mod:`meterd.core.calibration_record` (format, record,
SHA-256 digest). :meth:`CalibrationStore.load` returns the verified record or raises
:class:`~meterd.core.calibration_record.CalibrationDocumentError` with MISSING, CORRUPTED
(unreadable, not JSON, digest mismatch, malformed) or FOREIGN (another board's serial); the
caller turns that into a metrology fault, never into silent defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

from meterd.core.calibration_record import (
    CalibrationDocumentError,
    CalibrationProblem,
    CalibrationRecord,
    document,
    verify_document,
)
from meterd.store.json_file import write_json_atomic

FILE_NAME = "calibration.json"


class CalibrationStore:
    """The calibration file of one meter (``serial``) in ``state_dir``."""

    def __init__(self, state_dir: Path, serial: str) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.serial = serial

    def load(self) -> CalibrationRecord:
        """The stored record, verified (see the module docstring for the errors)."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise CalibrationDocumentError(CalibrationProblem.MISSING,
                                           f"no calibration file {self.path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationDocumentError(CalibrationProblem.CORRUPTED,
                                           f"calibration file unreadable: {exc}") from exc
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CalibrationDocumentError(CalibrationProblem.CORRUPTED, f"calibration file is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise CalibrationDocumentError(CalibrationProblem.CORRUPTED, "calibration file is not a JSON object")
        return verify_document(doc, self.serial)

    def save(self, record: CalibrationRecord) -> None:
        """Replace the stored calibration with ``record`` (which must be this board's)."""
        if record.serial != self.serial:
            raise ValueError(f"calibration for {record.serial} cannot be stored on meter {self.serial}")
        write_json_atomic(self.path, document(record))

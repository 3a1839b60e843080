"""COSEM objects of the board's calibration (read-only, every association that may read).

* 0-0:96.2.5.255 (class 1, octet-string date-time): date of last calibration (Blue Book
  "date of last calibration"); every octet "not specified" while the board has no calibration.
* 0-0:96.2.128.255 (class 1, visible-string): identifier of the calibration in force
  (``<serial>-C<revision>-<UTC date>``; empty when none). E = 128 is in the manufacturer-specific
  range of the configuration-change group 0-0:96.2.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable

from meterd.cosem import axdr
from meterd.cosem.adapters import ValueData
from meterd.cosem.datetime_codec import encode_utc
from meterd.cosem.objects import CosemContext, CosemEntry, ObjectFactory

CALIBRATION_DATE_OBIS = "0.0.96.2.5.255"
CALIBRATION_ID_OBIS = "0.0.96.2.128.255"
_NOT_SPECIFIED = bytes((0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0xFF))
"""A date-time with every field "not specified" (deviation 0x8000)."""


def calibration_factory(current: Callable[[], tuple[str, _dt.datetime | None]]) -> ObjectFactory:
    """The calibration objects; ``current()`` gives (identifier, UTC date or None)."""

    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        def date() -> tuple[int, axdr.Scalar]:
            utc = current()[1]
            return axdr.OCTET_STRING, encode_utc(utc) if utc is not None else _NOT_SPECIFIED

        yield CosemEntry(ValueData(CALIBRATION_DATE_OBIS, date))
        yield CosemEntry(ValueData(CALIBRATION_ID_OBIS, lambda: (axdr.VISIBLE_STRING, current()[0])))

    return factory

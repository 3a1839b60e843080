"""Profile generic buffers: selective access (IEC 62056-6-2 §4.3.6) and encoding from storage.

Selector 1, range_descriptor: structure(restricting_object, from_value, to_value,
selected_values); the restricting object must be the clock column and the values COSEM
date-time octet strings; rows with from <= capture time <= to are returned. A bound with a
deviation is an exact instant; a bound with deviation 0x8000 (not specified) is local time under
the legal-time rules bound by :func:`local_time_rules` for the request being served (the server
binds the meter's rules, the same as the clock 0-0:1.0.0.255's), UTC when none are bound.
Selector 2, entry_descriptor: structure(from_entry, to_entry, from_selected_value,
to_selected_value); entries count from 1 (oldest), to_entry 0 means the newest, column
indices count from 1, to 0 means the last column. A non-empty ``selected_values`` list picks
columns by (class, logical name, attribute, data index).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from meterd.core.legal_time import LegalTime
from meterd.core.model import CaptureColumn, ProfileBuffer, ProfileRow
from meterd.cosem import axdr, datetime_codec
from meterd.cosem.errors import ApduError

LegalTimeSource = Callable[[], LegalTime]
_RANGE_RULES: ContextVar[LegalTimeSource | None] = ContextVar("profile_range_rules", default=None)


@contextmanager
def local_time_rules(legal: LegalTimeSource | None) -> Iterator[None]:
    """Within this block, range bounds without deviation are local time under ``legal()`` (read
    when the bound is decoded, so a rules change applies at once); ``None``: UTC."""
    token = _RANGE_RULES.set(legal)
    try:
        yield
    finally:
        _RANGE_RULES.reset(token)


def request_datetime(raw: bytes) -> _dt.datetime:
    """UTC of a 12-octet COSEM date-time in the request being served (a range bound, a written
    activation time): without deviation, local time under the rules bound by
    :func:`local_time_rules`."""
    source = _RANGE_RULES.get()
    return datetime_codec.decode_utc(raw, None if source is None else source())


def _column_ref(col: CaptureColumn) -> tuple[int, bytes, int, int]:
    return col.class_id, axdr.obis_bytes(col.obis), col.attribute, col.data_index


class ProfileReader:
    """Reads a :class:`ProfileBuffer` and serves profile generic attributes as A-XDR."""

    def __init__(self, buffer: ProfileBuffer, max_entries: int = 0) -> None:
        self._buffer = buffer
        self._max_entries = max_entries

    @property
    def capture_period_s(self) -> int:
        """Capture period (s)."""
        return self._buffer.capture_period_s

    def entries_in_use(self) -> int:
        """Rows held."""
        return self._buffer.entries_in_use()

    def profile_entries(self) -> int:
        """Capacity (rows); the rows held when no capacity is configured."""
        return self._max_entries or self._buffer.entries_in_use()

    def capture_objects(self) -> bytes:
        """Attribute 3: array of structure(class, logical name, attribute, data index)."""
        return axdr.encode_array([self._capture_def(c) for c in self._buffer.columns])

    @staticmethod
    def _capture_def(col: CaptureColumn) -> bytes:
        class_id, ln, attr, index = _column_ref(col)
        return axdr.encode_structure(axdr.encode_value(axdr.UINT16, class_id),
                                     axdr.encode_value(axdr.OCTET_STRING, ln),
                                     axdr.encode_value(axdr.INT8, attr),
                                     axdr.encode_value(axdr.UINT16, index))

    def sort_object(self) -> bytes:
        """Attribute 6: no sort object (rows are in capture order)."""
        return axdr.encode_structure(axdr.encode_value(axdr.UINT16, 0),
                                     axdr.encode_value(axdr.OCTET_STRING, bytes(6)),
                                     axdr.encode_value(axdr.INT8, 0), axdr.encode_value(axdr.UINT16, 0))

    def buffer(self, selector: int, parameters: Any) -> bytes:
        """Attribute 2, whole or selected (raises :class:`ApduError` on bad parameters)."""
        columns = list(self._buffer.columns)
        if selector == 0 or parameters is None:
            return self._encode(self._buffer.rows_by_entry(1, 0), range(len(columns)))
        if selector == 1:
            return self._by_range(parameters, columns)
        if selector == 2:
            return self._by_entry(parameters, columns)
        raise ApduError(f"selector {selector} not supported")

    def _by_range(self, params: Any, columns: Sequence[CaptureColumn]) -> bytes:
        if not isinstance(params, list) or len(params) != 4:
            raise ApduError("range descriptor must have 4 elements")
        restricting, start, end, selected = params
        if not isinstance(restricting, list) or len(restricting) != 4:
            raise ApduError("bad restricting object")
        if (int(restricting[0]), bytes(restricting[1])) != _column_ref(columns[0])[:2]:
            raise ApduError("restricting object must be the clock column")
        if not isinstance(start, bytes | bytearray) or not isinstance(end, bytes | bytearray):
            raise ApduError("range limits must be date-time octet strings")
        rows = self._buffer.rows_between(request_datetime(bytes(start)), request_datetime(bytes(end)))
        return self._encode(rows, self._selected(selected, columns))

    def _selected(self, selected: Any, columns: Sequence[CaptureColumn]) -> Sequence[int]:
        if not selected:
            return range(len(columns))
        refs = [_column_ref(c) for c in columns]
        picked: list[int] = []
        for item in selected:
            try:
                key = (int(item[0]), bytes(item[1]), int(item[2]), int(item[3]))
                picked.append(refs.index(key))
            except (TypeError, ValueError, IndexError) as exc:
                raise ApduError("selected value is not a capture object") from exc
        return picked

    def _by_entry(self, params: Any, columns: Sequence[CaptureColumn]) -> bytes:
        if not isinstance(params, list) or len(params) != 4:
            raise ApduError("entry descriptor must have 4 elements")
        first, last, col_first, col_last = (int(p) for p in params)
        if first < 1 or (last and last < first) or col_first < 1 or (col_last and col_last < col_first):
            raise ApduError("bad entry descriptor bounds")
        col_last = col_last or len(columns)
        if col_last > len(columns):
            raise ApduError("column index beyond the capture objects")
        return self._encode(self._buffer.rows_by_entry(first, last), range(col_first - 1, col_last))

    def _encode(self, rows: Sequence[ProfileRow], picked: Sequence[int]) -> bytes:
        picked = list(picked)
        with_clock = bool(picked) and picked[0] == 0
        value_idx = [i - 1 for i in picked if i != 0]
        if 0 in picked[1:]:
            raise ApduError("the clock column must come first")
        columns = self._buffer.columns
        cells = [[_cell(columns[i + 1], r.values[i]) for i in value_idx] for r in rows]
        types = [axdr.column_type([row[k] for row in cells]) for k in range(len(value_idx))]
        encoder = axdr.ProfileEncoder(types, with_clock=with_clock)
        return encoder.encode([(r.utc, row, r.clock_status) for r, row in zip(rows, cells, strict=True)])


DATETIME_ATTRIBUTES = frozenset({(8, 2), (4, 5), (5, 6), (5, 7)})
"""(class, attribute) of the capture objects that are COSEM date-times: clock time, the capture
time of an extended register, the capture and start times of a demand register."""


def _cell(column: CaptureColumn, value: int | float | str) -> axdr.Cell:
    """A value as its column is encoded: a date-time column's value (an ISO 8601 instant, or ""
    for a time never set) as the 12-octet COSEM date-time (all fields not specified when unset,
    Blue Book §4.1.6.1), anything else as it is."""
    if (column.class_id, column.attribute) not in DATETIME_ATTRIBUTES or not isinstance(value, str):
        return value
    if not value:
        return datetime_codec.UNSPECIFIED
    try:
        return datetime_codec.encode_utc(_dt.datetime.fromisoformat(value))
    except ValueError:
        return datetime_codec.UNSPECIFIED

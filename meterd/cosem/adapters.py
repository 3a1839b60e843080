"""COSEM interface-class adapters: gurux object classes whose attributes read the meter model.

gurux's GET-Normal path never calls ``onPreRead``, so live values must come from the object:
each adapter overrides ``getValue`` (encoding its own A-XDR, ``e.byteArray = True``), offers
``write(e) -> error code`` for SET (called by the server's ``onPreWrite``) and overrides
``invoke`` for ACTION. Values are produced by small callables given at construction, so the OBIS
map in :mod:`meterd.cosem.objects` stays declarative. gurux's camelCase stays in this package.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSHdlcSetup,
    GXDLMSIECLocalPortSetup,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
    GXDLMSSapAssignment,
    GXDLMSSecuritySetup,
)
from gurux_dlms.objects.enums import AssociationStatus

from meterd.core.legal_time import ClockSettings, LegalTime, LocalTime
from meterd.core.model import MeterModel
from meterd.cosem import axdr, datetime_codec
from meterd.cosem.errors import ApduError, CosemError
from meterd.cosem.profile import ProfileReader
from meterd.services.metering import STATUS_BITS

_log = logging.getLogger("meterd.cosem")

Getter = Callable[[], tuple[int, axdr.Scalar]]
AttributeValue = bytes | Callable[[], bytes]
"""An attribute's A-XDR encoding, or a callable producing it at GET time."""

OK = int(ErrorCode.OK)
DENIED = int(ErrorCode.READ_WRITE_DENIED)
TYPE_UNMATCHED = int(ErrorCode.UNMATCHED_TYPE)
OTHER_REASON = int(ErrorCode.OTHER_REASON)
TEMPORARY_FAILURE = int(ErrorCode.TEMPORARY_FAILURE)

_UTC_ONLY = LegalTime(ClockSettings())  # time zone 0, no DST


def _answer(e: Any, raw: bytes) -> bytes:
    e.byteArray = True
    return raw


def _deny(e: Any) -> None:
    e.error = ErrorCode.READ_WRITE_DENIED
    return None


class AttributeTable:
    """Mixin (before the gurux class) serving GET from ``attribute_values()``; read-only by default.

    ``attribute_values`` maps attribute index -> encoded A-XDR (or a callable producing it); it is
    consulted from attribute 2 on, other indices fall back to the gurux class. ``write`` answers
    read-write-denied and ``invoke`` refuses every method unless a subclass overrides them.
    """

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        """The attributes this object encodes itself."""
        return {}

    def getValue(self, settings: Any, e: Any) -> Any:
        values = self.attribute_values() if e.index >= 2 else {}
        if e.index in values:
            value = values[e.index]
            return _answer(e, value() if callable(value) else value)
        return super().getValue(settings, e)  # type: ignore[misc]  # the gurux class after the mixin

    def write(self, e: Any) -> int:
        """No attribute is writable."""
        return DENIED

    def invoke(self, settings: Any, e: Any) -> Any:
        return _deny(e)


class ValueData(AttributeTable, GXDLMSData):  # type: ignore[misc]  # gurux is untyped
    """Data (class 1) whose value attribute comes from a getter returning (A-XDR tag, value)."""

    def __init__(self, ln: str, getter: Getter) -> None:
        super().__init__(ln)
        self._getter = getter

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_value(*self._getter())}


class ValueRegister(AttributeTable, GXDLMSRegister):  # type: ignore[misc]  # gurux is untyped
    """Register (class 3): value from a getter, scaler as a power-of-ten exponent, unit code.

    Method 1 (reset) is refused: the registers are cumulative.
    """

    def __init__(self, ln: str, getter: Getter, scaler: int, unit: int) -> None:
        super().__init__(ln)
        self._getter = getter
        self.scaler_exponent = scaler
        self.unit = unit

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_value(*self._getter()),
                3: lambda: axdr.encode_scaler_unit(self.scaler_exponent, self.unit)}


def encode_clock_datetime(local: LocalTime, quality: int = 0) -> bytes:
    """12-octet COSEM date-time of legal time: local wall date-time, hundredths of a second,
    deviation (minutes, UTC = local + deviation: −60 in CET, −120 in CEST) and clock status
    (0x80 daylight saving active, ORed with ``quality``: 0x01 invalid, 0x02 doubtful value)."""
    return datetime_codec.encode_legal(local, quality)


CLOCK_QUALITY_FLAGS = {"clock_invalid": 0x01, "clock_doubtful": 0x02}
"""Meter status flags (bits of 0-0:96.5.0.255) and the clock status bit each sets."""


def clock_quality(model: MeterModel) -> Callable[[], int]:
    """The clock status bits of the meter's time trust, read from its status word: 0x01 invalid
    value (``clock_invalid``: the RTC lost its time), 0x02 doubtful value (``clock_doubtful``:
    never synchronised, or not for ``[time] max_unsynced_h``)."""
    bits = [(1 << STATUS_BITS[name], bit) for name, bit in CLOCK_QUALITY_FLAGS.items()]

    def quality() -> int:
        word = model.snapshot().status_word
        return next((bit for mask, bit in bits if word & mask), 0)
    return quality


def decode_clock_datetime(raw: bytes, legal: LegalTime) -> _dt.datetime:
    """UTC (aware) of a 12-octet date-time written to the clock; raises :class:`ApduError`.

    With a deviation the instant is exact (UTC = local + deviation). With deviation 0x8000 (not
    specified) the value is local time under the meter's legal-time rules
    (:meth:`LegalTime.utc_of_wall`): in the repeated hour the status' daylight-saving bit picks the
    pass (status 0xFF: the earlier pass); a time in the spring-forward gap is read with the offset
    in force before the gap.
    """
    return datetime_codec.decode_utc(raw, legal)


class ModelClock(AttributeTable, GXDLMSClock):  # type: ignore[misc]  # gurux is untyped
    """Clock (class 8) 0-0:1.0.0.255 in legal (local) time.

    ``legal()`` gives the meter's legal-time rules (default: UTC, no DST). Attribute 2 is the local
    date-time with its deviation (UTC = local + deviation, minutes) and the clock status (0x80 while
    DST is in force); 3 is the time zone, 4 the status. Attribute 2 is writable (see
    :func:`decode_clock_datetime`); methods 1 adjust_to_quarter, 3 adjust_to_minute (rounded in
    local time) and 6 shift_time (−900…900 s) are served. Every change goes through
    ``set_clock(new_utc)``.
    """

    def __init__(self, ln: str, now_utc: Callable[[], _dt.datetime],
                 set_clock: Callable[[_dt.datetime], None],
                 legal: Callable[[], LegalTime] | None = None, quality: Callable[[], int] | None = None) -> None:
        super().__init__(ln)
        self._now = now_utc
        self._set = set_clock
        self._legal = legal or (lambda: _UTC_ONLY)
        self._quality = quality or (lambda: 0)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {
            2: lambda: axdr.encode_value(axdr.OCTET_STRING,
                                         encode_clock_datetime(self._local(), self._quality())),
            3: lambda: axdr.encode_value(axdr.INT16, self._legal().settings.time_zone_min),
            4: lambda: axdr.encode_value(axdr.UINT8, int(self._local().status()) | self._quality()),
            5: axdr.encode_value(axdr.OCTET_STRING, b"\xff" * 12),
            6: axdr.encode_value(axdr.OCTET_STRING, b"\xff" * 12),
            7: axdr.encode_value(axdr.INT8, 0),
            8: axdr.encode_value(axdr.BOOLEAN, False),
            9: axdr.encode_value(axdr.ENUM, 1),
        }

    def _local(self) -> LocalTime:
        return self._legal().local(self._now())

    def write(self, e: Any) -> int:
        """SET attribute 2 (octet-string date-time, local time with or without deviation)."""
        if e.index != 2:
            return DENIED
        if not isinstance(e.value, bytes | bytearray):
            return TYPE_UNMATCHED
        try:
            new_utc = decode_clock_datetime(bytes(e.value), self._legal())
        except ApduError as exc:
            _log.info("clock time refused: %s", exc)
            return OTHER_REASON
        self._set(new_utc)
        return OK

    def invoke(self, settings: Any, e: Any) -> Any:
        now = self._now()
        if e.index == 6:
            if not isinstance(e.parameters, int) or not -900 <= e.parameters <= 900:
                e.error = ErrorCode.OTHER_REASON
                return None
            self._set(now + _dt.timedelta(seconds=e.parameters))
        elif e.index in (1, 3):
            step = 900 if e.index == 1 else 60
            offset_s = self._legal().local(now).utc_offset_min * 60  # round the local time
            seconds = int(now.replace(microsecond=0).timestamp()) + offset_s
            rounded = (seconds + step // 2) // step * step - offset_s
            self._set(_dt.datetime.fromtimestamp(rounded, tz=_dt.UTC))
        else:
            e.error = ErrorCode.READ_WRITE_DENIED
        return None


class ModelAssociation(AttributeTable, GXDLMSAssociationLogicalName):  # type: ignore[misc]  # gurux is untyped
    """Association LN (class 15, version 1); attribute 7 (secret) is never served.

    For the current association (0-0:40.0.0.255) method 1 (reply_to_HLS_authentication) calls
    ``hls_reply(f_stoc) -> f_ctos | None`` supplied by the server session.
    """

    def __init__(self, ln: str, client_sap: int, server_sap: int, mechanism: int, context_id: int,
                 conformance: int, max_pdu: int, security_setup_ln: str | None) -> None:
        super().__init__(ln)
        self.version = 1
        self.clientSAP, self.serverSAP = client_sap, server_sap
        self.authenticationMechanismName.mechanismId = mechanism
        self.applicationContextName.contextId = context_id
        self.conformance_wire = conformance
        self.max_pdu = max_pdu
        self.security_setup_ln = security_setup_ln
        self.hls_reply: Callable[[bytes], bytes | None] | None = None

    def getAssociationStatus(self) -> int:
        return int(self.associationStatus)

    def getValue(self, settings: Any, e: Any) -> Any:
        if e.index == 7:
            return _deny(e)
        return super().getValue(settings, e)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        """Attributes 3-6, 8, 9; no association attribute is writable."""
        return {
            3: lambda: axdr.encode_structure(axdr.encode_value(axdr.INT8, self.clientSAP),
                                             axdr.encode_value(axdr.UINT16, self.serverSAP)),
            4: lambda: axdr.encode_value(axdr.OCTET_STRING, bytes.fromhex("608574050801")
                                         + bytes((self.applicationContextName.contextId,))),
            5: self._context_info,
            6: lambda: axdr.encode_value(axdr.OCTET_STRING, bytes.fromhex("608574050802")
                                         + bytes((self.authenticationMechanismName.mechanismId,))),
            8: lambda: axdr.encode_value(axdr.ENUM, int(self.associationStatus)),
            9: lambda: axdr.encode_value(axdr.OCTET_STRING, axdr.obis_bytes(self.security_setup_ln)
                                         if self.security_setup_ln else b"\x00" * 6),
        }

    def _context_info(self) -> bytes:
        conformance = bytes((axdr.BIT_STRING, 24)) + self.conformance_wire.to_bytes(3, "big")
        return axdr.encode_structure(
            conformance, axdr.encode_value(axdr.UINT16, self.max_pdu),
            axdr.encode_value(axdr.UINT16, self.max_pdu), axdr.encode_value(axdr.UINT8, 6),
            axdr.encode_value(axdr.INT8, 0), axdr.encode_value(axdr.OCTET_STRING, b""))

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1 or self.hls_reply is None:
            return _deny(e)
        params = e.parameters
        reply = self.hls_reply(bytes(params)) if isinstance(params, bytes | bytearray) else None
        if reply is None:
            self.associationStatus = AssociationStatus.NON_ASSOCIATED
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        self.associationStatus = AssociationStatus.ASSOCIATED
        return bytearray(reply)


class ModelSecuritySetup(AttributeTable, GXDLMSSecuritySetup):  # type: ignore[misc]  # gurux is untyped
    """Security setup (class 64, version 1), suite 0, authenticated and encrypted both ways.

    Method 2 (key_transfer) unwraps keys with the master key (AES key wrap, RFC 3394) and hands
    them to ``stage_keys`` (applied after the response has been protected with the old keys).
    """

    POLICY_ALL_AE = 0x04 | 0x08 | 0x20 | 0x40

    def __init__(self, ln: str, server_title: bytes, client_title: Callable[[], bytes | None],
                 stage_keys: Callable[[Sequence[tuple[int, bytes]]], int]) -> None:
        super().__init__(ln)
        self.version = 1
        self._server_title = server_title
        self._client_title = client_title
        self._stage = stage_keys

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {
            2: lambda: axdr.encode_value(axdr.ENUM, self.POLICY_ALL_AE),
            3: lambda: axdr.encode_value(axdr.ENUM, 0),
            4: lambda: axdr.encode_value(axdr.OCTET_STRING, self._client_title() or b""),
            5: lambda: axdr.encode_value(axdr.OCTET_STRING, self._server_title),
            6: lambda: axdr.encode_array([]),
        }  # policy and suite are fixed by the keys file (not writable)

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 2:
            return _deny(e)
        items: list[tuple[int, bytes]] = []
        try:
            for item in e.parameters:
                items.append((int(item[0]), bytes(item[1])))
        except (TypeError, ValueError, IndexError):
            e.error = ErrorCode.UNMATCHED_TYPE
            return None
        error = self._stage(items)
        if error != OK:
            e.error = ErrorCode(error)
        return None

    @classmethod
    def applyKeys(cls, settings: Any, e: Any) -> None:
        """Keys are applied by the session after the response is sealed."""


class ModelSapAssignment(AttributeTable, GXDLMSSapAssignment):  # type: ignore[misc]  # gurux is untyped
    """SAP assignment (class 17): the logical devices behind each server SAP."""

    def __init__(self, ln: str, devices: Sequence[tuple[int, str]]) -> None:
        super().__init__(ln)
        self._devices = tuple(devices)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_array([
            axdr.encode_structure(axdr.encode_value(axdr.UINT16, sap),
                                  axdr.encode_value(axdr.OCTET_STRING, name.encode("ascii")))
            for sap, name in self._devices])}


class ModelHdlcSetup(AttributeTable, GXDLMSHdlcSetup):  # type: ignore[misc]  # gurux is untyped
    """IEC HDLC setup (class 23, version 1), read-only view of one HDLC link's parameters:
    baud rate (Bd), the largest windows transmit/receive (frames), max info field lengths
    transmit/receive (octets),
    inter-octet time-out (ms), inactivity time-out (s), physical device address."""

    BAUD_CODES = {300: 0, 600: 1, 1200: 2, 2400: 3, 4800: 4, 9600: 5, 19200: 6, 38400: 7, 57600: 8,
                  115200: 9}

    def __init__(self, ln: str, baud: int, max_info_tx: int, max_info_rx: int, inactivity_s: int,
                 inter_octet_ms: int, device_address: int, window_tx: int = 1, window_rx: int = 1) -> None:
        super().__init__(ln)
        if baud not in self.BAUD_CODES:
            raise CosemError(f"HDLC setup: no comm_speed code for {baud} Bd")
        self._values = {
            2: (axdr.ENUM, self.BAUD_CODES[baud]), 3: (axdr.UINT8, window_tx), 4: (axdr.UINT8, window_rx),
            5: (axdr.UINT16, max_info_tx), 6: (axdr.UINT16, max_info_rx), 7: (axdr.UINT16, inter_octet_ms),
            8: (axdr.UINT16, inactivity_s), 9: (axdr.UINT16, device_address),
        }

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {i: axdr.encode_value(*v) for i, v in self._values.items()}


class ModelIecLocalPortSetup(AttributeTable, GXDLMSIECLocalPortSetup):  # type: ignore[misc]  # gurux is untyped
    """IEC local port setup (class 19) of the optical port, read-only: default mode IEC 62056-21
    (modes A…E, 0), default baud rate 300 Bd (0), proposed baud rate (the highest offered in the
    mode E identification), response time 200 ms (1: the IEC 62056-21 minimum reaction time the
    port keeps), device address; attributes 7-9 (mode C
    passwords) hold empty strings (the meter has none) and are hidden by the object's access rule."""

    BAUD_CODES = {300: 0, 600: 1, 1200: 2, 2400: 3, 4800: 4, 9600: 5, 19200: 6}

    def __init__(self, ln: str, proposed_baud: int, device_address: str) -> None:
        super().__init__(ln)
        if proposed_baud not in self.BAUD_CODES:
            raise CosemError(f"IEC local port setup: no baud code for {proposed_baud} Bd")
        self._values: dict[int, tuple[int, axdr.Scalar]] = {
            2: (axdr.ENUM, 0), 3: (axdr.ENUM, 0), 4: (axdr.ENUM, self.BAUD_CODES[proposed_baud]),
            5: (axdr.ENUM, 1), 6: (axdr.OCTET_STRING, device_address.encode("ascii")),
            7: (axdr.OCTET_STRING, b""), 8: (axdr.OCTET_STRING, b""), 9: (axdr.OCTET_STRING, b""),
        }

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {i: axdr.encode_value(*v) for i, v in self._values.items()}


class ModelProfile(AttributeTable, GXDLMSProfileGeneric):  # type: ignore[misc]  # gurux is untyped
    """Profile generic (class 7) served from a :class:`ProfileReader` with our own encoder.

    Attribute 2 honours selective access by range (selector 1) and by entry (selector 2).
    """

    def __init__(self, ln: str, reader: ProfileReader) -> None:
        super().__init__(ln)
        self._reader = reader

    def getValue(self, settings: Any, e: Any) -> Any:
        try:
            if e.index == 2:
                return _answer(e, self._reader.buffer(e.selector, e.parameters))
        except CosemError as exc:
            _log.info("profile %s: refused selective access: %s", self.logicalName, exc)
            e.error = ErrorCode.OTHER_REASON
            return None
        return super().getValue(settings, e)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        """Attributes 3-8; the profile configuration is fixed (not writable)."""
        r = self._reader
        return {
            3: r.capture_objects, 4: lambda: axdr.encode_value(axdr.UINT32, r.capture_period_s),
            5: lambda: axdr.encode_value(axdr.ENUM, 1), 6: r.sort_object,
            7: lambda: axdr.encode_value(axdr.UINT32, r.entries_in_use()),
            8: lambda: axdr.encode_value(axdr.UINT32, r.profile_entries()),
        }

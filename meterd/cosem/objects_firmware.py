"""COSEM objects of firmware updates and identification, bound to the image transfer service.

* 0-0:44.0.0.255 image transfer (class 18, version 0): 2 image_block_size (double-long-unsigned,
  octets), 3 image_transferred_blocks_status (bit-string, bit n = block n), 4
  image_first_not_transferred_block_number, 5 image_transfer_enabled (boolean), 6
  image_transfer_status (enum 0..7), 7 image_to_activate_info (array of {size, identification,
  signature}); all read-only. Methods (management association only): 1 image_transfer_initiate
  {identifier octet-string, size double-long-unsigned}, 2 image_block_transfer {number, value
  octet-string}, 3 image_verify, 4 image_activate (integer 0). Verification and activation take
  seconds: they answer temporary-failure until done (the status tells), then success or
  other-reason when asked again.
* 0-0:15.0.2.255 image activation schedule (class 22): writable by the management association
  (:mod:`meterd.cosem.objects_schedule`); its script 0-0:10.0.107.255 (class 9) script 1 runs
  image_activate.
* Identification (legal metrology's software identification), read-only, readable by the reader
  and management associations: 1-0:0.2.0.255 active firmware identifier (the identifier of the
  legally relevant software, octet-string), 1-0:0.2.8.255 its signature (the metrology checksum,
  octet-string of the SHA-256), 0-0:0.2.0.255 the release version of the running firmware. They
  replace the base registry's 1-0:0.2.0.255 and 1-0:0.2.8.255 (which show the same values on a
  meter without an update engine).
* The CIU's identification (:func:`ciu_firmware_factory`, added by the CIU feature when the
  CIU's update is on): 1-1:0.2.0.255 its active firmware identifier, 1-1:0.2.8.255 its SHA-256,
  read-only, as the CIU last identified itself over the link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import GXDLMSImageTransfer

from meterd.cosem import axdr
from meterd.cosem.adapters import AttributeTable, AttributeValue, ValueData
from meterd.cosem.objects import Access, CosemContext, CosemEntry, ObjectFactory
from meterd.cosem.objects_schedule import MethodScriptTable, ScriptAction, SingleActionScheduleObject
from meterd.services.image_transfer import (
    ACTIVATION_SCRIPT,
    ACTIVATION_SCRIPTS_LN,
    Answer,
    ImageTransferService,
)

IMAGE_TRANSFER_LN = "0.0.44.0.0.255"
ACTIVATION_SCHEDULE_LN = "0.0.15.0.2.255"
FIRMWARE_ID_LN, FIRMWARE_SIGNATURE_LN, CORE_VERSION_LN = "1.0.0.2.0.255", "1.0.0.2.8.255", "0.0.0.2.0.255"
#: The CIU's software identification: the same objects as the meter's own 1-0:0.2.0 / 1-0:0.2.8
#: with the channel (value group B) 1, the device on the meter's first channel (the CIU link;
#: IDIS numbers a module's firmware objects by B the same way); docs/firmware.md "The CIU".
CIU_FIRMWARE_ID_LN, CIU_FIRMWARE_SIGNATURE_LN = "1.1.0.2.0.255", "1.1.0.2.8.255"
CLASS_IMAGE_TRANSFER = 18
BIT_STRING = 4
_RESULTS = {Answer.DONE: ErrorCode.OK, Answer.BUSY: ErrorCode.TEMPORARY_FAILURE,
            Answer.REFUSED: ErrorCode.OTHER_REASON}


def dlms_result(answer: Answer) -> int:
    """The DLMS action result of a service answer: 0 success, 2 temporary-failure, 250 other."""
    return int(_RESULTS[answer])


def encode_bit_string(bits: int, octets: bytes) -> bytes:
    """A-XDR bit-string: tag, number of bits (BER length), the octets (first bit = MSB)."""
    return bytes((BIT_STRING,)) + axdr.length_bytes(bits) + octets


class ImageTransferObject(AttributeTable, GXDLMSImageTransfer):  # type: ignore[misc]  # gurux is untyped
    """Image transfer (class 18) over :class:`ImageTransferService` (module docstring)."""

    def __init__(self, ln: str, service: ImageTransferService, enabled: bool = True) -> None:
        super().__init__(ln)
        self._svc = service
        self._enabled = enabled

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        svc = self._svc
        return {
            2: lambda: axdr.encode_value(axdr.UINT32, svc.block_size),
            3: lambda: encode_bit_string(*svc.files.bitmap()),
            4: lambda: axdr.encode_value(axdr.UINT32, svc.first_not_transferred()),
            5: lambda: axdr.encode_value(axdr.BOOLEAN, self._enabled),
            6: lambda: axdr.encode_value(axdr.ENUM, int(svc.status)),
            7: lambda: axdr.encode_array([axdr.encode_structure(
                axdr.encode_value(axdr.UINT32, info.size), axdr.encode_value(axdr.OCTET_STRING, info.identification),
                axdr.encode_value(axdr.OCTET_STRING, info.signature)) for info in svc.activate_info()]),
        }

    def invoke(self, settings: Any, e: Any) -> Any:
        answer = self._call(e.index, e.parameters)
        if answer is None:
            e.error = ErrorCode.READ_WRITE_DENIED if e.index not in (1, 2, 3, 4) else ErrorCode.UNMATCHED_TYPE
        elif answer is not Answer.DONE:
            e.error = _RESULTS[answer]
        return None

    def _call(self, index: int, p: Any) -> Answer | None:
        svc = self._svc
        if index in (1, 2) and not self._enabled:
            return Answer.REFUSED
        if index == 1:
            if not _pair(p, bytes | bytearray, int):
                return None
            return svc.initiate(bytes(p[0]), int(p[1]))
        if index == 2:
            if not _pair(p, int, bytes | bytearray):
                return None
            return svc.block(int(p[0]), bytes(p[1]))
        if index == 3:
            return svc.verify()
        if index == 4:
            return svc.activate()
        return None


def _pair(p: Any, first: Any, second: Any) -> bool:
    return (isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], first) and isinstance(p[1], second)
            and not isinstance(p[0], bool) and not isinstance(p[1], bool))


def _octets(get: Callable[[], str | bytes]) -> Callable[[], tuple[int, bytes]]:
    def value() -> tuple[int, bytes]:
        v = get()
        return axdr.OCTET_STRING, v.encode() if isinstance(v, str) else v
    return value


def _checksum(hex_text: str) -> bytes:
    try:
        return bytes.fromhex(hex_text)
    except ValueError:
        return hex_text.encode()


def firmware_factory(service: ImageTransferService, enabled: bool = True) -> ObjectFactory:
    """The image transfer, its activation schedule and script, and the identification objects."""
    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(ValueData(FIRMWARE_ID_LN, _octets(lambda: service.identity().metrology_id)))
        yield CosemEntry(ValueData(FIRMWARE_SIGNATURE_LN,
                                   _octets(lambda: _checksum(service.identity().metrology_checksum))))
        yield CosemEntry(ValueData(CORE_VERSION_LN, _octets(lambda: service.identity().version)))
        yield CosemEntry(ImageTransferObject(IMAGE_TRANSFER_LN, service, enabled),
                         Access(methods=frozenset({1, 2, 3, 4})))
        yield CosemEntry(SingleActionScheduleObject(ACTIVATION_SCHEDULE_LN, lambda: service.schedule,
                                                    service.set_schedule, [(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT)]),
                         Access(write=frozenset({2, 3, 4})))
        yield CosemEntry(MethodScriptTable(ACTIVATION_SCRIPTS_LN, {ACTIVATION_SCRIPT: ScriptAction(
            CLASS_IMAGE_TRANSFER, IMAGE_TRANSFER_LN, 4, lambda: dlms_result(service.activate("script")))}),
                         Access(methods=frozenset({1})))

    factory.replaces = {FIRMWARE_ID_LN, FIRMWARE_SIGNATURE_LN}  # type: ignore[attr-defined]
    return factory


def ciu_firmware_factory(identity: Callable[[], tuple[str, str]]) -> ObjectFactory:
    """The CIU's active firmware identifier 1-1:0.2.0.255 and signature 1-1:0.2.8.255 (octet
    strings: the identifier's text and the SHA-256), from ``identity()`` = (identifier, SHA-256
    hex) as the CIU last identified itself (empty while it never did)."""
    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(ValueData(CIU_FIRMWARE_ID_LN, _octets(lambda: identity()[0])))
        yield CosemEntry(ValueData(CIU_FIRMWARE_SIGNATURE_LN, _octets(lambda: _checksum(identity()[1]))))

    return factory

"""xDLMS data services of the COSEM server: GET, SET and ACTION (IEC 62056-5-3 §9.4), answered by
gurux's ``GXDLMSLNCommandHandler`` against the objects of one association.

:class:`LnDispatcher` refuses what the meter does not offer (unknown services and request
choices, unknown classes) with the proper error APDU, serves the *-with-list requests and the SET
data blocks itself (:mod:`meterd.cosem.xdlms_codec`), one -normal request per element, and hands
the -normal requests to gurux, whose server call-backs :class:`_DispatchHost` answers: values and writes come from the objects themselves,
access rights and the end of the HLS exchange from the session (:class:`AccessPolicy`). Also
here: the APDU tags and error answers (:func:`exception_response`, :func:`data_access_error`) and
what a request asks for in terms of :mod:`meterd.cosem.association` (:func:`requests_of`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, Protocol

from gurux_dlms import GXByteBuffer, GXDLMSSettings
from gurux_dlms.enums import ErrorCode, InterfaceType, ObjectType
from gurux_dlms.GXDLMSLNCommandHandler import GXDLMSLNCommandHandler
from gurux_dlms.objects import GXDLMSObjectCollection

from meterd.cosem import gurux_patches, profile
from meterd.cosem import xdlms_codec as codec
from meterd.cosem.association import Request
from meterd.cosem.errors import ApduError

gurux_patches.apply()  # before the command handler serves anything
_log = logging.getLogger("meterd.cosem")

GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, ACTION_RESPONSE = 0xC4, 0xC5, 0xC7
EXCEPTION_RESPONSE = 0xD8
# exception-response: state-error, service-error (IEC 62056-5-3 §9.5)
STATE_SERVICE_NOT_ALLOWED, STATE_SERVICE_UNKNOWN = 1, 2
SERVICE_OPERATION_NOT_POSSIBLE, SERVICE_NOT_SUPPORTED, SERVICE_OTHER_REASON = 1, 2, 3
SERVICE_PDU_TOO_LONG, SERVICE_DECIPHERING_ERROR, SERVICE_INVOCATION_COUNTER_ERROR = 4, 5, 6
_KNOWN_CLASSES = {int(t) for t in ObjectType}
_HLS_METHOD = bytes((0, 15, 0, 0, 40, 0, 0, 255, 1))  # class 15, 0-0:40.0.0.255, method 1


def exception_response(state_error: int, service_error: int) -> bytes:
    """An exception-response APDU."""
    return bytes((EXCEPTION_RESPONSE, state_error, service_error))


def data_access_error(apdu: bytes, code: int) -> bytes:
    """The error answer in the family of a GET/SET/ACTION request; exception-response otherwise."""
    if len(apdu) >= 3 and apdu[1] == 1:
        invoke = apdu[2]
        if apdu[0] == GET_REQUEST:
            return bytes((GET_RESPONSE, 1, invoke, 1, code))
        if apdu[0] == SET_REQUEST:
            return bytes((SET_RESPONSE, 1, invoke, code))
        if apdu[0] == ACTION_REQUEST:
            return bytes((ACTION_RESPONSE, 1, invoke, code, 0))
    return exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_OTHER_REASON)


_SERVICE_REQUESTS = {GET_REQUEST: Request.GET, SET_REQUEST: Request.SET, ACTION_REQUEST: Request.ACTION}


def requests_of(apdu: bytes) -> tuple[Request, ...]:
    """What a plain xDLMS request APDU asks for, in terms of :mod:`meterd.cosem.association`:
    the HLS reply (class 15 0-0:40.0.0.255 method 1) is both that and an ACTION."""
    if len(apdu) >= 12 and apdu[0] == ACTION_REQUEST and apdu[1] == 1 and apdu[3:12] == _HLS_METHOD:
        return (Request.HLS_REPLY, Request.ACTION)
    return (_SERVICE_REQUESTS.get(apdu[0], Request.OTHER),)


class AccessPolicy(Protocol):
    """What the dispatcher asks the session: access rights and the HLS outcome."""

    @property
    def association_name(self) -> str:
        """Name of the current association (for the log)."""
        ...

    def attribute_access(self, obj: Any, index: int) -> int:
        """gurux AccessMode of an attribute."""
        ...

    def method_access(self, obj: Any, index: int) -> int:
        """gurux MethodAccessMode of a method."""
        ...

    def on_hls_done(self, ok: bool) -> None:
        """The ACTION reply_to_HLS_authentication passed (True) or failed."""
        ...


class _DispatchHost:
    """The call-backs gurux's LN command handler expects from a ``GXDLMSServer``."""

    def __init__(self, settings: Any, session: AccessPolicy) -> None:
        self.settings = settings
        self.transaction: Any = None
        self._session = session

    def getTransaction(self) -> Any:
        return self.transaction

    def setTransaction(self, value: Any) -> None:
        self.transaction = value

    def notifyRead(self) -> None:
        """GET-Normal: values come from the objects themselves."""

    def onPreRead(self, *args: Any) -> None:
        """Values come from the objects themselves."""

    def onPostRead(self, *args: Any) -> None:
        """Nothing to do after a read."""

    def onPreWrite(self, items: Sequence[Any]) -> None:
        for e in items:
            writer = getattr(e.target, "write", None)
            e.error = ErrorCode(writer(e)) if writer else ErrorCode.READ_WRITE_DENIED
            e.handled = True
            if e.error == ErrorCode.OK:
                _log.info("SET %s/%d by %s", e.target.logicalName, e.index, self._session.association_name)

    def onPostWrite(self, items: Sequence[Any]) -> None:
        """Writes were done in ``onPreWrite``."""

    def onPreAction(self, items: Sequence[Any]) -> None:
        for e in items:
            _log.info("ACTION %s/%d by %s", e.target.logicalName, e.index, self._session.association_name)

    def onPostAction(self, items: Sequence[Any]) -> None:
        """Actions report through ``e.error``."""

    def onFindObject(self, *args: Any) -> None:
        return None

    def onGetAttributeAccess(self, e: Any) -> int:
        return self._session.attribute_access(e.target, e.index)

    def onGetMethodAccess(self, e: Any) -> int:
        return self._session.method_access(e.target, e.index)

    def notifyConnected(self, _info: Any) -> None:
        self._session.on_hls_done(True)

    def onInvalidConnection(self, _info: Any) -> None:
        self._session.on_hls_done(False)

    @classmethod
    def generateConfirmedServiceError(cls, service: int, type_: int, code: int) -> list[int]:
        return [0x0E, service, type_, code]


def ln_settings(objects: Sequence[Any], conformance: int, max_pdu: int) -> Any:
    """gurux server settings for one association: its ``objects``, the negotiated ``conformance``
    (gurux bit order) and ``max_pdu`` (octets). The framing is ours (no LLC bytes)."""
    settings = GXDLMSSettings(True, None)
    settings.interfaceType = InterfaceType.WRAPPER
    settings.negotiatedConformance = conformance
    settings.maxPduSize = max_pdu
    collection = GXDLMSObjectCollection()
    for obj in objects:
        collection.append(obj)
    settings.objects = collection
    settings.connected = 2  # ConnectionState.DLMS: gurux only checks it is not NONE
    return settings


MAX_REASSEMBLY = 0xFFFF
"""The most octets of data a SET sent in data blocks may carry (a longer one is aborted)."""
UNBOUNDED_PDU = 0xFFFFFF
"""The PDU size given to gurux when an answer must be built whole (octets)."""


class LnDispatcher:
    """GET, SET and ACTION of one association, on gurux ``settings`` (see :func:`ln_settings`).

    The -normal requests (and GET-next-block of a long -normal answer) go to gurux; the
    *-with-list requests and the SET data blocks are the meter's own (:mod:`meterd.cosem.xdlms_codec`):
    each element of a list is served as its own -normal request, so the access rights apply per
    element, and a long GET-with-list answer goes out in GET data blocks. ``whole`` (general
    block transfer granted): every answer is built whole, the session cuts it into GBT blocks.
    ``max_reassembly`` (octets) bounds the data of a SET sent in blocks.
    ``legal`` gives the legal-time rules by which profile range bounds without deviation are
    read (None: UTC)."""

    def __init__(self, settings: Any, policy: AccessPolicy, legal: profile.LegalTimeSource | None = None,
                 *, whole: bool = False, max_reassembly: int = MAX_REASSEMBLY) -> None:
        self.settings = settings
        self._host = _DispatchHost(settings, policy)
        self._legal = legal
        self._block_pdu = int(settings.maxPduSize)
        self._whole = whole
        self._max_reassembly = max_reassembly
        if whole:
            settings.maxPduSize = UNBOUNDED_PDU
        self._long_get: _LongGet | None = None
        self._long_set: _LongSet | None = None

    def reset(self) -> None:
        """Forget a block transfer in progress (the association ended)."""
        self._host.transaction = None
        self._long_get = None
        self._long_set = None

    def serve(self, apdu: bytes) -> bytes:
        """The answer to a plain GET, SET or ACTION request (an error answer for anything else)."""
        if apdu[0] not in (GET_REQUEST, SET_REQUEST, ACTION_REQUEST) or len(apdu) < 3:
            return exception_response(STATE_SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        choice = apdu[1]
        try:
            if apdu[0] == GET_REQUEST:
                return self._get(apdu, choice)
            if apdu[0] == SET_REQUEST:
                return self._set(apdu, choice)
            return self._action(apdu, choice)
        except ApduError as exc:
            _log.info("request %s refused: %s", apdu[:16].hex(), exc)
            return data_access_error(apdu, int(ErrorCode.OTHER_REASON))

    # --- the services, by request choice --------------------------------------------------------

    def _get(self, apdu: bytes, choice: int) -> bytes:
        if choice == codec.GET_NORMAL:
            return self._normal(apdu)
        if choice == codec.GET_NEXT:
            return self._next_block(apdu) if self._long_get is not None else self._gurux(apdu)
        if choice == codec.GET_WITH_LIST:
            self._long_get = None
            request = codec.parse_get_with_list(apdu)
            results = [self._element(codec.normal_request(request, i))[3:] for i in range(len(request.items))]
            answer = codec.get_with_list_response(request.invoke_id, results)
            if self._whole or len(answer) <= self._block_pdu:
                return answer
            self._long_get = _LongGet(request.invoke_id, codec.list_body(results))
            return self._long_get.block(self._block_pdu)
        return exception_response(STATE_SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)

    def _next_block(self, apdu: bytes) -> bytes:
        long_get = self._long_get
        assert long_get is not None
        if len(apdu) != 7 or apdu[2] != long_get.invoke_id or struct.unpack(">I", apdu[3:7])[0] != long_get.number:
            self._long_get = None
            return codec.get_datablock_error(apdu[2], long_get.number, int(ErrorCode.LONG_GET_OR_READ_ABORTED))
        answer = long_get.block(self._block_pdu)
        if long_get.done:
            self._long_get = None
        return answer

    def _set(self, apdu: bytes, choice: int) -> bytes:
        if choice == codec.SET_NORMAL:
            self._long_set = None
            return self._normal(apdu)
        if choice == codec.SET_WITH_LIST:
            self._long_set = None
            request = codec.parse_set_with_list(apdu)
            return codec.set_with_list_response(request.invoke_id, self._set_results(request))
        if choice in (codec.SET_FIRST_DATABLOCK, codec.SET_DATABLOCK, codec.SET_WITH_LIST_FIRST_DATABLOCK):
            return self._set_block(codec.parse_set_block(apdu))
        return exception_response(STATE_SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)

    def _set_results(self, request: codec.ListRequest) -> list[int]:
        return [self._element(codec.normal_request(request, i))[3] for i in range(len(request.items))]

    def _set_block(self, block: codec.SetBlock) -> bytes:
        if block.choice != codec.SET_DATABLOCK:  # a first block starts a new transfer
            self._long_set = _LongSet(block.invoke_id, block.choice, block.items) if block.number == 1 else None
        long_set = self._long_set
        if long_set is None:
            return codec.set_last_block_response(block.invoke_id, int(ErrorCode.NO_LONG_SET_OR_WRITE_IN_PROGRESS),
                                                 block.number)
        if block.number != long_set.number or block.invoke_id != long_set.invoke_id:
            self._long_set = None
            return codec.set_last_block_response(block.invoke_id, int(ErrorCode.DATA_BLOCK_NUMBER_INVALID),
                                                 block.number)
        if len(long_set.data) + len(block.raw) > self._max_reassembly:
            self._long_set = None
            return codec.set_last_block_response(block.invoke_id, int(ErrorCode.LONG_SET_OR_WRITE_ABORTED),
                                                 block.number)
        long_set.data += block.raw
        long_set.number += 1
        if not block.last:
            return codec.set_block_ack(block.invoke_id, block.number)
        self._long_set = None
        data = bytes(long_set.data)
        if long_set.choice == codec.SET_WITH_LIST_FIRST_DATABLOCK:
            values = codec.values_of(data, len(long_set.items))
            request = codec.ListRequest(SET_REQUEST, block.invoke_id, long_set.items, tuple(values))
            return codec.set_last_block_with_list_response(block.invoke_id, self._set_results(request), block.number)
        if codec.data_end(data, 0) != len(data):
            raise ApduError("the blocks hold more than one value")
        request = codec.ListRequest(SET_REQUEST, block.invoke_id, long_set.items, (data,))
        result = self._element(codec.normal_request(request, 0))[3]
        return codec.set_last_block_response(block.invoke_id, result, block.number)

    def _action(self, apdu: bytes, choice: int) -> bytes:
        if choice == codec.ACTION_NORMAL:
            return self._normal(apdu)
        if choice == codec.ACTION_WITH_LIST:
            request = codec.parse_action_with_list(apdu)
            results = [self._element(codec.normal_request(request, i))[3:] for i in range(len(request.items))]
            return codec.action_with_list_response(request.invoke_id, results)
        return exception_response(STATE_SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)

    # --- one -normal request ----------------------------------------------------------------------

    def _normal(self, apdu: bytes) -> bytes:
        """A -normal request: unknown classes refused here, the rest answered by gurux."""
        if len(apdu) >= 5 and struct.unpack(">H", apdu[3:5])[0] not in _KNOWN_CLASSES:
            return data_access_error(apdu, int(ErrorCode.UNDEFINED_OBJECT))
        return self._gurux(apdu)

    def _element(self, apdu: bytes) -> bytes:
        """The -normal answer to one element of a list or of a SET sent in blocks, built whole
        (never in blocks of its own)."""
        if len(apdu) < 5 + 6 + 1:
            raise ApduError("element cut short")
        bounded = self.settings.maxPduSize
        self.settings.maxPduSize = UNBOUNDED_PDU
        try:
            return self._normal(apdu)
        finally:
            self.settings.maxPduSize = bounded

    def _gurux(self, apdu: bytes) -> bytes:
        data = GXByteBuffer(bytearray(apdu))
        data.position = 1
        reply = GXByteBuffer()
        handler = {GET_REQUEST: GXDLMSLNCommandHandler.handleGetRequest,
                   SET_REQUEST: GXDLMSLNCommandHandler.handleSetRequest}.get(apdu[0])
        try:
            with profile.local_time_rules(self._legal):
                if handler is not None:
                    handler(self.settings, self._host, data, reply, None)
                else:
                    GXDLMSLNCommandHandler.handleMethodRequest(self.settings, self._host, data, None, reply, None)
        except Exception as exc:  # gurux raises bare exceptions on malformed data: answer, never crash
            _log.info("request %s refused by the dispatcher: %s", apdu[:16].hex(), failure_reason(exc))
            _log.debug("request %s: dispatcher traceback", apdu[:16].hex(), exc_info=True)
            self._host.transaction = None
            self.settings.setCount(0)
            self.settings.setIndex(0)
            return data_access_error(apdu, int(ErrorCode.OTHER_REASON))
        out = bytes(reply.array())
        if not out:
            return data_access_error(apdu, int(ErrorCode.OTHER_REASON))
        if apdu[0] == ACTION_REQUEST and len(out) == 4 and out[:2] == bytes((ACTION_RESPONSE, 1)):
            out += b"\x00"  # gurux leaves out the absent return parameters' flag of a refused ACTION
        return out


class _LongGet:
    """A long GET-with-list answer going out in GET data blocks (the part after the invoke-id)."""

    def __init__(self, invoke_id: int, body: bytes) -> None:
        self.invoke_id = invoke_id
        self._body = body
        self._sent = 0
        self.number = 0
        """The number of the last block sent."""

    @property
    def done(self) -> bool:
        return self._sent >= len(self._body)

    def block(self, pdu: int) -> bytes:
        room = max(16, pdu - 16)  # tag, choice, invoke-id, last, number, choice, length: < 16 octets
        raw = self._body[self._sent:self._sent + room]
        self._sent += len(raw)
        self.number += 1
        return codec.get_datablock_response(self.invoke_id, self.done, self.number, raw)


class _LongSet:
    """A SET arriving in data blocks: the elements it writes and the data so far."""

    def __init__(self, invoke_id: int, choice: int, items: tuple[bytes, ...]) -> None:
        self.invoke_id = invoke_id
        self.choice = choice
        self.items = items
        self.number = 1
        """The number of the block expected next."""
        self.data = bytearray()


REASON_CHARS = 120  # characters of an exception's text kept in a log line


def failure_reason(exc: BaseException) -> str:
    """One line saying why a request failed: the exception's type and its first line of text,
    cut to :data:`REASON_CHARS` characters (the traceback goes to DEBUG only)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:REASON_CHARS]

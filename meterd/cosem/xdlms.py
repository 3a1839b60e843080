"""xDLMS data services of the COSEM server: GET, SET and ACTION (IEC 62056-5-3 §9.4), answered by
gurux's ``GXDLMSLNCommandHandler`` against the objects of one association.

:class:`LnDispatcher` refuses what the meter does not offer (unknown services, unknown classes,
the *-with-list variants) with the proper error APDU and hands the rest to gurux, whose server
call-backs :class:`_DispatchHost` answers: values and writes come from the objects themselves,
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
from meterd.cosem.association import Request

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


class LnDispatcher:
    """GET, SET and ACTION of one association, on gurux ``settings`` (see :func:`ln_settings`).

    ``legal`` gives the legal-time rules by which profile range bounds without deviation are
    read (None: UTC)."""

    def __init__(self, settings: Any, policy: AccessPolicy, legal: profile.LegalTimeSource | None = None) -> None:
        self.settings = settings
        self._host = _DispatchHost(settings, policy)
        self._legal = legal

    def reset(self) -> None:
        """Forget a block transfer in progress (the association ended)."""
        self._host.transaction = None

    def serve(self, apdu: bytes) -> bytes:
        """The answer to a plain GET, SET or ACTION request (an error answer for anything else)."""
        if apdu[0] not in (GET_REQUEST, SET_REQUEST, ACTION_REQUEST) or len(apdu) < 3:
            return exception_response(STATE_SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        if apdu[1] == 1 and len(apdu) >= 5 and struct.unpack(">H", apdu[3:5])[0] not in _KNOWN_CLASSES:
            return data_access_error(apdu, int(ErrorCode.UNDEFINED_OBJECT))
        if apdu[1] == 3 or (apdu[0] == SET_REQUEST and apdu[1] in (4, 5)):
            return data_access_error(apdu, int(ErrorCode.OTHER_REASON))  # *-with-list not offered
        return self._gurux(apdu)

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
        return out if out else data_access_error(apdu, int(ErrorCode.OTHER_REASON))


REASON_CHARS = 120  # characters of an exception's text kept in a log line


def failure_reason(exc: BaseException) -> str:
    """One line saying why a request failed: the exception's type and its first line of text,
    cut to :data:`REASON_CHARS` characters (the traceback goes to DEBUG only)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:REASON_CHARS]

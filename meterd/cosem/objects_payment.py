"""COSEM payment-metering objects (IEC 62056-6-2, DLMS Blue Book classes 111, 112, 113, 115).

=====================  =====  ==========================================================
OBIS                   class  content
=====================  =====  ==========================================================
0-0:19.0.0.255         111    Account: mode (2, writable by management: 1 credit =
                              postpaid, 2 prepayment), credit status (4), available
                              credit (5), low-credit threshold (16), currency (15)
0-0:19.10.0.255        112    Credit, token credit (type 0)
0-0:19.10.1.255        112    Credit, emergency credit (type 2); method 3 invoke_credit
                              (management) grants it when available
0-0:19.20.0.255        113    Charge, consumption based: total charged (2), unit charge
                              per rate (5, 6), last collection (10, 11)
0-0:19.40.0.255        115    Token gateway: last token (2, 20 ASCII digits), time (3),
                              description (4), delivery method (5: 1 local on the
                              optical port, 0 remote on the wrapper and RS-485), status
                              (6); method 1 enter(octet-string of 20 ASCII digits)
                              (management only)
=====================  =====  ==========================================================

Amounts are double-long in the account's display unit: Wh for an energy account (currency
attribute: name "Wh", scale 0, unit 1 consumption) or minor currency units for a currency account
(scale −minor digits, unit 2 monetary). Every attribute is encoded here (own A-XDR); the gurux
classes only lend their class id, version and attribute/method counts. Everything is read from a
:class:`PaymentPort` at GET time (the account as one
:class:`~meterd.core.credit.CreditView`); writes and actions go through it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import GXDLMSAccount, GXDLMSCharge, GXDLMSCredit, GXDLMSTokenGateway

from meterd.core.credit import CreditUnit, CreditView
from meterd.cosem import axdr
from meterd.cosem.adapters import DENIED, OK, OTHER_REASON, TYPE_UNMATCHED, AttributeTable, AttributeValue
from meterd.cosem.datetime_codec import UNSPECIFIED, encode_utc
from meterd.cosem.objects import LOCAL_LINKS, Access, CosemContext, CosemEntry

ACCOUNT_LN = "0.0.19.0.0.255"
TOKEN_CREDIT_LN = "0.0.19.10.0.255"
EMERGENCY_CREDIT_LN = "0.0.19.10.1.255"
CHARGE_LN = "0.0.19.20.0.255"
TOKEN_GATEWAY_LN = "0.0.19.40.0.255"
ENERGY_REGISTER_LN = "1.0.1.8.0.255"

PAYMENT_MODE = {"postpaid": 1, "prepaid": 2}  # Blue Book: 1 credit mode, 2 prepayment mode
ACCOUNT_ACTIVE = 2
INT32_MAX = 2**31 - 1
INT16_MAX = 2**15 - 1
NOT_SPECIFIED = UNSPECIFIED

# Token gateway status codes (class 115 attribute 6).
TOKEN_EXECUTION_OK, FORMAT_FAILURE, AUTHENTICATION_FAILURE, VALIDATION_FAILURE, EXECUTION_FAILURE = 3, 4, 5, 6, 7
_STATUS_BY_RESULT = {
    "Accept": TOKEN_EXECUTION_OK, "1stKCT": TOKEN_EXECUTION_OK, "2ndKCT": TOKEN_EXECUTION_OK,
    "3rdKCT": TOKEN_EXECUTION_OK, "4thKCT": TOKEN_EXECUTION_OK, "FormatError": FORMAT_FAILURE,
    "CRCError": AUTHENTICATION_FAILURE, "OldError": VALIDATION_FAILURE, "UsedError": VALIDATION_FAILURE,
    "KeyExpiredError": VALIDATION_FAILURE, "DDTKError": VALIDATION_FAILURE, "MfrCodeError": VALIDATION_FAILURE,
}
# Token delivery method (class 115 attribute 5): (0) via remote communications, (1) via local
# communications, (2) via manual entry. Keypad entry (on the meter or the CIU) is manual entry;
# the token gateway's own method (DLMS) records the source "dlms:<link>": local communications on
# the optical port (LOCAL_LINKS), remote on the TCP wrapper and RS-485 ("dlms" alone, as stored by
# older versions, is remote); the local API (meterctl, a lab tool on the meter's socket) is local
# communications, and so is any other local source.
DELIVERY_REMOTE, DELIVERY_LOCAL, DELIVERY_MANUAL = 0, 1, 2
DELIVERY = {"dlms": DELIVERY_REMOTE, "remote": DELIVERY_REMOTE, "keypad": DELIVERY_MANUAL,
            "ciu": DELIVERY_MANUAL, "api": DELIVERY_LOCAL, "meterctl": DELIVERY_LOCAL}


def dlms_source(link_name: str) -> str:
    """The token source recorded for an entry through the token gateway on ``link_name``."""
    return f"dlms:{link_name}" if link_name else "dlms"


def delivery_method(source: str) -> int:
    """Class 115 attribute 5 value of a token ``source``."""
    kind, _, link = source.partition(":")
    if kind == "dlms" and link:
        return DELIVERY_LOCAL if link in LOCAL_LINKS else DELIVERY_REMOTE
    return DELIVERY.get(source, DELIVERY_LOCAL)


class LastTokenView(Protocol):
    """The last token entered (see :class:`meterd.services.payment.LastToken`)."""

    digits: str
    utc: _dt.datetime | None
    source: str
    result: str


class PaymentPort(Protocol):
    """What the objects need from the payment service (:class:`meterd.services.payment.PaymentService`)."""

    @property
    def last_token(self) -> LastTokenView:
        """The last token entered."""
        ...

    last_charge_units: int
    last_cycle_utc: _dt.datetime | None

    def credit_view(self) -> CreditView:
        """The credit account now."""
        ...

    def submit_token(self, digits: str, source: str) -> object:
        """Enter a token (its result shows in the gateway's last token)."""
        ...

    def set_mode(self, mode: str) -> object:
        """Switch prepaid/postpaid."""
        ...

    def request_emergency(self) -> bool:
        """Grant emergency credit when available; True when granted."""
        ...

    def charge_table(self) -> list[tuple[int, int]]:
        """(rate, price per unit) pairs of the unit charge, and the charge scalers via ``charge_scales``."""
        ...

    def charge_scales(self) -> tuple[int, int]:
        """(commodity scale, price scale) of the unit charge (powers of ten)."""
        ...


def _i32(value: int) -> bytes:
    return axdr.encode_value(axdr.INT32, max(-INT32_MAX - 1, min(INT32_MAX, int(value))))


def _bits(bits: Iterable[bool]) -> bytes:
    flags = list(bits)
    raw = bytearray((len(flags) + 7) // 8)
    for i, on in enumerate(flags):
        if on:
            raw[i // 8] |= 0x80 >> (i % 8)
    return bytes((axdr.BIT_STRING,)) + axdr.length_bytes(len(flags)) + bytes(raw)


def _datetime(utc: _dt.datetime | None) -> bytes:
    raw = NOT_SPECIFIED if utc is None else encode_utc(utc)
    return axdr.encode_value(axdr.OCTET_STRING, raw)


def _reference_list(lns: Iterable[str]) -> bytes:
    return axdr.encode_array([axdr.encode_logical_name(ln) for ln in lns])


def _currency(view: CreditView) -> bytes:
    if view.unit is CreditUnit.ENERGY:
        return axdr.encode_structure(axdr.encode_value(axdr.VISIBLE_STRING, "Wh"), axdr.encode_value(axdr.INT8, 0),
                                     axdr.encode_value(axdr.ENUM, 1))
    return axdr.encode_structure(axdr.encode_value(axdr.VISIBLE_STRING, str(view.currency)),
                                 axdr.encode_value(axdr.INT8, -view.minor_digits),
                                 axdr.encode_value(axdr.ENUM, 2))


class PaymentAccount(AttributeTable, GXDLMSAccount):  # type: ignore[misc]  # gurux is untyped
    """Account (class 111) 0-0:19.0.0.255; methods (activate/close/reset) are not offered."""

    def __init__(self, port: PaymentPort) -> None:
        super().__init__(ACCOUNT_LN)
        self._port = port

    def _values(self, view: CreditView) -> dict[int, bytes]:
        credit = view.credit
        emergency = view.emergency
        status = _bits([credit > 0, view.low_credit, False, emergency.available, False,
                        emergency.active, credit <= 0, False])
        return {
            2: axdr.encode_structure(axdr.encode_value(axdr.ENUM, PAYMENT_MODE[view.mode.value]),
                                     axdr.encode_value(axdr.ENUM, ACCOUNT_ACTIVE)),
            3: axdr.encode_value(axdr.UINT8, 2 if emergency.active else 1),
            4: status, 5: _i32(credit), 6: _i32(max(-credit, 0)), 7: _i32(0), 8: _i32(0),
            9: _reference_list((TOKEN_CREDIT_LN, EMERGENCY_CREDIT_LN)), 10: _reference_list((CHARGE_LN,)),
            11: axdr.encode_array([]), 12: axdr.encode_array([]), 13: _datetime(None), 14: _datetime(None),
            15: _currency(view), 16: _i32(view.low_credit_threshold),
            17: _i32(0), 18: axdr.encode_value(axdr.UINT16, 0), 19: axdr.encode_value(axdr.UINT32, 0),
        }

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return self._values(self._port.credit_view())

    def write(self, e: Any) -> int:
        """SET attribute 2: structure {payment_mode (1 postpaid, 2 prepaid), account_status}."""
        if e.index != 2:
            return DENIED
        value = e.value
        mode = value[0] if isinstance(value, list | tuple) and value else value
        if not isinstance(mode, int) or isinstance(mode, bool):
            return TYPE_UNMATCHED
        names = {v: k for k, v in PAYMENT_MODE.items()}
        if mode not in names:
            return OTHER_REASON
        self._port.set_mode(names[mode])
        return OK


class PaymentCredit(AttributeTable, GXDLMSCredit):  # type: ignore[misc]  # gurux is untyped
    """Credit (class 112): the token credit (type 0) or the emergency credit (type 2)."""

    def __init__(self, ln: str, port: PaymentPort, emergency: bool) -> None:
        super().__init__(ln)
        self._port = port
        self._emergency = emergency

    def _values(self, view: CreditView) -> dict[int, bytes]:
        credit, em = view.credit, view.emergency
        emergency_left = min(max(credit, 0), em.owed) if em.active else 0
        if self._emergency:
            amount, kind, priority = emergency_left, 2, 2
            status = 3 if em.active else (1 if em.available else 0)
            config = _bits([True, True, True, False, False])
            warning, preset, threshold = 0, em.amount, em.threshold
        else:
            amount, kind, priority = credit - emergency_left, 0, 1
            status = 4 if credit <= 0 else 3
            config = _bits([True, False, False, False, True])
            warning, preset, threshold = view.low_credit_threshold, 0, 0
        return {2: _i32(amount), 3: axdr.encode_value(axdr.ENUM, kind), 4: axdr.encode_value(axdr.UINT8, priority),
                5: _i32(warning), 6: _i32(0), 7: config, 8: axdr.encode_value(axdr.ENUM, status),
                9: _i32(preset), 10: _i32(threshold), 11: _datetime(None)}

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return self._values(self._port.credit_view())

    def invoke(self, settings: Any, e: Any) -> Any:
        """Method 3 invoke_credit on the emergency credit; anything else is refused."""
        if not self._emergency or e.index != 3:
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        if not self._port.request_emergency():
            e.error = ErrorCode.TEMPORARY_FAILURE
        return None


class PaymentCharge(AttributeTable, GXDLMSCharge):  # type: ignore[misc]  # gurux is untyped
    """Charge (class 113) 0-0:19.20.0.255: consumption based collection from 1-0:1.8.0."""

    def __init__(self, port: PaymentPort) -> None:
        super().__init__(CHARGE_LN)
        self._port = port

    def _unit_charge(self) -> bytes:
        commodity_scale, price_scale = self._port.charge_scales()
        scaling = axdr.encode_structure(axdr.encode_value(axdr.INT8, commodity_scale),
                                        axdr.encode_value(axdr.INT8, price_scale))
        commodity = axdr.encode_structure(axdr.encode_value(axdr.UINT16, 3),
                                          axdr.encode_logical_name(ENERGY_REGISTER_LN), axdr.encode_value(axdr.INT8, 2))
        table = axdr.encode_array([
            axdr.encode_structure(axdr.encode_value(axdr.OCTET_STRING, str(rate)),
                                  axdr.encode_value(axdr.INT16, min(price, INT16_MAX)))
            for rate, price in self._port.charge_table()])
        return axdr.encode_structure(scaling, commodity, table)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        view = self._port.credit_view()
        return {
            2: lambda: _i32(view.consumed), 3: lambda: axdr.encode_value(axdr.ENUM, 0),
            4: lambda: axdr.encode_value(axdr.UINT8, 1), 5: self._unit_charge, 6: self._unit_charge,
            7: lambda: _datetime(None), 8: lambda: axdr.encode_value(axdr.UINT32, 1),
            9: lambda: _bits([False, False]), 10: lambda: _datetime(self._port.last_cycle_utc),
            11: lambda: _i32(self._port.last_charge_units), 12: lambda: _i32(0),
            13: lambda: axdr.encode_value(axdr.UINT16, 0),
        }


class PaymentTokenGateway(AttributeTable, GXDLMSTokenGateway):  # type: ignore[misc]  # gurux is untyped
    """Token gateway (class 115) 0-0:19.40.0.255; method 1 enters an STS token (20 ASCII digits)
    with the source ``dlms:<link_name>`` (the session's link)."""

    def __init__(self, port: PaymentPort, link_name: str = "") -> None:
        super().__init__(TOKEN_GATEWAY_LN)
        self._port = port
        self._source = dlms_source(link_name)

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        last = self._port.last_token
        status = _STATUS_BY_RESULT.get(last.result, EXECUTION_FAILURE) if last.result else 8
        return {
            2: lambda: axdr.encode_value(axdr.OCTET_STRING, last.digits.encode("ascii", "replace")),
            3: lambda: _datetime(last.utc),
            4: lambda: axdr.encode_array([axdr.encode_value(axdr.OCTET_STRING, last.result.encode("ascii"))]
                                         if last.result else []),
            5: lambda: axdr.encode_value(axdr.ENUM, delivery_method(last.source)),
            6: lambda: axdr.encode_structure(axdr.encode_value(axdr.ENUM, status), _bits([False] * 8)),
        }

    def invoke(self, settings: Any, e: Any) -> Any:
        """Method 1 enter(token): the result is in attributes 2, 3, 4 and 6."""
        if e.index != 1:
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        raw = e.parameters
        if isinstance(raw, str):
            raw = raw.encode("ascii", "replace")
        if not isinstance(raw, bytes | bytearray):
            e.error = ErrorCode.UNMATCHED_TYPE
            return None
        self._port.submit_token(bytes(raw).decode("ascii", "replace"), self._source)
        return None


def payment_objects(port: PaymentPort) -> Callable[[CosemContext], Iterable[CosemEntry]]:
    """The registry factory of the payment objects bound to ``port``."""

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(PaymentAccount(port), Access(write=frozenset({2})))
        yield CosemEntry(PaymentCredit(TOKEN_CREDIT_LN, port, emergency=False), Access())
        yield CosemEntry(PaymentCredit(EMERGENCY_CREDIT_LN, port, emergency=True), Access(methods=frozenset({3})))
        yield CosemEntry(PaymentCharge(port), Access())
        yield CosemEntry(PaymentTokenGateway(port, ctx.link_name), Access(methods=frozenset({1})))

    return factory

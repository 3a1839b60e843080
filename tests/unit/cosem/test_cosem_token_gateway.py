"""Token gateway 0-0:19.40.0.255 (class 115): a token entered over DLMS reports its delivery method
(attribute 5) by link, per the Blue Book: (1) local communications on the optical port, (0)
remote communications on the TCP wrapper and RS-485."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSTokenGateway

from meterd.core.credit import CreditView
from meterd.cosem.config import ServerConfig
from meterd.cosem.objects import default_registry
from meterd.cosem.objects_payment import (
    DELIVERY_LOCAL,
    DELIVERY_MANUAL,
    DELIVERY_REMOTE,
    delivery_method,
    payment_objects,
)
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import connect_in_memory

TOKEN = "12345678901234567890"


@dataclass
class Last:
    digits: str = ""
    utc: dt.datetime | None = None
    source: str = ""
    result: str = ""


@dataclass
class FakePayment:
    """The part of the payment feature the token gateway uses; records every submission."""

    meter: FakeMeter
    last_token: Last = field(default_factory=Last)
    submitted: list[tuple[str, str]] = field(default_factory=list)
    last_charge_units: int = 0
    last_cycle_utc: dt.datetime | None = None

    def submit_token(self, digits: str, source: str) -> object:
        self.submitted.append((digits, source))
        self.last_token = Last(digits, self.meter.now_utc(), source, "Accept")
        return None

    def credit_view(self) -> CreditView:
        raise AssertionError("not read by these tests")

    def set_mode(self, mode: str) -> CreditView:
        raise AssertionError("not used")

    def request_emergency(self) -> bool:
        raise AssertionError("not used")

    def charge_table(self) -> list[tuple[int, int]]:
        return [(1, 1)]

    def charge_scales(self) -> tuple[int, int]:
        return (0, 0)


@pytest.mark.parametrize(("link", "link_name", "method"), [("wrapper", "tcp", DELIVERY_REMOTE),
                                                          ("hdlc", "rs485", DELIVERY_REMOTE),
                                                          ("hdlc", "optical", DELIVERY_LOCAL)])
def test_a_token_entered_over_dlms_reports_the_delivery_method_of_its_link(link, link_name, method):
    meter = FakeMeter()
    port = FakePayment(meter)
    registry = default_registry()
    registry.add(payment_objects(port))
    factory = build_session_factory(meter, MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link=link, registry=registry, link_name=link_name))
    gs, _ = connect_in_memory(factory(), 1)
    gateway = GXDLMSTokenGateway()
    gs.method(gateway, 1, TOKEN.encode(), DataType.OCTET_STRING)
    assert port.submitted == [(TOKEN, f"dlms:{link_name}")]
    assert gs.read_raw(gateway, 5) == method
    gs.close()
    reader, _ = connect_in_memory(factory(), 17)  # any later reader sees how the last token came in
    assert reader.read_raw(gateway, 5) == method


def test_delivery_methods_of_every_source():
    assert delivery_method("dlms:optical") == DELIVERY_LOCAL
    assert delivery_method("dlms:tcp") == delivery_method("dlms:rs485") == DELIVERY_REMOTE
    assert delivery_method("dlms") == DELIVERY_REMOTE  # a record stored before the link was kept
    assert delivery_method("keypad") == delivery_method("ciu") == DELIVERY_MANUAL
    assert delivery_method("api") == delivery_method("meterctl") == DELIVERY_LOCAL

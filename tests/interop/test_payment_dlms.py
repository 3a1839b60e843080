"""Payment objects over DLMS with gurux's client (a library we did not write), on a whole simulated
meter: the reader reads account, credit and charge; the management association enters a token
through the token gateway, switches the account mode and invokes emergency credit; the reader may
not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSAccount, GXDLMSCharge, GXDLMSCredit, GXDLMSTokenGateway

from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.sts.vending import credit_token
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests import simmeter
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = pytest.mark.interop


def build(state_dir: Path, **payment: Any) -> SimMeter:
    original = simmeter.sim_config

    def with_payment(sd: Path, **sections: Any) -> Any:
        cfg = original(sd, **sections)
        return dataclasses.replace(cfg, features={**cfg.features, "payment": PaymentSection(**payment)})

    with mock.patch.object(simmeter, "sim_config", with_payment):
        return SimMeter(state_dir)


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    make_keys(tmp_path / "dlms-keys.toml").save()  # throwaway test keys the gurux client knows
    m = build(tmp_path, mode="prepaid", friendly_hours="", friendly_weekdays=(), friendly_holidays=False,
              emergency_amount=500,
              emergency_threshold=100)
    yield m
    m.close()




def token(tid: int, tenths: int) -> str:
    return credit_token(sts_cipher_factory(7, sim_key_register(PaymentSection()).key), tid, tenths)


def test_reader_reads_account_credit_and_charge(meter: SimMeter) -> None:
    meter.service(PaymentService).submit_token(token(10, 25), "test")  # 2.5 kWh
    meter.run(30)
    view = meter.service(PaymentService).credit_view()
    with Client(meter, 17) as gs:
        account = GXDLMSAccount()
        gs.read(account, 2)
        assert int(account.paymentMode) == 2  # prepayment
        assert gs.read_raw(account, 5) == view.credit  # Wh
        assert gs.read_raw(account, 16) == 5000
        currency = gs.read_raw(account, 15)
        assert list(currency) == ["Wh", 0, 1]  # name, scale, unit 1 = consumption
        credit = GXDLMSCredit("0.0.19.10.0.255")
        assert gs.read_raw(credit, 2) == view.credit
        assert gs.read_raw(credit, 3) == 0  # token credit
        emergency = GXDLMSCredit("0.0.19.10.1.255")
        assert gs.read_raw(emergency, 3) == 2 and gs.read_raw(emergency, 9) == 500
        charge = GXDLMSCharge()
        assert gs.read_raw(charge, 2) == view.consumed and 25 < view.consumed < 35
        unit_charge = gs.read_raw(charge, 5)
        assert bytes(unit_charge[1][1]) == bytes((1, 0, 1, 8, 0, 255))  # charged from 1-0:1.8.0
        with pytest.raises(DlmsClientError):  # the reader may not enter tokens
            gs.method(GXDLMSTokenGateway(), 1, token(11, 10).encode(), DataType.OCTET_STRING)
    assert meter.service(PaymentService).credit_view().credit == view.credit


def test_management_enters_a_token_through_the_gateway(meter: SimMeter) -> None:
    digits = token(20, 30)  # 3 kWh
    with Client(meter, 1) as gs:
        gateway = GXDLMSTokenGateway()
        gs.method(gateway, 1, digits.encode(), DataType.OCTET_STRING)
        assert bytes(gs.read_raw(gateway, 2)).decode() == digits
        status = gs.read_raw(gateway, 6)
        assert status[0] == 3  # token execution OK
        assert gs.read_raw(gateway, 5) == 0  # delivered remotely
        assert meter.service(PaymentService).credit_view().credit == 3000
        gs.method(gateway, 1, digits.encode(), DataType.OCTET_STRING)  # the same token again
        assert gs.read_raw(gateway, 6)[0] == 6  # validation failure (UsedError)
        assert [bytes(d).decode() for d in gs.read_raw(gateway, 4)] == ["UsedError"]
    assert meter.service(PaymentService).credit_view().credit == 3000


def test_management_switches_mode_and_invokes_emergency_credit(meter: SimMeter) -> None:
    meter.run(3)
    assert meter.service(PaymentService).credit_view().relay == "disconnect"
    with Client(meter, 1) as gs:
        emergency = GXDLMSCredit("0.0.19.10.1.255")
        gs.method(emergency, 3, 0, DataType.ENUM)
        assert gs.read_raw(emergency, 8) == 3  # in use
        assert meter.service(PaymentService).credit_view().relay == "connect"
        with pytest.raises(DlmsClientError):  # only once until repaid
            gs.method(emergency, 3, 0, DataType.ENUM)
        account = GXDLMSAccount()
        gs.read(account, 2)
        account.paymentMode = 1  # credit (postpaid)
        gs.write(account, 2)
    assert meter.service(PaymentService).credit_view().mode == "postpaid"
    with Client(meter, 17) as gs:
        account = GXDLMSAccount()
        account.paymentMode = 2
        with pytest.raises(DlmsClientError):  # the reader may not write
            gs.write(account, 2)
    assert meter.service(PaymentService).credit_view().mode == "postpaid"


@pytest.mark.parametrize("source, method", [("keypad", 2), ("ciu", 2), ("api", 1), ("meterctl", 1)])
def test_gateway_reports_how_a_local_token_was_delivered(meter: SimMeter, source: str, method: int) -> None:
    digits = token(30, 10)
    assert meter.service(PaymentService).submit_token(digits, source).result == "Accept"
    with Client(meter, 17) as gs:
        gateway = GXDLMSTokenGateway()
        assert gs.read_raw(gateway, 5) == method  # 2 manual entry, 1 local communications
        assert bytes(gs.read_raw(gateway, 2)).decode() == digits


def test_gateway_shows_the_last_token_after_a_restart(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    m = build(tmp_path, mode="prepaid")
    digits = token(40, 10)
    assert m.service(PaymentService).submit_token(digits, "keypad").result == "Accept"
    m.close()
    m = build(tmp_path, mode="prepaid")
    try:
        with Client(m, 17) as gs:
            gateway = GXDLMSTokenGateway()
            assert bytes(gs.read_raw(gateway, 2)).decode() == digits
            assert gs.read_raw(gateway, 5) == 2 and gs.read_raw(gateway, 6)[0] == 3
            assert [bytes(d).decode() for d in gs.read_raw(gateway, 4)] == ["Accept"]
    finally:
        m.close()

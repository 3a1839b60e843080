"""Interop over the TCP wrapper with clients this project did not write: gurux, dlms-cosem, pydlms."""

from __future__ import annotations

import datetime as dt

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.client import DlmsClient as CosemClient
from dlms_cosem.cosem.selective_access import CaptureObject, RangeDescriptor
from dlms_cosem.io import BlockingTcpIO, TcpTransport
from dlms_cosem.security import (
    HighLevelSecurityGmacAuthentication,
    LowLevelSecurityAuthentication,
    NoSecurityAuthentication,
)
from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.cosem.objects import INSTANTANEOUS
from tests.dlms_fakes import CLIENT_TITLE, TEST_GAK, TEST_GUEK, TEST_PASSWORD, UTC
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import Meter, SocketIO

pytestmark = pytest.mark.interop

ENERGY_LNS = [f"1.0.{c}.8.0.255" for base in (0, 20, 40, 60) for c in
              (base + q for q in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15))]


@pytest.fixture(scope="module")
def meter():
    m = Meter(profile_rows=960, with_pty=False)
    yield m
    m.stop()


def gurux(meter: Meter, sap: int, hdlc: bool = False) -> GuruxSession:
    io = SocketIO(meter.hdlc_port if hdlc else meter.port)
    client = make_client(sap, hdlc=hdlc, invocation_counter=meter.next_client_ic())
    gs = GuruxSession(client, io.send, io.receive)
    gs.connect()
    return gs


@pytest.mark.parametrize("sap", [17, 1])
def test_gurux_reads_every_object_of_the_association_view(meter, sap):
    gs = gurux(meter, sap)
    objects = gs.object_list()
    names = {o.logicalName for o in objects}
    assert set(ENERGY_LNS) <= names
    assert {f"1.0.{i.c}.7.0.255" for i in INSTANTANEOUS} <= names
    for obj in objects:
        for attr in range(1, obj.getAttributeCount() + 1):
            if obj.logicalName.startswith("0.0.40.0.") and attr == 7:
                continue  # the secret is never readable
            if obj.logicalName == "1.0.99.1.0.255" and attr == 2:
                continue  # the whole profile has its own test
            gs.read(obj, attr)
    reg = GXDLMSRegister("1.0.1.8.0.255")
    gs.read(reg, 3)
    gs.read(reg, 2)
    from meterd.core.energy import Quantity
    from meterd.core.reading import Channel
    expected = meter.model.registers[(Quantity.ACTIVE_IMPORT, Channel.TOTAL)]
    assert reg.value == pytest.approx(expected / 1000)
    gs.close()


def test_gurux_public_client_sees_only_the_public_subset(meter):
    gs = gurux(meter, 16)
    names = {o.logicalName for o in gs.object_list()}
    assert "0.0.1.0.0.255" in names and "0.0.43.1.3.255" in names
    assert "1.0.1.8.0.255" not in names
    ldn = GXDLMSData("0.0.42.0.0.255")
    gs.read(ldn, 2)
    assert bytes(ldn.value) == b"PMM0001221000042"
    gs.close()


def test_gurux_lls_secret_is_not_readable(meter):
    from gurux_dlms.objects import GXDLMSAssociationLogicalName

    from tests.dlms_gurux_client import DlmsClientError

    gs = gurux(meter, 17)
    with pytest.raises(DlmsClientError):
        gs.read(GXDLMSAssociationLogicalName("0.0.40.0.0.255"), 7)
    gs.close()


def test_gurux_hls_sets_clock_and_reads_profile_by_range(meter):
    gs = gurux(meter, 1)
    clock = GXDLMSClock()
    target = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    clock.time = GXDateTime(target)
    gs.write(clock, 2)
    assert meter.model.clock_sets[-1][0] == target
    assert meter.model.clock_sets[-1][1] == "dlms:management"
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    rows = gs.rows_by_range(pg, dt.datetime(2026, 1, 1, 6, tzinfo=UTC), dt.datetime(2026, 1, 2, 6, tzinfo=UTC))
    assert len(rows) == 97
    gs.close()


def _cosem_client(meter: Meter, sap: int) -> CosemClient:
    io = BlockingTcpIO(host="127.0.0.1", port=meter.port)
    transport = TcpTransport(client_logical_address=sap, server_logical_address=1, io=io)
    if sap == 16:
        return CosemClient(transport=transport, authentication=NoSecurityAuthentication())
    if sap == 17:
        return CosemClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    return CosemClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=32),
                       encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                       client_initial_invocation_counter=_read_frame_counter(meter) + 1)


def _read_frame_counter(meter: Meter) -> int:
    """What a real head end does first: read 0-0:43.1.3.255 through the public client."""
    client = _cosem_client(meter, 16)
    with client.session() as c:
        raw = c.get(cosem.CosemAttribute(enumerations.CosemInterface.DATA, cosem.Obis(0, 0, 43, 1, 3), 2))
    return int(utils.parse_as_dlms_data(raw))


LP = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)


@pytest.mark.parametrize("sap", [16, 17, 1])
def test_dlms_cosem_associations(meter, sap):
    with _cosem_client(meter, sap).session() as c:
        raw = c.get(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2))
        assert len(utils.parse_as_dlms_data(raw)) == 12
        if sap != 16:
            raw = c.get(cosem.CosemAttribute(enumerations.CosemInterface.REGISTER, cosem.Obis(1, 0, 41, 8, 0), 2))
            assert utils.parse_as_dlms_data(raw) > 0
            rows = utils.parse_as_dlms_data(c.get(LP))
            assert len(rows) == 960


def test_dlms_cosem_range_read_and_clock_set(meter):
    with _cosem_client(meter, 1).session() as c:
        clock_col = CaptureObject(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2))
        desc = RangeDescriptor(clock_col, dt.datetime(2026, 1, 2, tzinfo=UTC), dt.datetime(2026, 1, 2, 1, tzinfo=UTC))
        rows = utils.parse_as_dlms_data(c.get(LP, access_descriptor=desc))
        assert len(rows) == 5
        from meterd.cosem.datetime_codec import encode_utc

        when = dt.datetime(2026, 6, 1, 0, 0, 30, tzinfo=UTC)
        response = c.set(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2),
                         b"\x09\x0c" + encode_utc(when))
        assert "SUCCESS" in repr(response) or getattr(response, "result", None) is not None
    assert meter.model.clock_sets[-1][0] == when


def test_dlms_cosem_wrong_password_is_refused(meter, caplog):
    from dlms_cosem.exceptions import DlmsClientException

    io = BlockingTcpIO(host="127.0.0.1", port=meter.port)
    transport = TcpTransport(client_logical_address=17, server_logical_address=1, io=io)
    client = CosemClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=b"WRONGPWD"))
    client.connect()
    try:
        with pytest.raises(DlmsClientException):
            client.associate()
    finally:
        client.disconnect()
    assert "wrong LLS password" in caplog.text
    assert "WRONGPWD" not in caplog.text and TEST_PASSWORD.decode() not in caplog.text


def test_pydlms_reads_register_clock_and_profile(meter):
    from pydlms import DlmsClient, Mechanism, SecurityContext

    with DlmsClient.tcp("127.0.0.1", meter.port, client_sap=17, mechanism=Mechanism.LLS,
                        password=TEST_PASSWORD) as m:
        value = m.get_register("1.0.1.8.0.255")
        assert value.value is not None
        assert m.get_clock() is not None
    security = SecurityContext(encryption_key=TEST_GUEK, authentication_key=TEST_GAK,
                               client_system_title=CLIENT_TITLE, invocation_counter=meter.next_client_ic())
    with DlmsClient.tcp("127.0.0.1", meter.port, client_sap=1, mechanism=Mechanism.HLS_GMAC,
                        security=security) as m:
        profile = m.read_profile("1.0.99.1.0.255")
        assert len(profile.rows) == 960
        m.set_clock(dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert meter.model.clock_sets[-1][0] == dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_three_associations_at_once(meter):
    sessions = [gurux(meter, sap) for sap in (16, 17, 1)]
    for gs in sessions:
        clock = GXDLMSClock()
        gs.read(clock, 2)
    for gs in sessions:
        gs.close()


def test_instantaneous_values_are_scaled(meter):
    gs = gurux(meter, 17)
    voltage = GXDLMSRegister("1.0.32.7.0.255")
    gs.read(voltage, 3)
    gs.read(voltage, 2)
    assert voltage.value == pytest.approx(230.0)
    gs.close()

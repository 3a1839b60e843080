"""Interop over HDLC (pty pair and HDLC over TCP) with gurux, dlms-cosem and pydlms clients."""

from __future__ import annotations

import datetime as dt

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.client import DlmsClient as CosemClient
from dlms_cosem.cosem.selective_access import CaptureObject, RangeDescriptor
from dlms_cosem.security import HighLevelSecurityGmacAuthentication, LowLevelSecurityAuthentication
from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister

from tests.dlms_fakes import CLIENT_TITLE, TEST_GAK, TEST_GUEK, TEST_PASSWORD, UTC
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import Meter, PtyIO, SocketIO, length_framed_hdlc_transport

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def meter():
    m = Meter(profile_rows=960)
    yield m
    m.stop()


def _gurux_pty(meter: Meter, sap: int, max_info: int = 128) -> tuple[GuruxSession, PtyIO]:
    io = PtyIO(meter.pty.slave_path)
    client = make_client(sap, hdlc=True, invocation_counter=meter.next_client_ic(), max_info=max_info)
    gs = GuruxSession(client, io.send, io.receive)
    gs.connect()
    return gs, io


@pytest.mark.parametrize("sap,max_info", [(16, 128), (17, 128), (1, 128), (17, 2030), (1, 2030)])
def test_gurux_over_pty(meter, sap, max_info):
    gs, io = _gurux_pty(meter, sap, max_info)
    try:
        assert gs.client.hdlcSettings.maxInfoRX == max_info
        ldn = GXDLMSData("0.0.42.0.0.255")
        gs.read(ldn, 2)
        assert bytes(ldn.value) == b"PMM0001221000042"
        if sap != 16:
            objects = gs.object_list()
            assert len(objects) >= 90
            reg = GXDLMSRegister("1.0.2.8.0.255")
            gs.read(reg, 3)
            gs.read(reg, 2)
            pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
            gs.read(pg, 3)
            rows = gs.rows_by_range(pg, dt.datetime(2026, 1, 3, tzinfo=UTC), dt.datetime(2026, 1, 4, tzinfo=UTC))
            assert len(rows) == 97
        if sap == 1:
            clock = GXDLMSClock()
            gs.read(clock, 2)
            gs.method(clock, 6, 30, 16)  # shift_time +30 s (long)
            assert meter.model.clock_sets[-1][1] == "dlms:management"
    finally:
        gs.close()
        io.close()


def test_gurux_hdlc_over_tcp_reads_whole_profile(meter):
    io = SocketIO(meter.hdlc_port)
    client = make_client(17, hdlc=True, max_info=2030)
    gs = GuruxSession(client, io.send, io.receive)
    gs.connect()
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    gs.read(pg, 2)
    assert len(pg.buffer) == 960
    gs.close()
    io.close()


def _cosem_hdlc(meter: Meter, sap: int, io) -> CosemClient:
    transport = length_framed_hdlc_transport(io, sap)
    if sap == 17:
        return CosemClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    return CosemClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=16),
                       encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                       client_initial_invocation_counter=meter.next_client_ic())


LP = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)


@pytest.mark.parametrize("sap", [17, 1])
def test_dlms_cosem_over_pty_reads_profile_with_0x7e_payloads(meter, sap):
    io = PtyIO(meter.pty.slave_path)
    with _cosem_hdlc(meter, sap, io).session() as c:
        rows = utils.parse_as_dlms_data(c.get(LP))
        assert len(rows) == 960  # the fake profile values contain 0x7E7E: frames hold flag octets
        clock_col = CaptureObject(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2))
        desc = RangeDescriptor(clock_col, dt.datetime(2026, 1, 2, tzinfo=UTC), dt.datetime(2026, 1, 2, 2, tzinfo=UTC))
        assert len(utils.parse_as_dlms_data(c.get(LP, access_descriptor=desc))) == 9


def test_pydlms_over_hdlc_tcp_negotiates_and_reads(meter):
    from pydlms import DlmsClient, Mechanism, SecurityContext

    with DlmsClient.tcp("127.0.0.1", meter.hdlc_port, client_sap=17, hdlc=True, mechanism=Mechanism.LLS,
                        password=TEST_PASSWORD) as m:
        assert m.get_register("1.0.21.8.0.255").value is not None
    security = SecurityContext(encryption_key=TEST_GUEK, authentication_key=TEST_GAK,
                               client_system_title=CLIENT_TITLE, invocation_counter=meter.next_client_ic())
    with DlmsClient.tcp("127.0.0.1", meter.hdlc_port, client_sap=1, hdlc=True, mechanism=Mechanism.HLS_GMAC,
                        security=security) as m:
        assert len(m.read_profile("1.0.99.1.0.255").rows) == 960
        m.set_clock(dt.datetime(2026, 8, 1, tzinfo=UTC))
    assert meter.model.clock_sets[-1][0] == dt.datetime(2026, 8, 1, tzinfo=UTC)


def test_pydlms_serial_over_pty(meter):
    from pydlms import DlmsClient, Mechanism

    with DlmsClient.serial(meter.pty.slave_path, 9600, client_sap=17, mechanism=Mechanism.LLS,
                           password=TEST_PASSWORD) as m:
        assert m.get_clock() is not None


def test_info_field_of_32_octets_segments_every_ciphered_apdu(meter):
    """HLS-GMAC over an HDLC link of 32-octet info fields: the reply_to_HLS answer, the requests
    and the responses are all segmented (gurux: association, clock GET and SET; pydlms, which
    negotiates the field strictly: the whole association view and a profile range)."""
    from pydlms import DlmsClient, Mechanism, SecurityContext
    from pydlms.apdu import xdlms
    from pydlms.hdlc.connection import HdlcParameters

    gs, io = _gurux_pty(meter, 1, max_info=32)
    try:
        assert gs.client.hdlcSettings.maxInfoRX == 32
        clock = GXDLMSClock()
        gs.read(clock, 2)
        target = dt.datetime(2026, 9, 1, 6, 30, tzinfo=UTC)
        clock.time = GXDateTime(target)
        gs.write(clock, 2)
        assert meter.model.clock_sets[-1][0] == target
    finally:
        gs.close()
        io.close()
    security = SecurityContext(encryption_key=TEST_GUEK, authentication_key=TEST_GAK,
                               client_system_title=CLIENT_TITLE, invocation_counter=meter.next_client_ic())
    with DlmsClient.serial(meter.pty.slave_path, 9600, client_sap=1, mechanism=Mechanism.HLS_GMAC,
                           security=security, hdlc_parameters=HdlcParameters(max_info_tx=32, max_info_rx=32)) as m:
        assert len(m.get_association_view()) >= 90
        bounds = [xdlms.date_time_value(dt.datetime(2026, 1, 2, h, tzinfo=UTC)) for h in (0, 2)]
        assert len(m.read_profile("1.0.99.1.0.255", xdlms.range_descriptor(*bounds)).rows) == 9

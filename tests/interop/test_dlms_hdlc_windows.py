"""HDLC windows of 7 frames end to end: pydlms-client over the HDLC runtime on a pty, and the
meter's HDLC session read by a scripted head end (:mod:`tests.hdlc_head_end`; the gurux client
makes the APDUs): the profile arrives whole, in bursts of the negotiated window, and the client's
own windowed requests (segments sent without a poll until the last) are reassembled."""

from __future__ import annotations

import datetime as dt

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSProfileGeneric

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.cosem.sessions import HdlcSession
from meterd.proto.hdlc import HdlcParameters
from tests.dlms_fakes import UTC, FakeMeter, make_keyring
from tests.hdlc_head_end import HeadEnd, gurux_over

pytestmark = pytest.mark.interop


def _read_profile(info: int, window: int) -> tuple[HeadEnd, int]:
    params = HdlcParameters(max_info_tx=2030, max_info_rx=2030, window_tx=7, window_rx=7)
    session = build_session_factory(FakeMeter(96 * 3), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", hdlc_params=params))()
    assert isinstance(session, HdlcSession)
    head_end = HeadEnd(session, info, window)
    head_end.connect()
    assert (session.link.max_info_tx, session.link.max_info_rx) == (info, info)
    assert (session.link.window_tx, session.link.window_rx) == (window, window)
    gs = gurux_over(head_end)
    gs.connect()  # with info 32 the AARQ itself goes in one window of segments
    ldn = GXDLMSData("0.0.42.0.0.255")
    gs.read(ldn, 2)
    assert bytes(ldn.value) == b"PMM0001221000042"
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    rows = gs.rows_by_range(pg, dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 4, tzinfo=UTC))
    gs.close()
    return head_end, len(rows)


@pytest.mark.parametrize("info", [32, 128])
def test_window_7_reads_the_profile_whole_in_fewer_turnarounds(info):
    windowed, rows = _read_profile(info, 7)
    single, rows_1 = _read_profile(info, 1)
    assert rows == rows_1 == 96 * 3
    # the same information frames; window 1 adds the RR the meter answers each segment of a request with
    assert windowed.count.from_meter <= single.count.from_meter
    assert windowed.count.turnarounds * 3 < single.count.turnarounds


@pytest.mark.parametrize("info", [32, 128])
def test_pydlms_reads_with_window_7_on_the_meters_pty(info):
    """pydlms-client, which sends and receives windows, over the HDLC runtime on a pty."""
    from pydlms import DlmsClient, Mechanism
    from pydlms.apdu import xdlms
    from pydlms.hdlc.connection import HdlcParameters as ClientParameters

    from tests.dlms_fakes import TEST_PASSWORD
    from tests.dlms_harness import LoopThread

    params = HdlcParameters(max_info_tx=2030, max_info_rx=2030, window_tx=7, window_rx=7)
    factory = build_session_factory(FakeMeter(96 * 3), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", hdlc_params=params))
    loop = LoopThread()
    try:
        link = loop.serial(factory)
        proposal = ClientParameters(max_info_tx=info, max_info_rx=info, window_tx=7, window_rx=7)
        with DlmsClient.serial(link.slave_path, 9600, client_sap=17, mechanism=Mechanism.LLS,
                               password=TEST_PASSWORD, hdlc_parameters=proposal, timeout=5.0) as m:
            session = link._session
            assert isinstance(session, HdlcSession)
            assert (session.link.window_tx, session.link.window_rx, session.link.max_info_tx) == (7, 7, info)
            assert len(m.get_association_view()) >= 90
            bounds = [xdlms.date_time_value(dt.datetime(2026, 1, d, tzinfo=UTC)) for d in (1, 4)]
            assert len(m.read_profile("1.0.99.1.0.255", xdlms.range_descriptor(*bounds)).rows) == 96 * 3  # every row the meter holds
    finally:
        loop.stop()

"""The clock 0-0:1.0.0.255 in legal time (CET/CEST, the simulated meter's default rules) with three
clients this project did not write (gurux's client, dlms-cosem, pydlms) over the TCP wrapper.

Attribute 2 is read as the local wall time with its deviation (UTC = local + deviation: −60 in
winter, −120 in summer) and the clock status' daylight-saving bit, and each client decodes it to
the meter's instant. Writes with a deviation are exact instants; writes without one (0x8000) are
local time under the meter's rules, the status' DST bit choosing the pass in the repeated autumn
hour (not specified: the first pass), a time in the spring gap read with the offset before it.
The load profile read by a range whose bounds carry no deviation is read in the same local time."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem import time as cosem_time
from dlms_cosem.client import DlmsClient as CosemClient
from dlms_cosem.io import BlockingTcpIO, TcpTransport
from dlms_cosem.security import HighLevelSecurityGmacAuthentication, NoSecurityAuthentication
from gurux_dlms import GXDateTime
from gurux_dlms.enums import ClockStatus, DateTimeSkips
from gurux_dlms.objects import GXDLMSClock

from meterd.services.revenue import RevenueService
from tests.dlms_fakes import CLIENT_TITLE, TEST_GAK, TEST_GUEK, make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import GuruxAssociation, ServedLinks

pytestmark = pytest.mark.interop

U = dt.UTC
START = dt.datetime(2026, 1, 5, tzinfo=U)
CLOCK = cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
PUBLIC, MANAGEMENT = 16, 1


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=U)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimMeter, ServedLinks]]:
    state: Path = tmp_path_factory.mktemp("legal-clock")
    make_keys(state / "dlms-keys.toml").save()
    meter = SimMeter(state, sim={"start_utc": START.isoformat(), "current_a": 0.2}, display={"kind": "dummy"},
                     revenue={"max_cycle_gap_s": 2000.0})
    meter.run(3600, 900)
    links = ServedLinks(meter)
    yield meter, links
    links.stop()
    meter.close()


@pytest.fixture(autouse=True)
def _quiet_dlms_cosem() -> Iterator[None]:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def _cosem(links: ServedLinks, sap: int) -> CosemClient:
    transport = TcpTransport(client_logical_address=sap, server_logical_address=1,
                             io=BlockingTcpIO(host="127.0.0.1", port=links.port))
    if sap == PUBLIC:
        return CosemClient(transport=transport, authentication=NoSecurityAuthentication())
    return CosemClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=32),
                       encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                       client_initial_invocation_counter=links.next_client_ic())


def _pydlms(links: ServedLinks, sap: int) -> Any:
    from pydlms import DlmsClient, Mechanism, SecurityContext

    if sap == PUBLIC:
        return DlmsClient.tcp("127.0.0.1", links.port, client_sap=sap)
    security = SecurityContext(encryption_key=TEST_GUEK, authentication_key=TEST_GAK,
                               client_system_title=CLIENT_TITLE, invocation_counter=links.next_client_ic())
    return DlmsClient.tcp("127.0.0.1", links.port, client_sap=sap, mechanism=Mechanism.HLS_GMAC, security=security)


def _read(links: ServedLinks, client: str, sap: int = PUBLIC) -> tuple[dt.datetime, bool]:
    """Attribute 2 as the client decodes it: (aware local date-time, daylight-saving bit)."""
    if client == "gurux":
        with GuruxAssociation(links, "wrapper", sap) as gs:
            clock = GXDLMSClock()
            gs.read(clock, 2)
            return clock.time.value, bool(clock.time.status & ClockStatus.DAYLIGHT_SAVE_ACTIVE)
    if client == "dlms-cosem":
        with _cosem(links, sap).session() as c:
            value, status = cosem_time.datetime_from_bytes(utils.parse_as_dlms_data(c.get(CLOCK)))
            assert status is not None
            return value, status.daylight_saving_active
    with _pydlms(links, sap) as m:
        read = m.get_clock()
        assert read.clock_status is not None
        return read.to_datetime(), bool(int(read.clock_status) & 0x80)


def _assert_legal(links: ServedLinks, client: str, instant: dt.datetime, wall: dt.datetime, deviation_min: int,
                  dst: bool) -> None:
    value, dst_bit = _read(links, client)
    assert value.replace(tzinfo=None) == wall  # the local wall time
    assert value.utcoffset() == dt.timedelta(minutes=-deviation_min)  # deviation, sign as the client reads it
    assert dst_bit is dst
    assert value.astimezone(U) == instant  # the same instant for every client


CLIENTS = ("gurux", "dlms-cosem", "pydlms")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("instant,wall,deviation_min,dst", [
    pytest.param(utc(2026, 1, 15, 12, 0, 5), dt.datetime(2026, 1, 15, 13, 0, 5), -60, False, id="winter"),
    pytest.param(utc(2026, 7, 1, 22, 30, 7), dt.datetime(2026, 7, 2, 0, 30, 7), -120, True, id="summer"),
    pytest.param(utc(2026, 10, 25, 0, 30), dt.datetime(2026, 10, 25, 2, 30), -120, True, id="fall-back-1st"),
    pytest.param(utc(2026, 10, 25, 1, 30), dt.datetime(2026, 10, 25, 2, 30), -60, False, id="fall-back-2nd"),
])
def test_time_is_read_as_local_time_with_deviation_and_dst_bit(served, client: str, instant: dt.datetime,
                                                               wall: dt.datetime, deviation_min: int,
                                                               dst: bool) -> None:
    meter, links = served
    meter.clock.set_utc(instant)  # no cycle runs while a client talks: the instant stays put
    _assert_legal(links, client, instant, wall, deviation_min, dst)


def _gurux_set(links: ServedLinks, value: dt.datetime, deviation: bool, status: int = 0) -> None:
    when = GXDateTime(value)
    if not deviation:
        when.skip |= DateTimeSkips.DEVITATION  # 0x8000: local time of the meter
    when.status = status
    with GuruxAssociation(links, "wrapper", MANAGEMENT) as gs:
        clock = GXDLMSClock()
        clock.time = when
        gs.write(clock, 2)


def _cosem_set(links: ServedLinks, value: dt.datetime, status: cosem_time.ClockStatus | None = None) -> None:
    with _cosem(links, MANAGEMENT).session() as c:
        response = c.set(CLOCK, b"\x09\x0c" + cosem_time.datetime_to_bytes(value, status))
    assert response.result == enumerations.DataAccessResult.SUCCESS


def _pydlms_set(links: ServedLinks, value: dt.datetime) -> None:
    with _pydlms(links, MANAGEMENT) as m:
        m.set_clock(value)  # naive: deviation 0x8000 and status 0xFF; aware: its offset


CEST = dt.timezone(dt.timedelta(hours=2))
NEW_YORK_WINTER = dt.timezone(dt.timedelta(hours=-5))  # deviation +300


@pytest.mark.parametrize("client,send,instant,wall,deviation_min,dst", [
    # explicit deviation: the instant, whatever the client's zone
    ("gurux", lambda links: _gurux_set(links, utc(2026, 7, 1, 12).astimezone(CEST), True),
     utc(2026, 7, 1, 12), dt.datetime(2026, 7, 1, 14), -120, True),
    ("dlms-cosem", lambda links: _cosem_set(links, utc(2026, 2, 1, 12).astimezone(NEW_YORK_WINTER)),
     utc(2026, 2, 1, 12), dt.datetime(2026, 2, 1, 13), -60, False),
    ("pydlms", lambda links: _pydlms_set(links, utc(2026, 10, 25, 1, 30)),
     utc(2026, 10, 25, 1, 30), dt.datetime(2026, 10, 25, 2, 30), -60, False),
    # no deviation: local time under the meter's rules
    ("pydlms", lambda links: _pydlms_set(links, dt.datetime(2026, 7, 1, 14)),
     utc(2026, 7, 1, 12), dt.datetime(2026, 7, 1, 14), -120, True),
    ("dlms-cosem", lambda links: _cosem_set(links, dt.datetime(2026, 1, 20, 8, 15)),
     utc(2026, 1, 20, 7, 15), dt.datetime(2026, 1, 20, 8, 15), -60, False),
    # the repeated hour: status 0xFF -> first pass; DST bit set -> first pass; clear -> second pass
    ("pydlms", lambda links: _pydlms_set(links, dt.datetime(2026, 10, 25, 2, 30)),
     utc(2026, 10, 25, 0, 30), dt.datetime(2026, 10, 25, 2, 30), -120, True),
    ("gurux", lambda links: _gurux_set(links, dt.datetime(2026, 10, 25, 2, 40, tzinfo=U), False,
                                       ClockStatus.DAYLIGHT_SAVE_ACTIVE),
     utc(2026, 10, 25, 0, 40), dt.datetime(2026, 10, 25, 2, 40), -120, True),
    ("dlms-cosem", lambda links: _cosem_set(links, dt.datetime(2026, 10, 25, 2, 50), cosem_time.ClockStatus()),
     utc(2026, 10, 25, 1, 50), dt.datetime(2026, 10, 25, 2, 50), -60, False),
    ("dlms-cosem", lambda links: _cosem_set(links, dt.datetime(2026, 10, 25, 2, 50),
                                            cosem_time.ClockStatus(daylight_saving_active=True)),
     utc(2026, 10, 25, 0, 50), dt.datetime(2026, 10, 25, 2, 50), -120, True),
    # the spring gap: 02:30 does not exist; read with the offset before the gap (CET) it is 03:30 CEST
    ("pydlms", lambda links: _pydlms_set(links, dt.datetime(2026, 3, 29, 2, 30)),
     utc(2026, 3, 29, 1, 30), dt.datetime(2026, 3, 29, 3, 30), -120, True),
], ids=["gurux-cest", "cosem-utc-5", "pydlms-utc", "pydlms-local-summer", "cosem-local-winter",
        "pydlms-fall-back-unspecified", "gurux-fall-back-dst", "cosem-fall-back-normal", "cosem-fall-back-dst",
        "pydlms-spring-gap"])
def test_time_is_set_with_or_without_deviation(served, client: str, send: Any, instant: dt.datetime,
                                               wall: dt.datetime, deviation_min: int, dst: bool) -> None:
    meter, links = served
    meter.clock.set_utc(START)
    send(links)
    assert meter.clock.utc() == instant
    _assert_legal(links, client, instant, wall, deviation_min, dst)  # read back by the client that set it


# --------------------------------------------------------------- load profile by a local-time range

SUMMER_START = utc(2026, 7, 1, 6)
READER = 17


@pytest.fixture(scope="module")
def summer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimMeter, ServedLinks]]:
    state: Path = tmp_path_factory.mktemp("legal-profile")
    make_keys(state / "dlms-keys.toml").save()
    meter = SimMeter(state, sim={"start_utc": SUMMER_START.isoformat(), "current_a": 0.2},
                     display={"kind": "dummy"}, revenue={"max_cycle_gap_s": 2000.0})
    meter.run(6 * 3600, 900)  # load profile rows every 15 min, 06:15..12:00 UTC (08:15..14:00 CEST)
    links = ServedLinks(meter)
    yield meter, links
    links.stop()
    meter.close()


def _gurux_rows(links: ServedLinks, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    from gurux_dlms import GXReplyData
    from gurux_dlms.objects import GXDLMSProfileGeneric

    bounds = [GXDateTime(start), GXDateTime(end)]
    for bound in bounds:
        bound.skip |= DateTimeSkips.DEVITATION  # deviation 0x8000: the meter's local time
    with GuruxAssociation(links, "wrapper", READER) as gs:
        pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
        gs.read(pg, 3)
        reply = GXReplyData()
        gs._block(gs.client.readRowsByRange(pg, *bounds), reply)
        rows = gs.client.updateValue(pg, 2, reply.value)
    return [r[0].value.astimezone(U) for r in rows]


def _pydlms_rows(links: ServedLinks, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    from pydlms import CosemDateTime
    from pydlms.apdu import xdlms

    with _pydlms(links, MANAGEMENT) as m:  # naive bounds: deviation 0x8000, status 0xFF
        bounds = (xdlms.date_time_value(start.replace(tzinfo=None)), xdlms.date_time_value(end.replace(tzinfo=None)))
        read = m.read_profile("1.0.99.1.0.255", xdlms.range_descriptor(*bounds))
    return [CosemDateTime.from_bytes(r[0]).to_datetime().astimezone(U) for r in read.rows]


def _cosem_rows(links: ServedLinks, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    from dlms_cosem.cosem.selective_access import CaptureObject, RangeDescriptor

    profile = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)
    descriptor = RangeDescriptor(CaptureObject(CLOCK), start.replace(tzinfo=None), end.replace(tzinfo=None))
    with _cosem(links, MANAGEMENT).session() as c:  # naive bounds: deviation 0x8000, status 0x00
        rows = utils.parse_as_dlms_data(c.get(profile, access_descriptor=descriptor))
    return [cosem_time.datetime_from_bytes(r[0])[0].astimezone(U) for r in rows]


@pytest.mark.parametrize("read_rows", [_gurux_rows, _pydlms_rows, _cosem_rows], ids=CLIENTS)
def test_the_load_profile_is_read_by_a_range_in_local_time_without_deviation(summer, read_rows: Any) -> None:
    meter, links = summer
    wall_start, wall_end = utc(2026, 7, 1, 10), utc(2026, 7, 1, 11)  # 10:00..11:00 as wall time (CEST)
    svc = meter.service(RevenueService)
    local = [r.utc for r in svc.load_profile.rows_between(utc(2026, 7, 1, 8), utc(2026, 7, 1, 9))]
    as_utc = [r.utc for r in svc.load_profile.rows_between(wall_start, wall_end)]
    assert len(local) == 5 and len(as_utc) == 5 and local != as_utc  # the two readings differ by 2 h
    assert read_rows(links, wall_start, wall_end) == local

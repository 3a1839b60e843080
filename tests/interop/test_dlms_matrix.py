"""Interop matrix on the whole simulated meter (every feature's objects, power quality included),
with clients this project did not write: gurux's client, dlms-cosem and pydlms, over the TCP wrapper
and over HDLC on a pty, for each association: public (SAP 16, no security), reader (SAP 17, LLS)
and management (SAP 1, HLS-GMAC). pydlms also decodes the bit-strings dlms-cosem cannot, and
sends what dlms-cosem cannot encode (a range with selected columns, an entry descriptor).

Each client walks the object list the association itself serves (nothing is hard-coded: objects
added to the meter are read too), reads every attribute advertised as readable and decodes it with
its own decoder; attributes advertised without read access must be refused with the standard
read-write-denied result. Then the clock is set (allowed only to the management association) and
the load profile is read by range and compared with the stored rows."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem import time as cosem_time
from dlms_cosem.client import DataResultError
from dlms_cosem.client import DlmsClient as CosemClient
from dlms_cosem.cosem.selective_access import CaptureObject, RangeDescriptor
from dlms_cosem.exceptions import DlmsClientException
from dlms_cosem.io import BlockingTcpIO, TcpTransport
from dlms_cosem.security import (
    HighLevelSecurityGmacAuthentication,
    LowLevelSecurityAuthentication,
    NoSecurityAuthentication,
)
from gurux_dlms import GXDateTime
from gurux_dlms.enums import AccessMode, ObjectType
from gurux_dlms.objects import GXDLMSAssociationLogicalName, GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.core.profile import LOAD_PROFILE_OBIS
from meterd.services.revenue import RevenueService
from tests.conftest import soak_enabled
from tests.dlms_fakes import CLIENT_TITLE, TEST_GAK, TEST_GUEK, TEST_PASSWORD, make_keys
from tests.dlms_gurux_client import DlmsClientError
from tests.dlms_harness import PtyIO, length_framed_hdlc_transport
from tests.simmeter import SimMeter
from tests.simmeter_dlms import GuruxAssociation, ServedLinks

pytestmark = pytest.mark.interop

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
LINKS = ("wrapper", "hdlc-pty")
SECURITY = {16: "none", 17: "lls", 1: "hls-gmac"}
MATRIX = [pytest.param(link, sap, id=f"{link}-{SECURITY[sap]}") for link in LINKS for sap in SECURITY]
# gurux's client ciphers in pure Python (~5 ms a request): its HLS-GMAC walks of ~1900 attributes
# are soak tests; their short form reads the first and last object of each group (below)
GURUX_WALK = [pytest.param(*p.values, id=p.id, marks=[pytest.mark.slow] if p.values[1] == 1 else [])
              for p in MATRIX]
READ_WRITE_DENIED = 3
OBJECT_UNDEFINED = 4
SCALER_UNIT = {3: 3, 4: 3, 5: 4}  # class id -> attribute holding scaler_unit
CLOCK_LN = "0.0.1.0.0.255"
CLOCK = cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
LP = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)
OBJECT_LIST = cosem.CosemAttribute(enumerations.CosemInterface.ASSOCIATION_LN, cosem.Obis(0, 0, 40, 0, 0), 2)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimMeter, ServedLinks]]:
    state: Path = tmp_path_factory.mktemp("matrix")
    make_keys(state / "dlms-keys.toml").save()  # throwaway test keys the clients know
    # power quality from the chip's registers: the same COSEM objects as the waveform chain, cheaply
    meter = SimMeter(state, sim={"start_utc": START.isoformat(), "current_a": 0.2}, display={"kind": "dummy"},
                     revenue={"max_cycle_gap_s": 2000.0},
                     power_quality={"enabled": True, "source": "chip", "chip_period_s": 5.0})
    meter.run(86400, 900)
    links = ServedLinks(meter)
    yield meter, links
    links.stop()
    meter.close()


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The server's own log: a request that raised inside the server is logged there (DEBUG: the
    public client's associations are logged at that level)."""
    caplog.set_level(logging.DEBUG, logger="meterd.cosem")
    return caplog


def assert_no_server_failure(log: pytest.LogCaptureFixture) -> None:
    """No warning, traceback, failed request or bad APDU in the server's log (the association's own
    INFO records prove the log of the server's thread was captured)."""
    records = [r for r in log.records if r.name.startswith("meterd.cosem")]
    assert any("association" in r.getMessage() for r in records)
    failures = [r.getMessage() for r in records if r.levelno >= logging.WARNING or r.exc_info
                or "failed" in r.getMessage() or "bad APDU" in r.getMessage()]
    assert failures == []


# ---------------------------------------------------------------- gurux


def _attribute_order(obj: Any) -> list[int]:
    """Every attribute; a profile's capture objects (3) before its buffer (2), which gurux needs."""
    order = list(range(1, obj.getAttributeCount() + 1))
    if obj.objectType == ObjectType.PROFILE_GENERIC:
        order.remove(3)
        order.insert(1, 3)
    return order


def _walked(objects: list[Any], sap: int) -> list[Any]:
    """The objects a gurux walk reads: all, except in the short form of the HLS-GMAC walks, which
    reads the first and the last object of each class and OBIS group differing only in E (e.g.
    harmonic orders 1-0:32.7.E.255, rates 1-0:1.8.E.255); dlms-cosem and the other cells read all."""
    if sap != 1 or soak_enabled():
        return objects
    groups: dict[tuple[int, str], list[Any]] = {}
    for obj in objects:
        a, b, c, d, _e, f = obj.logicalName.split(".")
        groups.setdefault((int(obj.objectType), f"{a}.{b}.{c}.{d}.{f}"), []).append(obj)
    ends = {id(group[0]) for group in groups.values()} | {id(group[-1]) for group in groups.values()}
    return [obj for obj in objects if id(obj) in ends]


def _readable(access: Any) -> bool:
    return int(access) & int(AccessMode.READ) != 0


def _check_gurux_value(obj: Any, attribute: int, value: Any) -> None:
    """Values gurux decoded have the types their class defines."""
    where = f"{obj.logicalName} class {int(obj.objectType)} attribute {attribute}"
    if attribute == 1:
        assert obj.logicalName.count(".") == 5, where
    elif obj.objectType in (ObjectType.REGISTER, ObjectType.EXTENDED_REGISTER) and attribute == 2:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif attribute == SCALER_UNIT.get(int(obj.objectType)):
        assert obj.scaler != 0 and int(obj.unit) > 0, where  # gurux keeps 10**scaler; unit enum 1..255
    elif obj.objectType == ObjectType.CLOCK and attribute == 2:
        assert isinstance(obj.time, GXDateTime) and obj.time.value.year >= 2026, where
    elif obj.objectType == ObjectType.PROFILE_GENERIC and attribute == 2:
        assert all(len(row) == len(obj.captureObjects) for row in obj.buffer), where


@pytest.mark.parametrize("link,sap", GURUX_WALK)
def test_gurux_reads_every_readable_attribute(served, server_log, link: str, sap: int) -> None:
    meter, links = served
    read = refused = scaled = 0
    failures: list[str] = []
    with GuruxAssociation(links, link, sap) as gs:
        objects = list(gs.object_list())
        names = {o.logicalName for o in objects}
        assert CLOCK_LN in names and "0.0.40.0.0.255" in names
        # gurux drops objects of classes it does not know: none may be missing from the walk
        assert len(objects) == len(gs.read_raw(GXDLMSAssociationLogicalName("0.0.40.0.0.255"), 2))
        if sap == 16:
            assert len(objects) < 10 and "1.0.1.8.0.255" not in names
        else:  # the whole meter: energy, instantaneous, profiles, power quality, payment
            assert {"1.0.1.8.0.255", "1.0.32.7.0.255", LOAD_PROFILE_OBIS, "0.0.19.0.0.255"} <= names
            assert len(objects) > 190
        walked = _walked(objects, sap)
        for obj in walked:
            for attribute in _attribute_order(obj):
                if _readable(obj.getAccess(attribute)):
                    try:
                        value = gs.read(obj, attribute)
                        _check_gurux_value(obj, attribute, value)
                        read += 1
                        scaled += attribute == SCALER_UNIT.get(int(obj.objectType))
                    except (DlmsClientError, AssertionError, ValueError, TypeError) as exc:
                        failures.append(f"{obj.logicalName}/{attribute}: {exc!r}")
                else:
                    with pytest.raises(DlmsClientError) as denied:
                        gs.read(obj, attribute)
                    assert denied.value.code == READ_WRITE_DENIED, f"{obj.logicalName}/{attribute}"
                    refused += 1
        # the association answers normally after every refusal
        assert gs.read(GXDLMSClock(), 2) is not None
    listed = {(int(o.objectType), o.logicalName) for o in objects}
    columns = [(p.logicalName, c) for p in walked if p.objectType == ObjectType.PROFILE_GENERIC
               for c, _ in p.captureObjects]
    assert sap == 16 or len(columns) > 20
    failures += [f"{ln}: capture object {c.logicalName} is not in the object list" for ln, c in columns
                 if (int(c.objectType), c.logicalName) not in listed]  # columns are objects of the view
    assert failures == []
    assert refused >= 1  # at least the association's secret (attribute 7)
    assert read > (20 if sap == 16 else 500)
    assert scaled == sum(int(o.objectType) in SCALER_UNIT for o in walked)  # every register has one
    assert_no_server_failure(server_log)


@pytest.mark.parametrize("link", LINKS)
def test_gurux_public_client_is_refused_what_it_does_not_see(served, server_log, link: str) -> None:
    meter, links = served
    with GuruxAssociation(links, "wrapper", 17) as gs:
        reader_view = {o.logicalName: o for o in gs.object_list()}
    with GuruxAssociation(links, link, 16) as gs:
        public_view = {o.logicalName for o in gs.object_list()}
        hidden = [o for ln, o in reader_view.items() if ln not in public_view]
        assert len(hidden) > 150
        codes = set()
        for obj in hidden:
            with pytest.raises(DlmsClientError) as denied:
                gs.read_raw(obj, 2)
            codes.add(denied.value.code)
        assert codes <= {READ_WRITE_DENIED, OBJECT_UNDEFINED}
        register = GXDLMSRegister("1.0.1.8.0.255")
        with pytest.raises(DlmsClientError):
            gs.read(register, 2)
        assert gs.read(GXDLMSClock(), 2) is not None
    assert_no_server_failure(server_log)


@pytest.mark.parametrize("link,sap", MATRIX)
def test_gurux_sets_the_clock_only_in_the_management_association(served, link: str, sap: int) -> None:
    meter, links = served
    before = meter.clock.utc()
    target = before.replace(microsecond=0) + dt.timedelta(seconds=90)
    with GuruxAssociation(links, link, sap) as gs:
        clock = GXDLMSClock()
        gs.read(clock, 2)
        clock.time = GXDateTime(target)
        if sap != 1:
            with pytest.raises(DlmsClientError) as denied:
                gs.write(clock, 2)
            assert denied.value.code == READ_WRITE_DENIED
            assert meter.clock.utc() == before
            return
        gs.write(clock, 2)
        assert meter.clock.utc() == target
        gs.read(clock, 2)
        assert clock.time.value.astimezone(dt.UTC) == target


def _stored_rows(meter: SimMeter, start: dt.datetime, end: dt.datetime) -> list[Any]:
    return list(meter.service(RevenueService).load_profile.rows_between(start, end))


@pytest.mark.parametrize("link,sap", MATRIX)
def test_gurux_reads_the_load_profile_by_range(served, link: str, sap: int) -> None:
    meter, links = served
    start, end = START + dt.timedelta(hours=6), START + dt.timedelta(hours=12)
    with GuruxAssociation(links, link, sap) as gs:
        pg = GXDLMSProfileGeneric(LOAD_PROFILE_OBIS)
        if sap == 16:
            with pytest.raises(DlmsClientError) as denied:
                gs.read(pg, 3)
            assert denied.value.code in (READ_WRITE_DENIED, OBJECT_UNDEFINED)
            return
        gs.read(pg, 3)
        rows = gs.rows_by_range(pg, start, end)
    stored = _stored_rows(meter, start, end)
    assert len(stored) == 25  # one row every 15 min, both ends included
    assert [r[0].value.astimezone(dt.UTC) for r in rows] == [s.utc for s in stored]
    assert all(len(r) == len(pg.captureObjects) for r in rows)


# ---------------------------------------------------------------- dlms-cosem


def _cosem_client(links: ServedLinks, link: str, sap: int) -> CosemClient:
    if link == "wrapper":
        transport = TcpTransport(client_logical_address=sap, server_logical_address=1,
                                 io=BlockingTcpIO(host="127.0.0.1", port=links.port))
    else:  # dlms-cosem's own reader cuts frames at the first 0x7E: read them by length
        transport = length_framed_hdlc_transport(PtyIO(links.pty_path), sap)
    if sap == 16:
        return CosemClient(transport=transport, authentication=NoSecurityAuthentication())
    if sap == 17:
        return CosemClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    return CosemClient(transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=32),
                       encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
                       client_initial_invocation_counter=links.next_client_ic())


@pytest.fixture(autouse=True)
def _quiet_dlms_cosem() -> Iterator[None]:
    """dlms-cosem logs every frame at debug level through structlog: keep warnings only."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def _decode(raw: bytes) -> Any:
    """dlms-cosem's decoder; it has none for bit-string, which pydlms's decoder then reads."""
    try:
        return utils.parse_as_dlms_data(raw)
    except NotImplementedError as exc:
        assert "BitString" in str(exc)
        from pydlms import decode_data

        value, end = decode_data(raw)
        assert end == len(raw) and "BIT_STRING" in repr(value)
        return value


def _interface(class_id: int) -> Any:
    """dlms-cosem's enum member, or the bare class id for a class it has no name for."""
    known = {int(i) for i in enumerations.CosemInterface}
    return enumerations.CosemInterface(class_id) if class_id in known else class_id


def _utc(raw: bytes) -> dt.datetime:
    """A COSEM date-time decoded by dlms-cosem, as aware UTC. The deviation must be specified;
    dlms-cosem returns a naive datetime for deviation 0 (it tests the offset for truth)."""
    assert len(raw) == 12 and raw[9:11] != b"\x80\x00"
    value, _status = cosem_time.datetime_from_bytes(raw)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _check_cosem_value(class_id: int, attribute: int, value: Any) -> None:
    where = f"class {class_id} attribute {attribute}"
    if attribute == 1:
        assert isinstance(value, bytes) and len(value) == 6, where
    elif class_id in (3, 4) and attribute == 2:
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif attribute == SCALER_UNIT.get(class_id):
        scaler, unit = value
        assert -12 <= scaler <= 12 and 1 <= unit <= 255, where
    elif class_id == 8 and attribute == 2:
        assert _utc(value).year >= 2026, where
    elif class_id == 7 and attribute in (2, 3):
        assert isinstance(value, list), where


@pytest.mark.parametrize("link,sap", MATRIX)
def test_dlms_cosem_reads_every_readable_attribute(served, server_log, link: str, sap: int) -> None:
    meter, links = served
    failures: list[str] = []
    read = refused = scaled = 0
    with _cosem_client(links, link, sap).session() as c:
        object_list = utils.parse_as_dlms_data(c.get(OBJECT_LIST))  # decoded by dlms-cosem itself
        lns = {bytes(ln) for _cls, _ver, ln, _rights in object_list}
        assert bytes([0, 0, 1, 0, 0, 255]) in lns
        assert (bytes([1, 0, 1, 8, 0, 255]) in lns) is (sap != 16)
        for class_id, _version, ln, (attribute_rights, _method_rights) in object_list:
            for attribute, mode, _selectors in attribute_rights:
                target = cosem.CosemAttribute(_interface(class_id), cosem.Obis.from_bytes(ln), attribute)
                if mode not in (1, 3):  # neither read-only nor read-and-write: refused, the standard way
                    with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
                        c.get(target)
                    refused += 1
                    continue
                try:
                    _check_cosem_value(class_id, attribute, _decode(c.get(target)))
                    read += 1
                    scaled += attribute == SCALER_UNIT.get(class_id)
                except (DataResultError, DlmsClientException, AssertionError, ValueError, TypeError) as exc:
                    failures.append(f"{cosem.Obis.from_bytes(ln).to_string()}/{attribute}: {exc!r}")
    assert failures == []
    assert read > (20 if sap == 16 else 1000)
    assert refused >= 1  # at least the association's secret (attribute 7)
    assert scaled == sum(class_id in SCALER_UNIT for class_id, *_ in object_list)
    assert_no_server_failure(server_log)


@pytest.mark.parametrize("link,sap", MATRIX)
def test_dlms_cosem_sets_the_clock_only_in_the_management_association(served, link: str, sap: int) -> None:
    meter, links = served
    before = meter.clock.utc()
    target = before.replace(microsecond=0) + dt.timedelta(seconds=90)
    cet = dt.timezone(dt.timedelta(hours=1))  # sent as local time with deviation -60
    with _cosem_client(links, link, sap).session() as c:
        response = c.set(CLOCK, b"\x09\x0c" + cosem_time.datetime_to_bytes(target.astimezone(cet)))
        if sap != 1:
            assert response.result == enumerations.DataAccessResult.READ_WRITE_DENIED
            assert meter.clock.utc() == before
            return
        assert response.result == enumerations.DataAccessResult.SUCCESS
        read_back = _utc(utils.parse_as_dlms_data(c.get(CLOCK)))
    assert meter.clock.utc() == target
    assert read_back == target


@pytest.mark.parametrize("link,sap", MATRIX)
def test_dlms_cosem_reads_the_load_profile_by_range(served, link: str, sap: int) -> None:
    meter, links = served
    start, end = START + dt.timedelta(hours=12), START + dt.timedelta(hours=15)
    clock_column = CaptureObject(CLOCK)
    cet = dt.timezone(dt.timedelta(hours=1))  # the bounds go out as local time with deviation -60
    with _cosem_client(links, link, sap).session() as c:
        descriptor = RangeDescriptor(clock_column, start.astimezone(cet), end.astimezone(cet))
        if sap == 16:
            with pytest.raises(DataResultError, match="READ_WRITE_DENIED|OBJECT_UNDEFINED"):
                c.get(LP, access_descriptor=descriptor)
            return
        rows = utils.parse_as_dlms_data(c.get(LP, access_descriptor=descriptor))
    stored = _stored_rows(meter, start, end)
    assert len(stored) == 13
    assert [_utc(r[0]) for r in rows] == [s.utc for s in stored]
    assert [list(r[1:]) for r in rows] == [list(s.values) for s in stored]


# ---------------------------------------------------------------- pydlms (a third, strict decoder)

# pydlms's serial transport polls the line every 5 ms: over the pty it walks only the public view;
# the other pty cells are dlms-cosem's and gurux's.
PYDLMS_MATRIX = [p for p in MATRIX if p.values[0] == "wrapper" or p.values[1] == 16]


def _pydlms_client(links: ServedLinks, link: str, sap: int) -> Any:
    from pydlms import DlmsClient, Mechanism, SecurityContext

    settings: dict[str, Any] = {}
    if sap == 17:
        settings = {"mechanism": Mechanism.LLS, "password": TEST_PASSWORD}
    elif sap == 1:
        settings = {"mechanism": Mechanism.HLS_GMAC, "security": SecurityContext(
            encryption_key=TEST_GUEK, authentication_key=TEST_GAK, client_system_title=CLIENT_TITLE,
            invocation_counter=links.next_client_ic())}
    if link == "wrapper":
        return DlmsClient.tcp("127.0.0.1", links.port, client_sap=sap, **settings)
    return DlmsClient.serial(links.pty_path, 9600, client_sap=sap, **settings)


@pytest.mark.parametrize("link,sap", PYDLMS_MATRIX)
def test_pydlms_reads_every_value_attribute(served, server_log, link: str, sap: int) -> None:
    """Attribute 2 of every object (the value, buffer, list or setting of its class) and the
    scaler_unit of every register, where the association view grants read access."""
    from pydlms.cosem.types import DataType

    meter, links = served
    failures: list[str] = []
    scaled = registers = 0
    with _pydlms_client(links, link, sap) as m:
        view = m.get_association_view()
        assert len(view) < 10 if sap == 16 else len(view) > 190
        for entry in view:
            assert entry.rights is not None, entry
            attributes = [2] + ([SCALER_UNIT[entry.class_id]] if entry.class_id in SCALER_UNIT else [])
            registers += entry.class_id in SCALER_UNIT
            for attribute in attributes:
                if not entry.rights.can_read(attribute):
                    continue
                try:
                    value = m.get(entry.logical_name, entry.class_id, attribute)
                    if attribute == SCALER_UNIT.get(entry.class_id):
                        assert value.tag == DataType.STRUCTURE and len(value.value) == 2
                        scaler, unit = (item.value for item in value.value)
                        assert -12 <= scaler <= 12 and 1 <= unit <= 255
                        scaled += 1
                    elif entry.class_id in (3, 4):
                        assert isinstance(value.to_python(), int)
                except Exception as exc:  # noqa: BLE001  every failure is listed, then asserted
                    failures.append(f"{entry.logical_name}/{attribute}: {exc!r}")
    assert failures == []
    assert scaled == registers
    assert_no_server_failure(server_log)


AUTHENTICATED = [p for p in MATRIX if p.values[1] != 16]


@pytest.mark.parametrize("link,sap", AUTHENTICATED)
def test_pydlms_reads_the_load_profile_by_range_with_columns_and_by_entry(served, link: str, sap: int) -> None:
    """What dlms-cosem cannot encode: a range with selected columns and an entry descriptor."""
    from pydlms import CosemDateTime, ObisCode
    from pydlms.apdu import xdlms

    meter, links = served
    start, end = START + dt.timedelta(hours=2), START + dt.timedelta(hours=3)
    stored = _stored_rows(meter, start, end)
    entries = list(meter.service(RevenueService).load_profile.rows_by_entry(3, 5))
    assert len(stored) == 5 and len(entries) == 3

    def utc(raw: bytes) -> dt.datetime:
        return CosemDateTime.from_bytes(raw).to_datetime().astimezone(dt.UTC)

    with _pydlms_client(links, link, sap) as m:
        bounds = (xdlms.date_time_value(start), xdlms.date_time_value(end))
        whole = m.read_profile(LOAD_PROFILE_OBIS, xdlms.range_descriptor(*bounds))
        assert [utc(r[0]) for r in whole.rows] == [s.utc for s in stored]
        assert [r[1:] for r in whole.rows] == [list(s.values) for s in stored]
        last = whole.columns[-1]  # the clock and the last column only
        clock_column = (8, ObisCode(0, 0, 1, 0, 0, 255), 2, 0)
        narrow = m.read_profile(LOAD_PROFILE_OBIS, xdlms.range_descriptor(*bounds, selected_values=[clock_column, last]))
        assert [(utc(t), v) for t, v in narrow.rows] == [(s.utc, s.values[-1]) for s in stored]
        by_entry = m.read_profile(LOAD_PROFILE_OBIS, xdlms.entry_descriptor(3, 5, 2, 3))
        assert by_entry.columns == whole.columns[1:3]
        assert by_entry.rows == [list(e.values[:2]) for e in entries]


@pytest.mark.parametrize("link,sap", MATRIX)
def test_pydlms_sets_the_clock_only_in_the_management_association(served, link: str, sap: int) -> None:
    from pydlms import ServiceError

    meter, links = served
    before = meter.clock.utc()
    target = before.replace(microsecond=0) + dt.timedelta(seconds=90)
    with _pydlms_client(links, link, sap) as m:
        if sap != 1:
            with pytest.raises(ServiceError) as denied:
                m.set_clock(target)
            assert int(denied.value.result) == READ_WRITE_DENIED
            assert meter.clock.utc() == before
            return
        m.set_clock(target)
        assert meter.clock.utc() == target
        assert m.get_clock().to_datetime().astimezone(dt.UTC) == target

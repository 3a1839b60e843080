"""The running meter answers DLMS clients we did not write, with its live registers and clock."""

from __future__ import annotations

import datetime as dt

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.client import DlmsClient as CosemClient
from dlms_cosem.security import LowLevelSecurityAuthentication
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSRegister

from tests.dlms_fakes import TEST_PASSWORD
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import PtyIO, SocketIO, length_framed_hdlc_transport
from tests.meterd_process import MeterdProcess

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    m = MeterdProcess(tmp_path_factory.mktemp("meterd"))
    yield m
    assert m.stop() == 0


def gurux(meter: MeterdProcess, sap: int, ic: int = 1) -> GuruxSession:
    io = SocketIO(meter.dlms_port)
    gs = GuruxSession(make_client(sap, invocation_counter=ic), io.send, io.receive)
    gs.connect()
    return gs


def test_energy_over_the_wrapper_matches_the_local_api(meter):
    gs = gurux(meter, 17)
    try:
        reg = GXDLMSRegister("1.0.1.8.0.255")
        gs.read(reg, 3)
        before = meter.status()["energy"]["total"]["active_import_wh"]
        gs.read(reg, 2)
        after = meter.status()["energy"]["total"]["active_import_wh"]
        assert reg.scaler == pytest.approx(0.001) and reg.unit == 30  # Wh, integer mWh on the wire
        assert before - 1e-9 <= reg.value <= after + 1e-9  # gurux applies the scaler (float): Wh
        ldn = GXDLMSData("0.0.42.0.0.255")
        gs.read(ldn, 2)
        assert bytes(ldn.value).decode() == meter.view["logical_device_name"]
    finally:
        gs.close()


def test_management_client_sets_the_meter_clock(meter):
    gs = gurux(meter, 1, ic=1)
    try:
        clock = GXDLMSClock()
        gs.read(clock, 2)
        gs.method(clock, 6, 900, 16)  # shift_time +900 s, the largest shift the standard allows
        with pytest.raises(Exception):  # noqa: B017  beyond ±900 s is refused
            gs.method(clock, 6, 3600, 16)
    finally:
        gs.close()
    utc = dt.datetime.fromisoformat(meter.status()["utc"])
    start = dt.datetime.fromisoformat(meter.view["utc"])
    assert dt.timedelta(seconds=900) <= utc - start < dt.timedelta(seconds=960)


def test_dlms_cosem_reads_energy_over_the_hdlc_pty(meter):
    io = PtyIO(meter.pty("dlms_hdlc"))
    client = CosemClient(transport=length_framed_hdlc_transport(io, 17),
                         authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    attr = cosem.CosemAttribute(enumerations.CosemInterface.REGISTER, cosem.Obis(1, 0, 1, 8, 0), 2)
    with client.session() as c:
        value = utils.parse_as_dlms_data(c.get(attr))
    assert value > 0


def test_wrong_password_is_refused(meter):
    io = SocketIO(meter.dlms_port)
    gs = GuruxSession(make_client(17, password=b"WRONGPWD"), io.send, io.receive)
    with pytest.raises(Exception):  # noqa: B017  the AARE rejects the association
        gs.connect()


def test_three_associations_at_once_while_metering_keeps_time(tmp_path):
    """Three clients read everything concurrently; the real-time metering loop never falls behind."""
    import threading

    from gurux_dlms.objects import GXDLMSProfileGeneric

    m = MeterdProcess(tmp_path, speed="1", cycle_s="0.5")
    errors: list[BaseException] = []

    def client(sap: int, ic: int) -> None:
        try:
            for _ in range(3):
                gs = gurux(m, sap, ic=ic)
                ic += 100_000  # every protected APDU uses one invocation counter value
                try:
                    for obj in gs.object_list():
                        if obj.logicalName.startswith("0.0.40.0.") or isinstance(obj, GXDLMSProfileGeneric):
                            continue
                        gs.read(obj, 2)
                finally:
                    gs.close()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    try:
        start_cycles = m.status()["loop"]["cycles"]
        threads = [threading.Thread(target=client, args=(sap, ic)) for sap, ic in ((17, 0), (17, 0), (1, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        loop = m.status()["loop"]
        assert loop["late_cycles"] == 0 and loop["missed_cycles"] == 0
        assert loop["cycles"] > start_cycles
    finally:
        assert m.stop() == 0

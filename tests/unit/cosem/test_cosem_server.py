"""COSEM server behaviour on bad input and access rules (meterd.cosem.server), plus APDU fuzzing."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSRegister
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import CosemServer, build_session_factory
from tests.dlms_fakes import UTC, FakeMeter, make_keyring
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory, make_client

GET_LDN = bytes.fromhex("c001c1000100002a0000ff0200")


def _factory(meter=None):
    return build_session_factory(meter or FakeMeter(), MemoryCounterStore(), make_keyring())


def _associated(sap: int = 17, meter=None) -> CosemServer:
    session = _factory(meter)()
    connect_in_memory(session, sap)
    return session.server


def _get(ci: int, obis: bytes, attr: int = 2) -> bytes:
    return bytes((0xC0, 0x01, 0xC1)) + struct.pack(">H", ci) + obis + bytes((attr, 0))


def test_get_unknown_obis_and_unknown_class_are_object_undefined():
    server = _associated()
    assert server.handle_apdu(17, _get(1, bytes((1, 2, 3, 4, 5, 6)))) == bytes.fromhex("c401c10104")
    assert server.handle_apdu(17, _get(9999, bytes(6))) == bytes.fromhex("c401c10104")


def test_get_before_association_and_after_release_is_refused():
    server = CosemServer(FakeMeter(), make_keyring(), MemoryCounterStore())
    assert server.handle_apdu(17, GET_LDN) == b"\xd8\x01\x01"
    server = _associated()
    assert server.handle_apdu(17, GET_LDN).startswith(b"\xc4\x01\xc1\x00")
    assert server.handle_apdu(17, bytes.fromhex("6203800100"))[:1] == b"\x63"
    assert server.handle_apdu(17, GET_LDN) == b"\xd8\x01\x01"


def test_other_client_sap_cannot_use_the_association():
    server = _associated()
    assert server.handle_apdu(16, GET_LDN) == b"\xd8\x01\x01"


def test_truncated_and_unknown_apdus_get_error_answers_and_the_association_survives():
    server = _associated()
    for bad in (b"\xc0", b"\xc0\x01", b"\xc0\x01\xc1\x00", b"\xc1\x01\xc1\x00\x08", b"\xff\x00", b"\xc3\x01"):
        answer = server.handle_apdu(17, bad)
        assert answer and answer[0] in (0xC4, 0xC5, 0xC7, 0xD8)
    assert server.handle_apdu(17, GET_LDN).startswith(b"\xc4\x01\xc1\x00\x09\x10PMM")


def test_oversized_apdu_is_refused():
    server = _associated()
    assert server.handle_apdu(17, GET_LDN + bytes(5000)) == b"\xd8\x01\x04"


def test_get_with_list_is_served():
    server = _associated()
    answer = server.handle_apdu(17, bytes.fromhex("c003c101") + GET_LDN[3:])
    assert answer == bytes.fromhex("c403c10100") + b"\x09\x10PMM0001221000042"


def test_reader_cannot_write_or_act_and_manager_gets_type_errors():
    meter = FakeMeter()
    factory = _factory(meter)
    reader, _ = connect_in_memory(factory(), 17)
    clock = GXDLMSClock()
    clock.time = dt.datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(DlmsClientError, match="3"):
        reader.write(clock, 2)
    with pytest.raises(DlmsClientError):
        reader.method(clock, 6, 10, DataType.INT16)
    manager, _ = connect_in_memory(factory(), 1)
    wrong = GXDLMSData("0.0.1.0.0.255")
    wrong.setDataType(2, DataType.UINT32)
    wrong.value = 5
    wrong.objectType = clock.objectType
    with pytest.raises(DlmsClientError):
        manager.write(wrong, 2)
    register = GXDLMSRegister("1.0.1.8.0.255")
    register.value = 0
    with pytest.raises(DlmsClientError, match="3"):
        manager.write(register, 2)  # registers are never writable
    assert meter.clock_sets == []


def test_clock_methods_shift_and_round():
    meter = FakeMeter()
    manager, _ = connect_in_memory(_factory(meter)(), 1)
    clock = GXDLMSClock()
    meter.clock.set_utc(dt.datetime(2026, 3, 1, 12, 7, 31, tzinfo=UTC))
    manager.method(clock, 6, -31, DataType.INT16)
    assert meter.now_utc() == dt.datetime(2026, 3, 1, 12, 7, 0, tzinfo=UTC)
    manager.method(clock, 1, 0, DataType.INT8)  # adjust to quarter
    assert meter.now_utc() == dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    with pytest.raises(DlmsClientError):
        manager.method(clock, 6, 901, DataType.INT16)


def test_malformed_aarq_and_wrong_password_are_rejected_with_aare():
    server = CosemServer(FakeMeter(), make_keyring(), MemoryCounterStore())
    answer = server.handle_apdu(17, b"\x60\x05\xa1\x03\x06\x01\x00")
    assert answer[0] == 0x61 and b"\xa2\x03\x02\x01\x01" in answer
    aarq = bytes(make_client(17, password=b"nope").aarqRequest()[0])[8:]
    answer = server.handle_apdu(17, aarq)
    assert b"\xa2\x03\x02\x01\x01" in answer and b"\xa3\x05\xa1\x03\x02\x01\x0d" in answer
    assert not server.associated


def test_wrapper_ignores_other_destinations_and_bad_versions():
    session = _factory()()
    aarq = bytes(make_client(16).aarqRequest()[0])
    assert session.receive(b"\x00\x02" + aarq[2:]) == []
    assert session.receive(aarq[:4] + b"\x00\x07" + aarq[6:]) == []  # destination wPort 7
    assert len(session.receive(aarq[:5])) == 0
    assert session.receive(aarq[5:])[0][8] == 0x61


def test_three_sessions_are_independent():
    factory = _factory()
    sessions = [factory() for _ in range(3)]
    for session, sap in zip(sessions, (16, 17, 1), strict=True):
        connect_in_memory(session, sap)
    assert [s.server.association_name for s in sessions] == ["public", "reader", "management"]
    sessions[0].close()
    assert sessions[1].server.associated and sessions[2].server.associated


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(min_size=1, max_size=64),
                 st.builds(lambda tag, body: bytes((tag,)) + body,
                           st.sampled_from([0xC0, 0xC1, 0xC3, 0xC8, 0xDB, 0x60, 0x62]), st.binary(max_size=48))))
def test_fuzz_apdu_path_never_crashes_or_leaks(apdu):
    server = _associated()
    answer = server.handle_apdu(17, apdu)
    assert answer is None or isinstance(answer, bytes)
    if apdu[0] not in (0x60, 0x62):
        assert server.handle_apdu(17, GET_LDN).startswith(b"\xc4\x01\xc1\x00")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_wrapper_stream_never_crashes(data):
    session = _factory()()
    out = session.receive(data)
    assert all(isinstance(chunk, bytes) for chunk in out)


def test_tcp_runtime_closes_idle_connections_and_releases_the_association():
    import socket

    from meterd.cosem.sessions import WrapperSession
    from tests.dlms_harness import LoopThread

    server = CosemServer(FakeMeter(), make_keyring(), MemoryCounterStore())
    loop = LoopThread()
    try:
        port = loop.tcp(lambda source: WrapperSession(server, inactivity_timeout_s=0.2))
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(bytes(make_client(16).aarqRequest()[0]))
            assert sock.recv(4096)[8] == 0x61
            assert server.associated
            assert sock.recv(4096) == b""  # closed after 0.2 s idle
        assert not server.associated  # the association was released with the connection
    finally:
        loop.stop()

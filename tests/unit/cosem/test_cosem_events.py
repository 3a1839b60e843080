"""Security and communication events of the DLMS server (meterd.cosem.server → event sink)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSSecuritySetup

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import TEST_GAK, TEST_GUEK, TEST_KEK, TEST_PASSWORD, FakeMeter, ListSink, make_keyring
from tests.dlms_gurux_client import connect_in_memory, make_client

AUTH_FAIL, KEY_CHANGED, DECRYPT_FAIL, REPLAY = (ec.code(n) for n in (
    "AUTHENTICATION_FAILURES", "KEY_CHANGED", "DECRYPTION_FAILURE", "REPLAY_ATTACK"))


def _factory(sink: ListSink, meter: FakeMeter | None = None, link_name: str = "tcp", ring=None):
    return build_session_factory(meter or FakeMeter(), MemoryCounterStore(), ring or make_keyring(),
                                 ServerConfig(events=sink, link_name=link_name))


def _no_secrets(sink: ListSink) -> None:
    text = repr(sink.events).lower()
    for secret in (TEST_GUEK.hex(), TEST_GAK.hex(), TEST_KEK.hex(), TEST_PASSWORD.decode().lower()):
        assert secret not in text


def test_wrong_lls_password_records_an_authentication_failure(caplog):
    sink = ListSink()
    meter = FakeMeter()
    session = _factory(sink, meter)()
    aarq = bytes(make_client(17, password=b"guessed!").aarqRequest()[0])
    answer = session.receive(aarq)[0]
    assert b"\xa2\x03\x02\x01\x01" in answer  # AARE rejected
    assert sink.codes() == [AUTH_FAIL]
    code, utc, detail = sink.events[0]
    assert utc == meter.now_utc()
    assert detail["client_sap"] == 17 and detail["link"] == "tcp" and "LLS" in str(detail["reason"])
    assert "wrong LLS password" in caplog.text and "guessed" not in caplog.text
    assert "guessed" not in repr(sink.events)
    _no_secrets(sink)


def test_unknown_client_is_refused_with_an_association_rejected_event():
    sink = ListSink()
    session = _factory(sink)()
    aarq = bytearray(make_client(16).aarqRequest()[0])
    aarq[3] = 55  # source wPort: client SAP 55 has no association
    session.receive(bytes(aarq))
    assert sink.codes() == [ec.code("ASSOCIATION_REJECTED")]
    assert sink.events[0][2]["client_sap"] == 55


def test_wrong_hls_key_records_a_decryption_failure_and_a_log_line(caplog):
    sink = ListSink()
    with pytest.raises(Exception):  # noqa: B017 - gurux raises a bare Exception on a refused AARE
        connect_in_memory(_factory(sink)(), 1, gak=bytes(16))
    assert "association refused for client SAP 1 on tcp: InitiateRequest: authentication tag mismatch" in caplog.text
    assert sink.codes() == [DECRYPT_FAIL]
    assert sink.events[0][2]["client_sap"] == 1
    _no_secrets(sink)


def test_wrong_hls_response_records_an_authentication_failure(caplog):
    from tests.dlms_gurux_client import send_wrong_hls_reply

    sink = ListSink()
    send_wrong_hls_reply(_factory(sink)())
    assert "failed authentication" in caplog.text
    assert sink.codes() == [AUTH_FAIL]
    assert sink.events[0][2] == {"client_sap": 1, "link": "tcp", "reason": "wrong HLS-GMAC response",
                                 "failures": 1, "source": "tcp"}


def test_tampered_request_records_a_decryption_failure_and_replay_a_replay_attack():
    sink = ListSink()
    session = _factory(sink)()
    gs, transport = connect_in_memory(session, 1)
    request = bytes(gs.client.read(GXDLMSData("0.0.42.0.0.255"), 2)[0])
    tampered = bytearray(request)
    tampered[-1] ^= 0x01
    transport.send(bytes(tampered))
    assert transport.receive()[8:] == b"\xd8\x01\x05"  # deciphering error
    assert sink.codes()[-1] == DECRYPT_FAIL
    transport.send(request)
    transport.receive()
    transport.send(request)  # the same ciphered frame again
    assert transport.receive()[8:] == b"\xd8\x01\x06"
    assert sink.codes()[-1] == REPLAY
    assert sink.of(REPLAY)[0]["client_sap"] == 1
    _no_secrets(sink)


def test_key_transfer_records_key_changed_with_the_key_name_only(tmp_path):
    sink = ListSink()
    ring = make_keyring(tmp_path / "keys.toml")
    gs, _ = connect_in_memory(_factory(sink, ring=ring)(), 1)
    new_gak = bytes(range(16, 32))
    payload = bytearray(b"\x01\x01\x02\x02\x16\x02\x09\x18") + aes_key_wrap(TEST_KEK, new_gak)
    gs.method(GXDLMSSecuritySetup("0.0.43.0.3.255"), 2, payload, DataType.ARRAY)
    assert sink.of(KEY_CHANGED) == [{"client_sap": 1, "link": "tcp", "reason": "key_transfer",
                                     "key": "authentication_key"}]
    assert new_gak.hex() not in repr(sink.events).lower()
    _no_secrets(sink)


@pytest.mark.parametrize(("link", "where"), [("tcp", "REMOTE"), ("rs485", "REMOTE"), ("optical", "LOCAL")])
def test_associations_opened_and_closed_go_to_the_communication_log(link, where):
    sink = ListSink()
    factory = _factory(sink, link_name=link)
    gs, _ = connect_in_memory(factory(), 17)
    gs.read(GXDLMSClock(), 2)
    gs.close()
    opened, closed = ec.code(f"{where}_SESSION_OPENED"), ec.code(f"{where}_SESSION_CLOSED")
    assert sink.codes() == [opened, closed]
    assert all(d["client_sap"] == 17 and d["link"] == link and d["association"] == "reader"
               for _, _, d in sink.events)
    hls = ListSink()
    session = _factory(hls, link_name=link)()
    connect_in_memory(session, 1)
    assert hls.codes() == [opened]  # after HLS pass 4, not at the AARE
    session.close()
    assert hls.codes() == [opened, closed] and hls.of(closed)[0]["reason"] == "connection closed"


def test_events_reach_the_security_and_communication_logs_of_a_recorder():
    recorder = EventRecorder()
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(), ServerConfig(events=recorder))
    factory().receive(bytes(make_client(17, password=b"wrong").aarqRequest()[0]))
    gs, _ = connect_in_memory(factory(), 16)
    gs.close()
    assert [e.code for e in recorder.log(LogId.SECURITY).entries()] == [AUTH_FAIL]
    assert [e.code for e in recorder.log(LogId.FRAUD).entries()] == [AUTH_FAIL]
    assert [e.code for e in recorder.log(LogId.COMMUNICATION).entries()] == [222, 223]


def test_a_failing_sink_never_breaks_the_link(caplog):
    class Broken:
        def record(self, *args: object) -> None:
            raise OSError("disk full")

    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(), ServerConfig(events=Broken()))
    gs, _ = connect_in_memory(factory(), 17)
    gs.read(GXDLMSClock(), 2)
    assert "not recorded" in caplog.text
    with pytest.raises(Exception, match="rejected"):  # gurux raises a bare exception on a refused AARE
        connect_in_memory(factory(), 17, password=b"wrong")
    gs, _ = connect_in_memory(factory(), 17)  # the next association still works
    gs.read(GXDLMSClock(), 2)

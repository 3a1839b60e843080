"""Security suite 0, invocation counters, keys file and key transfer (meterd.cosem.security/keys)."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from dlms_cosem import security as ref
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData

from meterd.cosem import keys as keyfile
from meterd.cosem.config import ServerConfig
from meterd.cosem.errors import KeyFileError, ReplayError, SecurityError
from meterd.cosem.security import (
    SC_AUTH,
    SC_AUTH_ENC,
    MemoryCounterStore,
    OutgoingCounter,
    SecurityContext,
    gmac,
    protect,
    unprotect,
)
from meterd.cosem.server import build_session_factory
from meterd.store.dlms_security_store import DlmsSecurityStore
from tests.dlms_fakes import (
    CLIENT_TITLE,
    SERVER_TITLE,
    TEST_GAK,
    TEST_GUEK,
    TEST_KEK,
    FakeMeter,
    make_keyring,
)
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory


def test_protect_matches_an_independent_implementation():
    plain = b"\xc0\x01\xc1\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00" * 7
    ours = protect(SC_AUTH_ENC, TEST_GUEK, TEST_GAK, CLIENT_TITLE, 0x01020304, plain)
    theirs = ref.encrypt(ref.SecurityControlField(0, True, True), CLIENT_TITLE, 0x01020304, TEST_GUEK, plain, TEST_GAK)
    assert ours[5:] == theirs
    assert unprotect(TEST_GUEK, TEST_GAK, CLIENT_TITLE, ours) == (SC_AUTH_ENC, 0x01020304, plain)


def test_gmac_matches_an_independent_implementation():
    challenge = os.urandom(16)
    ours = gmac(TEST_GUEK, TEST_GAK, SERVER_TITLE, 77, challenge)
    theirs = ref.gmac(ref.SecurityControlField(0, True, False), SERVER_TITLE, 77, TEST_GUEK, TEST_GAK, challenge)
    assert ours == bytes((SC_AUTH,)) + struct.pack(">I", 77) + theirs


def test_tampered_or_unsupported_payloads_are_refused():
    sealed = bytearray(protect(SC_AUTH_ENC, TEST_GUEK, TEST_GAK, CLIENT_TITLE, 5, b"\xc0\x01"))
    sealed[-1] ^= 1
    with pytest.raises(SecurityError):
        unprotect(TEST_GUEK, TEST_GAK, CLIENT_TITLE, bytes(sealed))
    with pytest.raises(SecurityError):
        unprotect(TEST_GUEK, TEST_GAK, CLIENT_TITLE, b"\x31" + bytes(20))  # suite 1
    auth_only = protect(SC_AUTH, TEST_GUEK, TEST_GAK, CLIENT_TITLE, 6, b"\xc0\x01")
    assert unprotect(TEST_GUEK, TEST_GAK, CLIENT_TITLE, auth_only)[2] == b"\xc0\x01"


def test_replayed_and_stale_client_counters_are_rejected():
    ctx = SecurityContext("m", SERVER_TITLE, TEST_GUEK, TEST_GAK, MemoryCounterStore())
    ctx.client_title = CLIENT_TITLE  # counters are kept per client system title
    ctx.check_incoming(10)
    for stale in (10, 9, 0):
        with pytest.raises(ReplayError):
            ctx.check_incoming(stale)
    ctx.check_incoming(11)
    assert ctx.last_incoming() == 11


def test_counters_persist_before_use_and_survive_a_restart(tmp_path):
    path = tmp_path / "dlms_security.db"
    store = DlmsSecurityStore(path, in_block=10)
    out = OutgoingCounter(store, "m/out", block=4)
    used = [out.take() for _ in range(6)]
    assert used == [1, 2, 3, 4, 5, 6]
    assert store.accept("m/in", 100)
    assert store.accept("m/in", 105) and not store.accept("m/in", 105) and not store.accept("m/in", 101)
    assert store.last_accepted("m/in") == 105
    store.close()  # "kill": the rest of the second block is never used
    store = DlmsSecurityStore(path, in_block=10)
    assert OutgoingCounter(store, "m/out", block=4).take() == 9
    # the whole block up to the stored mark (100 + 10) counts as used after a restart
    assert store.last_accepted("m/in") == 110
    for stale in (100, 105, 106, 110):
        assert not store.accept("m/in", stale), stale
    assert store.accept("m/in", 111)


def _commits(store: DlmsSecurityStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


@pytest.mark.parametrize("block", [4, 64])
def test_incoming_counter_commits_once_per_block_and_refuses_replays_across_restarts(tmp_path, block):
    path = tmp_path / "dlms_security.db"
    store = DlmsSecurityStore(path, in_block=block)
    commits = _commits(store)
    for ic in range(1, 1001):
        assert store.accept("management/in", ic)
        assert not store.accept("management/in", ic)  # replay
        assert not store.accept("management/in", ic - 1)  # stale
    assert len(commits) <= 1000 / block + 1
    assert len(commits) >= 1000 // (block + 1)  # the mark really is on disk
    store.close()
    store = DlmsSecurityStore(path, in_block=block)
    for used in (1, 500, 999, 1000):
        assert not store.accept("management/in", used), used
    ceiling = store.last_accepted("management/in")
    assert 1000 <= ceiling <= 1000 + block
    assert not store.accept("management/in", ceiling)
    assert store.accept("management/in", ceiling + 1)


def test_replays_are_refused_over_dlms_after_a_restart(tmp_path):
    path = tmp_path / "dlms_security.db"
    meter = FakeMeter()
    store = DlmsSecurityStore(path)
    gs, transport = connect_in_memory(_factory(meter, store=store)(), 1, invocation_counter=7)
    request = bytes(gs.client.read(GXDLMSData("0.0.42.0.0.255"), 2)[0])
    transport.send(request)
    assert transport.receive()[8] == 0xDB  # a ciphered answer
    store.close()
    store = DlmsSecurityStore(path)  # restart: the captured request is replayed on a new association
    gs2, transport2 = connect_in_memory(_factory(meter, store=store)(), 1,
                                        invocation_counter=store.last_accepted("management/in") + 1)
    transport2.send(request)
    assert transport2.receive()[8:] == b"\xd8\x01\x06"  # invocation-counter-error
    with pytest.raises(Exception):  # noqa: B017 - a stale AARQ counter is refused at association
        connect_in_memory(_factory(meter, store=store)(), 1, invocation_counter=8)
    store.close()


def test_keys_file_is_validated_and_must_be_private(tmp_path):
    path = tmp_path / "dlms-keys.toml"
    make_keyring(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = keyfile.load_keys(path)
    assert loaded.global_unicast_key == TEST_GUEK and loaded.lls_password
    assert TEST_GUEK.hex() not in repr(loaded).lower() and "TESTPASS" not in repr(loaded)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="too open"):
        keyfile.load_keys(path)
    path.chmod(0o600)
    path.write_text('[server]\nsystem_title = "zz"\n')
    with pytest.raises(KeyFileError):
        keyfile.load_keys(path)


def _factory(meter: FakeMeter, ring=None, store=None):
    return build_session_factory(meter, store or MemoryCounterStore(), ring or make_keyring())


def test_wrong_hls_key_is_refused_logged_and_recorded_without_secrets(caplog):
    from meterd.core import event_codes
    from meterd.core.event_codes import LogId
    from meterd.core.events import EventRecorder

    recorder = EventRecorder()
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(events=recorder, link_name="tcp"))
    with pytest.raises(Exception):  # noqa: B017 - gurux raises a bare Exception on a refused HLS
        connect_in_memory(factory(), 1, gak=bytes(16))
    assert "association refused for client SAP 1 on tcp" in caplog.text
    assert "authentication tag mismatch" in caplog.text
    [event] = recorder.log(LogId.SECURITY).entries()
    assert event.code == event_codes.code("DECRYPTION_FAILURE")
    assert event.detail["client_sap"] == 1 and event.detail["link"] == "tcp"
    for secret in (TEST_GAK.hex(), TEST_GUEK.hex()):
        assert secret not in caplog.text.lower() and secret not in repr(event).lower()


def test_replayed_request_is_answered_with_an_invocation_counter_error():
    session = _factory(FakeMeter())()
    gs, transport = connect_in_memory(session, 1)
    request = gs.client.read(GXDLMSData("0.0.42.0.0.255"), 2)[0]
    transport.send(bytes(request))
    first = transport.receive()
    transport.send(bytes(request))  # the same ciphered frame again
    replay = transport.receive()
    assert first != replay
    assert replay[8:] == b"\xd8\x01\x06"  # exception-response: invocation-counter-error


def test_plain_request_in_a_ciphered_association_is_refused():
    session = _factory(FakeMeter())()
    gs, transport = connect_in_memory(session, 1)
    plain = bytes.fromhex("c001c100010000280000ff0200")
    out = session.receive(struct.pack(">HHHH", 1, 1, 1, len(plain)) + plain)
    assert out[0][8:] == b"\xd8\x01\x05"


def test_public_client_reads_the_frame_counter_used_by_the_management_client():
    meter = FakeMeter()
    store = MemoryCounterStore()
    factory = _factory(meter, store=store)
    mgmt, _ = connect_in_memory(factory(), 1, invocation_counter=41)
    mgmt.read(GXDLMSClock(), 2)
    public, _ = connect_in_memory(factory(), 16)
    counter = GXDLMSData("0.0.43.1.3.255")
    public.read(counter, 2)
    assert counter.value == store.last_accepted("management/in") >= 42


def test_key_transfer_changes_the_keys_after_the_response(tmp_path):
    ring = make_keyring(tmp_path / "keys.toml")
    factory = _factory(FakeMeter(), ring=ring)
    gs, _ = connect_in_memory(factory(), 1)
    new_gak = bytes(range(16, 32))
    from gurux_dlms.objects import GXDLMSSecuritySetup

    setup = GXDLMSSecuritySetup("0.0.43.0.3.255")
    wrapped = aes_key_wrap(TEST_KEK, new_gak)
    payload = bytearray(b"\x01\x01\x02\x02\x16\x02\x09\x18") + wrapped  # array{struct{enum 2 (AK), octet[24]}}
    gs.method(setup, 2, payload, DataType.ARRAY)
    assert ring.current.authentication_key == new_gak
    assert keyfile.load_keys(tmp_path / "keys.toml").authentication_key == new_gak
    gs2, _ = connect_in_memory(factory(), 1, gak=new_gak, invocation_counter=1000)  # new key from now on
    gs2.read(GXDLMSClock(), 2)
    from gurux_dlms import GXDLMSExceptionResponse

    with pytest.raises(GXDLMSExceptionResponse):  # the open association switched keys too
        gs.read(GXDLMSClock(), 2)
    gs.client.ciphering.authenticationKey = bytearray(new_gak)
    gs.client.ciphering.invocationCounter = 2000  # gs2 moved the shared counter on
    gs.read(GXDLMSClock(), 2)
    with pytest.raises(DlmsClientError):  # does not unwrap with the master key
        gs.method(setup, 2, bytearray(b"\x01\x01\x02\x02\x16\x02\x09\x18") + bytes(24), DataType.ARRAY)


def test_wrong_hls_response_refuses_the_association(caplog):
    from tests.dlms_gurux_client import send_wrong_hls_reply

    session = _factory(FakeMeter())()
    send_wrong_hls_reply(session)
    assert not session.server.associated
    assert "failed authentication" in caplog.text


@pytest.mark.parametrize("key", ["global_unicast_key", "authentication_key", "master_key"])
def test_keys_other_than_16_octets_are_refused_for_suite_0(tmp_path, key):
    path = tmp_path / "dlms-keys.toml"
    make_keyring(path)
    long_key = bytes(range(0xA0, 0xC0))  # 32 octets: AES-256, not suite 0
    text = path.read_text()
    current = {"global_unicast_key": TEST_GUEK, "authentication_key": TEST_GAK, "master_key": TEST_KEK}[key]
    path.write_text(text.replace(current.hex().upper(), long_key.hex().upper()))
    with pytest.raises(KeyFileError) as info:
        keyfile.load_keys(path)
    message = str(info.value)
    assert str(path) in message and key in message and "32 octets" in message and "suite 0" in message
    assert long_key.hex() not in message.lower() and long_key.hex().upper() not in message


def test_key_transfer_of_a_32_octet_key_is_refused_and_the_keys_stay(tmp_path):
    ring = make_keyring(tmp_path / "keys.toml")
    gs, _ = connect_in_memory(_factory(FakeMeter(), ring=ring)(), 1)
    from gurux_dlms.objects import GXDLMSSecuritySetup

    wrapped = aes_key_wrap(TEST_KEK, bytes(range(32)))  # 40 octets
    payload = bytearray(b"\x01\x01\x02\x02\x16\x00\x09\x28") + wrapped  # {enum 0 (GUEK), octet[40]}
    with pytest.raises(DlmsClientError):
        gs.method(GXDLMSSecuritySetup("0.0.43.0.3.255"), 2, payload, DataType.ARRAY)
    assert ring.current.global_unicast_key == TEST_GUEK
    gs.read(GXDLMSClock(), 2)  # the association goes on with the old keys

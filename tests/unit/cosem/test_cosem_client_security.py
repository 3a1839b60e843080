"""Who may open a ciphered association and under which keys (meterd.cosem.server, .security, .keys):
the dedicated key of the AARQ protects the ded-ciphered APDUs; a suite-1/2 AARQ is refused as a
suite not offered, never as an authentication failure; the client invocation counter is kept per
client system title; only configured client system titles associate when the keys file names
them. Each driven by the gurux client (a library we did not write) where it found the defect."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gurux_dlms import GXReplyData
from gurux_dlms.enums import Authentication
from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister

from meterd.cosem.keys import KeyRing, load_keys
from meterd.cosem.security import GENERAL_DED, split_ciphered, unprotect
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE, TEST_GAK, WrapperRig, make_keys
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, Spy, make_client

DEDICATED = bytes(range(0x30, 0x40))
OTHER_TITLE = bytes.fromhex("4758580000000002")


def _client(rig: WrapperRig, *, ic: int = 1, title: bytes = CLIENT_TITLE, dedicated: bytes | None = None,
            suite: int = 0, auth: Authentication | None = None) -> tuple[GuruxSession, Spy]:
    spy = Spy(rig.factory())
    client = make_client(1, invocation_counter=ic)
    client.ciphering.systemTitle = bytearray(title)
    if dedicated is not None:
        client.ciphering.dedicatedKey = bytearray(dedicated)
    client.ciphering.securitySuite = suite
    if auth is not None:
        client.authentication = auth
    return GuruxSession(client, spy.send, spy.receive), spy


def _aare(spy: Spy) -> tuple[int, int]:
    answer = spy.received[0]
    result = answer.index(b"\xa2\x03\x02\x01") + 4
    return answer[result], answer[answer.index(b"\xa3\x05", result) + 6]


def test_a_dedicated_key_in_the_aarq_protects_the_ded_ciphered_apdus():
    rig = WrapperRig()
    gs, spy = _client(rig, dedicated=DEDICATED)
    gs.connect()
    assert gs.read(GXDLMSRegister("1.0.1.8.0.255"), 2) == rig.meter.registers[next(iter(rig.meter.registers))]
    assert spy.sent[-1][0] == GENERAL_DED and spy.received[-1][0] == GENERAL_DED
    parts = split_ciphered(spy.received[-1])  # the answer opens with the dedicated key, independently of gurux
    sc, _, plain = unprotect(DEDICATED, TEST_GAK, SERVER_TITLE, parts.payload)
    assert parts.system_title == SERVER_TITLE and sc == 0x30
    assert plain[:2] == b"\xc4\x01" and plain[3] == 0  # GET-response-normal with data
    gs.close()


def test_ded_ciphered_apdus_without_a_dedicated_key_are_refused_and_glo_still_served():
    rig = WrapperRig()
    gs, spy = _client(rig)
    gs.connect()
    ded_get = bytes((GENERAL_DED, 8)) + CLIENT_TITLE + b"\x05\x30\x00\x00\x00\x09"
    assert spy.session.server.handle_apdu(1, ded_get) == b"\xd8\x01\x05"  # deciphering error
    assert gs.read(GXDLMSRegister("1.0.1.8.0.255"), 2) == rig.meter.registers[next(iter(rig.meter.registers))]


def test_a_dedicated_key_of_the_wrong_length_refuses_the_association():
    rig = WrapperRig()
    gs, spy = _client(rig, dedicated=bytes(8))
    with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
        gs.connect()
    assert _aare(spy)[0] == 1


@pytest.mark.parametrize("suite, auth, diagnostic", [
    (1, None, 2),                              # suite 1 ciphering, HLS-GMAC: application context
    (0, Authentication.HIGH_ECDSA, 11),        # HLS-ECDSA (mechanism 7): mechanism not recognised
    (2, Authentication.HIGH_ECDSA, 11),
])
def test_suite_1_and_2_aarqs_are_refused_cleanly_and_never_lock_out(suite, auth, diagnostic):
    rig = WrapperRig()
    for attempt in range(6):
        gs, spy = _client(rig, ic=attempt + 1, suite=suite, auth=auth)
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            gs.connect()
        assert _aare(spy) == (1, diagnostic)
    server = rig.factory().server
    assert server.lockout.failures(1, server.source) == 0
    assert 46 not in rig.sink.codes() and 49 not in rig.sink.codes()
    gs, _ = _client(rig, ic=100)
    gs.connect()  # suite 0 is still served at once: nothing was locked out
    gs.close()


def test_invocation_counters_are_kept_per_client_system_title():
    rig = WrapperRig()
    first, _ = _client(rig, ic=1000)
    first.connect()
    first.read(GXDLMSClock(), 2)
    first.close()
    second, _ = _client(rig, ic=5, title=OTHER_TITLE)
    second.connect()  # a counter of its own, not refused for the first client's
    second.read(GXDLMSClock(), 2)
    second.close()
    replay, spy = _client(rig, ic=5, title=OTHER_TITLE)  # but its own counters only once
    with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
        replay.connect()
    assert _aare(spy)[0] == 1
    assert rig.store.last_accepted("management/in") >= 1000  # 0-0:43.1.3.255: the highest of all


def test_only_configured_client_system_titles_associate(tmp_path):
    keys = replace(make_keys(tmp_path / "dlms-keys.toml"), client_system_titles=frozenset({CLIENT_TITLE}))
    keys.save()
    assert load_keys(tmp_path / "dlms-keys.toml").client_system_titles == {CLIENT_TITLE}
    rig = WrapperRig()
    rig.keys.current = load_keys(tmp_path / "dlms-keys.toml")
    stranger, spy = _client(rig, title=OTHER_TITLE)
    with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
        stranger.connect()
    assert _aare(spy) == (1, 3)  # calling AP title not recognised
    server = rig.factory().server
    assert server.lockout.failures(1, server.source) == 0
    known, _ = _client(rig, ic=10)
    known.connect()
    known.close()
    assert isinstance(rig.keys, KeyRing)


def test_gurux_reads_through_ded_ciphering_with_a_list():
    rig = WrapperRig()
    gs, spy = _client(rig, dedicated=DEDICATED)
    gs.connect()
    reply = GXReplyData()
    for messages in gs.client.readList([(GXDLMSClock(), 2), (GXDLMSRegister("1.0.1.8.0.255"), 2)]):
        gs._block(messages, reply)
    assert len(reply.value) == 2 and spy.sent[-1][0] == GENERAL_DED
    with pytest.raises(DlmsClientError):
        gs.read(GXDLMSRegister("1.2.3.4.5.6"), 2)  # undefined, answered ded-ciphered
    assert spy.received[-1][0] == GENERAL_DED

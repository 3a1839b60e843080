"""Authentication lockout of the DLMS server (meterd.cosem.server, meterd.cosem.security.AuthLockout):
per link, client SAP and source (here one source: sessions made without one are the link's), N
consecutive failures refuse every association attempt for a time that doubles per further failure
up to a cap (other sources: test_cosem_lockout_sources.py); a success resets the count; the state survives a
restart (meterd.store.dlms_security_store); events stay bounded during an attack. Time is a
SimClock advanced by the test."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from gurux_dlms import GXReplyData
from gurux_dlms.objects import GXDLMSClock

from meterd.app.features import load_config
from meterd.app.features.dlms import DlmsSecurity
from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.core.errors import ConfigError
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import (
    AuthLockout,
    LockoutPolicy,
    MemoryLockoutStore,
)
from meterd.cosem.server import build_session_factory
from meterd.store.dlms_security_store import DlmsSecurityStore
from tests.dlms_fakes import UTC, ListSink, WrapperRig, make_keyring
from tests.dlms_gurux_client import (
    DlmsClientError,
    GuruxSession,
    InMemoryTransport,
    connect_in_memory,
    make_client,
    send_wrong_hls_reply,
)

AUTH_FAIL = ec.code("AUTHENTICATION_FAILURES")
DECRYPT_FAIL = ec.code("DECRYPTION_FAILURE")
OPENED = ec.code("REMOTE_SESSION_OPENED")
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACCEPTED, REJECTED_PERMANENT, REJECTED_TRANSIENT = 0, 1, 2
WRONG = bytes(make_client(17, password=b"guessed!").aarqRequest()[0])
RIGHT = bytes(make_client(17).aarqRequest()[0])
PUBLIC = bytes(make_client(16).aarqRequest()[0])



def test_three_wrong_passwords_lock_the_reader_out_even_with_the_right_one():
    rig = WrapperRig()
    assert [rig.aarq(WRONG) for _ in range(3)] == [(REJECTED_PERMANENT, 13)] * 3
    assert rig.aarq(RIGHT) == (REJECTED_TRANSIENT, 13)  # the right password, refused: locked out
    assert rig.aarq(WRONG) == (REJECTED_TRANSIENT, 13)  # the same answer: no oracle while locked
    details = [d for _, _, d in rig.sink.events]
    assert rig.sink.codes() == [AUTH_FAIL] * 3
    assert [d["failures"] for d in details] == [1, 2, 3]
    assert "lockout_s" not in details[1] and details[2]["lockout_s"] == 60.0
    rig.clock.advance(59.0)
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    rig.clock.advance(1.0)
    assert rig.aarq(RIGHT)[0] == ACCEPTED
    # one event for the whole lockout, with the count of refused attempts, then the session
    assert rig.sink.codes() == [AUTH_FAIL] * 4 + [OPENED]
    summary = rig.sink.events[3][2]
    assert summary["refused"] == 3 and summary["lockout_s"] == 60.0 and summary["client_sap"] == 17
    assert rig.aarq(WRONG)[0] == REJECTED_PERMANENT  # the success reset the count: 1 of 3 again
    assert rig.sink.events[-1][2]["failures"] == 1


def test_a_success_resets_the_count_of_consecutive_failures():
    rig = WrapperRig()
    for _ in range(2):
        rig.aarq(WRONG)
    assert rig.aarq(RIGHT)[0] == ACCEPTED
    for _ in range(2):
        assert rig.aarq(WRONG)[0] == REJECTED_PERMANENT
    assert rig.aarq(RIGHT)[0] == ACCEPTED  # 2 + 2 failures, never 3 in a row


def test_the_lockout_doubles_per_further_failure_up_to_the_cap():
    rig = WrapperRig(policy=LockoutPolicy(failures=3, lockout_s=60.0, max_lockout_s=300.0))
    for _ in range(3):
        rig.aarq(WRONG)
    lockouts = [float(rig.sink.events[-1][2]["lockout_s"])]
    rig.clock.advance(lockouts[-1])
    for _ in range(4):
        assert rig.aarq(WRONG) == (REJECTED_PERMANENT, 13)  # the lockout is over: checked, wrong again
        lockouts.append(float(rig.sink.events[-1][2]["lockout_s"]))
        rig.clock.advance(lockouts[-1] - 0.5)
        assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
        rig.clock.advance(0.5)
    assert lockouts == [60.0, 120.0, 240.0, 300.0, 300.0]
    assert rig.aarq(RIGHT)[0] == ACCEPTED


def test_the_public_client_and_other_links_are_not_affected():
    sink = ListSink()
    tcp = WrapperRig(sink=sink)
    for _ in range(5):
        tcp.aarq(WRONG)
    assert tcp.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    for _ in range(5):  # the public client has no authentication: nothing to count or lock
        assert tcp.aarq(PUBLIC) == (ACCEPTED, 0)
    gs, _ = connect_in_memory(tcp.factory(), 16)
    gs.read(GXDLMSClock(), 2)
    gs.close()
    rs485 = build_session_factory(tcp.meter, tcp.store, make_keyring(),
                                  ServerConfig(link="hdlc", events=sink, link_name="rs485"), clock=tcp.clock)
    gs, _ = connect_in_memory(rs485(), 17)  # the same client SAP on another link
    gs.read(GXDLMSClock(), 2)
    assert tcp.aarq(RIGHT)[0] == REJECTED_TRANSIENT


def test_wrong_hls_replies_and_wrong_keys_lock_the_management_client_out():
    rig = WrapperRig()
    send_wrong_hls_reply(rig.factory(), 10)
    send_wrong_hls_reply(rig.factory(), 20)
    with pytest.raises(Exception, match="rejected"):  # wrong keys: the InitiateRequest fails its tag
        connect_in_memory(rig.factory(), 1, gak=bytes(16), invocation_counter=30)
    assert rig.sink.codes() == [AUTH_FAIL, AUTH_FAIL, DECRYPT_FAIL]
    assert rig.sink.events[-1][2]["failures"] == 3 and rig.sink.events[-1][2]["lockout_s"] == 60.0
    with pytest.raises(Exception, match="rejected"):
        connect_in_memory(rig.factory(), 1, invocation_counter=40)  # the right keys, refused
    assert rig.sink.codes() == [AUTH_FAIL, AUTH_FAIL, DECRYPT_FAIL]
    rig.clock.advance(60.0)
    connect_in_memory(rig.factory(), 1, invocation_counter=100)  # HLS pass 4 done: the count resets
    assert rig.factory().server.lockout.failures(1, "tcp") == 0
    assert rig.sink.events[-2][2]["refused"] == 1 and rig.sink.codes()[-1] == OPENED


def test_a_lockout_is_refused_at_hls_pass_3_when_it_started_after_the_aarq():
    rig = WrapperRig()
    for ic in (10, 20):
        send_wrong_hls_reply(rig.factory(), ic)
    transport = InMemoryTransport(rig.factory())
    client = make_client(1, invocation_counter=30)
    gs = GuruxSession(client, transport.send, transport.receive)
    reply = GXReplyData()
    gs._block(client.aarqRequest(), reply)  # accepted, HLS pending
    client.parseAareResponse(reply.data)
    send_wrong_hls_reply(rig.factory(), 40)  # the third failure, on another connection: locked out
    client.ciphering.invocationCounter = 100  # above the other connection's counters
    reply.clear()
    with pytest.raises(DlmsClientError):  # the right reply, refused
        for frame in client.getApplicationAssociationRequest():
            gs._packet(frame, reply)
    assert rig.sink.codes() == [AUTH_FAIL] * 3


def test_a_clock_set_does_not_shorten_a_running_lockout():
    rig = WrapperRig()
    for _ in range(3):
        rig.aarq(WRONG)
    rig.clock.set_utc(START + dt.timedelta(days=1))  # a clock step forward, as a clock write would
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    rig.clock.set_utc(START)
    rig.clock.advance(60.0)
    assert rig.aarq(RIGHT)[0] == ACCEPTED


def test_a_lockout_survives_a_restart(tmp_path: Path):
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store)
    for _ in range(3):
        rig.aarq(WRONG)
    for _ in range(5):
        rig.aarq(RIGHT)  # refused: 5 attempts
    rig.clock.advance(20.0)
    store.close()
    # restart: a new store on the same file, a new monotonic origin, UTC goes on
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    clock = SimClock(START + dt.timedelta(seconds=25), start_mono=0.0)
    sink = ListSink()
    rig = WrapperRig(store=store, clock=clock, sink=sink)
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    clock.advance(34.0)
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    assert sink.codes() == []
    clock.advance(1.0)
    assert rig.aarq(WRONG) == (REJECTED_PERMANENT, 13)  # the 4th failure in a row: 120 s now
    ended, failure = sink.events[0][2], sink.events[1][2]
    assert ended["refused"] >= 4  # the count is written at powers of two: 4 of 5 + 2 after the restart
    assert failure["failures"] == 4 and failure["lockout_s"] == 120.0
    store.close()
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    assert store.load_lockouts("tcp")[(17, "tcp")][0] == 4 and store.load_lockouts("rs485") == {}
    rig = WrapperRig(store=store, clock=SimClock(START + dt.timedelta(seconds=60), start_mono=5.0))
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    rig.clock.advance(120.0)
    assert rig.aarq(RIGHT)[0] == ACCEPTED
    assert store.load_lockouts("tcp") == {}  # the success cleared the record
    store.close()


def test_a_clock_step_while_meterd_is_down_never_lengthens_a_lockout(tmp_path: Path):
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store)
    for _ in range(3):
        rig.aarq(WRONG)
    store.close()
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store, clock=SimClock(START - dt.timedelta(days=30)))  # the RTC lost a month
    rig.clock.advance(59.0)
    assert rig.aarq(RIGHT)[0] == REJECTED_TRANSIENT
    rig.clock.advance(1.0)
    assert rig.aarq(RIGHT)[0] == ACCEPTED
    store.close()


def test_events_and_writes_stay_bounded_during_a_three_hour_attack():
    """One wrong password a second for 3 h: 10,800 attempts, a few events and writes."""
    lockouts = MemoryLockoutStore()
    rig = WrapperRig()
    rig.factory = build_session_factory(rig.meter, rig.store, make_keyring(),
                                        ServerConfig(events=rig.sink, link_name="tcp"), clock=rig.clock,
                                        auth_lockout=AuthLockout(lockouts, LockoutPolicy(), "tcp", rig.clock))
    refused = 0
    for _ in range(3 * 3600):
        refused += rig.aarq(WRONG)[0] == REJECTED_TRANSIENT
        rig.clock.advance(1.0)
    rig.clock.advance(3600.0)
    assert rig.aarq(RIGHT)[0] == ACCEPTED  # the last lockout is over: its count is reported
    failures = [d for c, _, d in rig.sink.events if c == AUTH_FAIL and "refused" not in d]
    summaries = [d for _, _, d in rig.sink.events if "refused" in d]
    # 60, 120, 240, 480, 960, 1920, then 3600 s: 3 failures + one per further lockout
    assert [d.get("lockout_s") for d in failures] == [None, None, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
                                                      3600.0, 3600.0]
    assert sum(int(d["refused"]) for d in summaries) == refused > 10_000
    assert len(rig.sink.events) == len(failures) + len(summaries) + 1 <= 21  # + the session opened
    assert lockouts.saves < 100  # log2 of the refused attempts per lockout, not one per attempt
    assert set(rig.sink.codes()) == {AUTH_FAIL, OPENED}


def test_policy_and_config_are_validated(tmp_path: Path):
    assert LockoutPolicy().lockout_for(2) == 0.0
    assert LockoutPolicy().lockout_for(3) == 60.0 and LockoutPolicy().lockout_for(9) == 3600.0
    assert LockoutPolicy().lockout_for(10_000) == 3600.0
    for bad in ({"failures": 0}, {"lockout_s": 0.0}, {"lockout_s": 120.0, "max_lockout_s": 60.0}):
        with pytest.raises(ValueError):
            LockoutPolicy(**bad)
    cfg = tmp_path / "meterd.toml"
    cfg.write_text("[dlms]\nlockout_failures = 5\nlockout_s = 30\nlockout_max_s = 7200\n")
    dlms = load_config(cfg).dlms
    assert (dlms.lockout_failures, dlms.lockout_s, dlms.lockout_max_s) == (5, 30.0, 7200.0)
    for text, reason in (("lockout_failures = 0", "below the minimum"),
                         ("lockout_s = 600\nlockout_max_s = 60", "must not be below lockout_s"),
                         ("lockout_max_s = 1e9", "above the maximum")):
        cfg.write_text(f"[dlms]\n{text}\n")
        with pytest.raises(ConfigError, match=reason):
            load_config(cfg)


def test_a_schema_1_store_gets_the_lockout_table_and_keeps_its_counters(tmp_path: Path):
    path = tmp_path / "dlms_security.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE outgoing (name TEXT PRIMARY KEY, next INTEGER NOT NULL);"
                     "CREATE TABLE incoming (name TEXT PRIMARY KEY, last INTEGER NOT NULL);"
                     "INSERT INTO incoming VALUES ('management/in', 640); PRAGMA user_version=1;")
    db.close()
    store = DlmsSecurityStore(path)
    assert store.last_accepted("management/in") == 640
    store.save_lockout("optical", 17, "optical", (3, START, 2, START))
    store.close()
    store = DlmsSecurityStore(path)
    assert store.load_lockouts("optical") == {(17, "optical"): (3, START, 2, START)}
    store.close()  # meterd holds its databases exclusively: read the file once it is closed
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_the_meter_takes_the_policy_from_its_config_and_shares_one_lockout_per_link(tmp_path: Path):
    from meterd.app.features.dlms import session_factory
    from tests.dlms_fakes import make_keys
    from tests.simmeter import SimMeter

    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = SimMeter(tmp_path, dlms={"lockout_failures": 2, "lockout_s": 30.0}, display={"kind": "dummy"})
    try:
        def attempt(frame: bytes, link_name: str = "tcp") -> int:
            answer = session_factory(meter.daemon.context(), "wrapper", link_name)().receive(frame)[0]
            return answer[answer.index(b"\xa2\x03\x02\x01") + 4]

        assert [attempt(WRONG), attempt(WRONG)] == [REJECTED_PERMANENT] * 2
        assert attempt(RIGHT) == REJECTED_TRANSIENT  # a new factory of the same link: the same lockout
        assert attempt(RIGHT, "rs485") == ACCEPTED
        store = meter.daemon.registry.need(DlmsSecurity, by="test").store
        assert store.load_lockouts("tcp")[(17, "tcp")][0] == 2
        meter.run(30)
        assert attempt(RIGHT) == ACCEPTED
        assert store.load_lockouts("tcp") == {}
    finally:
        meter.close()

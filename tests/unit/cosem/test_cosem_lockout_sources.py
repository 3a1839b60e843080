"""Authentication failures lock out one source, never a client SAP for everyone
(meterd.cosem.security.AuthLockout keyed by client SAP and source; the TCP source from
meterd.runtime.dlms_tcp.peer_source): the three-packet attack from one address no longer keeps
the head end out; the table of sources is bounded; states survive a restart and a schema 2 store
is migrated. Time is a SimClock advanced by the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from gurux_dlms.objects import GXDLMSClock

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.cosem.security import AuthLockout, LockoutPolicy, MemoryLockoutStore
from meterd.runtime.dlms_tcp import DlmsTcpServer, peer_source
from meterd.store.dlms_security_store import DlmsSecurityStore
from tests.dlms_fakes import UTC, WrapperRig
from tests.dlms_gurux_client import connect_in_memory, make_client, send_wrong_hls_reply

ATTACKER, HEAD_END = "198.51.100.66", "192.0.2.10"
ACCEPTED, REJECTED_PERMANENT, REJECTED_TRANSIENT = 0, 1, 2
WRONG = bytes(make_client(17, password=b"guessed!").aarqRequest()[0])
RIGHT = bytes(make_client(17).aarqRequest()[0])
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _forged_management_aarq(ic: int) -> bytes:
    """An AARQ of the management client (SAP 1, HLS-GMAC) whose InitiateRequest carries a tag
    made with a guessed key: what an attacker without the keys can send."""
    return bytes(make_client(1, gak=bytes(16), invocation_counter=ic).aarqRequest()[0])


def _result(answer: bytes) -> int:
    return answer[answer.index(b"\xa2\x03\x02\x01") + 4]


def _aarq(rig: WrapperRig, frame: bytes, source: str) -> int:
    return _result(rig.factory(source).receive(frame)[0])


def test_three_forged_packets_from_one_address_do_not_lock_the_head_end_out() -> None:
    rig = WrapperRig()
    for ic in (10, 20, 30):  # the three-packet attack: forged management AARQs
        assert _aarq(rig, _forged_management_aarq(ic), ATTACKER) == REJECTED_PERMANENT
    assert _aarq(rig, _forged_management_aarq(40), ATTACKER) == REJECTED_TRANSIENT  # that address is locked out
    gs, _ = connect_in_memory(rig.factory(HEAD_END), 1, invocation_counter=100)  # the head end, elsewhere
    gs.read(GXDLMSClock(), 2)
    gs.close()
    with pytest.raises(Exception, match="rejected"):  # the right keys from the attacker's address: refused
        connect_in_memory(rig.factory(ATTACKER), 1, invocation_counter=200)
    failures = rig.sink.of(ec.code("DECRYPTION_FAILURE"))
    assert [d["source"] for d in failures] == [ATTACKER] * 3 and failures[-1]["lockout_s"] == 60.0


def test_wrong_hls_replies_lock_out_their_source_only() -> None:
    rig = WrapperRig()
    for ic in (10, 20, 30):
        send_wrong_hls_reply(rig.factory(ATTACKER), ic)
    assert rig.factory().server.lockout.remaining_s(1, ATTACKER) == 60.0
    connect_in_memory(rig.factory(HEAD_END), 1, invocation_counter=100)
    assert rig.factory().server.lockout.failures(1, HEAD_END) == 0


def test_wrong_passwords_lock_out_their_source_only_and_a_success_there_resets_it() -> None:
    rig = WrapperRig()
    for _ in range(3):
        assert _aarq(rig, WRONG, ATTACKER) == REJECTED_PERMANENT
    assert _aarq(rig, RIGHT, ATTACKER) == REJECTED_TRANSIENT
    for _ in range(10):  # never refused for someone else's failures
        assert _aarq(rig, RIGHT, HEAD_END) == ACCEPTED
    rig.clock.advance(60.0)
    assert _aarq(rig, RIGHT, ATTACKER) == ACCEPTED
    assert rig.factory().server.lockout.failures(17, ATTACKER) == 0


def test_many_sources_keep_a_bounded_table_the_locked_ones_evicted_last(tmp_path: Path) -> None:
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store, policy=LockoutPolicy(max_sources=4))
    for _ in range(3):
        _aarq(rig, WRONG, ATTACKER)  # locked out
    for i in range(100):  # one wrong password from each of 100 addresses
        assert _aarq(rig, WRONG, f"203.0.113.{i}") == REJECTED_PERMANENT
    lockout = rig.factory().server.lockout
    assert lockout.kept == 4 and len(store.load_lockouts("tcp")) == 4
    assert lockout.remaining_s(17, ATTACKER) == 60.0  # the lockout was kept: the others went first
    assert set(store.load_lockouts("tcp")) == {(17, ATTACKER), *((17, f"203.0.113.{i}") for i in (97, 98, 99))}
    store.close()


def test_a_table_full_of_lockouts_evicts_the_oldest_lockout() -> None:
    lockout = AuthLockout(MemoryLockoutStore(), LockoutPolicy(failures=1, max_sources=2), "tcp",
                          SimClock(START))
    for source in ("a", "b", "c"):
        assert lockout.failure(17, source) == 60.0
    assert lockout.kept == 2 and lockout.remaining_s(17, "a") == 0.0 and lockout.remaining_s(17, "c") == 60.0


def test_lockouts_per_source_survive_a_restart(tmp_path: Path) -> None:
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store)
    for _ in range(3):
        _aarq(rig, WRONG, ATTACKER)
    _aarq(rig, WRONG, HEAD_END)
    store.close()
    store = DlmsSecurityStore(tmp_path / "dlms_security.db")
    rig = WrapperRig(store=store, clock=SimClock(START + dt.timedelta(seconds=10), start_mono=0.0))
    assert _aarq(rig, RIGHT, ATTACKER) == REJECTED_TRANSIENT
    assert rig.factory().server.lockout.failures(17, HEAD_END) == 1
    assert _aarq(rig, RIGHT, HEAD_END) == ACCEPTED
    rig.clock.advance(50.0)
    assert _aarq(rig, RIGHT, ATTACKER) == ACCEPTED
    assert store.load_lockouts("tcp") == {}
    store.close()


def test_a_schema_2_store_moves_its_lockouts_to_the_link_as_source(tmp_path: Path) -> None:
    path = tmp_path / "dlms_security.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outgoing (name TEXT PRIMARY KEY, next INTEGER NOT NULL);"
        "CREATE TABLE incoming (name TEXT PRIMARY KEY, last INTEGER NOT NULL);"
        "CREATE TABLE auth_lockout (link TEXT NOT NULL, client_sap INTEGER NOT NULL, failures INTEGER NOT NULL, "
        "until_utc TEXT, refused INTEGER NOT NULL, PRIMARY KEY (link, client_sap));"
        "INSERT INTO incoming VALUES ('management/in', 640);"
        f"INSERT INTO auth_lockout VALUES ('rs485', 1, 3, '{START.isoformat()}', 2);"
        "INSERT INTO auth_lockout VALUES ('optical', 17, 2, NULL, 0);"
        "PRAGMA user_version=2;")
    db.close()
    store = DlmsSecurityStore(path)
    assert store.last_accepted("management/in") == 640
    assert store.load_lockouts("rs485") == {(1, "rs485"): (3, START, 2, START)}
    assert store.load_lockouts("optical")[(17, "optical")][:3] == (2, None, 0)
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_serial_link_is_one_source() -> None:
    rig = WrapperRig(link_name="rs485")
    assert rig.factory().server.source == "rs485"


@pytest.mark.parametrize(("peername", "source"), [
    (("192.0.2.7", 50123), "192.0.2.7"),
    (("2001:db8:1:2:aaaa::1", 50123, 0, 0), "2001:db8:1:2::/64"),
    (("::ffff:192.0.2.7", 50123, 0, 0), "192.0.2.7"),
    (None, "unknown"),
    ("/run/meterd.sock", "unknown"),
])
def test_the_tcp_source_is_the_peer_address_an_ipv6_one_by_its_64_prefix(peername: object, source: str) -> None:
    assert peer_source(peername) == source


def test_the_tcp_server_makes_each_session_for_its_peer() -> None:
    seen: list[str] = []
    rig = WrapperRig()

    def factory(source: str) -> object:
        seen.append(source)
        return rig.factory(source)

    async def run() -> None:
        server = await DlmsTcpServer(factory).start("127.0.0.1", 0)  # type: ignore[arg-type]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(RIGHT)
        await writer.drain()
        assert _result(await reader.read(4096)) == ACCEPTED
        writer.close()
        await server.close()

    asyncio.run(run())
    assert seen == ["127.0.0.1"]

"""The wrapper server's connection guard (meterd.proto.wrapper.ConnectionGuard), on a manual clock:
a limit, an association time-out no trickle of bytes extends, room kept for a new association
by displacing the longest-idle connection without one, and reports at most once a window."""

from __future__ import annotations

import pytest

from meterd.proto.wrapper import Admission, ConnectionGuard, TcpLimits


def _guard(**kw: float) -> ConnectionGuard:
    return ConnectionGuard(TcpLimits(**kw))  # type: ignore[arg-type]


def test_eight_sockets_trickling_a_byte_every_50_s_never_keep_a_client_out():
    """The attack: 8 connections without an association, each sending a byte every 50 s."""
    guard = _guard(max_connections=8, association_timeout_s=10.0)
    attackers = [guard.admit(0.0).conn_id for _ in range(8)]
    assert None not in attackers and guard.open == 8
    for conn in attackers:
        guard.input(conn, 0.0, associated=False)  # type: ignore[arg-type]
    # a byte every 50 s cannot move the association deadline: all are due at 10 s
    assert {guard.deadline_s(c) for c in attackers} == {10.0}  # type: ignore[arg-type]
    # a legitimate client arriving while all 8 are held gets in at once, displacing the longest idle
    admission = guard.admit(3.0)
    assert admission.conn_id is not None and admission.displaced == attackers[0]
    guard.input(admission.conn_id, 3.1, associated=True)
    assert guard.deadline_s(admission.conn_id) is None
    for t in (50.0, 100.0):  # the trickle goes on: it never resets the time-out
        for conn in attackers[1:]:
            guard.input(conn, t, associated=False)  # type: ignore[arg-type]
        assert {guard.deadline_s(c) for c in attackers[1:]} == {10.0}  # type: ignore[arg-type]


def test_the_attacker_reconnecting_displaces_attackers_never_the_association():
    guard = _guard(max_connections=3)
    a = guard.admit(0.0).conn_id
    b = guard.admit(1.0).conn_id
    c = guard.admit(2.0).conn_id
    assert None not in (a, b, c)
    guard.input(b, 2.5, associated=True)  # type: ignore[arg-type]
    guard.input(a, 4.0, associated=False)  # type: ignore[arg-type]  # a spoke later than c
    assert guard.admit(5.0).displaced == c
    assert guard.admit(6.0).displaced == a


def test_a_new_connection_is_refused_only_when_every_connection_is_associated():
    guard = _guard(max_connections=2)
    for t in (0.0, 1.0):
        conn = guard.admit(t).conn_id
        assert conn is not None
        guard.input(conn, t, associated=True)
    assert guard.admit(2.0) == Admission(None)
    assert guard.open == 2


def test_a_released_association_starts_the_time_out_again():
    guard = _guard(association_timeout_s=10.0)
    conn = guard.admit(0.0).conn_id
    assert conn is not None and guard.deadline_s(conn) == 10.0
    guard.input(conn, 5.0, associated=True)
    assert guard.deadline_s(conn) is None
    guard.input(conn, 300.0, associated=False)  # RLRQ answered: no association any more
    assert guard.deadline_s(conn) == 310.0
    guard.input(conn, 305.0, associated=False)
    assert guard.deadline_s(conn) == 310.0


def test_closed_and_displaced_connections_lose_their_place():
    guard = _guard(max_connections=1)
    first = guard.admit(0.0).conn_id
    second = guard.admit(1.0)
    assert second.displaced == first and first is not None and not guard.held(first)
    assert second.conn_id is not None
    guard.closed(second.conn_id)
    assert guard.open == 0 and guard.deadline_s(second.conn_id) is None


def test_reports_are_one_per_window_with_the_count_held_back():
    guard = _guard(report_window_s=60.0)
    assert guard.report("refused", 0.0) == 1
    assert [guard.report("refused", t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert guard.report("displaced", 2.0) == 1  # each kind on its own
    assert guard.report("refused", 60.0) == 4  # three held back, and this one


@pytest.mark.parametrize("bad", [{"max_connections": 0}, {"association_timeout_s": 0.0},
                                 {"report_window_s": -1.0}])
def test_limits_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        TcpLimits(**bad)  # type: ignore[arg-type]

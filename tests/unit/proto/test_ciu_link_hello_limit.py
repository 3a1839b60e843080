"""Pre-authentication answers of the CIU link are rate-limited (meterd.proto.ciu_link.LinkEndpoint):
a replayed HELLO is answered at most once, HELLOs beyond a token bucket are dropped unanswered,
replays never touch the session being set up, and the CIU's own re-HELLO gets through at once.
Time is a SimClock advanced by the test."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    FrameKind,
    LinkConfig,
    LinkEndpoint,
    LinkError,
    LinkState,
    LinkUp,
    Role,
    build_frame,
)

KEY = bytes(range(32))


def rand(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def hello(nonce_seed: int) -> bytes:
    """A HELLO with a valid MAC, as an eavesdropper records it from the wire."""
    return build_frame(KEY, Role.CIU, FrameKind.HELLO, 0, 0, 0, rand(nonce_seed)(16))


def test_a_replayed_hello_is_answered_once() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    recorded = hello(7)
    meter.receive_bytes(recorded)
    assert meter.data_to_send()  # the first time: HELLO_ACK
    for _ in range(100):
        clock.advance(0.05)
        meter.receive_bytes(recorded)
        assert meter.data_to_send() == b""
    assert meter.stats.rejected == {"replay": 100}


def test_fresh_hellos_beyond_the_bucket_are_dropped_and_the_line_stays_mostly_free() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    answered = octets = 0
    for i in range(200):  # 200 distinct recorded HELLOs at 20/s for 10 s
        meter.receive_bytes(hello(1000 + i))
        out = meter.data_to_send()
        answered += bool(out)
        octets += len(out)
        clock.advance(0.05)
    assert answered <= 3 + 10  # the burst, then one a second
    assert octets / 10.0 < 0.1 * 960  # under a tenth of 9600 Bd (960 octets/s)
    assert meter.stats.rejected["rate"] == 200 - answered


def test_replays_do_not_disturb_a_session_being_set_up_and_a_re_hello_gets_through() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), KEY)
    recorded = [hello(7), hello(8)]
    for frame in recorded:
        meter.receive_bytes(frame)
    meter.data_to_send()
    start = clock.mono()
    for _ in range(40):  # the replayer fills the link, the CIU says HELLO in the middle
        for frame in recorded:
            meter.receive_bytes(frame)
        clock.advance(0.05)
        ciu.poll()
        meter.receive_bytes(ciu.data_to_send())
        ciu_events = ciu.receive_bytes(meter.data_to_send())
        meter.receive_bytes(ciu.data_to_send())  # the CIU's confirming heartbeat
        if any(isinstance(e, LinkUp) for e in ciu_events):
            break
    assert ciu.state is LinkState.UP and meter.state is LinkState.UP
    assert clock.mono() - start <= 1.1  # within the CIU's first HELLO retry


def test_pairing_answers_are_rate_limited_too() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), None)
    meter.start_pairing("12345678")
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), None)
    pair_init = ciu.start_pairing("12345678")
    answers = 0
    for _ in range(20):  # a replayed PAIR_INIT at 20/s for a second
        meter.receive_bytes(pair_init)
        answers += bool(meter.data_to_send())
        clock.advance(0.05)
    assert answers <= 4


def test_the_limit_is_validated() -> None:
    with pytest.raises(LinkError):
        LinkEndpoint(Role.METER, SimClock(), rand(1), KEY, LinkConfig(pre_auth_burst=0))

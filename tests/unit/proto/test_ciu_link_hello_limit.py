"""Pre-authentication answers of the CIU link are rate-limited (meterd.proto.ciu_link.LinkEndpoint):
a replayed HELLO is answered at most once, HELLOs beyond a token bucket are dropped unanswered,
replays never touch the session being set up, and the CIU's own re-HELLO gets through at once.
Time is a SimClock advanced by the test. On the half-duplex bus the meter sends what it has in
its own turn (after the turnaround), with its polls; the tests count the answers by frame kind."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    Deframer,
    Frame,
    FrameKind,
    LinkConfig,
    LinkEndpoint,
    LinkError,
    LinkState,
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


def answers(meter: LinkEndpoint, clock: SimClock, kind: FrameKind = FrameKind.HELLO_ACK) -> tuple[int, int]:
    """Let the meter take its turn (turnaround passed, ``poll``); (frames of ``kind``, their octets)
    in what it sends then."""
    clock.advance(2 * meter.config.turnaround_s)
    meter.poll()
    out = meter.data_to_send()
    frames = [f for f in Deframer().feed(out) if isinstance(f, Frame) and f.kind == kind]
    return len(frames), len(out) if frames else 0


def test_a_replayed_hello_is_answered_once() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    recorded = hello(7)
    meter.receive_bytes(recorded)
    assert answers(meter, clock)[0] == 1  # the first time: HELLO_ACK
    for _ in range(100):
        clock.advance(0.05)
        meter.receive_bytes(recorded)
        assert answers(meter, clock)[0] == 0
    assert meter.stats.rejected == {"replay": 100}


def test_fresh_hellos_beyond_the_bucket_are_dropped_and_the_line_stays_mostly_free() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    answered = octets = 0
    for i in range(200):  # 200 distinct recorded HELLOs at 20/s for 10 s
        meter.receive_bytes(hello(1000 + i))
        n, size = answers(meter, clock)
        answered += n
        octets += size
        clock.advance(0.05 - 2 * meter.config.turnaround_s)
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
    answers(meter, clock)
    start = clock.mono()
    for step in range(300):  # the replayer sends both HELLOs every 50 ms; the CIU says HELLO meanwhile
        if step % 5 == 0:
            for frame in recorded:
                meter.receive_bytes(frame)
        clock.advance(0.01)
        meter.poll()
        ciu.receive_bytes(meter.data_to_send())
        ciu.poll()
        meter.receive_bytes(ciu.data_to_send())
        if ciu.state is LinkState.UP and meter.state is LinkState.UP:
            break
    assert ciu.state is LinkState.UP and meter.state is LinkState.UP
    assert clock.mono() - start <= 1.1  # within the CIU's first HELLO retry
    assert meter.stats.rejected.get("replay", 0) >= 2 * (step // 5)


def test_pairing_answers_are_rate_limited_too() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), None)
    meter.start_pairing("12345678")
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), None)
    pair_init = ciu.start_pairing("12345678")
    answered = 0
    for _ in range(20):  # a replayed PAIR_INIT at 20/s for a second
        meter.receive_bytes(pair_init)
        answered += answers(meter, clock, FrameKind.PAIR_RESP)[0]
        clock.advance(0.05 - 2 * meter.config.turnaround_s)
    assert answered <= 4


def test_the_limit_is_validated() -> None:
    with pytest.raises(LinkError):
        LinkEndpoint(Role.METER, SimClock(), rand(1), KEY, LinkConfig(pre_auth_burst=0))

"""Test harness: a meter and a CIU link endpoint on a simulated 2-wire RS-485 bus (one talker at a
time, collisions garble, driver delays, echo) on a SimClock."""

from __future__ import annotations

import random
from collections.abc import Callable

from hw.serial_link import BusDrivers, SimWire, WireFaults
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import LinkConfig, LinkEndpoint, LinkEvent, Role

PAIR_KEY = bytes(range(32))  # throwaway test key
#: Driver timing of a kernel RS-485 port with ``rs485-rts-delay = <1 1>`` (ms) and its latency.
DRIVERS = BusDrivers(turn_on_s=0.001, turn_off_s=0.002)


def rand_source(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class LinkPair:
    """Meter end on wire side a, CIU end on side b; ``run(seconds)`` steps everything."""

    def __init__(self, faults: WireFaults | None = None, seed: int = 1, key: bytes | None = PAIR_KEY,
                 config: LinkConfig | None = None) -> None:
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=9600, faults=faults, seed=seed, drivers=DRIVERS)
        self.meter = LinkEndpoint(Role.METER, self.clock, rand_source(seed + 100), key, config)
        self.ciu = LinkEndpoint(Role.CIU, self.clock, rand_source(seed + 200), key, config)
        self.meter_events: list[LinkEvent] = []
        self.ciu_events: list[LinkEvent] = []

    def step(self, dt_s: float = 0.01) -> None:
        self.clock.advance(dt_s)
        for end, port, log in ((self.meter, self.wire.a, self.meter_events), (self.ciu, self.wire.b, self.ciu_events)):
            log.extend(end.receive_bytes(port.read()))
            log.extend(end.poll())
            out = end.data_to_send()
            if out:
                port.write(out)

    def run(self, seconds: float, dt_s: float = 0.01) -> None:
        for _ in range(int(round(seconds / dt_s))):
            self.step(dt_s)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

import pytest  # noqa: E402

from meterd.proto.ciu_link import (  # noqa: E402
    FrameKind,
    FrameRejected,
    LinkDown,
    LinkState,
    LinkUp,
    MessageDelivered,
    MessageReceived,
    MsgKind,
    build_frame,
    token_submit,
)


def tokens(n: int) -> list[str]:
    return [f"{i:020d}" for i in range(1, n + 1)]


def received(events: list[LinkEvent], kind: MsgKind) -> list[str]:
    return [str(e.message.fields["digits"]) for e in events
            if isinstance(e, MessageReceived) and e.message.kind is kind]


def test_session_comes_up_and_a_token_is_delivered_once() -> None:
    pair = LinkPair()
    pair.run(0.5)
    assert pair.ciu.state is LinkState.UP and pair.meter.state is LinkState.UP
    assert any(isinstance(e, LinkUp) for e in pair.meter_events)
    pair.wire.b.write(pair.ciu.send(token_submit(7, "12345678901234567890")))
    pair.run(0.5)
    assert received(pair.meter_events, MsgKind.TOKEN_SUBMIT) == ["12345678901234567890"]
    assert [e for e in pair.ciu_events if isinstance(e, MessageDelivered)]
    assert pair.ciu.pending_messages == 0
    assert pair.wire.collisions == 0 and pair.ciu.stats.echoes > 0  # one talker at a time, own echo ignored


@pytest.mark.parametrize("seed", range(6))
def test_noisy_wire_loses_and_duplicates_no_token(seed: int) -> None:
    faults = WireFaults(corrupt_p=0.004, drop_p=0.004, jitter_s=0.003)
    pair = LinkPair(faults=faults, seed=seed)
    pair.run(1.0)
    sent = tokens(15)
    for digits in sent:
        pair.wire.b.write(pair.ciu.send(token_submit(int(digits), digits)))
        pair.run(0.3)
    pair.run(30.0, dt_s=0.02)
    assert received(pair.meter_events, MsgKind.TOKEN_SUBMIT) == sent
    assert pair.ciu.pending_messages == 0
    rejected = [e for e in pair.meter_events + pair.ciu_events if isinstance(e, FrameRejected)]
    assert rejected, "the fault model should have damaged some frames"


def test_link_loss_and_recovery_produce_events_and_keep_queued_tokens() -> None:
    pair = LinkPair()
    pair.run(1.0)
    pair.wire.cut = True
    pair.run(10.0, dt_s=0.05)
    assert any(isinstance(e, LinkDown) for e in pair.ciu_events)
    assert any(isinstance(e, LinkDown) for e in pair.meter_events)
    assert pair.ciu.state is LinkState.DOWN and pair.meter.state is LinkState.DOWN
    pair.ciu.send(token_submit(1, "11112222333344445555"))  # queued while down
    pair.run(2.0, dt_s=0.05)
    pair.wire.cut = False
    pair.run(3.0)
    ups = [e for e in pair.ciu_events if isinstance(e, LinkUp)]
    assert len(ups) == 2 and pair.meter.state is LinkState.UP
    assert received(pair.meter_events, MsgKind.TOKEN_SUBMIT) == ["11112222333344445555"]


def test_forged_frame_is_refused() -> None:
    pair = LinkPair()
    pair.run(0.5)
    forged = build_frame(bytes(32), pair.ciu.role, FrameKind.DATA, 99, 1, 0,
                         token_submit(1, "99999999999999999999").encode())
    pair.meter_events.clear()
    pair.meter_events.extend(pair.meter.receive_bytes(forged))
    assert [e for e in pair.meter_events if isinstance(e, FrameRejected) and e.reason == "mac"]
    assert not received(pair.meter_events, MsgKind.TOKEN_SUBMIT)


def test_recorded_frames_replayed_are_refused_in_and_across_sessions() -> None:
    pair = LinkPair()
    pair.run(0.5)
    recorded = bytearray()
    original = pair.wire.b.write

    def tap(data: bytes) -> int:
        recorded.extend(data)
        return original(data)

    pair.wire.b.write = tap  # type: ignore[method-assign]
    pair.wire.b.write(pair.ciu.send(token_submit(5, "55555555555555555555")))
    pair.run(0.5)
    assert received(pair.meter_events, MsgKind.TOKEN_SUBMIT) == ["55555555555555555555"]
    pair.meter_events.clear()
    pair.meter_events.extend(pair.meter.receive_bytes(bytes(recorded)))  # same session
    assert not received(pair.meter_events, MsgKind.TOKEN_SUBMIT)
    assert any(isinstance(e, FrameRejected) and e.reason == "replay" for e in pair.meter_events)
    # the CIU restarts: a new session; the old frames fail the new session key
    pair.ciu = LinkEndpoint(Role.CIU, pair.clock, rand_source(999), PAIR_KEY)
    pair.run(1.0)
    pair.meter_events.clear()
    pair.meter_events.extend(pair.meter.receive_bytes(bytes(recorded)))
    assert not received(pair.meter_events, MsgKind.TOKEN_SUBMIT)
    assert pair.meter.state is LinkState.UP


def test_wrong_pair_key_never_links() -> None:
    pair = LinkPair()
    pair.ciu = LinkEndpoint(Role.CIU, pair.clock, rand_source(5), bytes(32))
    pair.run(3.0)
    assert pair.meter.state is LinkState.DOWN and pair.ciu.state is LinkState.DOWN


@pytest.mark.parametrize("seed", range(3))
def test_very_noisy_wire_with_session_drops_still_delivers_each_token_once(seed: int) -> None:
    pair = LinkPair(faults=WireFaults(corrupt_p=0.01, drop_p=0.01), seed=seed)
    sent = tokens(30)
    for digits in sent:
        pair.ciu.send(token_submit(int(digits), digits))
    pair.run(240.0, dt_s=0.02)
    assert any(isinstance(e, LinkDown) for e in pair.ciu_events), "the noise should have broken sessions"
    assert received(pair.meter_events, MsgKind.TOKEN_SUBMIT) == sent
    assert pair.ciu.pending_messages == 0

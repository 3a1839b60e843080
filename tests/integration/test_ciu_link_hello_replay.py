"""Replayed HELLOs on the 2-wire 9600 Bd bus (hw.serial_link.SimWire: half duplex, byte timing)
leave an established MCU-CIU link up, messages keep flowing, and after a real outage the CIU's own
re-HELLO brings the link back within a couple of seconds (meterd.proto.ciu_link pre-authentication
limit and HELLO memory).

On a half-duplex bus the line is shared: a recorded HELLO is 42 octets (43.75 ms at 9600 Bd), so a
device replaying 20 per second would occupy 87.5 % of the line by itself — a jammer, which no link
protocol outlives and which the meter's answers cannot make worse. What the meter controls is that
it never answers a replay and spends at most its pre-authentication budget on HELLOs. The
replayer here writes on the CIU's side of the cable at arbitrary moments, so some of its frames
collide with the link's (both garbled, as on a real bus), at a rate the bus carries next to the
link's own polling: 2 per second, 8.75 % of the line (at 4 per second the collisions alone
take the link down, replay protection or not)."""

from __future__ import annotations

import random
from collections.abc import Callable

from hw.serial_link import SimWire
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    FrameKind,
    LinkDown,
    LinkEndpoint,
    LinkEvent,
    LinkState,
    LinkUp,
    MessageReceived,
    Role,
    build_frame,
    token_submit,
)

KEY = bytes(range(100, 132))
REPLAY_PER_S = 2  # 8.75 % of the line; see the module docstring for 20/s
DT_S = 0.01


def rand(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class ReplayRig:
    """Meter and CIU endpoints on a simulated 9600 Bd null modem; an eavesdropper that recorded
    HELLOs writes them into the CIU-to-meter direction."""

    def __init__(self) -> None:
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=9600, seed=5)
        self.meter = LinkEndpoint(Role.METER, self.clock, rand(1), KEY)
        self.ciu = LinkEndpoint(Role.CIU, self.clock, rand(2), KEY)
        self.meter_events: list[LinkEvent] = []
        self.ciu_events: list[LinkEvent] = []
        self.recorded: list[bytes] = []
        self._next_replay = 0.0

    def step(self, replay: bool) -> None:
        self.clock.advance(DT_S)
        if replay and self.clock.mono() >= self._next_replay:
            self.wire.b.write(self.recorded[int(self._next_replay * REPLAY_PER_S) % len(self.recorded)])
            self._next_replay = self.clock.mono() + 1.0 / REPLAY_PER_S
        self.meter_events += self.meter.receive_bytes(self.wire.a.read()) + self.meter.poll()
        self.wire.a.write(self.meter.data_to_send())
        self.ciu_events += self.ciu.receive_bytes(self.wire.b.read()) + self.ciu.poll()
        out = self.ciu.data_to_send()
        if out and not self.recorded:
            self.recorded.append(out)  # the CIU's first HELLO, recorded from the wire
        self.wire.b.write(out)

    def run(self, seconds: float, replay: bool = True) -> None:
        for _ in range(int(round(seconds / DT_S))):
            self.step(replay)


def test_replayed_hellos_leave_the_link_up_and_a_re_hello_through() -> None:
    rig = ReplayRig()
    rig.run(2.0, replay=False)
    assert rig.meter.state is LinkState.UP and rig.ciu.state is LinkState.UP
    rig.recorded += [build_frame(KEY, Role.CIU, FrameKind.HELLO, 0, 0, 0, rand(50 + i)(16)) for i in range(4)]
    rig.meter_events.clear()
    rig.ciu_events.clear()
    for i in range(30):  # 60 s of replays; a token submitted every 2 s
        rig.ciu.send(token_submit(i, f"{i:020d}"))
        rig.run(2.0)
    assert not [e for e in rig.meter_events + rig.ciu_events if isinstance(e, (LinkDown, LinkUp))]
    assert len([e for e in rig.meter_events if isinstance(e, MessageReceived)]) == 30
    rejected = rig.meter.stats.rejected
    assert rejected.get("replay", 0) + rejected.get("crc", 0) >= 0.9 * 60 * REPLAY_PER_S  # refused or garbled
    assert rejected.get("replay", 0) >= 0.5 * 60 * REPLAY_PER_S  # most arrive intact and are refused as replays
    # a real outage: both ends time out; the replays go on; the CIU's re-HELLO gets through
    rig.wire.cut = True
    rig.run(8.0)
    assert rig.meter.state is LinkState.DOWN and rig.ciu.state is LinkState.DOWN
    rig.wire.cut = False
    rig.ciu_events.clear()
    restored = rig.clock.mono()
    for _ in range(300):
        rig.step(True)
        if rig.ciu.state is LinkState.UP and rig.meter.state is LinkState.UP:
            break
    assert rig.ciu.state is LinkState.UP and rig.meter.state is LinkState.UP
    assert rig.clock.mono() - restored <= 2.5  # within the CIU's second HELLO retry

"""The CIU loop answers the meter's poll in the same step when drawing the screen outlasted the
turnaround, so a slow display does not push the answer out of the reply window."""

from __future__ import annotations

from ciu.core.state import CiuState
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.daemon import CiuLoop
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import Deframer, Frame, FrameKind, LinkEndpoint, Role, build_frame

KEY = bytes(range(32))


class Port:
    def __init__(self) -> None:
        self.inbox = bytearray()
        self.written: list[bytes] = []

    def read(self, size: int) -> bytes:
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        return data

    def write(self, data: bytes) -> int:
        self.written.append(data)
        return len(data)


class SlowDisplay:
    """Drawing takes 40 ms of the loop's time."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.frames = 0

    def display(self, image: object) -> None:
        self.frames += 1
        self.clock.advance(0.04)


class NoKeys:
    def poll(self) -> list[str]:
        return []


def test_poll_answered_in_the_same_step_after_a_slow_drawing() -> None:
    clock = SimClock()
    port = Port()
    client = CiuLinkClient(CiuState(clock, lambda: 1), LinkEndpoint(Role.CIU, clock, lambda n: bytes(n), KEY), port)
    display = SlowDisplay(clock)
    loop = CiuLoop(client, NoKeys(), display)
    loop.step()  # first frame drawn, nothing on the line
    clock.advance(0.02)
    port.inbox += build_frame(bytes(32), Role.METER, FrameKind.POLL, 0, 0, 0, b"")
    client.state.link_changed(False)  # a view change: this step draws
    client.state.paired_changed(False)
    assert loop.step() and display.frames == 2
    frames = [f for f in Deframer().feed(b"".join(port.written)) if isinstance(f, Frame)]
    assert [f.kind for f in frames] == [FrameKind.HELLO] and frames[0].final
    assert client.link.stats.late_turns == 0

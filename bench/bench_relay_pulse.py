"""Relay coil pulse width with the asyncio event loop blocked (real time, mock pins).

The relay runs as in meterd on a Pi without lgpio: its operation timers on the asyncio loop
(``meterd.runtime.load_control.LoopScheduler``), the coil pulse ended by ``hw.relay.coil_pulser``
(a deadline thread on mock pins; lgpio's hardware-timed ``tx_pulse`` on a Pi). Each run starts a
close or open operation and then blocks the loop for 0.2 / 1 / 3 s, either sleeping (a slow
fsync or blocking read: the GIL is free) or spinning in Python (the GIL is held). The width is
measured from the mock coil pin's recorded edge times (``time.monotonic``). For comparison the
``loop_timed`` lines end the pulse through ``call_later`` on the same blocked loop. Goal: every
``thread`` width within ±2 ms of the 50 ms setting while the loop is blocked in I/O (``sleep``,
what fsync, SQLite and serial reads do). A block that holds the GIL (``busy``) delays a Python
thread by the switch interval plus the host's CPU contention, so those lines are printed for
information; on a Pi the lgpio pulser times the pulse in C, where neither applies. Prints
"name: value unit" lines and the host's load average."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpiozero.pins.mock import MockFactory  # noqa: E402

from hw.relay import CoilPulser, LatchingRelay, OperationResult, RelayTiming, SimRelay, coil_pulser  # noqa: E402
from hw.timed_output import DeadlineWorker  # noqa: E402
from meterd.runtime.load_control import LoopScheduler  # noqa: E402

WIDTH_S = 0.050
BLOCKS_S = (0.2, 1.0, 3.0)
RUNS = 4


class HostClock:
    """The host's monotonic clock (s)."""

    def mono(self) -> float:
        return time.monotonic()


class PhysicsScheduler:
    """The simulated relay's mechanics (contact moving 10 ms after the coil is energised) on their
    own thread: the physical contact does not wait for the meter's event loop."""

    def __init__(self) -> None:
        self.worker = DeadlineWorker("relay-physics", fine_switch_interval_s=None)

    def call_later(self, delay: float, callback: Any, *args: Any) -> Any:
        self.worker.at(time.monotonic() + delay, lambda: callback(*args))
        return None


def _block(kind: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    if kind == "sleep":
        time.sleep(seconds)
        return
    x = 0
    while time.monotonic() < end:  # pure Python work holding the GIL
        x += 1


async def _widths(kind: str, block_s: float, timed: str) -> tuple[list[float], list[bool]]:
    factory = MockFactory()
    clock = HostClock()
    scheduler = LoopScheduler()
    physics = PhysicsScheduler()
    sim = SimRelay(factory, 23, 24, 25, clock, physics)
    pulser: CoilPulser | None = coil_pulser(factory) if timed == "thread" else None
    relay = LatchingRelay.from_pins(23, 24, 25, clock, scheduler, RelayTiming(WIDTH_S, 1.0, 0.02),
                                    pin_factory=factory, pulser=pulser)
    oks: list[bool] = []
    for i in range(RUNS):
        done = asyncio.Event()

        def finished(result: OperationResult, done: asyncio.Event = done) -> None:
            oks.append(result.ok)
            done.set()

        relay.operate(i % 2 == 0, finished)
        _block(kind, block_s)
        await asyncio.wait_for(done.wait(), 10.0)
        await asyncio.sleep(relay.ready_in_s() + 0.01)
    edges = sim.coil_edges
    widths = [off - on for (on, _, up), (off, _, down) in zip(edges[::2], edges[1::2], strict=True)
              if up and not down]
    relay.close()
    physics.worker.close()
    scheduler.cancel_all()
    factory.reset()
    return widths, oks


def main() -> None:
    print(f"setting: {WIDTH_S * 1000:.1f} ms")
    worst: dict[str, float] = {}
    for timed in ("thread", "loop_timed"):
        for kind in ("sleep", "busy"):
            for block_s in BLOCKS_S:
                widths, oks = asyncio.run(_widths(kind, block_s, timed))
                ms = [w * 1000 for w in widths]
                key = f"{timed}_{kind}_block_{block_s:g}s"
                print(f"{key}_width_ms: min {min(ms):.3f} mean {statistics.fmean(ms):.3f} max {max(ms):.3f} "
                      f"(n={len(ms)}, feedback ok {sum(oks)}/{len(oks)})")
                group = f"{timed}_{kind}"
                worst[group] = max(worst.get(group, 0.0), max(abs(m - WIDTH_S * 1000) for m in ms))
    for key, err in worst.items():
        print(f"{key}_worst_error_ms: {err:.3f}")
    print(f"host_load_average_1min: {os.getloadavg()[0]:.2f} (cores {os.cpu_count()})")
    ok = worst["thread_sleep"] <= 2.0
    print(f"thread_sleep_within_2ms: {'yes' if ok else 'NO'}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

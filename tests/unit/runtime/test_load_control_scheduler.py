"""The relay timers on the asyncio loop (meterd.runtime.load_control.LoopScheduler) are cancelled
at shutdown: no callback runs after :meth:`cancel_all`, and a timer asked for later is cancelled at
once. Runs the loop without waiting: only timers due now are let run."""

from __future__ import annotations

import asyncio
from typing import Any

from meterd.runtime.load_control import LoopScheduler


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_pending_timers_run_and_are_forgotten_and_cancel_all_stops_the_rest() -> None:
    fired: list[str] = []

    async def run() -> None:
        timers = LoopScheduler()
        timers.call_later(0.0, fired.append, "due")
        await _turns()
        assert fired == ["due"] and timers.pending == 0
        timers.call_later(0.0, fired.append, "pulse end")
        timers.call_later(3600.0, fired.append, "settle")
        assert timers.pending == 2
        timers.cancel_all()
        late = timers.call_later(0.0, fired.append, "after shutdown")
        assert late.cancelled() and timers.pending == 0
        await _turns()

    asyncio.run(run())
    assert fired == ["due"]


def test_a_relay_pulse_cut_short_by_shutdown_runs_no_callback_on_released_pins() -> None:
    """The relay driver on the loop's timers: operated, then the meter stops (timers cancelled
    first, then the pins released, as the load-control unit's closers do); nothing runs after."""
    from hw.monotonic import MonotonicClock
    from hw.relay import build_sim_relay

    results: list[object] = []
    handles: list[asyncio.TimerHandle] = []

    class Timers(LoopScheduler):
        def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            handles.append(super().call_later(delay, callback, *args))
            return handles[-1]

    async def run() -> None:
        timers = Timers()
        relay, _sim = build_sim_relay(MonotonicClock(), timers)
        relay.operate(True, results.append)  # the coil pulse ends on a timer
        assert timers.pending > 0
        timers.cancel_all()
        relay.close()
        await _turns()

    asyncio.run(run())
    assert handles and all(h.cancelled() for h in handles)  # not one left to fire later
    assert results == []

"""The metering loop on its own thread: ticks go on while the event loop is blocked; a dead or
stalled thread is unhealthy; lateness is recorded. No timing assertions: thread hand-offs wait on
events with generous bounds."""

from __future__ import annotations

import asyncio
import threading

import pytest

from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.runtime.metrology_loop import MetrologyLoop, set_realtime_priority
from tests.fakes import ManualMono
from tests.simmeter import SimMeter

IMP = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)


def test_blocked_event_loop_does_not_stop_ticks(tmp_path):
    """The event loop blocks on an event only the metering thread sets, after five ticks: the
    ticks happened, and the event loop's next drain applies all of them at once."""
    meter = SimMeter(tmp_path / "state")
    try:
        daemon = meter.daemon
        assert daemon.metrology is not None
        loop = daemon.metrology
        meter.run(2)
        before = meter.meter.registers.snapshot()[IMP]
        start_mono = meter.clock.mono()
        loop.period_s = 0.001
        released = threading.Event()

        def on_tick() -> None:
            if loop.ticks >= 5:
                released.set()

        loop.on_tick = on_tick
        ticks_before = loop.ticks

        async def blocked_event_loop() -> bool:
            return released.wait(timeout=60)  # blocks the asyncio loop itself

        loop.start()
        try:
            assert asyncio.run(blocked_event_loop()), "no tick while the event loop was blocked"
        finally:
            loop.stop()
        ticked = loop.ticks - ticks_before
        assert ticked >= 3
        assert meter.meter.registers.snapshot()[IMP] == before  # nothing applied yet
        result = daemon.apply()
        assert result is not None and result.ticks == ticked
        assert meter.meter.registers.snapshot()[IMP] == before + result.deltas[IMP] > before
        assert meter.clock.mono() == pytest.approx(start_mono + ticked * daemon.cfg.meter.cycle_s)
        assert loop.stats.summary().count == ticked
        assert not loop.alive
    finally:
        meter.close()


def test_a_dead_thread_is_unhealthy():
    def broken() -> None:
        raise RuntimeError("chip driver bug")

    loop = MetrologyLoop(broken, 0.001)
    assert loop.healthy()  # inline: always
    loop.start()
    assert loop._thread is not None
    loop._thread.join(60)
    assert not loop.alive and not loop.healthy()
    assert isinstance(loop.error, RuntimeError)


def test_a_stalled_tick_is_unhealthy_after_three_periods():
    mono = ManualMono(100.0)
    entered, release = threading.Event(), threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(60)

    loop = MetrologyLoop(stuck, 0.001, mono=mono)
    loop.start()
    try:
        assert entered.wait(60)
        assert loop.healthy(now=100.0 + 2 * 0.001)
        mono.advance(1.0)
        assert not loop.healthy()
    finally:
        release.set()
        loop.stop()


def test_inline_tick_records_lateness_and_honours_a_stall():
    ticks: list[int] = []
    stalled = [False]
    loop = MetrologyLoop(lambda: ticks.append(1), 1.0, stalled=lambda: stalled[0])
    assert loop.tick(lateness_ms=700.0)
    assert loop.tick()  # unscheduled (a stepped meter): not in the stats
    stalled[0] = True
    assert not loop.tick(lateness_ms=5.0)
    assert len(ticks) == 2 and loop.ticks == 2
    summary = loop.stats.summary()
    assert (summary.count, summary.late, summary.max_ms) == (1, 1, 700.0)


def test_period_must_be_positive():
    with pytest.raises(ValueError):
        MetrologyLoop(lambda: None, 0.0)


def test_realtime_priority_answers_either_way(caplog):
    """SCHED_FIFO or the reason it was refused (unprivileged: refused, logged once)."""
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.extend([set_realtime_priority(1), set_realtime_priority(1)]))
    thread.start()
    thread.join(60)
    assert len(results) == 2
    assert all(r == "SCHED_FIFO" or r.startswith(("refused", "not available")) for r in results)
    assert sum("real-time priority refused" in r.message for r in caplog.records) <= 1

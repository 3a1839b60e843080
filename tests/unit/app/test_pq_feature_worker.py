"""The waveform analysis of a running meter on its worker thread: a worker made slow on purpose
never holds the metering cycle (the analysis never runs on the loop's thread, and metering goes
on while the worker is blocked), blocks it cannot take are dropped and the values after the gap
are flagged; which runs decide inline or on the worker. How long the loop is held (the wall-clock
holds, against the 10 ms limit) is in the status and measured by bench/bench_pq.py, not asserted
here, where a loaded machine would decide the result."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from meterd.app.features import power_quality as pq_feature
from meterd.app.features.power_quality import PowerQualitySection, WaveformFeed, uses_worker
from meterd.core.lateness import LatenessStats
from meterd.pq.source import WaveformBlock
from meterd.services.power_quality import PowerQualityService, PqOutcome
from tests.simmeter import SimMeter

WAIT_S = 60.0  # a bound, not a delay


def test_a_slow_worker_never_holds_the_cycle_and_a_lost_block_is_flagged(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, display={"kind": "dummy"}, power_quality={"enabled": True})
    try:
        feed = meter.daemon.registry.need(WaveformFeed, by="test")
        service = meter.service(PowerQualityService)
        started, release = threading.Event(), threading.Event()
        analyse = service.analyse

        analysed_on: set[int] = set()

        def slow(block: WaveformBlock) -> PqOutcome:
            analysed_on.add(threading.get_ident())
            started.set()
            assert release.wait(WAIT_S)
            return analyse(block)

        service.analyse = slow  # type: ignore[method-assign]
        feed.start_worker(capacity=3)
        assert feed.worker is not None
        cycles = meter.meter.cycles
        on_loop = LatenessStats(late_ms=WaveformFeed.HOLD_LIMIT_MS)

        def step(n: int) -> None:
            for _ in range(n):
                cpu = time.thread_time()
                meter.daemon.step(1.0)
                on_loop.record((time.thread_time() - cpu) * 1000.0)

        step(1)  # hands the worker its first block
        assert started.wait(WAIT_S)
        step(7)  # three blocks wait, four are dropped: metering does not wait
        assert meter.meter.cycles == cycles + 8
        stats = feed.worker.stats()
        assert (stats.analysed, stats.queued, stats.dropped) == (0, 3, 4)
        assert service.values().rms_10cycle == {}

        release.set()
        for _ in range(9):  # from now on the worker keeps up: each block analysed before the next cycle
            assert feed.worker.wait_idle(WAIT_S)
            step(1)
        summary = on_loop.summary()
        assert summary.count == 17
        assert analysed_on and threading.get_ident() not in analysed_on  # never on the loop's thread
        assert feed.holds.summary().count == 17  # the wall-clock holds, shown in the status
        values = service.values()
        assert values.rms_10cycle["U1"] == pytest.approx(230.0, rel=0.01)
        assert values.frequency_hz == pytest.approx(50.0, abs=0.01)
        assert values.frequency_flagged is True  # its 10-s interval spans the gap
        view = meter.daemon.status_extras["power_quality"]()["analysis"]
        assert view["runs"] == "worker" and view["dropped"] == 4 and view["analysed"] == 12
    finally:
        meter.close()
    assert feed.worker is None  # stopped by the daemon's closers


def test_the_cycle_wakes_the_worker_from_the_loops_next_round(tmp_path: Path) -> None:
    """Within a running event loop the cycle hook queues the block without waking the worker;
    the wake comes from the loop's next round (after the cycle), so the worker does not take the
    interpreter lock from the loop in the middle of its work."""
    meter = SimMeter(tmp_path, display={"kind": "dummy"}, power_quality={"enabled": True})
    try:
        feed = meter.daemon.registry.need(WaveformFeed, by="test")
        service = meter.service(PowerQualityService)
        analyse = service.analyse
        analysed = threading.Event()

        def watched(block: WaveformBlock) -> PqOutcome:
            outcome = analyse(block)
            analysed.set()
            return outcome

        service.analyse = watched  # type: ignore[method-assign]
        feed.start_worker(capacity=3)
        worker = feed.worker
        assert worker is not None

        async def cycle() -> None:
            meter.daemon.step(1.0)
            stats = worker.stats()
            assert (stats.queued, stats.analysed) == (1, 0)  # queued, not woken: the worker cannot take it
            assert not analysed.is_set()
            await asyncio.sleep(0)  # the loop's next round: the wake
            assert analysed.wait(WAIT_S)

        asyncio.run(cycle())
        assert worker.wait_idle(WAIT_S)
        assert worker.stats().analysed == 1
    finally:
        meter.close()


def test_start_moves_the_analysis_to_the_worker_when_the_meter_runs_in_real_time(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path, display={"kind": "dummy"}, sim={"speed": 1.0}, power_quality={"enabled": True})
    try:
        feed = meter.daemon.registry.need(WaveformFeed, by="test")
        assert feed.worker is None
        asyncio.run(pq_feature.start(meter.daemon.context()))
        assert feed.worker is not None
    finally:
        meter.close()


@pytest.mark.parametrize(("worker", "simulated", "speed", "expected"), [
    ("auto", False, 1.0, True),  # a real meter
    ("auto", True, 1.0, True),  # a simulation in real time
    ("auto", True, 0.0, False),  # as fast as possible: every block analysed before the next cycle
    ("thread", True, 0.0, True),
    ("inline", False, 1.0, False),
])
def test_where_the_analysis_runs(worker: str, simulated: bool, speed: float, expected: bool) -> None:
    assert uses_worker(PowerQualitySection(worker=worker), simulated, speed) is expected

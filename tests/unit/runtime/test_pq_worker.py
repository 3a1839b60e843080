"""The power-quality worker thread: blocks analysed in order off the caller's thread, with the same
results as inline; a full queue drops blocks without waiting, and the monitor flags the gap.
No timing assertions here: every hand-off waits on a condition, bounded."""

from __future__ import annotations

import datetime as dt
import math
import threading

import numpy as np
import pytest

from meterd.pq.monitor import PqMonitor, PqValues
from meterd.pq.source import WaveformBlock
from meterd.runtime.pq_worker import PqWorker
from meterd.services.power_quality import PowerQualityService

FS = 8000
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
WAIT_S = 60.0  # a bound, not a delay: every wait ends as soon as its condition holds


def block(first: int, n: int = FS, dip: tuple[float, float] | None = None) -> WaveformBlock:
    """Three-phase 230 V / 50 Hz with 4 % 5th harmonic; phase 1 at 40 % during ``dip`` (s)."""
    t = (first + np.arange(n)) / FS
    x = np.zeros((7, n))
    for p in range(3):
        level = np.ones(n)
        if dip is not None and p == 0:
            level[(t >= dip[0]) & (t < dip[1])] = 0.4
        theta = 2 * np.pi * 50 * t - 2 * np.pi * p / 3
        x[2 * p] = math.sqrt(2) * 230 * level * (np.sin(theta) + 0.04 * np.sin(5 * theta))
        x[2 * p + 1] = math.sqrt(2) * 5 * np.sin(theta - 0.2)
    x[6] = x[1] + x[3] + x[5]
    return WaveformBlock(first, x, float(FS), T0 + dt.timedelta(seconds=first / FS))


def test_blocks_are_analysed_in_order_on_the_worker_thread() -> None:
    seen: list[tuple[int, str]] = []

    def analyse(b: WaveformBlock) -> int:
        seen.append((b.first_index, threading.current_thread().name))
        return b.first_index

    worker: PqWorker[int] = PqWorker(analyse, capacity=8)
    worker.start()
    try:
        assert all(worker.submit(block(i * 80, 80)) for i in range(6))
        assert worker.wait_idle(WAIT_S)
        assert worker.take() == [0, 80, 160, 240, 320, 400]
        assert worker.take() == []
        assert {name for _i, name in seen} == {"pq-analysis"}
        stats = worker.stats()
        assert (stats.analysed, stats.dropped, stats.failed, stats.queued) == (6, 0, 0, 0)
    finally:
        worker.stop()


def test_a_full_queue_drops_blocks_without_waiting_and_a_failure_does_not_stop_the_worker() -> None:
    started, release = threading.Event(), threading.Event()

    def analyse(b: WaveformBlock) -> int:
        if b.first_index == 0:
            started.set()
            assert release.wait(WAIT_S)  # the slow block
        if b.first_index == 400:
            raise ValueError("bad block")
        return b.first_index

    worker: PqWorker[int] = PqWorker(analyse, capacity=2)
    worker.start()
    try:
        assert worker.submit(block(0, 80))
        assert started.wait(WAIT_S)  # the worker is inside the slow block
        accepted = [worker.submit(block(i * 80, 80)) for i in range(1, 5)]
        assert accepted == [True, True, False, False]  # two may wait; the others are dropped at once
        release.set()
        assert worker.wait_idle(WAIT_S)
        assert worker.take() == [0, 80, 160]
        assert worker.submit(block(400, 80)) and worker.submit(block(480, 80))
        assert worker.wait_idle(WAIT_S)
        assert worker.take() == [480]
        stats = worker.stats()
        assert (stats.analysed, stats.dropped, stats.failed) == (4, 2, 1)
    finally:
        worker.stop()
    assert not worker.submit(block(560, 80))  # stopped: nothing more is taken


def same_values(a: PqValues, b: PqValues) -> bool:
    """The values shown are equal (arrays element by element)."""
    return (a.urms_half_v == b.urms_half_v and a.rms_10cycle == b.rms_10cycle and a.thd_pct == b.thd_pct
            and a.frequency_hz == b.frequency_hz and a.utc == b.utc and a.aggregates.keys() == b.aggregates.keys()
            and all(np.array_equal(a.aggregates[k].rms, b.aggregates[k].rms) and
                    a.aggregates[k].flagged == b.aggregates[k].flagged for k in a.aggregates))


def test_worker_gives_the_inline_results_and_a_dropped_block_flags_the_values() -> None:
    blocks = [block(i * FS, dip=(3.2, 3.5)) for i in range(7)]
    inline = PowerQualityService(PqMonitor(), None)
    inline_events = [e for b in blocks for e in inline.feed(b)]

    threaded = PowerQualityService(PqMonitor(), None)
    worker = PqWorker(threaded.analyse, capacity=len(blocks))
    worker.start()
    try:
        for b in blocks:
            assert worker.submit(b)
        assert worker.wait_idle(WAIT_S)
        threaded_events = [e for outcome in worker.take() for e in threaded.apply(outcome)]
    finally:
        worker.stop()
    assert threaded_events == inline_events and len(inline_events) == 1  # the dip on L1
    assert same_values(threaded.values(), inline.values())
    assert inline.values().aggregates["150-cycle"].flagged is True  # 3 s to 6 s: the dip touched it

    clean, gap = PowerQualityService(PqMonitor(), None), PowerQualityService(PqMonitor(), None)
    for i in range(12):
        clean.feed(block(i * FS))
        if i != 5:  # the block of the 6th second lost
            gap.feed(block(i * FS))
    ok, lost = clean.values(), gap.values()
    assert ok.frequency_hz == pytest.approx(50.0, abs=0.001) and ok.frequency_flagged is False
    assert ok.aggregates["150-cycle"].flagged is False
    assert lost.frequency_hz == pytest.approx(50.0, abs=0.001) and lost.frequency_flagged is True
    assert lost.aggregates["150-cycle"].flagged is True
    assert lost.rms_10cycle["U1"] == pytest.approx(ok.rms_10cycle["U1"], rel=1e-6)


def test_a_block_queued_without_waking_waits_for_the_wake() -> None:
    """``submit(wake=False)`` leaves the block queued (the worker cannot take it), ``wake`` hands
    over everything queued: the loop decides when the worker competes for the interpreter lock."""
    done = threading.Event()
    seen: list[int] = []

    def analyse(b: WaveformBlock) -> int:
        seen.append(b.first_index)
        if len(seen) == 2:
            done.set()
        return b.first_index

    worker: PqWorker[int] = PqWorker(analyse, capacity=4)
    worker.start()
    try:
        assert worker.submit(block(0, 80), wake=False) and worker.submit(block(80, 80), wake=False)
        stats = worker.stats()
        assert (stats.analysed, stats.queued) == (0, 2) and seen == []
        worker.wake()
        assert done.wait(WAIT_S)
        assert worker.wait_idle(WAIT_S)
        assert worker.take() == [0, 80]
        worker.wake()  # nothing queued: a wake is harmless
        assert worker.submit(block(160, 80))  # woken at once (the default)
        assert worker.wait_idle(WAIT_S) and worker.take() == [160]
    finally:
        worker.stop()

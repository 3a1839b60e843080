"""The power-quality analysis on its own thread, so that it never holds the event loop.

The event loop hands each waveform block to :meth:`PqWorker.submit`, which never waits: the
block goes into a bounded queue (``capacity`` blocks), or, when the worker is that far behind, it
is dropped and counted. A dropped block is a gap in the sample indices, which the monitor treats
as IEC 61000-4-30 §4.7 asks (the stream restarts; the values that span it are flagged), so
metering never waits for power quality and a slow analysis costs flagged values, not lateness.
The worker runs ``analyse`` on one block after the other in order; the event loop collects the
outcomes with :meth:`PqWorker.take` and records them where its stores live.

The thread shares the interpreter lock with the event loop. Waking it while the loop still has
work in hand costs the loop a hand-over of that lock: the woken thread takes it after the switch
interval and the loop waits to get it back, which on a busy machine also means waiting for the
operating system to run the loop's thread again (10–20 ms were seen inside ``submit``). So a
block can be queued without waking the worker (``submit(block, wake=False)``), and the loop
wakes it with :meth:`PqWorker.wake` once its own work is done: a queued block is analysed only
after a wake.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from meterd.pq.source import WaveformBlock

log = logging.getLogger("meterd.pq")

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerStats:
    """Counters of a :class:`PqWorker`: blocks analysed, dropped (queue full), failed (the analysis
    raised), waiting now; the longest analysis of one block and the mean (ms of wall time)."""

    analysed: int
    dropped: int
    failed: int
    queued: int
    max_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-able form (status extras)."""
        return {"analysed": self.analysed, "dropped": self.dropped, "failed": self.failed,
                "queued": self.queued, "max_ms": round(self.max_ms, 3), "mean_ms": round(self.mean_ms, 3)}


class PqWorker(Generic[T]):
    """A thread running ``analyse`` over submitted blocks in order; outcomes are taken back.

    ``capacity``: the most blocks waiting (not counting the one being analysed); more are dropped.
    """

    def __init__(self, analyse: Callable[[WaveformBlock], T], capacity: int = 4, name: str = "pq-analysis") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._analyse = analyse
        self._capacity = capacity
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[WaveformBlock] = deque()
        self._results: deque[T] = deque()
        self._busy = False
        self._woken = False  # blocks queued since the last wake may be taken
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._analysed = self._dropped = self._failed = 0
        self._max_s = self._total_s = 0.0

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, block: WaveformBlock, wake: bool = True) -> bool:
        """Queue a block without waiting; False when it was dropped (the queue was full).

        ``wake``: let the worker start on it now; False leaves it queued until :meth:`wake`.
        """
        with self._cond:
            if self._stopping or len(self._queue) >= self._capacity:
                self._dropped += 1
                return False
            self._queue.append(block)
            if wake:
                self._woken = True
                self._cond.notify_all()
            return True

    def wake(self) -> None:
        """Let the worker analyse the blocks queued (once woken, it goes on until its queue is empty)."""
        with self._cond:
            if self._queue and not self._woken:
                self._woken = True
                self._cond.notify_all()

    def take(self) -> list[T]:
        """The outcomes finished since the last call, in the order of their blocks."""
        with self._cond:
            out = list(self._results)
            self._results.clear()
            return out

    def wait_idle(self, timeout_s: float) -> bool:
        """Wake the worker and wait until every queued block is analysed (at most ``timeout_s``);
        True when idle."""
        self.wake()
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the block being analysed; blocks still queued are not analysed."""
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stats(self) -> WorkerStats:
        """The counters now."""
        with self._cond:
            mean = self._total_s / self._analysed if self._analysed else 0.0
            return WorkerStats(self._analysed, self._dropped, self._failed, len(self._queue),
                               self._max_s * 1000.0, mean * 1000.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: (self._queue and self._woken) or self._stopping)
                if self._stopping:
                    return
                block = self._queue.popleft()
                self._woken = bool(self._queue)  # the rest of a woken queue follows
                self._busy = True
            started = time.perf_counter()
            try:
                result = self._analyse(block)
            except Exception:  # a bad block must not end the analysis of the next ones
                log.exception("power-quality analysis of samples %d.. failed", block.first_index)
                with self._cond:
                    self._failed += 1
                    self._busy = False
                    self._cond.notify_all()
                continue
            spent = time.perf_counter() - started
            with self._cond:
                self._results.append(result)
                self._analysed += 1
                self._total_s += spent
                self._max_s = max(self._max_s, spent)
                self._busy = False
                self._cond.notify_all()

"""Output edges at absolute monotonic instants, off the event loop: a dedicated deadline thread.

:class:`DeadlineWorker` owns one thread that runs short actions (a GPIO ``on()``/``off()``) when
their absolute deadline (s, on the ``mono`` clock) arrives, whatever the asyncio loop is doing. It
serves the relay coil pulse where lgpio's own timed output is not available (mock pins, other
pin factories) and the software pulse LED on a Pi without the chip's CF output.

Timing: the thread waits on a condition with the time left to the earliest deadline; while any
deadline is pending, the interpreter's thread switch interval is lowered to
:data:`FINE_SWITCH_INTERVAL_S`, so a thread that keeps the GIL busy (a CPU-bound stall of the
event loop) delays an edge by about that much instead of the default 5 ms; it is restored as soon
as nothing is pending. ``realtime_priority`` puts the thread under SCHED_FIFO where the process is allowed to (meterd's
unit grants it; elsewhere it runs at normal priority), so a busy host cannot hold an edge back.
``mono`` and ``wait`` are injectable, so tests run the worker on fake time
(or call :meth:`run_due` without a thread) and never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("hw.timed_output")

FINE_SWITCH_INTERVAL_S = 0.0005
"""Thread switch interval (s) while an edge is pending (the interpreter default is 0.005 s)."""

Wait = Callable[[threading.Condition, float], object]
"""Waits on the (held) condition for at most the given time (s); ``Condition.wait`` fits."""


def _condition_wait(cond: threading.Condition, timeout_s: float) -> object:
    return cond.wait(timeout_s)


class DeadlineWorker:
    """Runs ``action()`` at absolute monotonic deadlines (s) on one dedicated thread.

    Actions due at the same instant run in the order they were scheduled. An action's exception is
    logged and does not stop the worker. :meth:`close` stops the thread after running every action
    already due (pending future ones are dropped; owners switch their outputs off themselves).
    """

    def __init__(self, name: str, mono: Callable[[], float] = time.monotonic, wait: Wait = _condition_wait,
                 *, start: bool = True, fine_switch_interval_s: float | None = FINE_SWITCH_INTERVAL_S,
                 realtime_priority: int | None = None) -> None:
        self.name = name
        self._mono = mono
        self._wait = wait
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._running = True
        self._fine_s = fine_switch_interval_s
        self._fine_held = False
        self._rt_priority = realtime_priority
        self.realtime = False
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    @property
    def pending(self) -> int:
        """Actions scheduled and not yet run."""
        with self._cond:
            return len(self._queue)

    def at(self, deadline_mono: float, action: Callable[[], None]) -> None:
        """Run ``action`` at ``deadline_mono`` (s, on this worker's clock); at once if already due."""
        with self._cond:
            if not self._running:
                raise RuntimeError(f"{self.name}: worker closed")
            heapq.heappush(self._queue, (deadline_mono, next(self._seq), action))
            self._fine_timing(True)
            self._cond.notify()

    def run_due(self, now_mono: float) -> int:
        """Run every action due at or before ``now_mono`` (s); return how many ran. The thread calls
        this; without a thread (``start=False``) tests call it on fake time."""
        ran = 0
        while True:
            with self._cond:
                if not self._queue or self._queue[0][0] > now_mono:
                    if not self._queue:
                        self._fine_timing(False)
                    return ran
                _, _, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception:  # an output that failed must not stop the other outputs
                log.exception("%s: timed action failed", self.name)
            ran += 1

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Block until nothing is pending (for shutdown and tests); False on ``timeout_s`` (s)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while self._queue:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stop the thread (actions not yet due are dropped) and restore the switch interval."""
        with self._cond:
            self._running = False
            self._queue.clear()
            self._fine_timing(False)
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        if self._rt_priority is not None:
            self.realtime = _raise_to_fifo(self.name, self._rt_priority)
        while True:
            with self._cond:
                if not self._running:
                    return
                if not self._queue:
                    self._cond.notify_all()  # drain() waiters
                    self._cond.wait()        # until at() or close() notifies
                    continue
                left = self._queue[0][0] - self._mono()
                if left > 0:
                    self._wait(self._cond, left)
                    continue
            self.run_due(self._mono())

    def _fine_timing(self, on: bool) -> None:
        """Hold the fine switch interval while edges are pending (called with the lock held)."""
        if self._fine_s is None or on == self._fine_held:
            return
        self._fine_held = on
        if on:
            _SWITCH.hold(self._fine_s)
        else:
            _SWITCH.release()


def _raise_to_fifo(name: str, priority: int) -> bool:
    """Put the calling thread under SCHED_FIFO at ``priority`` (Linux: pid 0 is this thread);
    False, with one log line, where the process may not (no CAP_SYS_NICE or RLIMIT_RTPRIO)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        log.info("%s: real-time priority not available (%s); timing at normal priority", name, exc)
        return False
    return True


class _SwitchInterval:
    """The interpreter's thread switch interval, lowered while any worker holds it (counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved_s = 0.0

    def hold(self, fine_s: float) -> None:
        with self._lock:
            if self._holders == 0:
                self._saved_s = sys.getswitchinterval()
                sys.setswitchinterval(min(fine_s, self._saved_s))
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                sys.setswitchinterval(self._saved_s)


_SWITCH = _SwitchInterval()

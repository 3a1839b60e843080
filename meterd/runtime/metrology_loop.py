"""The metering loop: the chip read and the energy accumulation on their own schedule.

:class:`MetrologyLoop` runs ``tick`` (the meter service's :meth:`~meterd.services.metering.MeteringService.tick`:
read the chip, judge the read, add the increments to the pending energy and its crash-safe
record) every ``period_s`` of real time on a dedicated thread named ``metering``, with real-time
priority (``SCHED_FIFO``) where the system allows it. The thread never waits on SQLite, DLMS, the
LCD, power quality or the API: those run on the asyncio loop, which drains the pending energy
whenever it gets to it. The only thing the two share is ``lock`` (the SPI bus, and in
simulation the simulated world): held for a whole chip read, and by a power-quality read of the
chip's DFT, so transfers of the two never interleave.

Each tick's start lateness against its schedule (ms) goes to a
:class:`~meterd.core.lateness.LatenessStats`. A loop far behind (more than ``resync_periods``
periods: the host was suspended) counts the ticks it gives up and starts a new schedule.
:meth:`healthy` says whether the loop ticks on time: the thread alive and a tick finished within
the last ``stall_periods`` periods; the daemon kicks systemd's watchdog only while it is.

:meth:`tick` runs one tick inline (no thread): the daemon's :meth:`~meterd.app.daemon.Daemon.step`
in tests and simulation uses it, so a stepped meter gives the same numbers as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from meterd.core.lateness import LatenessStats

log = logging.getLogger("meterd.metering_loop")

THREAD_NAME = "metering"
DEFAULT_PRIORITY = 40
"""SCHED_FIFO priority of the metering thread (1–99): above every normal task, below the
kernel's threaded interrupt handlers (50), so the SPI transfers it waits for still run."""

_realtime_refused = False


def set_realtime_priority(priority: int = DEFAULT_PRIORITY) -> str:
    """Put the calling thread under ``SCHED_FIFO`` at ``priority``; returns what it runs under
    (``"SCHED_FIFO"``, or why not). A refusal is logged once per process."""
    global _realtime_refused
    setter = getattr(os, "sched_setscheduler", None)
    fifo = getattr(os, "SCHED_FIFO", None)
    if setter is None or fifo is None:
        return "not available on this system"
    try:
        setter(0, fifo, os.sched_param(priority))  # 0: the calling thread (Linux)
    except OSError as exc:
        if not _realtime_refused:
            _realtime_refused = True
            log.warning("metering thread: real-time priority refused (%s): it runs at normal priority",
                        exc.strerror or exc)
        return f"refused: {exc.strerror or exc}"
    log.info("metering thread: SCHED_FIFO priority %d", priority)
    return "SCHED_FIFO"


class MetrologyLoop:
    """The metering ticks, inline or on their own thread (see the module docstring).

    ``tick``: one read and accumulation; ``period_s``: the real time between ticks (s);
    ``lock``: held around each tick (the SPI bus / simulated world); ``before_tick``: run under
    the lock before each tick on the thread (in simulation: advance the simulated clock by one
    cycle and let the simulated world act); ``stalled``: True while a simulated stall holds the
    read (sim fault ``late_cycle``); ``on_tick``: called after each threaded tick (wakes the
    asyncio side); ``mono``: the real monotonic clock (s); ``wait``: waits up to a time (s)
    unless stopped (tests give a fake); ``realtime``: try SCHED_FIFO on the thread.
    """

    def __init__(self, tick: Callable[[], Any], period_s: float, *,
                 lock: AbstractContextManager[Any] | None = None,
                 before_tick: Callable[[], None] | None = None,
                 stalled: Callable[[], bool] | None = None,
                 on_tick: Callable[[], None] | None = None,
                 stats: LatenessStats | None = None,
                 mono: Callable[[], float] = time.monotonic,
                 realtime: bool = False, priority: int = DEFAULT_PRIORITY,
                 stall_periods: float = 3.0, resync_periods: float = 10.0) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        self._tick = tick
        self.period_s = period_s
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.before_tick = before_tick
        self.stalled = stalled
        self.on_tick = on_tick
        self.stats = stats if stats is not None else LatenessStats(late_ms=period_s * 1000.0 / 2)
        self.mono = mono
        self.realtime = realtime
        self.priority = priority
        self.stall_periods = stall_periods
        self.resync_periods = resync_periods
        self.ticks = 0
        self.last_tick_mono: float | None = None
        self.scheduling = "inline"
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one tick ---------------------------------------------------------------------------

    def tick(self, lateness_ms: float | None = None) -> bool:
        """One tick under the lock: ``before_tick`` (threaded), then the read unless a simulated
        stall holds it; ``lateness_ms`` (when scheduled) goes to the stats. True when read."""
        with self._lock:
            if self.before_tick is not None and self._thread is not None:
                self.before_tick()
            read = self.stalled is None or not self.stalled()
            if read:
                self._tick()
        if read:
            self.ticks += 1
            self.last_tick_mono = self.mono()
            if lateness_ms is not None:
                self.stats.record(lateness_ms)
        return read

    # -- the thread -------------------------------------------------------------------------

    @property
    def threaded(self) -> bool:
        """True once :meth:`start` started the thread."""
        return self._thread is not None

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the ``metering`` thread (first tick one period from now)."""
        if self._thread is not None:
            raise RuntimeError("the metering loop runs already")
        self._stop.clear()
        self.last_tick_mono = self.mono()  # healthy from the start: the first tick is one period away
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to end after its current tick and wait for it (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        self.scheduling = set_realtime_priority(self.priority) if self.realtime else "normal priority"
        deadline = self.mono() + self.period_s
        try:
            while not self._stop.is_set():
                delay = deadline - self.mono()
                if delay > 0 and self._stop.wait(delay):
                    break
                now = self.mono()
                behind = now - deadline
                if behind > self.resync_periods * self.period_s:  # far behind (suspended?): a new schedule
                    skipped = int(behind / self.period_s)
                    self.stats.skipped(skipped)
                    log.warning("metering loop %.1f s behind: %d ticks given up, schedule restarted", behind, skipped)
                    deadline = now
                    behind = 0.0
                self.tick(lateness_ms=behind * 1000.0)
                if self.on_tick is not None:
                    self.on_tick()
                deadline += self.period_s
        except BaseException as exc:  # the thread dies: the watchdog stops being kicked
            self.error = exc
            log.critical("metering loop stopped: %s", exc, exc_info=exc)

    def healthy(self, now: float | None = None) -> bool:
        """True when the loop ticks on time: inline (no thread) always; threaded, the thread
        alive and a tick finished within the last ``stall_periods`` periods (real time)."""
        if self._thread is None:
            return True
        if not self._thread.is_alive():
            return False
        last = self.last_tick_mono
        now = self.mono() if now is None else now
        return last is not None and now - last <= self.stall_periods * self.period_s

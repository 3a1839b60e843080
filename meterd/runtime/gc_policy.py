"""The interpreter's cyclic garbage collector kept out of the event loop's timing.

A full (generation 2) collection walks every object the collector tracks: about 90 000 once
meterd has started (the functions, classes and dicts of its modules, the built meter), 35–40 ms
on a PC core and several times that on a Pi's, all of it holding the interpreter lock, so the
event loop (DLMS replies, the CIU link) and the metering thread wait for it
(``bench/bench_pq.py --part hold``). Those objects live as long as the process: :func:`settle`
collects once after the start-up and freezes what is left (:func:`gc.freeze`), so later
collections walk only the objects made since. A frozen object is freed when nothing refers to
it, but never by the cyclic collector: a start-up object that a later change replaces and that
sits in a reference cycle stays (once; everything made after the freeze is collected as usual).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Settled:
    """What :func:`settle` did: objects collected and frozen, and how long it took (ms)."""

    collected: int
    frozen: int
    duration_ms: float


def settle() -> Settled:
    """Collect every generation once, then freeze the survivors (call when the start-up is done)."""
    t0 = time.perf_counter()
    collected = gc.collect()
    gc.freeze()
    return Settled(collected, gc.get_freeze_count(), (time.perf_counter() - t0) * 1000.0)


def frozen_objects() -> int:
    """Objects in the permanent generation (0 before :func:`settle`)."""
    return gc.get_freeze_count()

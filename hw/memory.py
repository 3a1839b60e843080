"""The C library's allocator policy for a long-running daemon, and giving freed memory back.

meterd allocates many short-lived numpy arrays (the waveform analysis, 0.1–1 MB each) on its event
loop and on worker threads. With glibc's defaults each thread gets its own malloc arena (up to
8 per core, 64 MiB of address space each), the mmap threshold rises to the size of the largest
array freed (so later arrays of that size come from the heap and fragment it) and the heap is
only shrunk when more than the (also rising) trim threshold is free at its top. The policy here
(:data:`MALLOC_POLICY`) keeps two arenas, fixes both thresholds, and :func:`trim` returns the
free pages of every arena to the kernel (``malloc_trim(0)``), which the daemon calls once its
start-up is done and then now and then.

The same values are applied two ways, which must agree (a unit test checks it): in the process
through ``mallopt`` (:func:`apply_malloc_policy`, first thing in ``meterd run``) and as glibc's
``MALLOC_*_`` environment variables (:func:`malloc_env`) that the systemd unit and the simulated
launcher set, so the allocator runs with them from the interpreter's first allocation. On a C
library other than glibc (musl), both calls do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Mapping

#: mallopt parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENA_MAX = 2
"""Malloc arenas (the main one and one shared by the threads)."""
TRIM_THRESHOLD_BYTES = 8 * 1024 * 1024
"""Free memory at the top of the heap above which free() gives it back to the kernel (B); the rest
goes back at the periodic :func:`trim`."""
MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024
"""Allocations from this size (B) get their own mapping, returned to the kernel when freed (fixed:
glibc would otherwise raise it to the largest block freed, up to 32 MiB). Not lower: the waveform
analysis allocates and frees arrays of 0.1–6 MB several times a second, and a fresh mapping for
each (page faults, zeroed pages) cost about 5 ms of CPU per simulated second with 256 KiB."""

#: The policy as glibc's environment variables and mallopt parameters: name → (parameter, value).
MALLOC_POLICY: Mapping[str, tuple[int, int]] = {
    "MALLOC_ARENA_MAX": (_M_ARENA_MAX, ARENA_MAX),
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
}


def malloc_env() -> dict[str, str]:
    """The policy as environment variables for a process about to start (systemd, launcher)."""
    return {name: str(value) for name, (_param, value) in MALLOC_POLICY.items()}


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def apply_malloc_policy() -> bool:
    """Set :data:`MALLOC_POLICY` in this process through ``mallopt``; False when the C library is
    not glibc or refused a parameter."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_POLICY.values())


def trim() -> bool:
    """Give the free memory of every malloc arena back to the kernel (``malloc_trim(0)``); True
    when some was returned, False when none was or the C library is not glibc."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1


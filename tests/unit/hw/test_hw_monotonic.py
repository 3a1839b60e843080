"""The one real monotonic clock (hw.monotonic) behind the meter's HostClock and the CIU."""

from __future__ import annotations

import time

from hw.monotonic import MonotonicClock, monotonic_s
from meterd.runtime.clocks import HostClock


def test_monotonic_clock_reads_clock_monotonic() -> None:
    before = time.monotonic()
    reading = MonotonicClock().mono()
    after = time.monotonic()
    assert before <= reading <= after
    assert before <= monotonic_s() <= time.monotonic()


def test_host_clock_takes_its_monotonic_time_from_hw() -> None:
    before = time.monotonic()
    assert before <= HostClock().mono() <= time.monotonic()
    assert HostClock(mono=lambda: 42.0).mono() == 42.0

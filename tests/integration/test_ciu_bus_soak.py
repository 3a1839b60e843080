"""Soak of the polled half-duplex CIU bus: tokens typed at random moments, STATUS pushed every 5 s.

Short form (``make test``): 3 simulated minutes; full form (``PMM_SOAK=1``, ``-m slow``): 30 minutes.
No link drop, every token applied exactly once and its result shown, no collision on the bus,
every STATUS delivered, token latency (ENTER to the result on the CIU screen) under 1 s at p99."""

from __future__ import annotations

import pytest

from hw.serial_link import WireFaults
from tests.ciu_bus_soak import SoakReport, run_soak


def check(report: SoakReport) -> None:
    assert report.link_downs == []
    assert report.tokens_applied == report.tokens_typed  # each once, in order
    assert report.results_shown == len(report.tokens_typed)
    assert report.collisions == 0 and report.meter_stats.reply_timeouts <= 1  # the first poll finds no session
    assert report.ciu_stats.late_turns == 0
    assert report.status_ratio == 1.0
    assert SoakReport.quantile(report.token_latency_s, 0.99) < 1.0
    assert len(report.short_code_latency_s) == report.short_codes


def test_bus_soak_short_form() -> None:
    report = run_soak(180.0, seed=3)
    assert len(report.tokens_typed) >= 4 and report.status_sent >= 30
    check(report)


@pytest.mark.slow
def test_bus_soak_30_minutes() -> None:
    report = run_soak(1800.0, seed=14)
    assert len(report.tokens_typed) >= 30
    check(report)


def test_bus_soak_on_a_noisy_line_still_has_one_talker_and_delivers_once() -> None:
    """One byte in a thousand dropped and one corrupted: frames are lost and retried, the bus stays
    collision-free (a late final frame does not give the CIU a turn while the meter talks)."""
    report = run_soak(180.0, seed=5, faults=WireFaults(corrupt_p=1e-3, drop_p=1e-3))
    assert sum(report.meter_stats.rejected.values()) > 0 and report.meter_stats.reply_timeouts > 0
    assert report.collisions == 0
    assert report.tokens_applied == report.tokens_typed and report.results_shown == len(report.tokens_typed)
    assert report.status_ratio == 1.0

"""kill -9 between the metering tick and the event loop's drain: the energy measured and not yet
in the registers is carried by the next meterd from the pending-energy record, once.

A crash is simulated by building a new meter on the same state directory (and so the same
journal and record in RAM) without draining the old one or saving its registers; the old one's
files are released first, as the kernel releases a killed process's (meterd holds each of its
databases exclusively while it runs)."""

from __future__ import annotations

from pathlib import Path

from meterd.core.energy import ALL_KEYS, RegisterKey
from tests.simmeter import SimMeter


def ticks_without_drain(meter: SimMeter, count: int) -> None:
    """``count`` metering ticks (clock, world, read, accumulate) that the event loop never drains."""
    assert meter.daemon.metrology is not None
    for _ in range(count):
        meter.clock.advance(1.0)
        meter.hardware.before_cycle()
        assert meter.daemon.metrology.tick()


def measured(meter: SimMeter) -> dict[RegisterKey, int]:
    """Everything this process's metering loop measured (carried energy included)."""
    return meter.meter.pending.cumulative()


def abandon(meter: SimMeter) -> None:
    """Release what a killed meter held, writing nothing (its files belong to the next one)."""
    daemon = meter.daemon
    daemon.meter.journal_redundant = lambda: False  # type: ignore[method-assign]  # keep the files
    for closer in reversed(daemon.closers):
        closer()
    meter.hardware.close()
    assert daemon.store is not None
    daemon.store.database.close()


def total(values) -> int:
    return sum(values.get(key, 0) for key in ALL_KEYS)


def test_kill_between_tick_and_drain_loses_nothing_and_counts_nothing_twice(tmp_path: Path):
    state = tmp_path / "state"
    first = SimMeter(state)
    first.run(30)
    journaled = first.meter.registers.snapshot()
    ticks_without_drain(first, 5)
    assert first.meter.registers.snapshot() == journaled  # the five ticks are only pending

    abandon(first)  # kill -9 of the first, restart on the same state
    second = SimMeter(state)
    undrained = dict(first.meter.pending.drain().deltas)  # what the five ticks measured (nothing written)
    assert undrained and sum(undrained.values()) > 0
    assert second.meter.registers.snapshot() == journaled
    assert second.meter.carried == undrained

    abandon(second)  # the second killed at once, before it drained or journaled anything
    third = SimMeter(state)
    try:
        assert third.meter.carried == undrained
        third.run(3)
        final = third.meter.registers.snapshot()
        gained = {k: final[k] - journaled[k] for k in ALL_KEYS if final[k] != journaled[k]}
        # the carried energy once, plus the third's own three ticks: no more, no less
        assert gained == {k: v for k, v in measured(third).items() if v}
        assert all(gained[k] >= v for k, v in undrained.items())
        assert total(gained) > total(undrained)
    finally:
        third.close()


def test_kill_after_the_journal_write_carries_nothing(tmp_path: Path):
    state = tmp_path / "state"
    first = SimMeter(state)
    first.run(10)
    journaled = first.meter.registers.snapshot()
    abandon(first)
    second = SimMeter(state)
    try:
        assert second.meter.carried == {}
        assert second.meter.registers.snapshot() == journaled
        result = second.daemon.step()
        assert result is not None
        assert total(second.meter.registers.snapshot()) == total(journaled) + total(result.deltas)
    finally:
        second.close()


def test_clean_stop_removes_the_record(tmp_path: Path):
    meter = SimMeter(tmp_path / "state")
    meter.run(3)
    slot = meter.daemon.pending_slot
    assert slot is not None and slot.path.exists() and slot.writes >= 3
    meter.close()
    assert not slot.path.exists()
    again = SimMeter(tmp_path / "state")
    try:
        assert again.meter.carried == {}
    finally:
        again.close()


def test_power_fail_applies_what_is_pending_before_the_last_gasp(tmp_path: Path):
    meter = SimMeter(tmp_path / "state")
    try:
        meter.run(5)
        before = meter.meter.registers.snapshot()
        ticks_without_drain(meter, 3)
        meter.meter.power_fail()
        after = meter.meter.registers.snapshot()
        assert total(after) > total(before) and meter.meter.pending.waiting == 0
        assert meter.daemon.store is not None
        stored = meter.daemon.store.load()
        assert stored is not None and stored.registers == after  # the synced last gasp holds it
        meter.meter.power_restored()
    finally:
        meter.close()

"""Pending energy between the metering loop and the registers, and the crash-safety arithmetic."""

from __future__ import annotations

import threading

import pytest

from meterd.core.energy import Quantity
from meterd.core.pending import Consumed, PendingEnergy, RecordState, residual
from meterd.core.reading import Channel, PhaseValues, Reading

IMP = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
EXP = (Quantity.ACTIVE_EXPORT, Channel.TOTAL)
Q1 = (Quantity.REACTIVE_Q1, Channel.L1)


def reading(mono_s: float) -> Reading:
    zero = PhaseValues()
    return Reading(mono_s=mono_s, phases=(zero, zero, zero), energy={})


class MemoryRecord:
    def __init__(self) -> None:
        self.writes: list[tuple[str, dict]] = []

    def load(self) -> RecordState | None:
        if not self.writes:
            return None
        token, totals = self.writes[-1]
        return RecordState(token, totals)

    def write(self, token, totals) -> None:
        self.writes.append((token, dict(totals)))


def test_drain_sums_ticks_keeps_latest_reading_and_cumulative():
    record = MemoryRecord()
    pending = PendingEnergy("ab" * 16, record)
    pending.add({IMP: 5, Q1: 2}, reading(1.0))
    pending.add({IMP: 7}, reading(2.0))
    assert pending.waiting == 2
    drained = pending.drain()
    assert drained.deltas == {IMP: 12, Q1: 2} and drained.ticks == 2 and drained.reading.mono_s == 2.0
    assert drained.consumed == Consumed("ab" * 16, {IMP: 12, Q1: 2})
    pending.add({IMP: 1}, reading(3.0))
    assert pending.drain().deltas == {IMP: 1}
    assert pending.cumulative() == {IMP: 13, Q1: 2}  # never goes backwards across drains
    assert record.writes[-1] == ("ab" * 16, {IMP: 13, Q1: 2})
    empty = pending.drain()
    assert empty.reading is None and empty.ticks == 0 and dict(empty.deltas) == {}


def test_negative_increment_refused():
    with pytest.raises(ValueError):
        PendingEnergy().add({IMP: -1}, reading(1.0))


def test_residual_same_token_is_the_difference():
    record = RecordState("t1", {IMP: 100, EXP: 4})
    assert residual(record, Consumed("t1", {IMP: 60, EXP: 4})) == {IMP: 40}


def test_residual_other_or_no_token_is_the_whole_record():
    record = RecordState("t2", {IMP: 30})
    assert residual(record, Consumed("t1", {IMP: 60})) == {IMP: 30}
    assert residual(record, None) == {IMP: 30}
    assert residual(None, Consumed("t1", {IMP: 60})) == {}


def test_consumed_state_round_trip_and_garbage():
    consumed = Consumed("tok", {IMP: 3, Q1: 9})
    assert Consumed.from_state(consumed.state_dict()) == consumed
    assert Consumed.from_state(None) is None
    assert Consumed.from_state({"token": "x", "totals": [1, 2]}) is None


def test_carry_then_restart_chain_counts_once():
    """A residual carried into a new process's record is neither lost nor counted twice by a
    crash before or after that process journals it."""
    first = PendingEnergy("01" * 16, MemoryRecord())
    first.add({IMP: 10}, reading(1.0))
    journaled = first.drain().consumed        # registers hold 10
    first.add({IMP: 5}, reading(2.0))        # killed before the drain: 5 pending
    found = first.record.load()
    carried = residual(found, journaled)
    assert carried == {IMP: 5}
    second = PendingEnergy("02" * 16, MemoryRecord())
    second.carry(carried)
    second.begin()                            # the record is now the second process's
    # killed again before any journal write: the checkpoint still names the first token
    assert residual(second.record.load(), journaled) == {IMP: 5}
    # or after a journal write that named the second token with nothing consumed yet
    assert residual(second.record.load(), Consumed(second.token, {})) == {IMP: 5}
    # after the drain was journaled: nothing left
    assert residual(second.record.load(), second.drain().consumed) == {}


def test_concurrent_adds_and_drains_lose_nothing():
    pending = PendingEnergy()
    total = 0
    done = threading.Event()

    def producer() -> None:
        for i in range(20_000):
            pending.add({IMP: 1}, reading(float(i)))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    while not done.is_set():
        total += pending.drain().deltas.get(IMP, 0)
    thread.join()
    total += pending.drain().deltas.get(IMP, 0)
    assert total == 20_000 and pending.cumulative() == {IMP: 20_000}

"""The pending-energy record file: survives the process, whole after a torn write, per boot."""

from __future__ import annotations

from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.store.pending_slot import SLOT_SIZE, PendingSlot, pending_path

IMP = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
Q4 = (Quantity.REACTIVE_Q4, Channel.L3)
TOKEN = "0123456789abcdef" * 2


def test_round_trip_across_reopen(tmp_path):
    path = pending_path(tmp_path / "energy.journal")
    assert path.name == "energy.journal.pending"
    slot = PendingSlot(path, "SERIAL", "boot1")
    assert slot.load() is None
    slot.write(TOKEN, {IMP: 5})
    slot.write(TOKEN, {IMP: 9, Q4: 2})
    slot.close()  # like kill -9: nothing else written
    again = PendingSlot(path, "SERIAL", "boot1")
    found = again.load()
    assert found is not None and found.token == TOKEN and found.totals == {IMP: 9, Q4: 2}
    again.write(TOKEN, {IMP: 10})
    again.close()
    assert PendingSlot(path, "SERIAL", "boot1").load().totals == {IMP: 10}


def test_torn_write_leaves_the_previous_record(tmp_path):
    path = tmp_path / "p"
    slot = PendingSlot(path, "SERIAL", "boot1")
    slot.write(TOKEN, {IMP: 5})
    slot.write(TOKEN, {IMP: 6})
    slot.close()
    raw = bytearray(path.read_bytes())
    newest = 1  # the second write went to slot B
    raw[newest * SLOT_SIZE + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert PendingSlot(path, "SERIAL", "boot1").load().totals == {IMP: 5}


def test_other_boot_or_meter_is_not_loaded(tmp_path):
    path = tmp_path / "p"
    slot = PendingSlot(path, "SERIAL", "boot1")
    slot.write(TOKEN, {IMP: 5})
    slot.close()
    assert PendingSlot(path, "SERIAL", "boot2").load() is None  # the RAM file system's life ended
    assert PendingSlot(path, "OTHER", "boot1").load() is None


def test_discard_removes_the_file(tmp_path):
    path = tmp_path / "p"
    slot = PendingSlot(path, "SERIAL", "boot1")
    slot.close(discard=True)
    assert not path.exists()

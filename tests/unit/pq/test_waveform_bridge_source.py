"""The waveform bridge as a WaveformSource: the simulated bridge's frames (hw.waveform_bridge_sim,
written independently from the document) through an in-memory link into PqMonitor, against the
grid's own samples."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest

from hw.sim.grid import Grid, GridState, Harmonic, PhaseState
from hw.waveform_bridge_sim import SimBridge, SimDmaChip, encode_frame
from meterd.pq.bridge_source import BridgeWaveformSource
from meterd.pq.monitor import PqMonitor
from meterd.pq.source import WaveformBlock

FS = 8000
T0_UTC = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class MemoryLink:
    """The bridge's device as the receiver thread would hand it over."""

    def __init__(self) -> None:
        self.connected = True
        self.opens = 1
        self.data = bytearray()

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class World:
    """A grid, the simulated bridge over it, the meter's source, stepped in 1-s cycles."""

    def __init__(self) -> None:
        self.t = 0.0
        phase = PhaseState(voltage_v=230.0, current_a=8.0, phi_deg=20.0,
                           u_harmonics=(Harmonic(5, 0.04), Harmonic(7, 0.02, 30.0)), i_harmonics=(Harmonic(3, 0.2),))
        self.grid = Grid(lambda: self.t, GridState(phases=(phase, phase, phase)))
        self.chip = SimDmaChip(self.grid)
        self.offset = 0  # the grid's index of the bridge's set 0
        self.bridge = SimBridge(self.chip.payload)
        self.link = MemoryLink()
        self.source = BridgeWaveformSource(self.link, lambda: self.t,
                                           lambda: T0_UTC + dt.timedelta(seconds=self.t))

    def run(self, seconds: float, monitor: PqMonitor | None = None, every_s: float = 0.1) -> list[WaveformBlock]:
        """Sample, send and read for ``seconds``; the host fetches every ``every_s`` (s)."""
        blocks: list[WaveformBlock] = []
        for _ in range(round(seconds / every_s)):
            self.t += every_s
            self.bridge.sample_to(round(self.t * FS) - self.offset)
            if self.link.connected:
                self.link.data += self.bridge.take()
            while (block := self.source.read_block(8000)) is not None:
                blocks.append(block)
                if monitor is not None:
                    monitor.feed(block)
        return blocks


    def replug(self) -> None:
        """A bridge plugged in again: a new device, its count restarts at the grid's index now."""
        self.offset = offset = round(self.t * FS)
        self.bridge = SimBridge(lambda s, n: self.chip.payload(s + offset, n))
        self.link.connected, self.link.opens = True, self.link.opens + 1


def direct_monitor(world: World, n: int) -> PqMonitor:
    """The simulator's direct source: the same sets straight from the grid model."""
    mon = PqMonitor()
    for s in range(0, n, 8000):
        k = min(8000, n - s)
        mon.feed(WaveformBlock(s, world.grid.waveform_block(s, k), FS, T0_UTC + dt.timedelta(seconds=s / FS)))
    return mon


def test_clean_stream_gives_the_direct_sources_values() -> None:
    world = World()
    mon = PqMonitor()
    blocks = world.run(4.0, mon)
    n = blocks[-1].end_index
    assert blocks[0].first_index == 0 and all(a.end_index == b.first_index for a, b in zip(blocks, blocks[1:], strict=False))
    assert n >= 4 * FS - 32
    ref = direct_monitor(world, n).latest()
    got = mon.latest()
    for name, value in ref.rms_10cycle.items():
        assert got.rms_10cycle[name] == pytest.approx(value, rel=1e-5, abs=1e-4)
    for name, thd in ref.thd_pct.items():
        assert thd is not None and got.thd_pct[name] == pytest.approx(thd, rel=1e-4, abs=1e-4)
    assert got.thd_pct["U1"] == pytest.approx(100 * np.hypot(0.04, 0.02), rel=1e-3)
    agg, ref_agg = got.aggregates["150-cycle"], ref.aggregates["150-cycle"]
    assert not agg.flagged and agg.end_utc == ref_agg.end_utc
    np.testing.assert_allclose(agg.rms, ref_agg.rms, rtol=1e-5, atol=1e-4)
    c = world.source.counters
    assert (c.lost_frames, c.lost_sets, c.sync_losses, world.source.decoder.crc_errors) == (0, 0, 0, 0)


def test_a_frame_lost_on_the_way_is_a_gap_the_monitor_flags() -> None:
    world = World()
    mon = PqMonitor()
    blocks = world.run(1.0, mon)
    world.bridge.drop_next = 2
    blocks += world.run(3.0, mon)
    c = world.source.counters
    assert (c.lost_frames, c.lost_sets) == (2, 64)
    jumps = [b.first_index - a.end_index for a, b in zip(blocks, blocks[1:], strict=False) if b.first_index != a.end_index]
    assert jumps == [64]
    assert mon.latest().aggregates["150-cycle"].flagged


def test_corrupted_bytes_cost_one_frame_then_the_stream_is_back_in_step() -> None:
    world = World()
    mon = PqMonitor()
    world.run(1.0, mon)
    world.bridge.corrupt_next = 3
    world.run(1.0, mon)
    c, dec = world.source.counters, world.source.decoder
    assert dec.crc_errors + dec.header_errors >= 3
    assert c.lost_frames == 3 and c.lost_sets == 3 * 32
    before = c.frames
    world.run(1.0, mon)
    assert c.frames - before == FS // 32 and c.lost_frames == 3  # every frame after the damage
    assert world.source.live


def test_lost_dma_framing_is_counted_and_the_dropped_set_is_a_gap(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    blocks = world.run(0.5)
    world.bridge.lose_sync_next = True
    with caplog.at_level(logging.WARNING, logger="meterd.pq.bridge_source"):
        blocks += world.run(0.5)
    assert world.source.counters.sync_losses == 1 and world.source.counters.lost_sets == 1
    assert "DMA framing lost and regained" in caplog.text
    # the sets after the regained framing are the chip's sets of that index, channel order intact
    after = next(b for a, b in zip(blocks, blocks[1:], strict=False) if b.first_index == a.end_index + 1)
    np.testing.assert_allclose(after.samples, world.grid.waveform_block(after.first_index, after.n_samples),
                               atol=2e-3)


def test_an_unread_bridge_overruns_and_says_so() -> None:
    world = World()
    world.run(0.5)
    world.t += 2.0  # two seconds not fetched: 346 kB > the bridge's 96 KiB
    world.bridge.sample_to(round(world.t * FS))
    world.link.data += world.bridge.take()
    world.run(0.5)
    c = world.source.counters
    assert c.overruns == 1 and c.lost_sets == world.bridge.sets_dropped > 0 and c.lost_frames == 0


def test_unplugged_switches_off_with_one_log_line_and_replugged_resumes(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    mon = PqMonitor()
    first = world.run(1.0, mon)
    assert world.source.live
    world.link.connected = False
    with caplog.at_level(logging.INFO, logger="meterd.pq.bridge_source"):
        assert world.run(3.0, mon) == []
        assert not world.source.live and world.source.counters.switched_off == 1
        off = [r.getMessage() for r in caplog.records if "waveform bridge off" in r.getMessage()]
        assert len(off) == 1 and "unplugged" in off[0] and "indicative" in off[0]
        world.replug()
        blocks = world.run(3.5, mon)
    assert world.source.live and world.source.counters.switched_off == 1 and world.source.counters.restarts == 1
    assert "waveform bridge on" in caplog.records[-1].getMessage()
    # the restarted count continues the meter's indices after a gap, dated by the meter's UTC
    assert blocks[0].first_index == first[-1].end_index + FS
    assert blocks[0].utc_first == pytest.approx(T0_UTC + dt.timedelta(seconds=4.0), abs=dt.timedelta(seconds=0.1))
    np.testing.assert_allclose(blocks[0].samples, world.grid.waveform_block(4 * FS, blocks[0].n_samples), atol=2e-3)
    assert mon.latest().aggregates["150-cycle"].flagged


def test_a_stalled_bridge_switches_off_and_comes_back_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    mon = PqMonitor()
    world.run(1.0, mon)
    for _ in range(30):  # 3 s without a frame: the link stays open, the bridge's firmware hangs
        world.t += 0.1
        assert world.source.read_block() is None
    assert not world.source.live and "no intact frame" in world.source.off_reason
    world.bridge.next_index = resumed_at = round(world.t * FS)  # it restarts sampling where the chip is
    with caplog.at_level(logging.INFO, logger="meterd.pq.bridge_source"):
        blocks = world.run(3.5, mon)
    assert world.source.live and "waveform bridge on" in caplog.text
    assert blocks[0].first_index == resumed_at  # the bridge kept its count: the monitor sees a jump
    assert world.source.counters.lost_sets == resumed_at - FS
    assert mon.latest().aggregates["150-cycle"].flagged


def test_the_32_bit_set_index_wraps_without_a_gap() -> None:
    world = World()
    start = (1 << 32) - 3 * 32 - 5  # the bridge has been counting for 6.2 days
    world.t = start / FS  # the grid's index of now is the bridge's
    world.bridge.next_index = start
    blocks = world.run(0.2)
    assert blocks[0].first_index == start and blocks[-1].end_index > 1 << 32
    assert all(a.end_index == b.first_index for a, b in zip(blocks, blocks[1:], strict=False))
    assert world.source.counters.lost_sets == 0 and world.source.counters.restarts == 0


def test_a_frame_with_another_channel_selection_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.run(0.1)
    seen = world.source.counters.frames
    # the chip's default DMACtrl: no I4, so every later channel would sit in the wrong row
    world.link.data += encode_frame(world.bridge.seq, 0, world.bridge.next_index, 1, b"\x00" * 18, dma_ctrl=0x7E44)
    with caplog.at_level(logging.WARNING, logger="meterd.pq.bridge_source"):
        assert world.source.read_block() is None
    assert world.source.counters.format_errors == 1 and world.source.counters.frames == seen
    assert "DMACtrl 0x7E44" in caplog.text

"""The meter's receiver of the waveform bridge against the simulated bridge at the real byte timing:
a frame of 32 sets every 4 ms through a pty, read by the receiver thread, decoded by the meter's
source into the grid's own samples without a loss."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np

from hw.sim.grid import Grid, GridState, Harmonic, PhaseState
from hw.waveform_bridge import BridgeReceiver
from hw.waveform_bridge_sim import PacedBridge, SimBridge, SimBridgeDevice, SimDmaChip
from meterd.pq.bridge_source import BridgeWaveformSource
from meterd.pq.source import WaveformBlock

FS = 8000


def test_real_rate_stream_arrives_whole_and_equal_to_the_grid(tmp_path: Path) -> None:
    phase = PhaseState(voltage_v=230.0, current_a=12.0, phi_deg=30.0, u_harmonics=(Harmonic(3, 0.05),))
    grid = Grid(lambda: 0.0, GridState(phases=(phase, phase, phase)))
    # A send buffer of 4 s instead of the RP2040's 0.55 s: a test machine under load may stall the
    # reading thread longer than the bridge's ring covers, which is loss by the machine, not by the
    # path under test (overruns are counted and tested in test_waveform_bridge_source.py).
    bridge = SimBridge(SimDmaChip(grid).payload, buffer_bytes=4 * 173_000)
    device = SimBridgeDevice(tmp_path / "bridge")
    receiver = BridgeReceiver(str(device.path), retry_s=0.01)
    receiver.start()
    source = BridgeWaveformSource(receiver, time.monotonic, lambda: dt.datetime.now(dt.UTC), stall_s=5.0)
    paced = PacedBridge(bridge, device)
    blocks: list[WaveformBlock] = []
    try:
        deadline = time.monotonic() + 10.0
        while sum(b.n_samples for b in blocks) < FS and time.monotonic() < deadline:
            time.sleep(0.02)  # the meter's side polls; the bytes arrive at the bridge's pace meanwhile
            while (block := source.read_block()) is not None:
                blocks.append(block)
    finally:
        paced.close()
        receiver.close()
        device.close()
    n = sum(b.n_samples for b in blocks)
    assert n >= FS, f"only {n} sets in 10 s"
    assert all(a.end_index == b.first_index for a, b in zip(blocks, blocks[1:], strict=False))
    first = blocks[0].first_index
    got = np.concatenate([b.samples for b in blocks], axis=1)
    np.testing.assert_allclose(got, grid.waveform_block(first, n), atol=2e-3)
    c = source.counters
    assert (c.lost_frames, c.lost_sets, c.overruns, source.decoder.crc_errors, receiver.dropped_bytes) == (0, 0, 0, 0, 0)
    # the bytes came at the bridge's pace: about 173 kB/s, not faster than the sets exist
    assert receiver.received_bytes <= (bridge.next_index / FS + 0.01) * 173_000

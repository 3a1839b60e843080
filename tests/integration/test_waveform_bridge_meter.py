"""The whole simulated meter with ``[power_quality] source = "bridge"``: the simulated bridge's
frames through a pty (the USB CDC device behind a stable path) into the daemon's PQ chain;
unplugged, the analysis switches itself off, the chip's indicative values stand in and metering
goes on; plugged in again, the analysis resumes by itself.

The meter is stepped (Daemon.step); between steps the bridge frames the sets of the simulated
second and the test waits, bounded, until the meter's receiver thread has read every byte."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hw.waveform_bridge import BridgeReceiver
from hw.waveform_bridge_sim import SAMPLE_RATE_HZ, SimBridge, SimBridgeDevice, SimDmaChip
from meterd.pq.bridge_source import BridgeWaveformSource
from meterd.services.power_quality import PowerQualityService
from tests.simmeter import SimMeter


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


class Rig:
    """The meter, its grid's waveform chip, the bridge and its device."""

    def __init__(self, tmp_path: Path) -> None:
        self.device = SimBridgeDevice(tmp_path / "pmm-waveform-bridge")
        self.meter = SimMeter(tmp_path / "state", display={"kind": "dummy"},
                              power_quality={"enabled": True, "source": "bridge", "chip_period_s": 1.0,
                                             "bridge_device": str(self.device.path), "bridge_retry_s": 0.02})
        self.meter.world.set_load({"phase": "all", "current_a": 10.0})
        self.chip = SimDmaChip(self.meter.world.grid)
        self.source = self.meter.service(BridgeWaveformSource)
        link = self.source.link
        assert isinstance(link, BridgeReceiver)
        self.receiver = link
        self.written = 0
        self.plug_bridge()

    def grid_index(self) -> int:
        return round((self.meter.clock.mono() - self.meter.world.grid.t0) * SAMPLE_RATE_HZ)

    def plug_bridge(self) -> None:
        """A bridge (re)started: its set 0 is the grid's sample of now."""
        offset = self.grid_index()
        self.offset = offset
        self.bridge = SimBridge(lambda s, n: self.chip.payload(s + offset, n))

    def step(self, seconds: int) -> None:
        for _ in range(seconds):
            if self.device.plugged:
                self.send_until(self.grid_index() - self.offset)
            self.meter.run(1)


    def send_until(self, index: int) -> None:
        """The bridge samples up to set ``index`` and the host fetches as it goes (every 0.1 s of
        sets: the bridge's buffer holds 0.57 s), until the receiver has read every byte."""
        while self.bridge.next_index + self.bridge.sets_per_frame <= index:
            self.bridge.sample_to(min(index, self.bridge.next_index + SAMPLE_RATE_HZ // 10))
            while self.bridge.buffered:
                moved = self.device.drain_from(self.bridge)
                self.written += moved
                if not moved:
                    wait_for(lambda: self.receiver.received_bytes >= self.written, "the receiver to drain the pty")
        wait_for(lambda: self.receiver.received_bytes >= self.written, "the receiver to read the bytes")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    yield r
    r.meter.close()
    r.device.close()


def test_bridge_unplugged_and_plugged_again(rig: Rig) -> None:
    pq = rig.meter.service(PowerQualityService)
    metering = rig.meter.meter
    rig.step(4)
    status = rig.meter.daemon.status_extras["power_quality"]()
    assert status["source"] == "bridge" and status["indicative"] is False
    assert status["bridge"]["live"] and status["bridge"]["lost_sets"] == 0 and status["bridge"]["crc_errors"] == 0
    values = pq.values()
    assert not values.indicative and values.rms_10cycle["U1"] == pytest.approx(230.0, rel=1e-3)
    assert values.rms_10cycle["I1"] == pytest.approx(10.0, rel=2e-3)

    energy_before = dict(metering.snapshot().registers)
    rig.device.unplug()
    wait_for(lambda: not rig.receiver.connected, "the receiver to see the device gone")
    rig.step(3)
    status = rig.meter.daemon.status_extras["power_quality"]()
    assert status["indicative"] is True and not status["bridge"]["live"]
    assert "unplugged" in status["bridge"]["off_reason"] and status["bridge"]["switched_off"] == 1
    assert pq.values().indicative and pq.values().thd_pct  # the chip's DFT values stand in
    assert dict(metering.snapshot().registers) != energy_before  # metering never stopped

    rig.device.plug()
    wait_for(lambda: rig.receiver.opens == 2, "the receiver to open the new device")
    rig.plug_bridge()
    rig.step(2)
    status = rig.meter.daemon.status_extras["power_quality"]()
    assert status["indicative"] is False and status["bridge"]["live"] and status["bridge"]["restarts"] >= 1
    assert pq.values().rms_10cycle["U1"] == pytest.approx(230.0, rel=1e-3)

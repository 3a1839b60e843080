"""The CIU's update over the MCU-CIU link: how long a bundle takes on the RS-485 line, and what the
keypad waits meanwhile.

The transfer runs the real code of both ends (the meter's :class:`CiuService` and
:class:`CiuUpdateService`, the CIU's link client and :class:`CiuUpdater`) on the in-memory 2-wire
bus (:class:`hw.serial_link.SimWire`): every octet takes its character time at the baud rate (10
bit times, 8N1), the bus is half duplex with the drivers' turn-on/off, the turnaround and the
meter's polls, so the simulated time *is* the line time of everything the transfer sends (blocks,
acknowledgements, polls, STATUS) plus the protocol's own waits. What the hosts spend computing
is measured on this machine (wall time of the run) and printed apart. RAUC is a stand-in here
(verify and install are ``bench_firmware_install.py``'s). A sample bundle is carried; realistic
sizes are extrapolated from its throughput: an application-only CIU bundle of 4 MiB and a whole
CIU root file system of 200 MiB (squashfs).

While the bundle flows a token is typed every ``--token-every`` s (simulated) and its latency,
ENTER to the result on the CIU screen, is reported.

Prints ``name: value unit`` lines. Run from the repo root:
``.venv/bin/python bench/bench_ciu_update.py [--sample-kb 128] [--baud 9600]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from ciu.core.state import CiuState, Screen
from ciu.core.update_rules import UpdatePolicy
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.update import CiuUpdater, UpdateSettings
from hw.boot import BootInfo
from hw.serial_link import BusDrivers, SimWire
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import FWU_VERSION, LinkConfig, LinkEndpoint, Role
from meterd.services.ciu_service import CiuService
from meterd.services.ciu_update import CiuUpdatePolicy, CiuUpdateService
from meterd.store.ciu_update_store import CiuUpdateFiles
from tests.ciu_link_port import RecordingLinkPort
from tests.unit.services.test_ciu_update_service import FakeBoard, FakeEngine, Reader

DT_S = 0.02  # loop step of both ends (s), as the daemons' timers
TOKEN = "31415926535897932384"


class Bench:
    def __init__(self, tmp: Path, baud: int) -> None:
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=baud, seed=3, drivers=BusDrivers(0.001, 0.002))
        config = LinkConfig(baud=baud)
        rng = random.Random(1)
        meter_link = LinkEndpoint(Role.METER, self.clock, rng.randbytes, bytes(range(32)), config)
        self.service = CiuService(meter_link, self.clock, lambda _d: {"accepted": True, "code": "accepted"},
                                  lambda: {"credit": 12.5, "unit": "kWh", "fwu_v": FWU_VERSION})
        self.update = CiuUpdateService(RecordingLinkPort(self.service), Reader(), CiuUpdateFiles(tmp / "meter"), None,
                                       self.clock, self.clock, CiuUpdatePolicy(compatible="pmm-ciu-rpi4", baud=baud))
        self.engine = FakeEngine()
        self.updater = CiuUpdater(tmp / "ciu", self.engine, FakeBoard(), BootInfo("A", False),
                                  UpdatePolicy("pmm-ciu-rpi4"), lambda: {"ok": True}, self.clock.mono,
                                  UpdateSettings())
        self.updater.start()
        ids = iter(range(1000, 100000))
        self.state = CiuState(self.clock, lambda: next(ids))
        self.client = CiuLinkClient(self.state, LinkEndpoint(Role.CIU, self.clock, rng.randbytes, bytes(range(32)),
                                                             config), self.wire.b, updater=self.updater)

    def step(self) -> None:
        self.clock.advance(DT_S)
        self.update.on_events(self.service.receive_bytes(self.wire.a.read()))
        self.update.on_events(self.service.poll())
        out = self.service.data_to_send()
        if out:
            self.wire.a.write(out)
        self.updater.wait_idle(60.0)
        self.client.pump()


def run(sample_kb: int, baud: int, token_every_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bench = Bench(tmp, baud)
        for _ in range(int(3 / DT_S)):
            bench.step()
        bundle = tmp / "ciu.raucb"
        bundle.write_bytes(b"pmm-ciu-rpi4 0.2.0\n" + random.Random(2).randbytes(sample_kb * 1024))
        size = bundle.stat().st_size
        assert asyncio.run(bench.update.stage(bundle)).ok
        start_mono, wall0, cpu0 = bench.clock.mono(), time.perf_counter(), time.process_time()
        latencies: list[float] = []
        next_token = start_mono + token_every_s
        typed: float | None = None
        while not bench.engine.installed:
            now = bench.clock.mono()
            if typed is None and now >= next_token:
                for key in (*TOKEN, "ENTER"):
                    bench.client.press(key)
                typed = now
            if typed is not None and bench.state.view().screen is Screen.RESULT:
                latencies.append(now - typed)
                typed, next_token = None, now + token_every_s
                bench.client.press("CLEAR")
            bench.step()
            if now - start_mono > 100 * size * 10 / baud:
                raise RuntimeError("the transfer did not end")
        line_s = bench.clock.mono() - start_mono
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        bench.updater.close()
    bare_s = size * 10 / baud
    per_byte_s = line_s / size
    latencies.sort()
    return {"sample_bytes": size, "line_s": line_s, "bare_s": bare_s, "ratio": line_s / bare_s,
            "throughput_Bps": size / line_s, "cpu_s": cpu_s, "wall_s": wall_s,
            "app_bundle_4MiB_h": 4 * 2**20 * per_byte_s / 3600, "rootfs_bundle_200MiB_h": 200 * 2**20 * per_byte_s / 3600,
            "tokens": len(latencies), "token_p50_s": statistics.median(latencies) if latencies else float("nan"),
            "token_max_s": latencies[-1] if latencies else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-kb", type=int, default=128, help="octets of the sample bundle carried (KiB)")
    parser.add_argument("--baud", type=int, nargs="*", default=[9600, 115200], help="line rates (Bd)")
    parser.add_argument("--token-every", type=float, default=20.0, help="a token typed this often (simulated s)")
    args = parser.parse_args()
    for baud in args.baud:
        r = run(args.sample_kb, baud, args.token_every)
        name = f"ciu_update_{baud}bd"
        print(f"{name}_sample: {r['sample_bytes']:.0f} B")
        print(f"{name}_line_time: {r['line_s']:.1f} s (bare line time of the octets {r['bare_s']:.1f} s, "
              f"ratio {r['ratio']:.2f})")
        print(f"{name}_throughput: {r['throughput_Bps']:.0f} B/s")
        print(f"{name}_app_bundle_4MiB: {r['app_bundle_4MiB_h']:.2f} h")
        print(f"{name}_rootfs_bundle_200MiB: {r['rootfs_bundle_200MiB_h']:.1f} h")
        print(f"{name}_token_latency_during_transfer: p50 {r['token_p50_s']:.2f} s, max {r['token_max_s']:.2f} s "
              f"({r['tokens']:.0f} tokens)")
        print(f"{name}_host_time: {r['cpu_s']:.2f} s CPU, {r['wall_s']:.2f} s wall for both ends")


if __name__ == "__main__":
    main()

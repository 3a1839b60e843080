"""Communication media: how fast the fallback switches, what a health check costs, how fast the
modem is read over D-Bus.

1. Switch latency (meter time, the decision logic on a manual clock): the primary is cut at a
   random instant of its check period, 1000 times; each failed check costs the whole connect
   time-out (a medium that drops packets: the worst case) or nothing (a refused connection).
   Goal: every switch within ``MediaPolicy.switch_bound_s`` (the configured ``switch_within_s``
   is refused when it is below the bound).
2. One health check through a loopback medium (real sockets, source address bound): duration.
3. The modem through python-dbusmock's ModemManager on a private dbus-daemon: start-up of the
   stand-in, one full snapshot (modem, 3GPP, signal, bearer, cells) over D-Bus, Simple.Connect.
4. Bytes per day of the health checks (arithmetic: a TCP connect and close ≈ 6 packets ≈ 340
   octets at the IP layer).

Prints "name: value unit" lines.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.dbus_modem_mock import ModemManagerStandIn  # noqa: E402
from hw.modem_manager import ModemManagerClient  # noqa: E402
from meterd.core.clock import SimClock  # noqa: E402
from meterd.runtime.media_uplink import MediaUplink, MediumRoute  # noqa: E402
from meterd.services.media import MediaPolicy, MediaSelector  # noqa: E402

POLICY = MediaPolicy(check_period_s=10.0, recheck_s=2.0, confirm_failures=2, connect_timeout_s=3.0,
                     standby_check_s=300.0, switch_back_s=600.0)
CHECK_OCTETS = 340


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_due(sel: MediaSelector, clock: SimClock, cut: bool, timeout_costs: bool) -> None:
    """Run the due checks; the Ethernet fails while ``cut`` (costing the time-out or not)."""
    for name in sel.due():
        sel.started(name)
        ok = not (cut and name == "ethernet")
        if not ok and timeout_costs:
            clock.advance(POLICY.connect_timeout_s)
        sel.result(name, ok, "" if ok else "timed out")


def switch_latency(timeout_costs: bool, runs: int = 1000, seed: int = 1) -> list[float]:
    """Meter seconds from the cut to the switch, per run."""
    rng = random.Random(seed)
    out: list[float] = []
    for _ in range(runs):
        clock = SimClock()
        sel = MediaSelector(["ethernet", "cellular"], POLICY, clock, None)
        for _ in range(int(rng.uniform(20, 30) * 10)):  # settle, then cut at a random instant
            run_due(sel, clock, False, timeout_costs)
            clock.advance(0.1)
        t_cut = clock.mono()
        while True:
            run_due(sel, clock, True, timeout_costs)
            if sel.state().current == "cellular":
                break
            clock.advance(0.1)
        out.append(clock.mono() - t_cut)
    return out


async def check_durations(n: int = 200) -> list[float]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sel = MediaSelector(["ethernet"], POLICY, SimClock(), None)
    up = MediaUplink(sel, {"ethernet": MediumRoute("ethernet", lambda: "127.0.0.2")}, ("127.0.0.1", port))
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert await up.check_now("ethernet")
        out.append((time.perf_counter() - t0) * 1000)
    server.close()
    await server.wait_closed()
    return out


async def modem_reads(address: str, path_holder: list[str], n: int = 100) -> tuple[list[float], float]:
    client = ModemManagerClient(address)
    await client.open()
    reads = []
    for _ in range(n):
        t0 = time.perf_counter()
        snap = await client.snapshot()
        reads.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    await client.connect(snap.path, "iot.example")
    connect_ms = (time.perf_counter() - t0) * 1000
    path_holder.append(snap.path)
    await client.close()
    return reads, connect_ms


def main() -> None:
    logging.getLogger("meterd").setLevel(logging.CRITICAL)  # the 2000 switches' log lines
    print(f"switch_bound: {POLICY.switch_bound_s():.1f} s (check 10 s, recheck 2 s, 2 failures, time-out 3 s)")
    for label, costs in (("dropping", True), ("refusing", False)):
        lat = switch_latency(costs)
        print(f"switch_{label}_p50: {pct(lat, 0.5):.1f} s")
        print(f"switch_{label}_p99: {pct(lat, 0.99):.1f} s")
        print(f"switch_{label}_max: {max(lat):.1f} s")
        assert max(lat) <= POLICY.switch_bound_s() + 0.1
    checks = asyncio.run(check_durations())
    print(f"health_check_loopback_p50: {statistics.median(checks):.2f} ms")
    print(f"health_check_loopback_p99: {pct(checks, 0.99):.2f} ms")
    t0 = time.perf_counter()
    mm = ModemManagerStandIn()
    mm.start()
    print(f"stand_in_start: {(time.perf_counter() - t0) * 1000:.0f} ms (dbus-daemon + python-dbusmock)")
    try:
        holder: list[str] = []
        reads, connect_ms = asyncio.run(modem_reads(mm.address, holder))
        print(f"modem_snapshot_p50: {statistics.median(reads):.2f} ms")
        print(f"modem_snapshot_p99: {pct(reads, 0.99):.2f} ms")
        print(f"modem_simple_connect: {connect_ms:.2f} ms")
    finally:
        mm.stop()
    for period in (10.0, 60.0, 300.0):
        per_day = 86400 / period * CHECK_OCTETS
        print(f"check_bytes_per_day_at_{period:g}s: {per_day / 1000:.0f} kB")


if __name__ == "__main__":
    main()

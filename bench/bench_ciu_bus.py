"""The polled half-duplex CIU bus over 30 min of simulated time (9600 Bd, kernel RS-485 driver
delays of 1 ms / 2 ms, own echo): tokens typed key by key at random moments, STATUS pushed every
5 s. Prints token latency (ENTER to the result on the CIU screen; p50, p99, max), the delivered
STATUS ratio, link drops, collisions, bus use, on a clean line and on noisy ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.serial_link import WireFaults  # noqa: E402
from tests.ciu_bus_soak import SoakReport, run_soak  # noqa: E402

SECONDS = 1800.0


def line(name: str, report: SoakReport, cpu_s: float) -> None:
    q = SoakReport.quantile
    lat = report.token_latency_s
    once = report.tokens_applied == report.tokens_typed
    meter = report.meter_stats
    print(f"{name}: tokens {len(report.tokens_applied)}/{len(report.tokens_typed)} delivered once={once}, "
          f"token latency p50 {q(lat, 0.5) * 1000:.0f} ms p99 {q(lat, 0.99) * 1000:.0f} ms "
          f"max {max(lat) * 1000:.0f} ms; short-code p99 {q(report.short_code_latency_s, 0.99) * 1000:.0f} ms")
    print(f"{name}: status delivered {report.status_received}/{report.status_sent - report.status_pending} "
          f"(ratio {report.status_ratio:.3f}); link drops {len(report.link_downs)}; collisions {report.collisions}; "
          f"meter turns {meter.turns} ({meter.turns / report.seconds:.1f}/s), reply timeouts "
          f"{meter.reply_timeouts}, retransmissions {meter.retransmissions + report.ciu_stats.retransmissions}; "
          f"cpu {cpu_s:.1f} s")


def main() -> None:
    for name, faults in (("ciu_bus_30min_clean", None),
                         ("ciu_bus_30min_err1e-4", WireFaults(corrupt_p=1e-4, drop_p=1e-4)),
                         ("ciu_bus_30min_err1e-3", WireFaults(corrupt_p=1e-3, drop_p=1e-3))):
        t0 = time.process_time()
        report = run_soak(SECONDS, seed=14, faults=faults)
        line(name, report, time.process_time() - t0)


if __name__ == "__main__":
    main()

"""Push numbers: alarm-to-listener latency and the bytes a day of the default push schedule costs.

Prints ``name: value unit`` lines. The meter is the daemon's own wiring stepped in-process
(tests/simmeter.py, 1 s cycles, delivery right after each cycle as the sending task does); the
head end is dlms-cosem parsing on a loopback TCP listener (tests/push_listener.py), deciphering
with the meter's keys.

* latency: a terminal-cover tamper is injected before a cycle; the wall time from the start of
  that cycle to the listener holding the decoded notification (metering cycle, alarm, capture,
  ciphering, TCP connect and send, dlms-cosem parsing). In meter time the push always leaves in
  the cycle that sets the alarm bit (at most 1 s after the event). ``PMM_BENCH_PUSH_ALARMS``
  alarms (default 100), the alarm register cleared between them;
* bytes per day: two simulated days (15-min cycles) with the default setups; the second day's
  scheduled push (the daily billing profile and a whole day of 96 load-profile rows of 15 min)
  and one on-connectivity push a day, no alarm (the alarm filter 0),
  counted as wrapper + ciphered APDU octets as they leave the meter, and with an estimate of
  the IPv4/TCP overhead of one connection per message (handshake, data, acknowledgements and
  close: about 8 segments of 40 octets of headers, no options), what a cellular link carries.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterd.app.features.dlms import DlmsSecurity  # noqa: E402
from meterd.services.push import ALARM_OBIS, PushEngine  # noqa: E402
from meterd.services.supervision import Supervision  # noqa: E402
from tests.push_listener import PushListener  # noqa: E402
from tests.simmeter import SimMeter  # noqa: E402

TCP_IP_OVERHEAD = 8 * 40  # octets of IPv4 + TCP headers per one-message connection (estimate)


def _keys(meter: SimMeter) -> tuple[bytes, bytes]:
    k = meter.service(DlmsSecurity).keys.current
    return k.global_unicast_key, k.authentication_key


async def latency(n: int) -> list[float]:
    listener = PushListener()
    with tempfile.TemporaryDirectory() as tmp:
        meter = SimMeter(Path(tmp), push={"destination": f"127.0.0.1:{await listener.start()}"})
        listener.keys = _keys(meter)
        engine, supervision = meter.service(PushEngine), meter.service(Supervision)
        out = []
        try:
            meter.run(2)
            await engine.deliver_due()
            await listener.wait_for(2)
            for i in range(n):
                supervision.clear_alarms(meter.clock.utc())
                meter.run(1)
                meter.world.clear()
                meter.run(1)
                meter.world.inject({"kind": "terminal_cover_open"})
                start = time.perf_counter()
                meter.run(1)
                await engine.deliver_due()
                got = await listener.wait_for(3 + i)
                out.append(time.perf_counter() - start)
                assert got[-1].values.value[0].value == bytes((0, 4, 25, 9, 0, 255)), ALARM_OBIS
        finally:
            meter.close()
            await listener.stop()
    return out


async def day_bytes() -> tuple[int, int, int]:
    listener = PushListener()
    with tempfile.TemporaryDirectory() as tmp:
        meter = SimMeter(Path(tmp), push={"destination": f"127.0.0.1:{await listener.start()}"},
                         supervision={"alarm_filter": 0})
        listener.keys = _keys(meter)
        engine = meter.service(PushEngine)
        try:
            for _ in range(2 * 96 + 1):  # two days (the second push holds a whole day), a cycle per profile row
                meter.run(900, 900)
                if engine.has_due():
                    await engine.deliver_due()
            got = await listener.wait_for(len(listener.received))
        finally:
            meter.close()
            await listener.stop()
    scheduled = [r for r in got if r.values.value[0].value == bytes((0, 1, 25, 9, 0, 255))]
    connectivity = [r for r in got if r.values.value[0].value == bytes((0, 0, 25, 9, 0, 255))]
    full_day = scheduled[-1].octets
    return full_day, connectivity[0].octets, len(scheduled[-1].values.value[4].value)


def main() -> None:
    n = int(os.environ.get("PMM_BENCH_PUSH_ALARMS", "100"))
    samples = asyncio.run(latency(n))
    samples.sort()
    print(f"push_alarm_latency_p50: {statistics.median(samples) * 1e3:.1f} ms (stepped meter, loopback TCP, "
          f"{n} alarms)")
    print(f"push_alarm_latency_p99: {samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1e3:.1f} ms")
    print("push_alarm_latency_meter_time_max: 1 cycle (1 s)")
    scheduled, connectivity, rows = asyncio.run(day_bytes())
    print(f"push_scheduled_message: {scheduled} octets ({rows} load-profile rows, wrapper + ciphered APDU)")
    print(f"push_connectivity_message: {connectivity} octets")
    per_day = scheduled + connectivity
    print(f"push_default_schedule_per_day: {per_day} octets (wrapper + APDU)")
    print(f"push_default_schedule_per_day_tcp_ip: {per_day + 2 * TCP_IP_OVERHEAD} octets (with IPv4/TCP headers, "
          "estimate)")


if __name__ == "__main__":
    main()

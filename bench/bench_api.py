"""Benchmark of the network API (prints name: value unit).

A whole simulated meter serves its API on a free TCP port of this process and runs its metering
cycle at :data:`PERIOD_S` of real time (faster than the real meter's 1 s, to load the API); the
clients run in another process, so what is measured here is what the API costs the meter:

* request latency (GET /status, POST /sim/set) p50 and p99, seen by the client;
* WebSocket fan-out of /ws/values to 0, 1, 10 and 50 dashboards: messages received, the meter
  process's CPU (share of one core) and its metering cycles' lateness (p99, max) while they run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from meterd.api.tokens import Tokens
from tests.simmeter import SimMeter

PERIOD_S = 0.05  # real time per metering cycle during the bench (s): 20 cycles/s
RUN_S = 4.0      # how long each fan-out case runs (s)
REQUESTS = 300
TOKEN = "b" * 32


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the clients' process --------------------------------------------------------------------

async def requests(url: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"get_status": [], "post_sim_set": []}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        for i in range(n):
            t = time.perf_counter()
            async with s.get(f"{url}/status") as r:
                await r.read()
            out["get_status"].append(time.perf_counter() - t)
            t = time.perf_counter()
            async with s.post(f"{url}/sim/set", json={"phase": "A", "current_a": 5.0 + i % 3}) as r:
                await r.read()
            out["post_sim_set"].append(time.perf_counter() - t)
    return out


async def dashboards(url: str, n: int, run_s: float) -> list[int]:
    async with aiohttp.ClientSession() as s:
        sockets = [await s.ws_connect(f"{url}/ws/values?access_token={TOKEN}") for _ in range(n)]
        counts = [-1] * n  # the first message is the hello

        async def read(i: int) -> None:
            async for _msg in sockets[i]:
                counts[i] += 1

        tasks = [asyncio.ensure_future(read(i)) for i in range(n)]
        await asyncio.sleep(run_s)
        for t in tasks:
            t.cancel()
        for ws in sockets:
            await ws.close()
        return counts


def client_main(conn: multiprocessing.connection.Connection) -> None:
    mode, url, n = conn.recv()
    conn.send("ready")
    conn.recv()  # go
    result: Any = asyncio.run(requests(url, n) if mode == "requests" else dashboards(url, n, RUN_S))
    conn.send(result)


# -- the meter's process ---------------------------------------------------------------------

async def meter_run(meter: SimMeter, mode: str, n: int) -> tuple[Any, float, list[float]]:
    api = meter.daemon.api
    host, port = await api.start_tcp("127.0.0.1", 0, Tokens(read=(TOKEN,), control=(TOKEN,)))
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(target=client_main, args=(child,))
    proc.start()
    parent.send((mode, f"http://{host}:{port}", n))
    while not parent.poll():
        await asyncio.sleep(0.01)
    parent.recv()
    parent.send("go")
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    deadline = loop.time()
    while not parent.poll():
        lateness.append(max(loop.time() - deadline, 0.0))
        meter.daemon.step()
        deadline += PERIOD_S
        await asyncio.sleep(max(deadline - loop.time(), 0.0))
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    result = parent.recv()
    proc.join()
    await api.close()
    return result, cpu, lateness


def case(mode: str, n: int) -> tuple[Any, float, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        meter = SimMeter(Path(tmp) / "state")
        try:
            return asyncio.run(meter_run(meter, mode, n))
        finally:
            meter.close()


def main() -> None:
    result, cpu, late = case("requests", REQUESTS)
    for name, times in result.items():
        print(f"api_{name}_latency_p50: {statistics.median(times) * 1e3:.2f} ms")
        print(f"api_{name}_latency_p99: {percentile(times, 99) * 1e3:.2f} ms")
    print(f"api_requests_meter_cpu: {cpu * 100:.1f} % of a core (requests back to back)")
    print(f"api_requests_cycle_lateness_p99: {percentile(late, 99) * 1e3:.1f} ms")
    for clients in (0, 1, 10, 50):
        counts, cpu, late = case("dashboards", clients)
        cycles = RUN_S / PERIOD_S
        got = f", {min(counts) / cycles * 100:.0f} % of the cycles reached the slowest" if counts else ""
        print(f"ws_values_{clients}_clients_meter_cpu: {cpu * 100:.1f} % of a core at {1 / PERIOD_S:.0f} cycles/s{got}")
        print(f"ws_values_{clients}_clients_cycle_lateness: p99 {percentile(late, 99) * 1e3:.1f} ms, "
              f"max {max(late) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

"""CIU link and display numbers: framing cost, token round trip on the 9600 Bd half-duplex bus, noisy goodput,
pairing CPU (both ends), render times. ``bench_ciu_bus.py`` has the 30-min token latency and STATUS ratio."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ciu.core.state import Screen, View  # noqa: E402
from ciu.ui.render import render  # noqa: E402
from hw.serial_link import SimWire, WireFaults  # noqa: E402
from meterd.core.clock import SimClock  # noqa: E402
from meterd.proto.ciu_link import (  # noqa: E402
    Deframer,
    FrameKind,
    LinkEndpoint,
    LinkState,
    MessageReceived,
    Role,
    build_frame,
    token_submit,
)
from meterd.ui.display_data import DisplayData  # noqa: E402
from meterd.ui.screens import ITEMS_BY_ID, render_item  # noqa: E402

KEY = bytes(range(32))


def rand(seed: int):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def per_call_us(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def link_pair(faults: WireFaults | None, seed: int):
    clock = SimClock()
    wire = SimWire(clock.mono, 9600, faults, seed)
    meter = LinkEndpoint(Role.METER, clock, rand(seed), KEY)
    ciu = LinkEndpoint(Role.CIU, clock, rand(seed + 1), KEY)
    got: list = []

    def step(dt: float = 0.002) -> None:
        clock.advance(dt)
        for end, port in ((meter, wire.a), (ciu, wire.b)):
            events = end.receive_bytes(port.read()) + end.poll()
            got.extend(e for e in events if isinstance(e, MessageReceived))
            out = end.data_to_send()
            if out:
                port.write(out)
    return clock, wire, meter, ciu, got, step


def token_round_trip_s() -> tuple[float, int]:
    clock, wire, meter, ciu, got, step = link_pair(None, 1)
    while meter.state is not LinkState.UP:
        step()
    for _ in range(1500):
        step()  # let the first heartbeats pass
    frame = token_submit(1, "1" * 20)
    t0 = clock.mono()
    wire.b.write(ciu.send(frame))
    while ciu.pending_messages:
        step()
    return clock.mono() - t0, len(build_frame(KEY, Role.CIU, FrameKind.DATA, 1, 1, 0, frame.encode()))


def noisy_goodput(p: float) -> tuple[float, int]:
    clock, wire, meter, ciu, got, step = link_pair(WireFaults(corrupt_p=p, drop_p=p), 7)
    while ciu.state is not LinkState.UP:
        step()
    n = 50
    t0 = clock.mono()
    for i in range(n):
        wire.b.write(ciu.send(token_submit(i, f"{i:020d}")))
    while ciu.pending_messages and clock.mono() - t0 < 600:
        step(0.005)
    return n / (clock.mono() - t0), len(got)


def main() -> None:
    payload = token_submit(1, "1" * 20).encode()
    wire = build_frame(KEY, Role.CIU, FrameKind.DATA, 1, 1, 0, payload)
    print(f"frame_build_token: {per_call_us(lambda: build_frame(KEY, Role.CIU, FrameKind.DATA, 1, 1, 0, payload), 5000):.1f} us")
    print(f"frame_parse_token: {per_call_us(lambda: Deframer().feed(wire), 5000):.1f} us")
    rtt, size = token_round_trip_s()
    print(f"token_frame_size: {size} bytes")
    print(f"token_delivery_9600bd_sim: {rtt * 1000:.1f} ms")
    for p in (0.001, 0.005, 0.01):
        rate, n = noisy_goodput(p)
        print(f"token_goodput_9600bd_err{p:g}: {rate:.2f} tokens/s ({n} delivered of 50)")
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1))
    ciu = LinkEndpoint(Role.CIU, clock, rand(2))
    t0 = time.perf_counter()
    meter.start_pairing("12345678")
    ciu.start_pairing("12345678")
    while not (meter.paired and ciu.paired):  # each end talks in its turn on the polled bus
        clock.advance(0.01)
        for a, b in ((meter, ciu), (ciu, meter)):
            a.poll()
            b.receive_bytes(a.data_to_send())  # every read, also an empty one
    print(f"pairing_cpu: {(time.perf_counter() - t0) * 1000:.1f} ms")
    data_ = DisplayData(credit=153.25, import_energy_kwh=12345.678)
    print(f"meter_lcd_render_credit_en: {per_call_us(lambda: render_item(ITEMS_BY_ID['credit'], data_, 'en'), 200) / 1000:.2f} ms")
    print(f"meter_lcd_render_import_ar: {per_call_us(lambda: render_item(ITEMS_BY_ID['import'], data_, 'ar'), 200) / 1000:.2f} ms")
    print(f"meter_lcd_render_phasor: {per_call_us(lambda: render_item(ITEMS_BY_ID['phasor'], data_, 'en'), 200) / 1000:.2f} ms")
    view = View(Screen.ENTRY, entry="1234 5678 9012 3456 7890", link_up=True)
    print(f"ciu_render_entry_en: {per_call_us(lambda: render(view), 100) / 1000:.2f} ms")
    view_ar = View(Screen.HOME, lang="ar", status={"credit": "153.25", "unit": "kWh"}, link_up=True)
    print(f"ciu_render_home_ar: {per_call_us(lambda: render(view_ar), 100) / 1000:.2f} ms")


if __name__ == "__main__":
    main()

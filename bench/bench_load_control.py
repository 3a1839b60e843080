"""Load-control timing in simulation: from the metering cycle whose reading completes the limiter's
minimum over-threshold duration to the coil pulse (in cycles and simulated ms), contact opening
time, remote-disconnect latency, and the host cost of the per-cycle limiter path and of a durable
relay-state save. The ``meter_*`` lines measure through the whole simulated meter (the daemon's
own wiring, ``tests.simmeter``): cycles from the first metered reading over the threshold to the
coil pulse and to the first metered reading with 0 A, for overloads starting at several points
inside a cycle, and the host cost of a whole metering cycle with load control attached.
Prints "name: value unit" lines."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpiozero.pins.mock import MockFactory  # noqa: E402

from hw.relay import ManualScheduler, build_sim_relay  # noqa: E402
from meterd.core.clock import SimClock  # noqa: E402
from meterd.core.limiter import LimiterConfig  # noqa: E402
from meterd.core.reading import PhaseValues, Reading  # noqa: E402
from meterd.runtime.load_control import LoadControlUnit
from meterd.services.load_control import LoadControl, LoadControlConfig, RelayRecord  # noqa: E402
from meterd.store.relay_store import RelayStore  # noqa: E402

CYCLE_S = 1.0
MIN_OVER_S = 5.0
RUNS = 50


class NullSink:
    def record(self, code: int, utc: Any, detail: dict[str, Any]) -> None:
        pass


def reading(t: float, power_w: float) -> Reading:
    phase = PhaseValues(voltage_v=230.0, current_a=power_w / 690.0, active_power_w=power_w / 3)
    return Reading(mono_s=t, phases=(phase, phase, phase), energy={}, total_active_power_w=power_w)


def build(tmp: Path, index: int) -> tuple[SimClock, ManualScheduler, Any, Any, LoadControl, RelayStore]:
    clock = SimClock(start_mono=1000.0)
    sched = ManualScheduler(clock)
    factory = MockFactory()
    relay, sim = build_sim_relay(clock, sched, factory, initial_closed=True)
    store = RelayStore(tmp / f"relay{index}.db")
    limiter = LimiterConfig(threshold_normal=10_000.0, min_over_threshold_duration_s=MIN_OVER_S,
                            min_under_threshold_duration_s=5.0, reconnect_delay_s=30.0)
    lc = LoadControl(relay, store, NullSink(), clock, sched, LoadControlConfig(control_mode=5, limiter=limiter))
    lc.start()
    sched.advance(2.0)
    return clock, sched, factory, sim, lc, store


def limiter_trip(tmp: Path, index: int) -> tuple[int, float, float]:
    """(cycles from the qualifying reading to the coil pulse, ms reading->coil on, ms coil on->open)."""
    clock, sched, factory, sim, lc, store = build(tmp, index)
    over_start = None
    cycle = 0
    qualifying_cycle = None
    qualifying_mono = 0.0
    edges_before = len(sim.coil_edges)
    while True:
        cycle += 1
        sched.advance(CYCLE_S)
        now = clock.mono()
        power = 15_000.0 if sim.closed else 0.0
        if over_start is None and power > 10_000.0:
            over_start = now
        if qualifying_cycle is None and over_start is not None and now - over_start >= MIN_OVER_S:
            qualifying_cycle, qualifying_mono = cycle, now
        lc.on_reading(reading(now, power))
        pulses = [e for e in sim.coil_edges[edges_before:] if e[1] == "reset" and e[2]]
        if pulses:
            break
    pulse_mono = pulses[0][0]
    pulse_cycle = cycle
    sched.advance(0.1)
    open_mono = next(t for t, name, on in sim.coil_edges if name == "reset" and on) + sim.switching_time_s
    assert not sim.closed and qualifying_cycle is not None
    store.close()
    factory.reset()
    return pulse_cycle - qualifying_cycle, (pulse_mono - qualifying_mono) * 1e3, (open_mono - pulse_mono) * 1e3


def remote_latency(tmp: Path) -> float:
    clock, sched, factory, sim, lc, store = build(tmp, 9999)
    start = clock.mono()
    lc.remote_disconnect()
    while sim.closed:
        sched.advance(0.001)
    latency_ms = (clock.mono() - start) * 1e3
    store.close()
    factory.reset()
    return latency_ms


def cycle_cost_us(tmp: Path, n: int = 20_000) -> float:
    clock, sched, factory, sim, lc, store = build(tmp, 10_000)
    readings = [reading(clock.mono() + i + 1, 5_000.0) for i in range(n)]
    t0 = time.perf_counter()
    for r in readings:
        lc.on_reading(r)
    cost = (time.perf_counter() - t0) / n * 1e6
    store.close()
    factory.reset()
    return cost


def save_cost_ms(tmp: Path, n: int = 200) -> tuple[float, float]:
    store = RelayStore(tmp / "save.db")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        store.save(RelayRecord(control_state=1, control_mode=1, relay_closed=bool(i % 2), operation_count=i,
                               pending=True))
        times.append((time.perf_counter() - t0) * 1e3)
    store.close()
    return statistics.median(times), max(times)


def _sim_meter(state_dir: Path, **lc: Any) -> Any:
    from tests.simmeter import SimMeter

    return SimMeter(state_dir, load_control=lc)


def whole_meter_trip(tmp: Path, offset_s: float) -> tuple[int, int]:
    """(cycles first over reading -> coil pulse, cycles first over reading -> first 0 A reading)
    for an overload that starts ``offset_s`` into a cycle; min over-threshold time MIN_OVER_S."""
    meter = _sim_meter(tmp / f"meter{offset_s}", threshold_normal=5000.0, min_over_threshold_s=MIN_OVER_S)
    feature = meter.service(LoadControlUnit)
    meter.run(3)
    meter.world.load_scenario(f"[[events]]\nat_s = {2 + offset_s}\nphase = \"all\"\ncurrent_a = 10.0\n", "step")
    cycle, first_over, pulse, zero = 0, None, None, None
    while zero is None and cycle < 100:
        meter.run(1)
        cycle += 1
        reading = meter.meter.last_reading
        if first_over is None and reading.total_active_power_w > 5000.0:
            first_over = cycle
        if pulse is None and any(name == "reset" and on for _, name, on in feature.sim_relay.coil_edges):
            pulse = cycle
        if first_over is not None and max(p.current_a for p in reading.phases) == 0.0:
            zero = cycle
    meter.close()
    assert first_over is not None and pulse is not None and zero is not None
    return pulse - first_over, zero - first_over


def whole_meter_cycle_ms(tmp: Path, n: int = 300) -> float:
    meter = _sim_meter(tmp / "cost")
    t0 = time.perf_counter()
    meter.run(n)
    cost = (time.perf_counter() - t0) / n * 1e3
    meter.close()
    return cost


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        whole = [whole_meter_trip(tmp, off) for off in (0.0, 0.25, 0.5, 0.75)]
        print(f"meter_min_over_threshold: {MIN_OVER_S:.0f} s ({MIN_OVER_S / CYCLE_S:.0f} cycles)")
        print(f"meter_first_over_reading_to_coil_pulse: {min(p for p, _ in whole)}..{max(p for p, _ in whole)} cycles")
        print(f"meter_first_over_reading_to_zero_current_reading: {min(z for _, z in whole)}.."
              f"{max(z for _, z in whole)} cycles")
        print(f"meter_cycle_cost_host_with_load_control: {whole_meter_cycle_ms(tmp):.2f} ms/cycle")
        trips = [limiter_trip(tmp, i) for i in range(RUNS)]
        cycles = [c for c, _, _ in trips]
        print(f"limiter_trip_runs: {RUNS} runs")
        print(f"limiter_qualifying_reading_to_pulse_max: {max(cycles)} cycles")
        print(f"limiter_qualifying_reading_to_pulse_mean: {statistics.mean(cycles):.2f} cycles")
        print(f"limiter_reading_to_coil_on_sim: {max(m for _, m, _ in trips):.1f} ms")
        print(f"sim_coil_on_to_contact_open: {max(o for _, _, o in trips):.1f} ms")
        print(f"remote_disconnect_to_contact_open_sim: {remote_latency(tmp):.1f} ms")
        print(f"on_reading_cost_host: {cycle_cost_us(tmp):.1f} us/cycle")
        median_ms, max_ms = save_cost_ms(tmp)
        print(f"relay_state_save_median_host: {median_ms:.3f} ms")
        print(f"relay_state_save_max_host: {max_ms:.3f} ms")


if __name__ == "__main__":
    main()

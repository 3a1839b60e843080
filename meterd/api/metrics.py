"""Prometheus metrics of the meter (``GET /metrics``): its health and its measurements.

A custom collector reads the meter's state when Prometheus scrapes (nothing is done per metering
cycle). Health: metering cycles, late and missed cycles, the metering IC's fault state and
totals, the status flags (storage health among them), the links' states, the API's stream
clients and dropped messages, the push backlog. Measurements: per-phase voltage (V), current (A), active (W),
reactive (var) and apparent (VA) power, power factor, frequency (Hz), and the energy registers
(Wh, varh, VAh; OBIS 1.0.C.8.0.255).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from meterd.api.streams import StreamHub
from meterd.api.views import ENERGY_KEYS, milli_to_unit
from meterd.core.energy import obis_c
from meterd.core.reading import PHASES, Channel
from meterd.services.metering import MeteringService

LINK_UP_STATES = frozenset({"up", "connected", "established", "paired", "open"})


@dataclass(frozen=True)
class MetricSources:
    """What the collector reads: the metering service, the loop's counters (``cycles``,
    ``late_cycles``, ``missed_cycles``), the links' states by name, and the API's streams."""

    meter: MeteringService
    loop: Callable[[], Mapping[str, Any]]
    links: Callable[[], Mapping[str, str]]
    hub: StreamHub
    dlms_events: Callable[[], Mapping[tuple[str, str], int]] = lambda: {}
    """DLMS security and communication events by (link, event name) since start."""
    push: Callable[[], Mapping[str, int] | None] = lambda: None
    """The push queue: ``queued`` (messages not delivered yet), ``parked`` (retries used up, kept),
    ``dropped`` (by the queue bound since start); None without pushes."""


class MeterCollector(Collector):
    """The meter's metrics, made at scrape time."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        yield from self._health()
        yield from self._measurements()

    def _health(self) -> Iterator[Any]:
        src = self.sources
        meter = src.meter
        loop = src.loop()
        yield CounterMetricFamily("meterd_metering_cycles", "Metering cycles run.", value=meter.cycles)
        yield CounterMetricFamily("meterd_late_cycles", "Metering cycles that ended more than a period late.",
                                  value=int(loop.get("late_cycles", 0)))
        yield CounterMetricFamily("meterd_missed_cycles", "Metering cycles skipped after the loop fell far behind.",
                                  value=int(loop.get("missed_cycles", 0)))
        for key, text in (("lateness_p99_ms", "99th percentile of the metering tick's start lateness (ms)."),
                          ("lateness_max_ms", "Largest metering tick start lateness since start (ms).")):
            if key in loop:
                yield GaugeMetricFamily(f"meterd_metering_{key}", text, value=float(loop[key]))
        dlms = CounterMetricFamily("meterd_dlms_events", "DLMS sessions opened and closed, refused associations, "
                                   "authentication, deciphering and replay failures, by link (rate-limited ones "
                                   "counted too).", labels=["link", "event"])
        for (link, name), count in sorted(src.dlms_events().items()):
            dlms.add_metric([link, name.lower()], count)
        yield dlms
        push = src.push()
        if push is not None:
            yield GaugeMetricFamily("meterd_push_backlog", "Push messages queued and not delivered yet.",
                                    value=int(push.get("queued", 0)))
            yield GaugeMetricFamily("meterd_push_parked", "Queued push messages whose retries ran out (kept).",
                                    value=int(push.get("parked", 0)))
            yield CounterMetricFamily("meterd_push_dropped", "Push messages dropped by the queue bound.",
                                      value=int(push.get("dropped", 0)))
        chip = meter.chip
        yield GaugeMetricFamily("meterd_chip_in_fault", "1 while the metering IC is in fault.",
                                value=1 if chip.in_fault else 0)
        totals = chip.totals
        yield CounterMetricFamily("meterd_chip_faults", "Metering IC faults recorded.", value=totals.count)
        yield CounterMetricFamily("meterd_chip_fault_seconds", "Time the metering IC spent in fault (s).",
                                  value=totals.duration_s)
        yield CounterMetricFamily("meterd_energy_not_measured_wh", "Energy estimated as not measured during "
                                  "metering IC faults (Wh).", value=totals.energy_not_measured_wh)
        flags = GaugeMetricFamily("meterd_status_flag", "Status flags set (storage health among them): 1 per flag.",
                                  labels=["flag"])
        for flag in sorted(meter.status_flags()):
            flags.add_metric([flag], 1)
        yield flags
        links = GaugeMetricFamily("meterd_link_up", "1 when the link is up (state label: its state).",
                                  labels=["link", "state"])
        for name, state in sorted(src.links().items()):
            links.add_metric([name, state], 1 if state in LINK_UP_STATES else 0)
        yield links
        yield GaugeMetricFamily("meterd_api_stream_clients", "WebSocket stream clients.",
                                value=src.hub.client_count())
        yield CounterMetricFamily("meterd_api_stream_dropped_messages", "Stream messages dropped for slow clients.",
                                  value=src.hub.dropped_total)

    def _measurements(self) -> Iterator[Any]:
        meter = self.sources.meter
        reading = meter.last_reading
        per_phase = {
            "meterd_voltage_volts": ("RMS voltage (V).", "voltage_v"),
            "meterd_current_amperes": ("RMS current (A).", "current_a"),
            "meterd_active_power_watts": ("Active power (W).", "active_power_w"),
            "meterd_reactive_power_var": ("Reactive power (var).", "reactive_power_var"),
            "meterd_apparent_power_va": ("Apparent power (VA).", "apparent_power_va"),
            "meterd_power_factor": ("Power factor.", "power_factor"),
        }
        if reading is not None:
            for name, (doc, attr) in per_phase.items():
                family = GaugeMetricFamily(name, doc, labels=["phase"])
                for ch in PHASES:
                    family.add_metric([ch.value], float(getattr(reading.phase(ch), attr)))
                yield family
            yield GaugeMetricFamily("meterd_frequency_hertz", "Frequency (Hz).", value=reading.frequency_hz)
        snapshot = meter.snapshot()
        energy = CounterMetricFamily("meterd_energy_register", "Energy registers (Wh, varh or VAh, as the "
                                     "register label's suffix says).", labels=["channel", "register", "obis"])
        for ch in Channel:
            channel = "total" if ch is Channel.TOTAL else ch.value
            for quantity, key in ENERGY_KEYS.items():
                energy.add_metric([channel, key, f"1.0.{obis_c(quantity, ch)}.8.0.255"],
                                  milli_to_unit(snapshot.energy(quantity, ch)))
        yield energy


def metrics_registry(sources: MetricSources) -> CollectorRegistry:
    """A registry with only the meter's collector (no process metrics of the client library)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeterCollector(sources))
    return registry

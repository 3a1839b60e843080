"""The API's routes and streams: status, simulator control, the live values, events and
waveforms (what later features register comes on top)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hw.atm90e36.faults import ChipFault
from meterd.api.schema import EMPTY, Body, Field
from meterd.api.server import ApiError, ApiServer
from meterd.api.tokens import TokenFileError, ensure_tokens
from meterd.api.views import status_view
from meterd.app.config import Config
from meterd.app.feature_api import CycleHook
from meterd.app.sim_adapters import SAMPLE_RATE_HZ
from meterd.app.sim_faults import KINDS
from meterd.app.sim_world import SimWorld, fault_request
from meterd.core.clock import Clock
from meterd.core.errors import ConfigError
from meterd.core.events import EventEntry, EventRecorder
from meterd.core.reading import PHASES, Channel
from meterd.pq.source import ROW_NAMES
from meterd.services.metering import CycleResult, MeteringService

FAULT_KINDS = tuple(KINDS)


def fault_param_fields() -> tuple[Field, ...]:
    """Every fault parameter as a body field (type and choices; each kind checks its own ranges)."""
    params: dict[str, tuple[type, set[str], list[str]]] = {}
    for kind in KINDS.values():
        for p in kind.params:
            kind_type: type = str if p.choices else int if p.name == "seed" else float
            entry = params.setdefault(p.name, (kind_type, set(), []))
            entry[1].update(p.choices)
            entry[2].append(kind.name)
    return tuple(Field(name, kind_type, f"parameter of {', '.join(kinds)}", choices=tuple(sorted(choices)))
                 for name, (kind_type, choices, kinds) in sorted(params.items()))


SIM_SET = Body((
    Field("phase", str, "the phase to change, or all", choices=("A", "B", "C", "all", "L1", "L2", "L3")),
    Field("voltage_v", float, "RMS voltage (V)", minimum=0, maximum=480),
    Field("current_a", float, "RMS current (A)", minimum=0, maximum=200),
    Field("power_factor", str, "power factor: 1, 0.5L (lagging), 0.8C (leading); negative = export"),
    Field("frequency_hz", float, "frequency (Hz)", minimum=40, maximum=70),
))
SIM_FAULT = Body((
    Field("kind", str, "the fault (GET /sim/faults lists them)", required=True, choices=FAULT_KINDS),
    Field("duration_s", float, "meter seconds (default: until fault-clear)", minimum=0.001, maximum=86_400),
    *fault_param_fields(),
))
SIM_FAULT_CLEAR = Body((Field("kind", str, "the fault to end (default: all)", choices=FAULT_KINDS),))
SIM_SCENARIO = Body((
    Field("toml", str, "the scenario (TOML, hw.sim.scenario)", required=True),
    Field("name", str, "a name for it (events and answers)"),
))
WAVEFORM_SNAPSHOT_S = 0.04  # two 50 Hz periods per snapshot (s)
CHIP_FAULTS = frozenset(f.value for f in ChipFault)

def metrology_view(meter: MeteringService) -> dict[str, Any]:
    """The metering IC's supervision for ``/status``: the fault in force (kinds, since when, s of
    meter monotonic time), this cycle's warnings, and the recorded totals (count, s, Wh)."""
    chip = meter.chip
    check = meter.chip_check
    totals = chip.totals
    return {"in_fault": chip.in_fault, "faults": sorted(k.value for k in chip.kinds),
            "fault_since_s": chip.fault_since,
            "warnings": sorted(w.value for w in check.warnings) if check is not None else [],
            "fault_count": totals.count, "fault_duration_s": round(totals.duration_s, 1),
            "energy_not_measured_wh": round(totals.energy_not_measured_wh, 3)}


def register_routes(api: ApiServer, meter: MeteringService, info: dict[str, Any],
                    status_extras: dict[str, Callable[[], Any]], sim: SimWorld | None,
                    phases: tuple[Channel, ...] = PHASES) -> None:
    """Attach ``/status`` (with ``info`` as its links and every ``status_extras`` provider; the
    ``phases`` of the meter's wiring) and, with a simulated world, the ``/sim/...`` controls to ``api``."""

    def status(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Instantaneous values, energy registers (Wh, varh, VAh), status and every feature's state."""
        snap = meter.snapshot()
        extra: dict[str, Any] = {"links": dict(info), "metrology": metrology_view(meter)}
        for name, provider in status_extras.items():
            extra[name] = provider()
        return 200, status_view(meter.identity, snap, meter.status_flags(), extra, phases)

    api.route("GET", "/status", status,
              description="Instantaneous values, energy registers (Wh, varh, VAh), status and every feature's state.")
    if sim is not None:
        def sim_set(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, sim.set_load(body)

        def sim_scenario(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if "toml" not in body:
                raise ApiError(400, "body needs 'toml' (the scenario text)")
            return 200, sim.load_scenario(str(body["toml"]), str(body.get("name", "scenario")))

        def power_fail(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            sim.power_cut(True)
            return 200, {"power": "failed"}

        def power_restore(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            sim.power_cut(False)
            return 200, {"power": "restored"}

        def sim_fault(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            """A metering IC fault (``chip_fault`` timing, bit-flip rate and seed) or any rig fault of
            :mod:`meterd.app.sim_faults`, by ``kind``."""
            try:
                if str(body.get("kind")) in CHIP_FAULTS:
                    return 200, sim.inject_fault(*fault_request(body))
                return 200, sim.inject(body)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None

        def sim_fault_clear(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            kind = body.get("kind")
            try:
                if kind is None:
                    return 200, {"cleared": sorted({*sim.clear_fault()["cleared"], *sim.clear()["cleared"]})}
                if str(kind) in CHIP_FAULTS:
                    return 200, {"cleared": sorted({*sim.clear_fault(ChipFault.parse(str(kind)))["cleared"],
                                                    *sim.clear(str(kind))["cleared"]})}
                return 200, sim.clear(str(kind))
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None

        def sim_faults(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            view = sim.faults_view()
            now = sim.clock()
            chip: list[dict[str, Any]] = [{"kind": k.value, "params": {},
                     "remaining_s": None if until == float("inf") else round(max(until - now, 0.0), 3)}
                    for k, until in sim.fault_until.items() if k.value not in sim.active]
            view["active"] = sorted([*view["active"], *chip], key=lambda a: str(a["kind"]))
            return 200, view

        def sim_slow_storage(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            try:
                return 200, sim.slow_storage(body.get("delay_s", 0.0), body.get("duration_s"))
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None

        api.route("POST", "/sim/set", sim_set, body=SIM_SET,
                  description="Set a phase's (or all phases') voltage, current, power factor; the frequency.")
        api.route("POST", "/sim/slow-storage", sim_slow_storage,
                  description="Make every storage fsync of the simulated meter slow: delay_s (s) for duration_s (s).")
        api.route("POST", "/sim/fault", sim_fault, body=SIM_FAULT,
                  description="Inject a fault: the grid, wiring, relay, supply, tamper inputs, RTC battery or the "
                              "metering IC (GET /sim/faults lists the kinds and their parameters).")
        api.route("POST", "/sim/fault-clear", sim_fault_clear, body=SIM_FAULT_CLEAR,
                  description="End an injected fault (all when no kind).")
        api.route("GET", "/sim/faults", sim_faults,
                  description="The fault kinds (group, parameters, the events they lead to) and the faults in force.")
        api.route("POST", "/sim/scenario", sim_scenario, body=SIM_SCENARIO,
                  description="Load a scenario (TOML): it starts now and plays as meter time passes.")
        api.route("POST", "/sim/power-fail", power_fail, body=EMPTY,
                  description="Cut the supply and raise the power-fail input.")
        api.route("POST", "/sim/power-restore", power_restore, body=EMPTY, description="Restore the supply.")


def values_view(meter: MeteringService, phases: tuple[Channel, ...] = PHASES) -> dict[str, Any]:
    """One cycle's values for ``/ws/values``: per-phase V, A, W, var, VA, power factor, angle,
    frequency (Hz) of ``phases``, totals, energy registers (Wh, varh, VAh) and status flags."""
    return status_view(meter.identity, meter.snapshot(), meter.status_flags(), phases=phases)


def event_view(entry: EventEntry) -> dict[str, Any]:
    """A recorded event for ``/ws/events`` (as ``meterctl events`` shows it)."""
    return entry.as_dict()


def register_streams(api: ApiServer, meter: MeteringService, cycle_hooks: list[CycleHook],
                     events: EventRecorder | None, sim: SimWorld | None, clock: Clock, cycle_s: float,
                     phases: tuple[Channel, ...] = PHASES) -> None:
    """Offer ``/ws/values`` (fed each cycle), ``/ws/events`` (fed by the event recorder) and
    ``/ws/waveform`` (a snapshot of the simulated grid's samples each cycle; none on hardware,
    where the chip's samples do not reach the API: the stream's first message says so)."""
    api.stream("values", "Instantaneous values, energy registers and status flags, every metering cycle.",
               lambda: {"cycle_s": cycle_s})
    api.stream("events", "Events as they are recorded (seq, utc, code, name, text, logs, detail).",
               lambda: {"available": events is not None})

    def publish_values(_result: CycleResult) -> None:
        api.publish("values", lambda: values_view(meter, phases))

    cycle_hooks.append(publish_values)
    if events is not None:
        events.add_listener(lambda entry: api.publish("events", lambda: event_view(entry)))
    grid = sim.grid if sim is not None else None
    if grid is None:
        api.stream("waveform", "Waveform snapshots (not on this meter).",
                   lambda: {"available": False,
                            "reason": "waveform samples reach the API only from the simulated grid"})
        return
    api.stream("waveform", f"A {WAVEFORM_SNAPSHOT_S * 1000:g} ms snapshot of the 8 kHz samples of U1, I1, U2, I2, "
                           "U3, I3, IN (V, A), every metering cycle.",
               lambda: {"available": True, "source": "simulated grid", "sample_rate_hz": SAMPLE_RATE_HZ,
                        "channels": list(ROW_NAMES)})

    def publish_waveform(_result: CycleResult) -> None:
        api.publish("waveform", lambda: waveform_snapshot(grid, clock))

    cycle_hooks.append(publish_waveform)


def waveform_snapshot(grid: Any, clock: Clock) -> dict[str, Any]:
    """The last :data:`WAVEFORM_SNAPSHOT_S` of the simulated grid's samples (V, A; 2 decimals)."""
    n = round(WAVEFORM_SNAPSHOT_S * SAMPLE_RATE_HZ)
    end = max(round((clock.mono() - grid.t0) * SAMPLE_RATE_HZ), n)
    samples = grid.waveform_block(end - n, n)
    return {"utc": clock.utc().isoformat(), "sample_rate_hz": SAMPLE_RATE_HZ, "first_index": end - n,
            "channels": {name: [round(float(v), 2) for v in samples[row]] for row, name in enumerate(ROW_NAMES)}}


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The HTTPS context of ``[api] tls_cert``/``tls_key`` (None for plain HTTP)."""
    if not cfg.api.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.under_state(cfg.api.tls_cert), cfg.under_state(cfg.api.tls_key))
    return context


async def start_network_api(api: ApiServer, cfg: Config, simulated: bool, info: dict[str, Any]) -> None:
    """Listen on ``[api] listen`` with the tokens of ``[api] tokens`` (a simulated meter makes
    the file with fresh tokens when it is missing) and TLS when configured; the address goes to
    ``info["api_url"]``. ``GET /api/tokens`` (UNIX socket only) tells the local user the tokens."""
    if not cfg.api.listen:
        def network_off(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            """The network API's tokens (read, control) and address."""
            raise ApiError(404, "the network API is off on this meter ([api] listen is empty)")

        api.route("GET", "/api/tokens", network_off, local_only=True)
        return
    path = cfg.under_state(cfg.api.tokens)
    try:
        tokens = ensure_tokens(path, create=simulated)
    except TokenFileError as exc:
        raise ConfigError(cfg.path, "api.tokens", str(exc)) from None
    host, port = cfg.api.listen_address()
    tls = tls_context(cfg)
    bound_host, bound_port = await api.start_tcp(host, port, tokens, tls)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    info["api_url"] = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
    info["dashboard"] = f"{info['api_url']}/dashboard/"

    def token_list(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The network API's tokens (read, control) and address."""
        return 200, {"url": info["api_url"], "file": str(path), "read": list(tokens.read),
                     "control": list(tokens.control)}

    api.route("GET", "/api/tokens", token_list, local_only=True)


def register_metrics(api: ApiServer, meter: MeteringService, status_extras: dict[str, Callable[[], Any]],
                     dlms_events: Callable[[], Mapping[tuple[str, str], int]] = lambda: {}) -> None:
    """``GET /metrics``: the meter's health and measurements (:mod:`meterd.api.metrics`); the
    loop's lateness counters, the CIU link's state and the push queue are read from ``status_extras``, the DLMS
    links' event counts from ``dlms_events``."""

    def loop() -> dict[str, Any]:
        provider = status_extras.get("loop")
        return dict(provider()) if provider is not None else {}

    def links() -> dict[str, str]:
        provider = status_extras.get("ciu")
        view = provider() if provider is not None else None
        return {"ciu": str(view["state"])} if isinstance(view, dict) and "state" in view else {}

    def push() -> dict[str, int] | None:
        provider = status_extras.get("push")
        view = provider() if provider is not None else None
        if not isinstance(view, dict):
            return None
        parked = sum(int(s.get("parked", 0)) for s in view.get("setups", []))
        return {"queued": int(view.get("queued", 0)), "parked": parked, "dropped": int(view.get("dropped", 0))}

    def build() -> Any:
        from meterd.api.metrics import MetricSources, metrics_registry

        return metrics_registry(MetricSources(meter, loop, links, api.hub, dlms_events, push))

    api.metrics_registry = LazyMetricsRegistry(build)


class LazyMetricsRegistry:
    """The meter's Prometheus registry as ``GET /metrics`` collects it, built at the first
    scrape: prometheus_client (about 4 MiB resident) is imported only by a meter that is scraped."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._registry: Any = None

    def collect(self) -> Iterator[Any]:
        """The metrics, as the registry's ``collect`` gives them."""
        if self._registry is None:
            self._registry = self._build()
        return iter(self._registry.collect())

"""Load control in the meter: latching disconnect relay, class 70/71, limiter, button, changeover.

Wires :class:`meterd.services.load_control.LoadControl` to the hardware and the rest of the meter:

* relay: ``hw.relay.LatchingRelay`` on the set/reset coil outputs and the auxiliary-contact input
  (BCM pins from ``[load_control]``); with ``backend = "sim"`` a :class:`hw.relay.SimRelay` sits on
  the same mock pins and its main contacts cut the simulated load: while they are open every
  phase current of the grid model is 0 A (voltage stays: the meter measures on the supply side),
  and load changes made meanwhile (``meterctl sim set``, scenarios) are remembered and come back
  when the contacts close;
* timers (coil pulse, feedback check, retries): in simulation they run on the meter's simulated
  clock, fired in due order before each cycle's reading (a contact move is dated at its due
  time in the grid model); on a Pi on the asyncio loop, except the end of the coil pulse, which
  lgpio times in hardware (``hw.relay.coil_pulser``; a deadline thread on other pin factories);
* limiter (class 71, 0-0:17.0.0.255): fed with every cycle's reading (total active power, W,
  1-0:1.7.0.255, or the highest phase current, A); over-current and overload protection;
* button: a GPIO input debounced on the meter clock (:class:`hw.inputs.PushButton`), press = manual
  reconnection (e), hold >= ``long_press_s`` = manual disconnection (f); in sim the scenario
  signal ``button`` (true = pressed) and ``POST /relay/button`` drive it;
* optional grid/solar changeover (``hw.changeover``) when both contactor pins are set; the grid
  is judged from the metered phase voltages, the solar source from ``solar_present_pin`` when it
  is wired (a voltage-detect module, active high, debounced like the button; in sim the scenario
  signal ``solar_present`` drives it), else from the simulated ``solar_voltage_v`` signal (V);
  the selected source is saved with the relay record and restored at start;
* per cycle: :class:`~meterd.runtime.load_control.LoadControlUnit` (timers, button, limiter,
  changeover); in simulation :func:`~meterd.app.sim_adapters.wire_sim_load_control`;
* COSEM objects (``meterd.cosem.objects_load_control``), events to the event recorder (needed,
  from supervision); provides the :class:`~meterd.services.load_control.LoadControl` service
  and the :class:`~meterd.runtime.load_control.LoadControlUnit`; ``status_extras["relay"]``,
  the ``relay_open`` status bit, and the routes ``GET /relay``, ``POST /relay``,
  ``POST /relay/button`` (:mod:`meterd.api.load_control_views`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hw.changeover import Changeover
from hw.inputs import PushButton
from hw.relay import LatchingRelay, ManualScheduler, RelayTiming, SimRelay, coil_pulser
from meterd.api.load_control_views import relay_routes, relay_view
from meterd.app.config import NO_PIN, choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.sim_adapters import wire_sim_load_control
from meterd.core.events import EventRecorder
from meterd.core.limiter import LimiterConfig, Monitored
from meterd.core.supply import Source, SupplyConfig
from meterd.cosem.objects_load_control import load_control_factory
from meterd.runtime.load_control import LoadControlUnit, LoopScheduler
from meterd.services.load_control import LoadControl, LoadControlConfig
from meterd.services.relay_button import RelayButton
from meterd.services.relay_events import RelayEvents
from meterd.store.relay_store import RelayStore, relay_closed_at_start, source_at_start


@dataclass(frozen=True)
class LoadControlSection:
    """``[load_control]``: BCM pins (-1 = not wired), coil timing (ms, s), class 70 mode at first
    start, limiter thresholds (W, or A with ``monitored = "current"``) and durations (s),
    reconnection delay (s) and attempts, over-current (A) and overload (W) protection, button,
    changeover contactor pins and source thresholds (V, s).

    The defaults never limit a load within the meter's rating (3 × 230 V × Imax 100 A = 69 kW):
    the demand thresholds (100 kW) and the protection (120 A per phase, 90 kW) sit above it; a
    utility sets its own demand limits here, through DLMS (class 71) or an STS token."""

    set_pin: int = field(default=22, metadata=rng(0, 27))
    reset_pin: int = field(default=23, metadata=rng(0, 27))
    feedback_pin: int = field(default=27, metadata=rng(-1, 27))
    feedback_pull: str = field(default="external", metadata=choices("external", "up", "down"))
    pulse_width_ms: float = field(default=50.0, metadata=rng(10, 500))
    settle_ms: float = field(default=20.0, metadata=rng(0, 500))
    min_interval_s: float = field(default=1.0, metadata=rng(0.1, 3600))
    max_retries: int = field(default=2, metadata=rng(0, 10))
    control_mode: int = field(default=5, metadata=rng(0, 6))
    monitored: str = field(default="active_power", metadata=choices("active_power", "current"))
    threshold_normal: float = field(default=100_000.0, metadata=rng(0.001, 1_000_000))
    threshold_emergency: float = field(default=100_000.0, metadata=rng(0.001, 1_000_000))
    min_over_threshold_s: float = field(default=60.0, metadata=rng(0, 86_400))
    min_under_threshold_s: float = field(default=30.0, metadata=rng(0, 86_400))
    reconnect_delay_s: float = field(default=60.0, metadata=rng(0, 86_400))
    max_reconnect_attempts: int = field(default=3, metadata=rng(0, 100))
    attempt_reset_s: float = field(default=3600.0, metadata=rng(0, 7 * 86_400))
    phase_current_limit_a: float = field(default=120.0, metadata=rng(0.1, 200))
    overcurrent_duration_s: float = field(default=5.0, metadata=rng(0, 3600))
    overload_power_w: float = field(default=90_000.0, metadata=rng(1, 200_000))
    overload_duration_s: float = field(default=10.0, metadata=rng(0, 3600))
    button_pin: int = field(default=26, metadata=rng(-1, 27))
    button_debounce_s: float = field(default=0.05, metadata=rng(0.01, 1.0))
    long_press_s: float = field(default=3.0, metadata=rng(0.5, 30))
    changeover_grid_pin: int = field(default=NO_PIN, metadata=rng(-1, 27))
    changeover_solar_pin: int = field(default=NO_PIN, metadata=rng(-1, 27))
    changeover_dead_time_s: float = field(default=0.1, metadata=rng(0.01, 10))
    solar_present_pin: int = field(default=NO_PIN, metadata=rng(-1, 27))
    solar_present_debounce_s: float = field(default=0.05, metadata=rng(0.01, 1.0))
    supply_preferred: str = field(default="grid", metadata=choices("grid", "solar"))
    supply_loss_voltage_v: float = field(default=138.0, metadata=rng(1, 480))
    supply_restore_voltage_v: float = field(default=195.5, metadata=rng(1, 480))
    supply_loss_s: float = field(default=2.0, metadata=rng(0, 3600))
    supply_restore_s: float = field(default=30.0, metadata=rng(0, 3600))
    supply_auto_return: bool = True

    def __post_init__(self) -> None:
        pins = [p for p in (self.set_pin, self.reset_pin, self.feedback_pin, self.button_pin,
                            self.changeover_grid_pin, self.changeover_solar_pin, self.solar_present_pin)
                if p != NO_PIN]
        if len(pins) != len(set(pins)):
            raise ValueError("load_control pins must all differ")
        if (self.changeover_grid_pin == NO_PIN) != (self.changeover_solar_pin == NO_PIN):
            raise ValueError("changeover needs both changeover_grid_pin and changeover_solar_pin")
        if self.solar_present_pin != NO_PIN and self.changeover_grid_pin == NO_PIN:
            raise ValueError("solar_present_pin needs the changeover (changeover_grid_pin, changeover_solar_pin)")
        if self.min_interval_s * 1000 < self.pulse_width_ms + self.settle_ms:
            raise ValueError("min_interval_s must cover pulse_width_ms + settle_ms")

    @property
    def timing(self) -> RelayTiming:
        """Coil timing for the driver (s)."""
        return RelayTiming(self.pulse_width_ms / 1000, self.min_interval_s, self.settle_ms / 1000)

    @property
    def limiter(self) -> LimiterConfig:
        """Class 71 and protection settings."""
        return LimiterConfig(
            monitored=Monitored.CURRENT if self.monitored == "current" else Monitored.ACTIVE_POWER,
            threshold_normal=self.threshold_normal, threshold_emergency=self.threshold_emergency,
            min_over_threshold_duration_s=self.min_over_threshold_s,
            min_under_threshold_duration_s=self.min_under_threshold_s,
            reconnect_delay_s=self.reconnect_delay_s, max_reconnect_attempts=self.max_reconnect_attempts,
            attempt_reset_s=self.attempt_reset_s, phase_current_limit_a=self.phase_current_limit_a,
            overcurrent_duration_s=self.overcurrent_duration_s, overload_power_w=self.overload_power_w,
            overload_duration_s=self.overload_duration_s)

    @property
    def supply(self) -> SupplyConfig | None:
        """Changeover settings, or None without changeover contactors."""
        if self.changeover_grid_pin == NO_PIN:
            return None
        return SupplyConfig(preferred=Source(self.supply_preferred), loss_voltage_v=self.supply_loss_voltage_v,
                            restore_voltage_v=self.supply_restore_voltage_v, loss_duration_s=self.supply_loss_s,
                            restore_duration_s=self.supply_restore_s, auto_return=self.supply_auto_return)


SECTION = LoadControlSection


def _pin(pin: int) -> int | None:
    return None if pin == NO_PIN else pin


def attach(ctx: FeatureContext) -> None:
    """Build relay, store, service, button and hooks (no I/O loop needed)."""
    section: LoadControlSection = ctx.cfg.feature("load_control")
    hw, clock = ctx.hardware, ctx.clock
    events = RelayEvents(ctx.registry.need(EventRecorder, by="load_control"))
    store = RelayStore(ctx.cfg.state_dir / "relay.db")
    timers: ManualScheduler | None = None
    sim_relay: SimRelay | None = None
    scheduler: Any = LoopScheduler()
    if hw.sim is not None:  # the relay timers run on the simulated meter clock
        timers = scheduler = ManualScheduler(clock)
        sim_relay = SimRelay(hw.pin_factory, section.set_pin, section.reset_pin, _pin(section.feedback_pin), clock,
                             timers, initial_closed=relay_closed_at_start(store.load()))
    relay = LatchingRelay.from_pins(section.set_pin, section.reset_pin, _pin(section.feedback_pin), clock, scheduler,
                                    section.timing, pin_factory=hw.pin_factory,
                                    feedback_pull_up={"external": None, "up": True, "down": False}[section.feedback_pull],
                                    pulser=None if hw.sim is not None else coil_pulser(hw.pin_factory))
    changeover = None
    if section.supply is not None:
        changeover = Changeover.from_pins(section.changeover_grid_pin, section.changeover_solar_pin, scheduler,
                                          section.changeover_dead_time_s,
                                          source_at_start(store.load(), section.supply_preferred),
                                          pin_factory=hw.pin_factory)
    config = LoadControlConfig(control_mode=section.control_mode, max_retries=section.max_retries,
                               limiter=section.limiter, supply=section.supply)
    lc = LoadControl(relay, store, events, clock, scheduler, config, changeover=changeover)
    device = None
    if section.button_pin != NO_PIN:
        device = PushButton(section.button_pin, hw.pin_factory, clock.mono, section.button_debounce_s)
    unit = LoadControlUnit(lc=lc, relay=relay, store=store, events=events,
                           button=RelayButton(lc, section.long_press_s, device), timers=timers,
                           sim_relay=sim_relay, changeover=changeover)
    unit.closers += [store.close, relay.close]
    if device is not None:
        unit.closers.append(device.close)
    if changeover is not None:
        unit.closers.append(changeover.close)
    if section.solar_present_pin != NO_PIN:
        unit.solar_input = PushButton(section.solar_present_pin, hw.pin_factory, clock.mono,
                                      section.solar_present_debounce_s, pull_up=False, name="solar_present")
        unit.closers.append(unit.solar_input.close)
    if isinstance(scheduler, LoopScheduler):  # closed first: no relay timer runs on released pins
        unit.closers.append(scheduler.cancel_all)
    if hw.sim is not None:
        wire_sim_load_control(unit, hw.sim, _pin(section.button_pin), _pin(section.solar_present_pin),
                              coil_pins=(section.set_pin, section.reset_pin))
    lc.start()
    _hook(ctx, unit)


def view(unit: LoadControlUnit) -> dict[str, Any]:
    """``GET /relay`` and ``status.relay``."""
    sim = unit.sim_relay
    return relay_view(unit.lc.status(), unit.lc, unit.button.presses, list(unit.events.recent),
                      unit.solar_input.pressed if unit.solar_input is not None else None,
                      None if sim is None else {"contact_closed": sim.closed, "coil_overlaps": sim.overlaps,
                                                "fault": sim.fault.value})


def _hook(ctx: FeatureContext, unit: LoadControlUnit) -> None:
    lc = unit.lc
    ctx.registry.provide(LoadControl, lc, by="load_control")
    ctx.registry.provide(LoadControlUnit, unit, by="load_control")
    ctx.cycle_hooks.append(unit.on_cycle)
    ctx.meter.status_sources.append(unit.status_flags)
    ctx.status_extras["relay"] = lambda: view(unit)
    ctx.closers.append(unit.close)
    ctx.cosem_factories.append(load_control_factory(lc))
    ctx.info["relay"] = ("simulated latching relay" if unit.sim_relay is not None else "latching relay") + \
        f", {lc.status().control_state.name.lower()}, mode {lc.control_mode}"
    relay_routes(ctx.api, lc, lambda: view(unit), lambda long_press: unit.button.press(long_press=long_press))

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
  time in the grid model); on a Pi on the asyncio loop;
* limiter (class 71, 0-0:17.0.0.255): fed with every cycle's reading (total active power, W,
  1-0:1.7.0.255, or the highest phase current, A); over-current and overload protection;
* button: a GPIO input debounced here (:class:`DebouncedButton`), press = manual
  reconnection (e), hold >= ``long_press_s`` = manual disconnection (f); in sim the scenario
  signal ``button`` (true = pressed) and ``POST /relay/button`` drive it;
* optional grid/solar changeover (``hw.changeover``) when both contactor pins are set; the grid
  is judged from the metered phase voltages, the solar source from ``solar_present_pin`` when it
  is wired (a voltage-detect module, active high, debounced like the button; in sim the scenario
  signal ``solar_present`` drives it), else from the simulated ``solar_voltage_v`` signal (V);
  the selected source is saved with the relay record and restored at start;
* COSEM objects (``meterd.cosem.objects_load_control``), events to ``daemon.services["events"]``,
  ``daemon.services["load_control"]``, ``status_extras["relay"]``, the ``relay_open`` status bit,
  and the routes ``GET /relay``, ``POST /relay``, ``POST /relay/button``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpiozero import DigitalInputDevice

from hw.changeover import Changeover
from hw.relay import LatchingRelay, ManualScheduler, RelayTiming, SimRelay
from hw.sim.grid import GridError
from meterd.api.server import ApiError
from meterd.app.config import choices, rng
from meterd.core.disconnect import ControlState, Outcome, Trigger
from meterd.core.errors import MeterError
from meterd.core.limiter import LimiterConfig, Monitored
from meterd.core.supply import Source, SupplyConfig, lowest_phase_voltage_v
from meterd.cosem.objects_load_control import load_control_factory
from meterd.services.load_control import LoadControl, LoadControlConfig, LoadControlStatus
from meterd.store.relay_store import RelayStore

if TYPE_CHECKING:
    from hw.sim.grid import Grid
    from meterd.app.daemon import Daemon
    from meterd.app.sim_world import SimWorld

log = logging.getLogger("meterd.load_control")

NO_PIN = -1


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


# --------------------------------------------------------------------------- adapters


class EventForwarder:
    """The service's event sink: forwards to ``daemon.services["events"]`` when present and keeps
    the last events for the status view. A code the recorder does not know is logged, not lost
    silently, and never stops the relay logic."""

    def __init__(self, services: dict[str, Any], keep: int = 20) -> None:
        self._services = services
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.unrecorded = 0

    def record(self, code: int, utc: _dt.datetime, detail: dict[str, Any]) -> None:
        """Record event ``code`` at ``utc`` with ``detail``."""
        self.recent.append({"code": code, "utc": utc.isoformat(), **detail})
        recorder = self._services.get("events")
        if recorder is None:
            log.info("disconnector event %d %s", code, detail.get("event", ""))
            return
        try:
            recorder.record(code, utc, detail)
        except MeterError as exc:
            self.unrecorded += 1
            log.warning("disconnector event %d not recorded: %s", code, exc)


class LoopScheduler:
    """``call_later`` on the running asyncio loop (real hardware: real time)."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        """Run ``callback(*args)`` after ``delay`` (s)."""
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class SimLoadSide:
    """The load behind the simulated relay: the grid model's load is disconnected while the
    contacts are open (voltage stays, no current flows) and the same load flows again when they
    close; load changes made meanwhile (``meterctl sim set``, scenarios) are kept by the grid."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    @property
    def open(self) -> bool:
        """True while the contacts are open (load cut)."""
        return not self.grid.state.phases[0].load_connected

    def contact(self, closed: bool, at_s: float | None = None) -> None:
        """The relay's main contacts moved to ``closed`` at ``at_s`` (s, monotonic; None = now)."""
        if closed == (not self.open):
            return
        try:
            self.grid.set_load_connected(closed, at_s)
        except GridError:  # a later change is already in the model: the contact moves now
            self.grid.set_load_connected(closed)




class DebouncedButton:
    """A push button on a GPIO input (active low, internal pull-up), debounced here against the
    meter's monotonic clock. With ``pull_up=False`` the same logic serves an active-high input
    with the internal pull-down (the solar voltage-detect module).

    Every edge is stamped; a level counts once it has lasted ``debounce_s`` (s), confirmed either
    at the next edge (so a press shorter than a metering cycle is not lost) or by :meth:`poll`.
    Edges may arrive on gpiozero's thread; confirmed changes are queued and handed to the
    listener only in :meth:`poll`, on the owner's loop.
    """

    def __init__(self, pin: int, pin_factory: Any, mono: Callable[[], float], debounce_s: float,
                 pull_up: bool = True) -> None:
        self._device = DigitalInputDevice(pin, pull_up=pull_up, pin_factory=pin_factory)
        self._mono = mono
        self.debounce_s = debounce_s
        self._lock = threading.Lock()
        self._raw = bool(self._device.is_active)
        self._raw_since = mono()
        self._stable = self._raw
        self._queue: deque[tuple[bool, float]] = deque()
        self.listener: Callable[[bool, float], None] | None = None
        self.edges = 0
        self._device.when_activated = self._edge
        self._device.when_deactivated = self._edge

    @property
    def pressed(self) -> bool:
        """The debounced state."""
        return self._stable

    def _edge(self, *_: object) -> None:
        now = self._mono()
        with self._lock:
            level = bool(self._device.is_active)
            if level == self._raw:
                return
            self.edges += 1
            self._confirm(now)
            self._raw, self._raw_since = level, now

    def _confirm(self, now: float) -> None:
        if self._raw != self._stable and now - self._raw_since >= self.debounce_s:
            self._stable = self._raw
            self._queue.append((self._stable, self._raw_since))

    def poll(self) -> None:
        """Confirm a level that has lasted long enough and deliver queued changes."""
        with self._lock:
            self._confirm(self._mono())
            changes = list(self._queue)
            self._queue.clear()
        for pressed, since in changes:
            if self.listener is not None:
                self.listener(pressed, since)

    def close(self) -> None:
        """Release the pin."""
        self._device.close()


class RelayButton:
    """Button presses into class 70 triggers: a press reconnects (e) when ready for
    reconnection; holding it at least ``long_press_s`` (s) disconnects (f)."""

    def __init__(self, lc: LoadControl, long_press_s: float, device: DebouncedButton | None = None) -> None:
        self._lc = lc
        self.long_press_s = long_press_s
        self.device = device
        self._down_since: float | None = None
        self.presses = 0
        self.last_outcome: Outcome | None = None
        if device is not None:
            device.listener = self._changed

    def _changed(self, pressed: bool, mono_s: float) -> None:
        if pressed:
            self._down_since = mono_s
            return
        if self._down_since is None:
            return
        held_s = mono_s - self._down_since
        self._down_since = None
        self.press(long_press=held_s >= self.long_press_s)

    def press(self, long_press: bool = False) -> Outcome:
        """One completed press (from the pin or the API)."""
        self.presses += 1
        self.last_outcome = self._lc.button_pressed(long_press=long_press)
        return self.last_outcome

    def poll(self) -> None:
        """Confirm debounced levels (each cycle)."""
        if self.device is not None:
            self.device.poll()


# --------------------------------------------------------------------------- the feature


@dataclass
class LoadControlFeature:
    """What :func:`attach` built, kept in ``daemon.services["load_control_feature"]``."""

    lc: LoadControl
    relay: LatchingRelay
    store: RelayStore
    events: EventForwarder
    button: RelayButton
    timers: ManualScheduler | None = None
    sim_relay: SimRelay | None = None
    load_side: SimLoadSide | None = None
    changeover: Changeover | None = None
    solar_voltage_v: float = 0.0
    solar_input: DebouncedButton | None = None
    cycles: int = 0
    closers: list[Callable[[], None]] = field(default_factory=list)

    def on_cycle(self, result: Any) -> None:
        """Every metering cycle: due timers (sim), the button, the limiter, the changeover."""
        if self.timers is not None:
            self.timers.run_due()
        self.cycles += 1
        self.button.poll()
        reading = result.reading
        self.lc.on_reading(reading)
        if self.changeover is not None:
            self._supply(reading)

    def _supply(self, reading: Any) -> None:
        """Grid from the metered phase voltages (V); solar from its voltage-detect input when
        wired, else from the simulated solar voltage (V)."""
        grid_v = lowest_phase_voltage_v(reading)
        if self.solar_input is not None:
            self.solar_input.poll()
            self.lc.on_supply_voltages(grid_v, None, solar_present=self.solar_input.pressed)
        else:
            self.lc.on_supply_voltages(grid_v, self.solar_voltage_v)

    def status_flags(self) -> set[str]:
        """The ``relay_open`` bit of the meter status word."""
        return set() if self.lc.output_state else {"relay_open"}

    def view(self) -> dict[str, Any]:
        """``GET /relay`` and ``status.relay``."""
        return status_dict(self.lc.status(), self)

    def close(self) -> None:
        """Release pins and the store."""
        for closer in reversed(self.closers):
            closer()


def status_dict(st: LoadControlStatus, feature: LoadControlFeature) -> dict[str, Any]:
    """JSON view of the load-control state."""
    lim = feature.lc.limiter
    view: dict[str, Any] = {
        "output_state": "connected" if st.output_state else "disconnected",
        "control_state": st.control_state.name.lower(), "control_mode": st.control_mode,
        "relay_fault": st.relay_fault, "operation_count": st.operation_count,
        "last_change_utc": st.last_change_utc.isoformat() if st.last_change_utc else None,
        "limiter": {"state": st.limiter_state.value, "attempts": st.limiter_attempts,
                    "monitored": lim.config.monitored.name.lower(),
                    "threshold_normal": lim.config.threshold_normal,
                    "threshold_emergency": lim.config.threshold_emergency,
                    "max_power_w": lim.max_power_w, "max_phase_unbalance_w": lim.max_phase_unbalance_w,
                    "trip_cause": lim.trip_cause.value if lim.trip_cause else None},
        "local_causes": sorted(st.local_causes),
        "button_presses": feature.button.presses,
        "recent_events": list(feature.events.recent)[-5:],
    }
    if st.supply is not None:
        view["supply"] = st.supply.value
        if feature.solar_input is not None:
            view["solar_present"] = feature.solar_input.pressed
    if feature.sim_relay is not None:
        view["sim"] = {"contact_closed": feature.sim_relay.closed, "coil_overlaps": feature.sim_relay.overlaps,
                       "fault": feature.sim_relay.fault.value}
    return view


def _sim_initial_closed(store: RelayStore) -> bool:
    """Where the simulated latching relay's contacts are at start: where the last completed
    operation left them (a fresh meter leaves the factory connected)."""
    record = store.load()
    if record is None:
        return True
    return record.relay_closed if not record.pending else not record.relay_closed


def _initial_source(store: RelayStore, section: LoadControlSection) -> str:
    """The source the changeover contactors close first: the one selected before the restart
    (so a meter running on solar does not close onto a dead grid for a moment), else the
    preferred one."""
    record = store.load()
    if record is not None and record.supply_source is not None:
        return record.supply_source
    return section.supply_preferred


def _feedback_pull(section: LoadControlSection) -> bool | None:
    return {"external": None, "up": True, "down": False}[section.feedback_pull]


def attach(daemon: Daemon) -> None:
    """Build relay, store, service, button and hooks (no I/O loop needed)."""
    section: LoadControlSection = daemon.cfg.feature("load_control")
    assert daemon.hardware is not None and daemon.clock is not None and daemon.meter is not None
    hw, clock = daemon.hardware, daemon.clock
    store = RelayStore(daemon.cfg.state_dir / "relay.db")
    feedback = None if section.feedback_pin == NO_PIN else section.feedback_pin
    timers: ManualScheduler | None = None
    sim_relay: SimRelay | None = None
    scheduler: Any
    if hw.sim is not None:
        timers = ManualScheduler(clock)
        scheduler = timers
        sim_relay = SimRelay(hw.pin_factory, section.set_pin, section.reset_pin, feedback, clock, timers,
                             initial_closed=_sim_initial_closed(store))
    else:
        scheduler = LoopScheduler()
    relay = LatchingRelay.from_pins(section.set_pin, section.reset_pin, feedback, clock, scheduler,
                                    section.timing, pin_factory=hw.pin_factory,
                                    feedback_pull_up=_feedback_pull(section))
    changeover = None
    if section.supply is not None:
        changeover = Changeover.from_pins(section.changeover_grid_pin, section.changeover_solar_pin, scheduler,
                                          section.changeover_dead_time_s, _initial_source(store, section),
                                          pin_factory=hw.pin_factory)
    events = EventForwarder(daemon.services)
    config = LoadControlConfig(control_mode=section.control_mode, max_retries=section.max_retries,
                               limiter=section.limiter, supply=section.supply)
    lc = LoadControl(relay, store, events, clock, scheduler, config, changeover=changeover)
    device = None
    if section.button_pin != NO_PIN:
        device = DebouncedButton(section.button_pin, hw.pin_factory, clock.mono, section.button_debounce_s)
    feature = LoadControlFeature(lc=lc, relay=relay, store=store, events=events,
                                 button=RelayButton(lc, section.long_press_s, device), timers=timers,
                                 sim_relay=sim_relay, changeover=changeover)
    feature.closers += [store.close, relay.close]
    if device is not None:
        feature.closers.append(device.close)
    if changeover is not None:
        feature.closers.append(changeover.close)
    if section.solar_present_pin != NO_PIN:
        feature.solar_input = DebouncedButton(section.solar_present_pin, hw.pin_factory, clock.mono,
                                              section.solar_present_debounce_s, pull_up=False)
        feature.closers.append(feature.solar_input.close)
    if hw.sim is not None:
        _attach_sim(feature, hw.sim, section)
    lc.start()
    _hook(daemon, feature)


def _attach_sim(feature: LoadControlFeature, world: SimWorld, section: LoadControlSection) -> None:
    assert feature.sim_relay is not None
    load = SimLoadSide(world.grid)
    feature.load_side = load
    timers = feature.timers
    assert timers is not None
    feature.sim_relay.contact_listeners.append(lambda closed: load.contact(closed, timers.due_mono))
    if not feature.sim_relay.closed:
        load.contact(False)
    # relay timers that fell due since the last cycle run before the front end reads, each dated
    # at its due time (the contacts open 10 ms after the coil pulse, not a cycle later)

    def run_timers(_now_s: float) -> None:
        timers.run_due()

    world.cycle_hooks.append(run_timers)
    if section.button_pin != NO_PIN:
        world.input_pins["button"] = section.button_pin
    _attach_sim_solar(feature, world, section)


def _attach_sim_solar(feature: LoadControlFeature, world: SimWorld, section: LoadControlSection) -> None:
    """Scenario signals of the solar source: ``solar_voltage_v`` (V) and, with the voltage-detect
    input wired, ``solar_present`` (true = the module drives its output high)."""

    def solar(value: Any) -> None:
        feature.solar_voltage_v = float(value)

    if section.supply is not None:
        world.extra_signals["solar_voltage_v"] = solar
    if section.solar_present_pin != NO_PIN:
        pin = world.pins.pin(section.solar_present_pin)

        def solar_present(value: Any) -> None:  # the voltage-detect module's output: high = present
            if value:
                pin.drive_high()
            else:
                pin.drive_low()

        world.extra_signals["solar_present"] = solar_present


def _hook(daemon: Daemon, feature: LoadControlFeature) -> None:
    assert daemon.meter is not None
    lc = feature.lc
    daemon.services["load_control"] = lc
    daemon.services["load_control_feature"] = feature
    daemon.cycle_hooks.append(feature.on_cycle)
    daemon.meter.status_sources.append(feature.status_flags)
    daemon.status_extras["relay"] = feature.view
    daemon.closers.append(feature.close)
    daemon.cosem_factories.append(load_control_factory(lc))
    daemon.info["relay"] = ("simulated latching relay" if feature.sim_relay is not None else "latching relay") + \
        f", {lc.status().control_state.name.lower()}, mode {lc.control_mode}"
    _routes(daemon, feature)


_ACTIONS: dict[str, Trigger] = {
    "disconnect": Trigger.MANUAL_DISCONNECT,
    "reconnect": Trigger.MANUAL_RECONNECT,
    "remote_disconnect": Trigger.REMOTE_DISCONNECT,
    "remote_reconnect": Trigger.REMOTE_RECONNECT,
}


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    """JSON view of a class 70 trigger's outcome."""
    return {"trigger": outcome.trigger.value, "accepted": outcome.accepted, "transition": outcome.transition,
            "before": ControlState(outcome.before).name.lower(), "after": ControlState(outcome.after).name.lower(),
            "refusal": outcome.refusal.value if outcome.refusal else None,
            "action_result": int(outcome.action_result)}


def _routes(daemon: Daemon, feature: LoadControlFeature) -> None:
    lc = feature.lc

    def get_relay(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, feature.view()

    def post_relay(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "control_mode" in body:
            mode = body["control_mode"]
            if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 6:
                raise ApiError(400, "control_mode must be an integer 0..6")
            lc.set_control_mode(mode)
            if "action" not in body:
                return 200, {"relay": feature.view()}
        action = body.get("action")
        if action not in _ACTIONS:
            raise ApiError(400, f"action must be one of {', '.join(sorted(_ACTIONS))}")
        outcome = lc.command(_ACTIONS[str(action)])
        return (200 if outcome.accepted else 409), {**outcome_dict(outcome), "relay": feature.view()}

    def post_button(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        long_press = body.get("long", False)
        if not isinstance(long_press, bool):
            raise ApiError(400, "long must be true or false")
        outcome = feature.button.press(long_press=long_press)
        return (200 if outcome.accepted else 409), {**outcome_dict(outcome), "relay": feature.view()}

    daemon.api.route("GET", "/relay", get_relay)
    daemon.api.route("POST", "/relay", post_relay)
    daemon.api.route("POST", "/relay/button", post_button)

"""Build the hardware a meter runs on, real or simulated, from the configuration.

``[hardware] backend = "pi"``: spidev for the ATM90E36, the configured gpiozero pin factory.
``"sim"``: the same driver over :class:`hw.spi.SimSpiDev` in front of the register-exact
simulator, gpiozero's MockFactory, and a :class:`~meterd.app.sim_world.SimWorld` for
``meterctl sim``. Everything above this module is identical for both.

:func:`backends_for` decides once, from the configuration, which back end each part uses
(:class:`Backends`); the daemon and the features ask that object, never the configuration string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hw.atm90e36.driver import Atm90e36, Atm90e36Config
from hw.cf_counter import CfPulseCounter
from hw.gpio import make_pin_factory, output_device, resolve_factory_name
from hw.inputs import POWER_FAIL, InputConfig, MeterInputs
from hw.pulse_led import PulseEmitter, PulseLed, PulsePlacer, ScheduledEmitter, ThreadEmitter
from hw.relay import ManualScheduler
from hw.spi import LockedSpiDev, ReopeningSpiDev, SimSpiDev, open_spidev
from meterd.app.config import Config, read_scenario
from meterd.app.sim_world import SimWorld
from meterd.bridge.frontend import Atm90e36FrontEnd
from meterd.core.clock import Clock
from meterd.services.metering import CycleResult

log = logging.getLogger("meterd.hardware")

ClockKind = Literal["sim", "host"]
LedSource = Literal["cf1", "software"]
LcdKind = Literal["png", "st7567"]


@dataclass(frozen=True)
class Backends:
    """Which back end each part of the meter runs on, decided once by :func:`backends_for`.

    ``simulated``: the register-exact chip simulator behind the driver, a simulated world
    (grid, scenario, input pins) and mock GPIO pins; else spidev and real pins.
    ``pin_factory``: the gpiozero pin factory's name (``"mock"`` in simulation; on a Pi the
    configured one, "" = $GPIOZERO_PIN_FACTORY, else lgpio, which works on Pi 3, 4 and 5).
    ``clock``: ``"sim"`` (simulated time from ``[sim] start_utc``, run at ``[sim] speed``) or
    ``"host"`` (the Pi's system clock, set through the clock helper).
    ``lcd``: the meter LCD device for ``[display] kind = "auto"``: PNG frames or the ST7567.
    ``throwaway_keys``: missing key files (DLMS, STS) may be created with throwaway or published
    test keys, and the simulated CIU may be pre-paired; never on a real meter.
    """

    simulated: bool
    pin_factory: str
    clock: ClockKind
    lcd: LcdKind
    throwaway_keys: bool


def backends_for(cfg: Config) -> Backends:
    """The back ends of ``[hardware] backend`` (a pure function of the configuration)."""
    if cfg.hardware.simulated:
        return Backends(simulated=True, pin_factory="mock", clock="sim", lcd="png", throwaway_keys=True)
    return Backends(simulated=False, pin_factory=cfg.hardware.pin_factory, clock="host", lcd="st7567",
                    throwaway_keys=False)


@dataclass
class Hardware:
    """The meter's devices, with the hooks the daemon loop calls around each cycle."""

    backends: Backends
    frontend: Atm90e36FrontEnd
    inputs: MeterInputs
    pin_factory: Any
    sim: SimWorld | None = None
    led: PulseLed | None = None
    led_source: LedSource = "software"
    led_timers: ManualScheduler | None = None  # simulated time: the LED edges, run before each cycle
    cf_counter: CfPulseCounter | None = None   # CF1 read back ([led] cf_sense)
    closers: list[Any] = field(default_factory=list)
    scheduler: Callable[[float, Callable[[], None]], Any] | None = None
    bus_lock: Any = None  # the SPI bus lock (in simulation the simulated world's lock too)
    pending: dict[int, Any] = field(default_factory=dict)  # timers not yet fired, by sequence number
    _timer_seq: int = 0

    def schedule(self, delay_s: float, action: Callable[[], None]) -> Any:
        """Run ``action`` after ``delay_s`` (s) through the owner's scheduler, or now without one.
        The timer is kept until it fires, so that :meth:`close` cancels it."""
        if self.scheduler is None:
            action()
            return None
        key = self._timer_seq
        self._timer_seq += 1
        self.pending[key] = None

        def fire() -> None:
            if key in self.pending:  # not cancelled by close()
                del self.pending[key]
                action()

        handle = self.scheduler(delay_s, fire)
        if key in self.pending:
            self.pending[key] = handle
        return handle

    def before_cycle(self) -> None:
        """LED edges due by now (simulated time), scenario events due now (a ``[sim] scenario``
        is loaded by the first call), then confirm debounced inputs."""
        if self.led_timers is not None:
            self.led_timers.run_due()
        if self.sim is not None:
            self.sim.before_cycle(self.frontend.clock.mono())
        self.inputs.poll()

    def after_cycle(self, result: CycleResult, cycle_s: float) -> None:
        """Execute the cycle's intents: the software LED's pulses for the billed active energy,
        placed in time by the mean total active power (W) since the previous read."""
        if self.led is not None:
            reading = result.reading
            self.led.feed(reading.mono_s, result.led_energy_mwh, reading.total_active_power_w)
        if self.cf_counter is not None:
            self.cf_counter.check(result.led_energy_mwh)

    def close(self) -> None:
        """Cancel the timers not yet fired, then release every device (the LED emitter stops first)."""
        for handle in self.pending.values():
            if handle is not None:
                handle.cancel()
        self.pending.clear()
        for closer in reversed(self.closers):
            closer()
        self.inputs.close()
        self.frontend.close()


def chip_config(cfg: Config) -> Atm90e36Config:
    """ATM90E36 configuration from the meter's nameplate and front-end settings."""
    from fractions import Fraction

    return Atm90e36Config(
        meter_constant_imp_per_kwh=cfg.frontend.meter_constant_imp_per_kwh,
        energy_lsb_cf=Fraction(1, 100) if cfg.frontend.energy_lsb_cf == 0.01 else Fraction(1, 10),
        current_scale=cfg.frontend.current_scale,
        mains_frequency_hz=cfg.meter.frequency_hz,
        nominal_voltage_v=cfg.meter.nominal_voltage_v,
        starting_current_a=cfg.meter.basic_current_a * cfg.meter.starting_current_pct / 100.0,
    )


def build_hardware(cfg: Config, clock: Clock, backends: Backends | None = None) -> Hardware:
    """Real or simulated hardware per ``backends`` (default: :func:`backends_for` ``cfg``)."""
    backends = backends or backends_for(cfg)
    factory = make_pin_factory(resolve_factory_name(configured=backends.pin_factory or None))
    sim: SimWorld | None = None
    if backends.simulated:
        sim = SimWorld(clock.mono, factory, cfg.hardware.power_fail_pin, cfg.sim.voltage_v, cfg.sim.current_a,
                       cfg.sim.power_factor, float(cfg.meter.frequency_hz), current_scale=cfg.frontend.current_scale,
                       board_seed=cfg.sim.board_seed)
        spi: Any = SimSpiDev(sim.chip)
        sleep: Any = lambda _s: None  # noqa: E731  the simulated chip resets instantly
    else:
        bus, device, speed = cfg.hardware.spi_bus, cfg.hardware.spi_device, cfg.hardware.spi_speed_hz
        spi = ReopeningSpiDev(lambda: open_spidev(bus, device, speed))  # a missing device: a chip fault, retried
        import time

        sleep = time.sleep
    locked = LockedSpiDev(spi, sim.lock if sim is not None else None)
    driver = Atm90e36(locked, chip_config(cfg), sleep=sleep)
    frontend = Atm90e36FrontEnd(driver, clock)
    inputs = MeterInputs(factory, clock.mono, {POWER_FAIL: InputConfig(cfg.hardware.power_fail_pin, pull_up=True,
                                                                       active_when_pressed=True, debounce_s=0.0)})
    hardware = Hardware(backends=backends, frontend=frontend, inputs=inputs, pin_factory=factory, sim=sim,
                        bus_lock=locked.lock)
    hardware.led_source = led_source(cfg, backends)
    if hardware.led_source == "software":
        _build_software_led(cfg, clock, hardware)
    else:
        log.info("test LED: the chip's CF1 output, %d imp/kWh", cfg.frontend.meter_constant_imp_per_kwh)
        if cfg.led.cf_sense:
            hardware.cf_counter = CfPulseCounter(cfg.hardware.led_pin, factory, cfg.frontend.meter_constant_imp_per_kwh)
            hardware.closers.append(hardware.cf_counter.close)
        if cfg.meter.led_imp_per_kwh != cfg.frontend.meter_constant_imp_per_kwh:
            log.warning("test LED follows CF1 at the meter constant %d imp/kWh; [meter] led_imp_per_kwh = %d "
                        "does not apply", cfg.frontend.meter_constant_imp_per_kwh, cfg.meter.led_imp_per_kwh)
    if sim is not None:
        sim.input_pins = {name: item.config.pin for name, item in inputs.inputs.items() if name != POWER_FAIL}
        if cfg.sim.scenario:
            sim.start_scenario(read_scenario(cfg), cfg.sim.scenario)
            log.info("scenario %s plays from the first cycle", cfg.sim.scenario)
    return hardware


def led_source(cfg: Config, backends: Backends) -> LedSource:
    """``[led] source``; "auto" is the chip's CF1 on a Pi and the software LED in simulation."""
    if cfg.led.source == "auto":
        return "software" if backends.simulated else "cf1"
    return "cf1" if cfg.led.source == "cf1" else "software"


def energy_resolution_mwh(cfg: Config) -> float:
    """Energy of one chip register count (mWh): energy_lsb_cf / meter constant (kWh)."""
    return 1e6 * cfg.frontend.energy_lsb_cf / cfg.frontend.meter_constant_imp_per_kwh


def _build_software_led(cfg: Config, clock: Clock, hardware: Hardware) -> None:
    """The software LED on ``[hardware] led_pin``: edges on the simulated clock (run before each
    cycle) in simulation, from a dedicated real-time thread on a Pi."""
    device = output_device(cfg.hardware.led_pin, hardware.pin_factory)
    placer = PulsePlacer(cfg.meter.led_imp_per_kwh, energy_resolution_mwh(cfg), cfg.led.pulse_ms / 1000,
                         lag_s=cfg.meter.cycle_s)
    emitter: PulseEmitter
    if hardware.backends.simulated:
        hardware.led_timers = ManualScheduler(clock)
        emitter = ScheduledEmitter(device, hardware.led_timers, clock.mono)
    else:
        emitter = ThreadEmitter(device, mono=clock.mono)
    hardware.led = PulseLed(placer, emitter)
    hardware.closers += [device.close, hardware.led.close]
    log.info("test LED: software pulses on GPIO%d, %d imp/kWh", cfg.hardware.led_pin, cfg.meter.led_imp_per_kwh)

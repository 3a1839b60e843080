"""The back ends of a meter, decided once from ``[hardware]`` (meterd.app.hardware.backends_for)."""

from __future__ import annotations

from pathlib import Path

from meterd.app.hardware import Backends, backends_for, build_hardware
from meterd.core.clock import SimClock
from tests.simmeter import sim_config


def test_simulated_meter_uses_every_simulated_back_end(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path)
    assert cfg.hardware.simulated
    assert backends_for(cfg) == Backends(simulated=True, pin_factory="mock", clock="sim", lcd="png",
                                         throwaway_keys=True)


def test_pi_uses_the_real_back_ends_and_never_throwaway_keys(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, hardware={"backend": "pi", "pin_factory": "lgpio"})
    assert not cfg.hardware.simulated
    assert backends_for(cfg) == Backends(simulated=False, pin_factory="lgpio", clock="host", lcd="st7567",
                                         throwaway_keys=False)
    default = sim_config(tmp_path, hardware={"backend": "pi", "pin_factory": ""})
    assert backends_for(default).pin_factory == ""  # $GPIOZERO_PIN_FACTORY, else lgpio


def test_simulated_hardware_carries_its_back_ends(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path)
    hardware = build_hardware(cfg, SimClock())
    try:
        assert hardware.backends == backends_for(cfg)
        assert hardware.sim is not None
    finally:
        hardware.close()


def test_the_test_led_follows_cf1_on_a_pi_and_is_pulsed_in_software_in_simulation(tmp_path: Path) -> None:
    import dataclasses

    from hw.pulse_led import ThreadEmitter
    from meterd.app.hardware import energy_resolution_mwh, led_source
    from meterd.runtime.clocks import HostClock

    sim = sim_config(tmp_path, led={"source": "auto"})
    pi = sim_config(tmp_path, hardware={"backend": "pi", "pin_factory": "mock"}, led={"source": "auto"})
    assert led_source(sim, backends_for(sim)) == "software" and led_source(pi, backends_for(pi)) == "cf1"
    assert energy_resolution_mwh(sim_config(tmp_path, frontend={"meter_constant_imp_per_kwh": 1000,
                                                                  "energy_lsb_cf": 0.1})) == 100.0
    sensed = build_hardware(dataclasses.replace(pi, led=dataclasses.replace(pi.led, cf_sense=True)), HostClock())
    try:
        assert sensed.led is None and sensed.led_source == "cf1" and sensed.cf_counter is not None
        assert sensed.cf_counter.imp_per_kwh == pi.frontend.meter_constant_imp_per_kwh
    finally:
        sensed.close()
    software = sim_config(tmp_path, hardware={"backend": "pi", "pin_factory": "mock"}, led={"source": "software"})
    threaded = build_hardware(software, HostClock())
    try:
        assert threaded.led is not None and isinstance(threaded.led.emitter, ThreadEmitter)
        assert threaded.led_timers is None and threaded.cf_counter is None
    finally:
        threaded.close()
    simulated = build_hardware(sim, SimClock())
    try:
        assert simulated.led is not None and simulated.led_timers is not None
    finally:
        simulated.close()

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

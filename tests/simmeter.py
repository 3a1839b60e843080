"""Build a whole simulated meter in-process (the daemon's own wiring), for tests and benches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from meterd.app.config import SECTIONS, Config
from meterd.app.daemon import Daemon
from meterd.app.features import load_config

T = TypeVar("T")
TEST_START_UTC = "2026-01-01T00:00:00+00:00"  # config/sim.toml starts at the time of day; tests do not


def sim_config(state_dir: Path, **sections: dict[str, Any]) -> Config:
    """config/sim.toml with the state directory and any section fields replaced."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "sim.toml")
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=str(state_dir)),
                              sim=dataclasses.replace(cfg.sim, start_utc=TEST_START_UTC))
    features = dict(cfg.features)
    if "power_quality" not in sections:
        # the waveform analysis costs ~60 ms per simulated second: tests that want it ask for it
        sections = {**sections, "power_quality": {"enabled": False}}
    for name, changes in sections.items():
        if name in SECTIONS:
            cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **changes)})
        else:  # a feature's section, e.g. payment={"mode": "prepaid"}
            features[name] = dataclasses.replace(cfg.feature(name), **changes)
    return dataclasses.replace(cfg, features=features)


def sim_config_file(tmp_path: Path, extra_toml: str = "", **replacements: str) -> Path:
    """config/sim.toml as a file for a meterd process under test: DLMS and the network API on
    free TCP ports (so parallel tests never collide), the clock at :data:`TEST_START_UTC`, with ``key = value`` lines replaced by ``replacements`` and
    ``extra_toml`` (more tables, e.g. a feature section) appended."""
    import re

    text = (Path(__file__).resolve().parents[1] / "config" / "sim.toml").read_text()
    replacements = {"tcp_port": "0", "listen": '"127.0.0.1:0"', "start_utc": f'"{TEST_START_UTC}"', **replacements}
    if "[power_quality]" not in extra_toml:  # ~60 ms per simulated second: on only when asked for
        text = re.sub(r"(?m)^(\[power_quality\]\s*\nenabled = )true", r"\1false", text)
    for key, value in replacements.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = tmp_path / "sim.toml"
    path.write_text(text + ("\n" + extra_toml if extra_toml else ""))
    return path


class SimMeter:
    """A started meter with its simulated world: the daemon's own build, cycle
    (:meth:`Daemon.step`) and shutdown, without the asyncio loop and the API socket;
    ``run(seconds, cycle_s)`` drives it."""

    def __init__(self, state_dir: Path, **sections: dict[str, Any]) -> None:
        self.daemon = Daemon(sim_config(state_dir, **sections))
        self.meter = self.daemon.build()
        self.meter.start()
        assert self.daemon.hardware is not None and self.daemon.hardware.sim is not None
        self.hardware = self.daemon.hardware
        self.world = self.daemon.hardware.sim
        self.clock = self.daemon.clock

    def service(self, kind: type[T]) -> T:
        """What a feature provides, by its class (e.g. ``RevenueService``)."""
        return self.daemon.registry.need(kind, by="test")

    def run(self, seconds: float, cycle_s: float = 1.0) -> None:
        """Advance meter time by ``seconds`` in cycles of ``cycle_s`` (s), running each cycle."""
        for _ in range(round(seconds / cycle_s)):
            self.daemon.step(cycle_s)

    def close(self) -> None:
        """Stop the way the daemon does: final checkpoint, devices and store closed."""
        self.daemon.close()

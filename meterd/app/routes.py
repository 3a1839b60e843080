"""The local API's routes: status, simulator control, and what later features register."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meterd.api.server import ApiError
from meterd.api.views import status_view

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon


def register_routes(daemon: Daemon) -> None:
    """Attach every route to ``daemon.api``."""
    api = daemon.api

    def status(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meter = daemon.meter
        assert meter is not None
        snap = meter.snapshot()
        extra: dict[str, Any] = {"links": dict(daemon.info)}
        for name, provider in daemon.status_extras.items():
            extra[name] = provider()
        return 200, status_view(meter.identity, snap, meter.status_flags(), extra)

    api.route("GET", "/status", status)
    hw = daemon.hardware
    if hw is not None and hw.sim is not None:
        sim = hw.sim

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

        api.route("POST", "/sim/set", sim_set)
        api.route("POST", "/sim/scenario", sim_scenario)
        api.route("POST", "/sim/power-fail", power_fail)
        api.route("POST", "/sim/power-restore", power_restore)

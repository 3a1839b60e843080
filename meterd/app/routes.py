"""The local API's routes: status, simulator control, and what later features register."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hw.atm90e36.faults import ChipFault
from meterd.api.server import ApiError, ApiServer
from meterd.api.views import status_view
from meterd.app.sim_world import SimWorld, fault_request
from meterd.services.metering import MeteringService

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
                    status_extras: dict[str, Callable[[], Any]], sim: SimWorld | None) -> None:
    """Attach ``/status`` (with ``info`` as its links and every ``status_extras`` provider) and,
    with a simulated world, the ``/sim/...`` controls to ``api``."""

    def status(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        snap = meter.snapshot()
        extra: dict[str, Any] = {"links": dict(info), "metrology": metrology_view(meter)}
        for name, provider in status_extras.items():
            extra[name] = provider()
        return 200, status_view(meter.identity, snap, meter.status_flags(), extra)

    api.route("GET", "/status", status)
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

        api.route("POST", "/sim/set", sim_set)
        api.route("POST", "/sim/fault", sim_fault)
        api.route("POST", "/sim/fault-clear", sim_fault_clear)
        api.route("GET", "/sim/faults", sim_faults)
        api.route("POST", "/sim/scenario", sim_scenario)
        api.route("POST", "/sim/power-fail", power_fail)
        api.route("POST", "/sim/power-restore", power_restore)

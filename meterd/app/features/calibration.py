"""The board's calibration in the meter: stored record, chip registers, fault, API, DLMS.

Wires :class:`meterd.services.calibration.CalibrationService`:

* the record in ``<state_dir>/calibration.json`` (:class:`~meterd.store.calibration_store.CalibrationStore`,
  bound to ``[meter] serial``), loaded here, before the chip starts, and made the front end's
  configuration (:class:`~meterd.bridge.chip_calibration.ChipCalibration`): every start and every
  restart of the chip after a fault writes it;
* a missing, corrupted or foreign file is a metrology fault: the status flag ``metrology_fault``
  (status word, LCD alarm line), "measurement system error" (IDIS 16, alarm bit 11) with the cause.
  ``[calibration] required``: ``"auto"`` requires a file on a real meter and on a simulated board
  with analogue errors (``[sim] board_seed`` ≠ 0), not on the ideal simulated board;
* each committed change: "one or more parameters changed" (IDIS 47) with the calibration id;
* per cycle the service keeps the readings and energy registers the procedure and the accuracy
  test use; routes in :mod:`meterd.api.calibration_views`; on the simulated meter the simulated
  reference standard (:class:`~meterd.app.sim_reference.SimReference`, ``sim_reference_uncertainty_pct``);
* DLMS: 0-0:96.2.5.255 date of last calibration, 0-0:96.2.128.255 calibration identifier
  (:mod:`meterd.cosem.objects_calibration`); ``/status`` shows ``calibration``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from dataclasses import dataclass, field

from meterd.api.calibration_views import calibration_routes
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.sim_reference import SimReference
from meterd.bridge.chip_calibration import ChipCalibration
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.core.reading import Channel
from meterd.cosem.objects_calibration import calibration_factory
from meterd.services.calibration import CalibrationService
from meterd.services.metering import CycleResult
from meterd.store.calibration_store import CalibrationStore


@dataclass(frozen=True)
class CalibrationSection:
    """``[calibration]``: whether a stored calibration is required (auto/yes/no), and the
    simulated reference standard's uncertainty (%) and seed."""

    required: str = field(default="auto", metadata=choices("auto", "yes", "no"))
    sim_reference_uncertainty_pct: float = field(default=0.01, metadata=rng(0, 1))
    sim_reference_seed: int = field(default=1, metadata=rng(0, 2**31 - 1))


SECTION = CalibrationSection


def nameplate(ctx: FeatureContext) -> dict[str, float]:
    """What the accuracy test needs of the meter: Un (V), Ib and Imax (A), the starting current (A),
    the frequency (Hz), the test output's constant (imp/kWh), the energy register resolution (mWh
    per chip count), the cycle (s) and the board's current scale k (the chip sees I/k)."""
    m = ctx.cfg.meter
    return {"nominal_voltage_v": m.nominal_voltage_v, "basic_current_a": m.basic_current_a,
            "max_current_a": m.max_current_a, "starting_current_a": m.basic_current_a * m.starting_current_pct / 100,
            "frequency_hz": float(m.frequency_hz), "led_imp_per_kwh": float(m.led_imp_per_kwh),
            "energy_resolution_mwh": float(ctx.hardware.frontend.driver.milli_per_count), "cycle_s": m.cycle_s,
            "current_scale": float(ctx.cfg.frontend.current_scale)}


def attach(ctx: FeatureContext) -> None:
    """Load the calibration onto the front end and wire the service (module docstring)."""
    cfg = ctx.cfg
    section: CalibrationSection = cfg.feature("calibration")
    events = ctx.registry.need(EventRecorder, by="calibration")
    frontend = ctx.hardware.frontend
    simulated = ctx.hardware.backends.simulated
    required = section.required == "yes" or (section.required == "auto"
                                             and (not simulated or cfg.sim.board_seed != 0))
    registers = ctx.meter.registers

    def energy() -> tuple[int, int]:
        return (registers.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL),
                registers.get(Quantity.ACTIVE_EXPORT, Channel.TOTAL))

    service = CalibrationService(CalibrationStore(cfg.state_dir, cfg.meter.serial),
                                 ChipCalibration(frontend, frontend.driver.config), ctx.clock, cfg.meter.serial,
                                 events.record, energy, required, nameplate(ctx))
    service.start()
    ctx.registry.provide(CalibrationService, service, by="calibration")
    ctx.meter.status_sources.append(service.status_flags)
    waiters: list[asyncio.Future[bool]] = []

    def on_cycle(result: CycleResult) -> None:
        service.on_cycle(result.reading)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)
        waiters.clear()

    async def next_cycle(timeout_s: float) -> bool:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return False

    ctx.cycle_hooks.append(on_cycle)
    reference = None
    if ctx.hardware.sim is not None:
        reference = SimReference(ctx.hardware.sim.grid, section.sim_reference_uncertainty_pct,
                                 section.sim_reference_seed)
        ctx.registry.provide(SimReference, reference, by="calibration")
    calibration_routes(ctx.api, service, next_cycle, reference)

    def current() -> tuple[str, _dt.datetime | None]:
        rec = service.record
        return (rec.calibration_id, rec.utc) if rec is not None else ("", None)

    ctx.cosem_factories.append(calibration_factory(current))
    ctx.status_extras["calibration"] = lambda: {"state": service.view()["state"], "id": current()[0]}

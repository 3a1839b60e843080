"""The local API of the calibration (``meterctl calibrate`` and ``meterctl accuracy-test`` use it).

* ``GET /calibration``: state (calibrated, uncalibrated, trial, fault), the record, the registers;
* ``POST /calibration/measure {"since": cycle, "cycles": n}``: per-phase averages (V, A, W, var)
  of the first ``n`` billed cycles after cycle ``since``, waiting for them (up to ``timeout_s``);
* ``POST /calibration/samples {"since": cycle, "limit": n}``: the kept cycles after ``since``
  (meter time, readings, total active import/export registers in mWh);
* ``POST /calibration/apply``: new registers (``values``: lists of three integers by register
  name) written, read back and verified, then stored with ``operator``, ``reference_instrument``,
  ``uncertainty_pct``, ``note``, ``points`` (``"commit": false``: a trial, not stored);
* ``POST /calibration/abort``: the stored calibration back on the chip;
* on the simulated meter, ``POST /calibration/reference {"times": [mono s, ...]}``: the
  simulated reference standard (the grid's truth with its configured uncertainty): per-phase
  values now and the total active energy at each time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from meterd.api.server import ApiError, ApiServer
from meterd.core.calibration import CalibrationRejected, CalibrationValues
from meterd.services.calibration import ApplyRequest, CalibrationService

MAX_WAIT_S = 600.0


class SimReferenceView(Protocol):
    """The simulated reference standard as the API serves it."""

    def payload(self, times: list[float]) -> dict[str, Any]: ...


def _int(body: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ApiError(400, f"{key}: expected an integer {lo}..{hi}")
    return value


def apply_request(body: dict[str, Any]) -> ApplyRequest:
    """The request of ``POST /calibration/apply``."""
    try:
        values = CalibrationValues.from_dict(body["values"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, f"values: {exc}") from None
    points = body.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ApiError(400, "points: expected a list of objects")
    return ApplyRequest(values=values, operator=str(body.get("operator", "")),
                        reference_instrument=str(body.get("reference_instrument", "")),
                        uncertainty_pct=float(body.get("uncertainty_pct", 0.0)), note=str(body.get("note", "")),
                        points=tuple(points), commit=bool(body.get("commit", True)))


def calibration_routes(api: ApiServer, service: CalibrationService, next_cycle: Callable[[float], Awaitable[bool]],
                       reference: SimReferenceView | None) -> None:
    """Register the routes; ``next_cycle(timeout_s)`` waits for the next metering cycle (False on
    time-out); ``reference``: the simulated reference standard (None on a real meter)."""

    def get(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, service.view()

    async def measure(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        since = _int(body, "since", service.cycles, 0, 2**62)
        cycles = _int(body, "cycles", 3, 1, 3600)
        timeout = float(body.get("timeout_s", MAX_WAIT_S))
        while (result := service.measure(since, cycles)) is None:
            if not await next_cycle(min(timeout, MAX_WAIT_S)):
                raise ApiError(504, f"fewer than {cycles} billed cycles after cycle {since} in {timeout:g} s")
        return 200, {"phases": [[p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var] for p in result],
                     "cycle": service.cycles}

    def samples(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        since = _int(body, "since", 0, 0, 2**62)
        limit = _int(body, "limit", 10_000, 1, 50_000)
        return 200, {"samples": [s.as_dict() for s in service.samples_since(since, limit)], "cycle": service.cycles}

    def apply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            record = service.apply(apply_request(body))
        except CalibrationRejected as exc:
            raise ApiError(409, str(exc)) from None
        return 200, {"record": record.as_dict() if record is not None else None, **service.view()}

    def abort(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            service.abort()
        except CalibrationRejected as exc:
            raise ApiError(409, str(exc)) from None
        return 200, service.view()

    api.route("GET", "/calibration", get)
    api.route("POST", "/calibration/measure", measure)
    api.route("POST", "/calibration/samples", samples)
    api.route("POST", "/calibration/apply", apply)
    api.route("POST", "/calibration/abort", abort)
    if reference is not None:
        sim_reference = reference

        def ref(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            times = body.get("times", [])
            if not isinstance(times, list) or not all(isinstance(t, int | float) for t in times):
                raise ApiError(400, "times: expected a list of meter times (s)")
            return 200, sim_reference.payload([float(t) for t in times])

        api.route("POST", "/calibration/reference", ref)

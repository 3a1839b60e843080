"""COSEM objects of power quality, bound to :class:`~meterd.services.power_quality.PowerQualityService`.

OBIS map (class 3 registers, values read on every GET; 0 where no value exists yet):

* 1-0:C.7.124.255, C = 32/52/72 (U L1–L3), 31/51/71 (I L1–L3): THD in % of the fundamental
  (long-unsigned, scaler −2, unit %): THDS of orders 2–50 from the waveform analysis, or the
  chip's THD+N when the values are indicative (no waveform stream).
* 1-0:C.7.h.255, h = 2…50, same C: harmonic h in % of the fundamental (long-unsigned, scaler
  −2); from the chip only orders 2–32 (indicative), higher orders read 0.
* 1-0:C.7.130.255 / 1-0:C.7.131.255, C = 32/52/72: Pst of the last 10-min interval / Plt of the
  last 2-h interval (long-unsigned, scaler −3, no unit). E = 130/131 are project codes in the
  manufacturer range of value group E.
* 1-0:C.5.0.255, C = 32/52/72 and 31/51/71: 10-min RMS of the last closed interval (V, A;
  double-long-unsigned, scaler −2 for V, −3 for A).
* 1-0:99.14.0.255 (class 7): the power-quality profile (see :mod:`meterd.services.power_quality`).
* 0-0:96.10.4.255 (class 1, unsigned): 1 when the last 10-min interval is flagged (an event or
  a sample gap touched it); 0-0:96.10.5.255 (class 1, unsigned): 1 when the values are
  indicative (chip registers); 0-0:96.10.6.255 (class 1, unsigned, project code): the Plt flags,
  bit 0/1/2 set when the last Plt of L1/L2/L3 holds a flagged Pst or lacks some of its 12 Pst.

All read-only, for the reader and the management association.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from meterd.cosem import axdr
from meterd.cosem.adapters import ModelProfile, ValueData, ValueRegister
from meterd.cosem.objects import UNIT_A, UNIT_NONE, UNIT_V, CosemContext, CosemEntry, ObjectFactory
from meterd.cosem.profile import ProfileReader
from meterd.services.power_quality import (
    FLAG_OBIS,
    PLT_E,
    PQ_PROFILE_OBIS,
    PST_E,
    THD_E,
    VOLTAGE_C,
    PowerQualityService,
    rms_10min_obis,
)

UNIT_PERCENT = 56
MAX_HARMONIC = 50
INDICATIVE_OBIS = "0.0.96.10.5.255"
PLT_FLAGS_OBIS = "0.0.96.10.6.255"
CHANNELS: dict[int, str] = {32: "U1", 52: "U2", 72: "U3", 31: "I1", 51: "I2", 71: "I3"}
ROWS: dict[str, int] = {"U1": 0, "I1": 1, "U2": 2, "I2": 3, "U3": 4, "I3": 5}


def _scaled(value: float | None, scaler: int, tag: int = axdr.UINT16) -> tuple[int, int]:
    if value is None or not math.isfinite(value) or value < 0:
        return tag, 0
    limit = 0xFFFF if tag == axdr.UINT16 else 0xFFFF_FFFF
    return tag, min(round(value / 10.0 ** scaler), limit)


def _thd(service: PowerQualityService, name: str) -> Callable[[], tuple[int, int]]:
    return lambda: _scaled(service.values().thd_pct.get(name), -2)


def _harmonic(service: PowerQualityService, name: str, order: int) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        ratios = service.values().harmonic_pct.get(name)
        return _scaled(ratios[order] if ratios is not None and order < len(ratios) else None, -2)
    return read


def _pst(service: PowerQualityService, phase: int) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        value = service.values().pst.get(phase)
        return _scaled(value.pst if value is not None else None, -3)
    return read


def _plt(service: PowerQualityService, phase: int) -> Callable[[], tuple[int, int]]:
    return lambda: _scaled(service.values().plt.get(phase), -3)


def _rms_10min(service: PowerQualityService, name: str, scaler: int) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        ten = service.values().aggregates.get("10-min")
        return _scaled(float(ten.rms[ROWS[name]]) if ten is not None else None, scaler, axdr.UINT32)
    return read


def _flagged(service: PowerQualityService) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        ten = service.values().aggregates.get("10-min")
        return axdr.UINT8, int(ten.flagged) if ten is not None else 0
    return read


def _plt_flags(service: PowerQualityService) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        flags = service.values().plt_flagged
        return axdr.UINT8, sum(1 << (phase - 1) for phase, flagged in flags.items() if flagged)
    return read


def pq_factory(service: PowerQualityService) -> ObjectFactory:
    """The factory registering the power-quality objects for every DLMS session."""

    phases = service.phases  # 1P2W: only the objects of L1

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        for c, name in CHANNELS.items():
            if int(name[1]) > phases:
                continue
            yield CosemEntry(ValueRegister(f"1.0.{c}.7.{THD_E}.255", _thd(service, name), -2, UNIT_PERCENT))
            for order in range(2, MAX_HARMONIC + 1):
                yield CosemEntry(ValueRegister(f"1.0.{c}.7.{order}.255", _harmonic(service, name, order), -2,
                                               UNIT_PERCENT))
            volts = c in VOLTAGE_C
            yield CosemEntry(ValueRegister(rms_10min_obis(c), _rms_10min(service, name, -2 if volts else -3),
                                           -2 if volts else -3, UNIT_V if volts else UNIT_A))
        for phase, c in enumerate(VOLTAGE_C[:phases], start=1):
            yield CosemEntry(ValueRegister(f"1.0.{c}.7.{PST_E}.255", _pst(service, phase), -3, UNIT_NONE))
            yield CosemEntry(ValueRegister(f"1.0.{c}.7.{PLT_E}.255", _plt(service, phase), -3, UNIT_NONE))
        yield CosemEntry(ModelProfile(PQ_PROFILE_OBIS, ProfileReader(service.profile, service.profile.depth)))
        yield CosemEntry(ValueData(FLAG_OBIS, _flagged(service)))
        yield CosemEntry(ValueData(INDICATIVE_OBIS, lambda: (axdr.UINT8, int(service.indicative))))
        yield CosemEntry(ValueData(PLT_FLAGS_OBIS, _plt_flags(service)))

    return factory

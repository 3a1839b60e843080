"""COSEM objects of the power-quality quantities beyond THD and flicker: voltage unbalance,
THD to order 40, PWHD and interharmonics, bound to :class:`~meterd.services.power_quality.PowerQualityService`.

Every value is that of the last closed 10-min interval (IEC 61000-4-30 aggregation), flagged by
0-0:96.10.4.255 like the 10-min RMS; 0 until the first interval closes (or when the quantity is
undefined, such as a ratio without a fundamental). The meter's DLMS reference gives no OBIS code
for these quantities: they take project codes in the manufacturer range of value group E
(:mod:`meterd.services.power_quality`), D = 7:

* 1-0:12.7.132.255 / 1-0:12.7.133.255 (class 3, long-unsigned, scaler −2, unit %): voltage
  unbalance u2 (negative sequence) and u0 (zero sequence) of the three phases (3P4W only);
* 1-0:C.7.134.255 (class 3, long-unsigned, scaler −2, %): THDS40, harmonic subgroups 2–40;
* 1-0:C.7.135.255: THDG40, harmonic groups 2–40; 1-0:C.7.136.255: PWHD, subgroups 14–40;
  1-0:C.7.139.255: TIHDS40, interharmonic centred subgroups between orders 0 and 40;
* 1-0:C.7.137.255 / 1-0:C.7.138.255 (class 1, array of 51 long-unsigned, in 0.01 % of the
  fundamental subgroup): the interharmonic centred subgroups / groups between orders h and h+1,
  h = 0…50 (element h);

C = 32/52/72 (U L1–L3) and 31/51/71 (I L1–L3), only those of the phases that exist (1P2W: L1).
All read-only, for the reader and the management association.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from gurux_dlms.objects import GXDLMSData

from meterd.cosem import axdr
from meterd.cosem.adapters import AttributeTable, AttributeValue, ValueRegister
from meterd.cosem.objects import CosemContext, CosemEntry, ObjectFactory
from meterd.pq.aggregation import Aggregate
from meterd.services.power_quality import (
    CURRENT_C,
    IH_GROUP_E,
    IH_SUBGROUP_E,
    PWHD_E,
    THDG40_E,
    THDS40_E,
    TIHDS40_E,
    U0_OBIS,
    U2_OBIS,
    VOLTAGE_C,
    PowerQualityService,
    quantity_obis,
)

UNIT_PERCENT = 56
ROW_OF_C: dict[int, int] = {32: 0, 31: 1, 52: 2, 51: 3, 72: 4, 71: 5}
"""Waveform row (U1, I1, U2, I2, U3, I3) of each value group C."""


def _percent(value: float | None) -> tuple[int, int]:
    """A percentage as long-unsigned in 0.01 % (0 when undefined, capped at 655.35 %)."""
    if value is None or not math.isfinite(value) or value < 0:
        return axdr.UINT16, 0
    return axdr.UINT16, min(round(value * 100.0), 0xFFFF)


class PercentArray(AttributeTable, GXDLMSData):  # type: ignore[misc]  # gurux is untyped
    """Data (class 1) whose value is an array of long-unsigned percentages in 0.01 %."""

    def __init__(self, ln: str, getter: Callable[[], list[float]]) -> None:
        super().__init__(ln)
        self._getter = getter

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_array([axdr.encode_value(*_percent(v)) for v in self._getter()])}


def channels_c(phases: int) -> tuple[int, ...]:
    """Value groups C of the channels that exist: U and I of L1–L3 (3P4W) or of L1 (1P2W)."""
    return VOLTAGE_C[:phases] + CURRENT_C[:phases]


def quantities_factory(service: PowerQualityService) -> ObjectFactory:
    """The factory registering unbalance, THD40, PWHD and interharmonic objects for every session."""

    def ten_minute() -> Aggregate | None:
        return service.values().aggregates.get("10-min")

    def reader(pick: Callable[[Aggregate], float | None]) -> Callable[[], tuple[int, int]]:
        def read() -> tuple[int, int]:
            agg = ten_minute()
            return _percent(pick(agg) if agg is not None else None)
        return read

    def interharmonics(row: int, groups: bool) -> Callable[[], list[float]]:
        def read() -> list[float]:
            agg = ten_minute()
            pct = None if agg is None else (agg.interharmonic_group_pct() if groups
                                            else agg.interharmonic_subgroup_pct())
            return [0.0] * 51 if pct is None else [float(x) for x in pct[row]]
        return read

    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        if service.phases == 3:
            yield CosemEntry(ValueRegister(U2_OBIS, reader(lambda a: a.u2_pct), -2, UNIT_PERCENT))
            yield CosemEntry(ValueRegister(U0_OBIS, reader(lambda a: a.u0_pct), -2, UNIT_PERCENT))
        for c in channels_c(service.phases):
            row = ROW_OF_C[c]
            for e, values in ((THDS40_E, lambda a: a.thds40_pct), (THDG40_E, lambda a: a.thdg40_pct),
                              (PWHD_E, lambda a: a.pwhd_pct), (TIHDS40_E, lambda a: a.tihds40_pct)):
                yield CosemEntry(ValueRegister(quantity_obis(c, e), reader(_row_of(values, row)), -2,
                                               UNIT_PERCENT))
            yield CosemEntry(PercentArray(quantity_obis(c, IH_SUBGROUP_E), interharmonics(row, groups=False)))
            yield CosemEntry(PercentArray(quantity_obis(c, IH_GROUP_E), interharmonics(row, groups=True)))

    return factory


def _row_of(values: Callable[[Aggregate], list[float | None]], row: int) -> Callable[[Aggregate], float | None]:
    return lambda agg: values(agg)[row]

"""The metrology-fault registers 0-0:96.50.E.255 served over DLMS."""

from __future__ import annotations

from meterd.core.chip_health import FaultTotals
from meterd.cosem import axdr
from meterd.cosem.objects import METROLOGY_FAULT_OBIS, metrology_fault_objects


def test_the_metrology_fault_registers_over_dlms() -> None:
    totals = FaultTotals(count=2, duration_s=12.4, energy_not_measured_wh=1.5, last_duration_s=4.0,
                         last_energy_wh=0.25)
    entries = list(metrology_fault_objects(lambda: totals)(None))  # type: ignore[arg-type]
    assert [e.obj.logicalName for e in entries] == list(METROLOGY_FAULT_OBIS)
    values = [e.obj.attribute_values()[2]() for e in entries]
    assert values == [axdr.encode_value(axdr.UINT32, 2), axdr.encode_value(axdr.UINT32, 12),
                      axdr.encode_value(axdr.UINT64, 1500), axdr.encode_value(axdr.UINT32, 4),
                      axdr.encode_value(axdr.UINT64, 250)]

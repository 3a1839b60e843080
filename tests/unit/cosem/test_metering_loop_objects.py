"""The metering loop's timing registers 0-0:96.51.E.255 served over DLMS."""

from __future__ import annotations

from meterd.core.lateness import LatenessStats
from meterd.cosem import axdr
from meterd.cosem.objects import METERING_LOOP_OBIS, metering_loop_objects


def test_the_metering_loop_registers_over_dlms() -> None:
    stats = LatenessStats(late_ms=500.0)
    for value in (1.0, 2.0, 750.4):
        stats.record(value)
    stats.skipped(4)
    entries = list(metering_loop_objects(stats.summary)(None))  # type: ignore[arg-type]
    assert [e.obj.logicalName for e in entries] == list(METERING_LOOP_OBIS)
    assert METERING_LOOP_OBIS[0] == "0.0.96.51.0.255"
    values = [e.obj.attribute_values()[2]() for e in entries]
    assert values == [axdr.encode_value(axdr.UINT32, 3), axdr.encode_value(axdr.UINT32, 1),
                      axdr.encode_value(axdr.UINT32, 750), axdr.encode_value(axdr.UINT32, 750),
                      axdr.encode_value(axdr.UINT32, 4)]
    stats.record(10.0)  # read live, at each request
    assert entries[0].obj.attribute_values()[2]() == axdr.encode_value(axdr.UINT32, 4)

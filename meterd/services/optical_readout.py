"""The data set list of the optical port's IEC 62056-21 mode C readout, from the meter model.

One data set per line, identified by the reduced OBIS code (value groups C.D.E; C = 96 is
written "C", as IEC 62056-21 data sets do): the serial number ``C.1.0`` (0-0:96.1.0.255), the
meter's UTC time ``0.9.1`` (hhmmss) and date ``0.9.2`` (YYMMDD) (0-0:1.0.0.255), the operating
status ``F.F`` (0-0:96.5.0.255, 8 hex digits), then the total energy registers ``C.8.0``
(1-0:C.8.0.255): +A 1.8.0 and -A 2.8.0 in kWh, QI-QIV 5.8.0-8.8.0 in kvarh, +S 9.8.0 and
-S 10.8.0 in kVAh, each with three decimals (Wh resolution) and the register's integer part
padded to seven digits.
"""

from __future__ import annotations

from meterd.core.energy import UNITS, Quantity
from meterd.core.model import MeterModel
from meterd.core.reading import Channel
from meterd.proto.iec62056_21 import DataSet

_KILO_UNITS = {"Wh": "kWh", "varh": "kvarh", "VAh": "kVAh"}


def kilo_value(milli: int) -> str:
    """A register in milli-units (mWh, mvarh, mVAh) as kilo-units with three decimals."""
    units = max(0, milli) // 1000  # Wh
    return f"{units // 1000:07d}.{units % 1000:03d}"


def readout_data_sets(model: MeterModel) -> list[DataSet]:
    """The mode C data set list of ``model`` now."""
    snap = model.snapshot()
    utc = snap.utc
    sets = [DataSet("C.1.0", model.identity.serial),
            DataSet("0.9.1", utc.strftime("%H%M%S")),
            DataSet("0.9.2", utc.strftime("%y%m%d")),
            DataSet("F.F", f"{snap.status_word & 0xFFFFFFFF:08X}")]
    for quantity in Quantity:
        milli = snap.registers.get((quantity, Channel.TOTAL), 0)
        sets.append(DataSet(f"{quantity.value}.8.0", kilo_value(milli), _KILO_UNITS[UNITS[quantity]]))
    return sets

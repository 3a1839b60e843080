"""The mode C data set list of the optical port (meterd.services.optical_readout)."""

from __future__ import annotations

from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.proto.iec62056_21 import data_message
from meterd.services.optical_readout import kilo_value, readout_data_sets
from tests.dlms_fakes import FakeMeter


def test_kilo_value_has_three_decimals_and_seven_integer_digits():
    assert kilo_value(1_234_567_890) == "0001234.567"  # 1234.56789 kWh in mWh, to the Wh
    assert kilo_value(0) == "0000000.000"


def test_data_sets_of_the_meter():
    meter = FakeMeter()
    meter.registers[(Quantity.ACTIVE_IMPORT, Channel.TOTAL)] = 5_000_123_456
    sets = {s.ident: s for s in readout_data_sets(meter)}
    assert sets["C.1.0"].value == "PMM1221000042"
    assert (sets["0.9.1"].value, sets["0.9.2"].value) == ("120000", "260301")  # the meter clock, UTC
    assert sets["F.F"].value == "00000005"
    assert (sets["1.8.0"].value, sets["1.8.0"].unit) == ("0005000.123", "kWh")
    assert sets["5.8.0"].unit == "kvarh" and sets["10.8.0"].unit == "kVAh"
    assert len(sets) == 4 + len(Quantity)
    assert b"1.8.0(0005000.123*kWh)\r\n" in data_message(list(sets.values()))

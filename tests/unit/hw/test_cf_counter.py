"""CF1 read back on a mock GPIO: pulses counted and checked against the billed energy."""

from __future__ import annotations

import logging

import pytest

from hw.cf_counter import CfPulseCounter


def pulse(mock_pins, pin: int, n: int) -> None:
    for _ in range(n):
        mock_pins.pin(pin).drive_high()
        mock_pins.pin(pin).drive_low()


def test_counts_rising_edges_and_agrees_with_the_registers(mock_pins) -> None:
    counter = CfPulseCounter(17, mock_pins, imp_per_kwh=1000)
    for _ in range(20):                 # 1 Wh a cycle at 1000 imp/kWh: one pulse a cycle
        pulse(mock_pins, 17, 1)
        assert counter.check(1000)
    assert counter.pulses == 20 and counter.deviation_pulses() == 0
    pulse(mock_pins, 17, 1)              # the chip's CF phase a pulse ahead of the registers
    assert counter.check(0) and counter.deviation_pulses() == 1
    counter.close()


def test_a_disagreement_is_flagged_once_and_clears(mock_pins, caplog: pytest.LogCaptureFixture) -> None:
    counter = CfPulseCounter(18, mock_pins, imp_per_kwh=1000)
    with caplog.at_level(logging.INFO, logger="hw.cf_counter"):
        for _ in range(5):               # energy billed, no CF1 pulse (a broken track)
            ok = counter.check(1000)
        assert not ok and counter.failed and counter.deviation_pulses() == -5
        pulse(mock_pins, 18, 5)
        assert counter.check(0) and not counter.failed
    messages = [r.getMessage() for r in caplog.records]
    assert sum("disagree" in m for m in messages) == 1 and sum("agree with" in m for m in messages) == 1
    counter.close()

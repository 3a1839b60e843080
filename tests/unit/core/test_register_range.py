"""The energy register range arithmetic: counts, capacity, hold time, the 60 s rule."""

from __future__ import annotations

from fractions import Fraction

import pytest

from meterd.core import register_range as rr


def test_counts_and_capacity() -> None:
    assert rr.milli_per_count(1000, 0.1) == 100
    assert rr.milli_per_count(10000, 0.01) == 1
    assert rr.milli_per_count(3200, Fraction(1, 10)) == Fraction(125, 4)   # 31.25 mWh: not an integer
    assert rr.capacity_wh(100) == pytest.approx(6553.5)
    assert rr.capacity_wh(1) == pytest.approx(65.535)


def test_hold_times() -> None:
    power = rr.worst_case_power_w(230.0, 100.0)
    assert power == pytest.approx(95_220.0)
    assert rr.hold_time_s(6553.5, power) == pytest.approx(247.77, abs=0.01)
    assert rr.hold_time_s(6553.5, power / 3) == pytest.approx(743.3, abs=0.1)
    assert rr.hold_time_s(65.535, power) == pytest.approx(2.478, abs=0.001)
    assert rr.hold_time_s(1.0, 0.0) == float("inf")


def test_the_sixty_second_rule() -> None:
    assert rr.hold_problem(1000, 0.1, 230.0, 100.0) == ""
    problem = rr.hold_problem(10000, 0.01, 230.0, 100.0)
    assert "1 mWh per count" in problem and "2.5 s" in problem and "60 s" in problem
    # just inside and just outside 60 s: 3 × 264.5 V × 1.2 × Imax × 60 s ≤ 6553.5 Wh ⇔ Imax ≤ 412.9 A
    assert rr.hold_problem(1000, 0.1, 230.0, 412.0) == ""
    assert rr.hold_problem(1000, 0.1, 230.0, 414.0) != ""


def test_late_risk() -> None:
    assert not rr.late_risk(123.0, 95_220.0, 6553.5, 0.5)
    assert rr.late_risk(124.0, 95_220.0, 6553.5, 0.5)
    assert not rr.late_risk(1e6, 95_220.0, 0.0, 0.5)   # capacity unknown

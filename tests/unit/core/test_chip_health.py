"""The pure chip checks: what is a fault, what is a warning, the fault state and its record."""

from __future__ import annotations

import pytest

from meterd.core.chip_health import (
    ChipFacts,
    ChipLimits,
    ChipSupervisor,
    MetrologyFault,
    MetrologyWarning,
    ReadPattern,
    assess,
    implausible,
)
from meterd.core.reading import Channel, ChannelEnergy, PhaseValues, Reading

LIMITS = ChipLimits(nominal_voltage_v=230.0, max_current_a=100.0)


def reading(u: float = 230.0, i: float = 10.0, p: float | None = None, f: float = 50.0, mono: float = 0.0,
            status: frozenset[str] = frozenset(), import_mwh: int = 0) -> Reading:
    power = u * i if p is None else p
    ph = PhaseValues(voltage_v=u, current_a=i, active_power_w=power, apparent_power_va=u * i)
    return Reading(mono_s=mono, phases=(ph, ph, ph), energy={Channel.TOTAL: ChannelEnergy(active_import=import_mwh)},
                   total_active_power_w=3 * power, frequency_hz=f, status=status)


def test_a_good_cycle_is_billable() -> None:
    check = assess(reading(), ChipFacts(), LIMITS, supply_good=True, interval_s=1.0)
    assert check.billable and not check.faults and not check.warnings


@pytest.mark.parametrize(("facts", "fault"), [
    (ChipFacts(pattern=ReadPattern.ALL_ONES, start_ok=False, checksums_ok=False), MetrologyFault.NO_RESPONSE),
    (ChipFacts(pattern=ReadPattern.ALL_ZEROS, start_ok=False, checksums_ok=False), MetrologyFault.NO_RESPONSE),
    (ChipFacts(start_ok=False, checksums_ok=False), MetrologyFault.CONFIGURATION_LOST),
    (ChipFacts(checksums_ok=False), MetrologyFault.CHECKSUM),
    (ChipFacts.failed("SpiTimeout: timed out"), MetrologyFault.SPI_ERROR),
])
def test_chip_facts_that_stop_billing(facts: ChipFacts, fault: MetrologyFault) -> None:
    check = assess(reading(), facts, LIMITS, supply_good=True)
    assert fault in check.faults and not check.billable


def test_a_checksum_error_bit_stops_billing() -> None:
    check = assess(reading(status=frozenset({"checksum_error_cs1"})), ChipFacts(), LIMITS, True)
    assert check.faults == {MetrologyFault.CHECKSUM}


@pytest.mark.parametrize(("r", "why"), [
    (reading(u=400.0), "voltage"),
    (reading(i=151.0), "current"),
    (reading(p=4000.0), "|P|"),
    (reading(f=70.0), "frequency"),
    (reading(u=0.0, i=0.0, f=0.0), "supply is good"),
])
def test_physically_impossible_values(r: Reading, why: str) -> None:
    assert why in implausible(r, LIMITS, supply_good=True)
    assert MetrologyFault.IMPLAUSIBLE in assess(r, ChipFacts(), LIMITS, True).faults


def test_dark_grid_with_the_supply_failing_is_not_a_fault() -> None:
    assert implausible(reading(u=0.0, i=0.0, f=0.0), LIMITS, supply_good=False) == ""
    assert implausible(reading(u=0.0, i=0.0, f=50.0), LIMITS, supply_good=True) == ""   # chip: nominal f in sag


def test_warnings_bill_but_flag() -> None:
    facts = ChipFacts(recovered_reads=2, saturated=1, current_full_scale=True)
    check = assess(reading(i=65.5, p=23000.0), facts, LIMITS, True, interval_s=3.0)
    assert check.billable
    assert check.warnings == {MetrologyWarning.SPI_RECOVERED, MetrologyWarning.ENERGY_SATURATED,
                              MetrologyWarning.CURRENT_FULL_SCALE, MetrologyWarning.LATE_CYCLE}


def test_an_episode_from_the_last_good_read_to_resumption_with_its_estimate() -> None:
    sup = ChipSupervisor(LIMITS)
    sup.check(10.0, reading(mono=10.0), ChipFacts(), True)           # 6.9 kW
    assert not sup.in_fault
    check = sup.check(11.0, reading(mono=11.0), ChipFacts(pattern=ReadPattern.ALL_ONES), True)
    assert check.faults and sup.in_fault and sup.fault_since == 10.0
    assert sup.flags(check) == {"metrology_fault"}
    assert not sup.fault_seen(12.0, frozenset({MetrologyFault.SPI_ERROR}))   # same episode
    episode = sup.resumed(20.0, delivered_mwh=9 * 1917)
    assert episode is not None and episode.duration_s == 10.0
    assert episode.kinds == {MetrologyFault.NO_RESPONSE, MetrologyFault.SPI_ERROR}
    assert episode.energy_not_measured_wh == pytest.approx(6900 * 10 / 3600 - 9 * 1.917, abs=1e-6)
    assert sup.totals.count == 1 and sup.totals.duration_s == 10.0 and not sup.in_fault
    copy = ChipSupervisor(LIMITS)
    copy.totals.restore(sup.totals.state_dict())
    assert copy.totals == sup.totals


def test_restarts_back_off_up_to_the_limit() -> None:
    sup = ChipSupervisor(LIMITS, max_backoff_s=4.0)
    sup.fault_seen(0.0, frozenset({MetrologyFault.START_FAILED}))
    due = []
    for t in range(0, 16):
        if sup.restart_due(float(t)):
            due.append(t)
            sup.restart_failed(float(t))
    assert due == [0, 1, 3, 7, 11, 15]



CAPACITY = ChipFacts(register_capacity_wh=6553.5)
"""A read's facts with the shipped registers (65535 counts × 0.1 Wh)."""


def test_the_worst_case_power_is_three_phases_at_115_pct_un_and_120_pct_imax() -> None:
    assert LIMITS.worst_case_power_w == pytest.approx(3 * 264.5 * 120.0)   # 95 220 W


def test_a_read_late_enough_to_fill_half_a_register_is_at_risk() -> None:
    # half of 6553.5 Wh at 95 220 W: 123.9 s
    at_risk = 0.5 * 6553.5 * 3600 / LIMITS.worst_case_power_w
    late = assess(reading(), CAPACITY, LIMITS, supply_good=True, interval_s=at_risk - 0.5)
    assert late.warnings == {MetrologyWarning.LATE_CYCLE} and late.billable
    risky = assess(reading(), CAPACITY, LIMITS, supply_good=True, interval_s=at_risk + 0.5)
    assert risky.warnings == {MetrologyWarning.LATE_CYCLE, MetrologyWarning.SATURATION_RISK} and risky.billable
    assert "energy register" in risky.detail
    # a front end that does not say its capacity: no risk judged
    unknown = assess(reading(), ChipFacts(), LIMITS, supply_good=True, interval_s=1000.0)
    assert MetrologyWarning.SATURATION_RISK not in unknown.warnings


def test_a_read_after_a_stalled_loop_says_how_long_the_stall_was() -> None:
    limit = LIMITS.stall_factor * LIMITS.cycle_s
    assert assess(reading(), CAPACITY, LIMITS, supply_good=True, interval_s=limit - 0.1).stalled_s == 0.0
    stalled = assess(reading(), CAPACITY, LIMITS, supply_good=True, interval_s=limit + 20.0)
    assert stalled.stalled_s == pytest.approx(limit + 20.0) and stalled.billable  # the chip kept the energy
    assert assess(reading(), CAPACITY, LIMITS, supply_good=True, interval_s=None).stalled_s == 0.0


def test_one_saturation_episode_one_start_and_the_shortfall_joins_the_energy_not_measured() -> None:
    sup = ChipSupervisor(LIMITS)
    full = ChipFacts(saturated=1, register_capacity_wh=6553.5)
    p_w = 230.0 * 120.0                         # per phase; 82.8 kW in total
    assert not sup.check(0.0, reading(i=120.0), CAPACITY, True).saturation_started
    first = sup.check(300.0, reading(i=120.0, import_mwh=6_553_500), full, True)
    assert first.billable and first.saturation_started and sup.saturation_open
    assert MetrologyWarning.ENERGY_SATURATED in first.warnings
    expected = 3 * p_w * 300.0 / 3600.0 - 6553.5   # 6900 Wh true, 6553.5 Wh read: 346.5 Wh
    assert first.shortfall_wh == pytest.approx(expected)
    assert sup.totals.energy_not_measured_wh == pytest.approx(expected)
    assert sup.totals.count == 0                  # not a fault episode: billed, flagged
    again = sup.check(600.0, reading(i=120.0, import_mwh=6_553_500), full, True)
    assert not again.saturation_started and again.shortfall_wh == pytest.approx(expected)
    assert sup.totals.energy_not_measured_wh == pytest.approx(2 * expected)
    on_time = sup.check(601.0, reading(i=120.0, import_mwh=23_000), CAPACITY, True)
    assert not on_time.saturation_started and not sup.saturation_open and on_time.shortfall_wh == 0.0
    risky = sup.check(801.0, reading(i=120.0, import_mwh=4_600_000), CAPACITY, True)
    assert risky.saturation_started and risky.shortfall_wh == 0.0     # at risk, nothing lost
    assert sup.totals.energy_not_measured_wh == pytest.approx(2 * expected)


def test_the_shortfall_uses_the_mean_power_of_the_two_reads() -> None:
    sup = ChipSupervisor(LIMITS)
    sup.check(0.0, reading(i=60.0), CAPACITY, True)                    # 41.4 kW
    full = ChipFacts(saturated=1, register_capacity_wh=6553.5)
    check = sup.check(600.0, reading(i=120.0, import_mwh=6_553_500), full, True)   # 82.8 kW
    assert check.shortfall_wh == pytest.approx((41_400 + 82_800) / 2 * 600 / 3600 - 6553.5)   # 5866.5 Wh


def test_a_faulted_read_opens_no_saturation_episode() -> None:
    sup = ChipSupervisor(LIMITS)
    sup.check(0.0, reading(), CAPACITY, True)
    check = sup.check(300.0, reading(), ChipFacts(start_ok=False, saturated=1, register_capacity_wh=6553.5), True)
    assert check.faults and not check.saturation_started and check.shortfall_wh == 0.0
    assert not sup.saturation_open


def test_a_run_of_stalled_reads_is_one_episode_until_a_read_comes_on_time() -> None:
    sup = ChipSupervisor(LIMITS)
    limit = LIMITS.stall_factor * LIMITS.cycle_s
    t = 1000.0
    assert sup.check(t, reading(), CAPACITY, supply_good=True).stalled_s == 0.0
    t += limit + 5
    assert sup.check(t, reading(), CAPACITY, supply_good=True).stalled_s == pytest.approx(limit + 5)
    t += limit + 5
    assert sup.check(t, reading(), CAPACITY, supply_good=True).stalled_s == 0.0   # the same episode
    t += LIMITS.cycle_s
    assert sup.check(t, reading(), CAPACITY, supply_good=True).stalled_s == 0.0   # on time: it ends
    t += limit + 5
    assert sup.check(t, reading(), CAPACITY, supply_good=True).stalled_s == pytest.approx(limit + 5)

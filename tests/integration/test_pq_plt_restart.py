"""The Plt of the running 2-h interval survives a restart of the simulated meter.

A meter with a flickering supply (sine modulation at 10 Hz, ΔU/U changed at each 10-min tick so
every Pst differs) is stopped inside the 2-h
interval 00:00–02:00 UTC and started again; its Plt at 02:00 equals the Plt of a meter that ran
without the restart. To stay fast both meters analyse only 12 s around each 10-min tick and skip
the time between (a step longer than ``max_step_s`` is a gap: not analysed, the stream restarts),
so both miss the same intervals and their Plt is the flagged Plt of the Pst present
(power-quality.md §4.5, §7.7). The Pst ending at 00:00 belongs to the previous 2-h interval and
must not enter.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hw.sim.grid import Flicker
from meterd.pq.flicker import plt_from_pst
from meterd.pq.monitor import PqValues
from tests.simmeter import SimMeter

DAY = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
BEFORE = [DAY + dt.timedelta(minutes=m) for m in (0, 10, 20, 30)]  # ticks seen before the restart
AFTER = [DAY + dt.timedelta(minutes=m) for m in (110, 120)]  # after it (01:50, 02:00)
HALF_S = 6  # analysed seconds on each side of a tick


def start(state_dir: Path, utc: dt.datetime) -> SimMeter:
    return SimMeter(state_dir, sim={"start_utc": utc.isoformat()}, display={"kind": "dummy"},
                    power_quality={"enabled": True})


def delta_u_pct(tick: dt.datetime) -> float:
    """The modulation (ΔU/U, %) of the seconds analysed around ``tick``: one per tick."""
    return 0.3 + 0.2 * ((tick - DAY).total_seconds() // 600 % 7)


def around_ticks(meter: SimMeter, ticks: list[dt.datetime]) -> None:
    """Run HALF_S s either side of each tick, jumping over the time between in one long cycle."""
    for tick in ticks:
        jump = (tick - dt.timedelta(seconds=HALF_S) - meter.clock.utc()).total_seconds()
        if jump > 0:
            meter.run(jump, cycle_s=jump)
        meter.world.grid.set_all_phases(flicker=Flicker("sine", 10.0, delta_u_pct(tick)))
        meter.run(2 * HALF_S)


def pq(meter: SimMeter) -> PqValues:
    values: PqValues = meter.daemon.services["power_quality"].values()
    return values


def test_plt_after_a_restart_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    first_start = BEFORE[0] - dt.timedelta(seconds=HALF_S)
    reference = start(tmp_path / "ref", first_start)
    try:
        around_ticks(reference, BEFORE)
        before = {p: [v.pst for v in reference.daemon.services["power_quality"].monitor.plt_held(p)]
                  for p in (1, 2, 3)}
        around_ticks(reference, AFTER)
        ref = pq(reference)
    finally:
        reference.close()
    assert all(len(v) == 3 for v in before.values())  # 00:10, 00:20, 00:30; 00:00 closed the last window

    meter = start(tmp_path / "cut", first_start)
    try:
        around_ticks(meter, BEFORE)
    finally:
        meter.close()
    meter = start(tmp_path / "cut", AFTER[0] - dt.timedelta(seconds=HALF_S))  # the restart, inside 00:00–02:00
    try:
        around_ticks(meter, AFTER)
        got = pq(meter)
        held = {p: meter.daemon.services["power_quality"].monitor.plt_held(p) for p in (1, 2, 3)}
    finally:
        meter.close()

    assert set(ref.plt) == set(got.plt) == {1, 2, 3}
    held_after = {p: [v.pst for v in values] for p, values in held.items()}
    for phase in (1, 2, 3):
        assert got.plt[phase] == pytest.approx(ref.plt[phase], rel=1e-9), phase
        assert got.plt_flagged[phase] is ref.plt_flagged[phase] is True  # 5 of 12 Pst present
        assert held_after[phase][:3] == before[phase]  # the restored Pst are the exact ones
        # the new Pst alone would give another Plt: the restored ones are in it
        assert got.plt[phase] != pytest.approx(plt_from_pst(held_after[phase][3:]), rel=1e-3)
        assert [v.end_utc for v in held[phase]] == BEFORE[1:] + AFTER  # not the Pst ending at 00:00
        assert got.plt[phase] == pytest.approx(plt_from_pst(held_after[phase]), rel=1e-12)
    assert got.pst[1].end_utc == AFTER[-1]

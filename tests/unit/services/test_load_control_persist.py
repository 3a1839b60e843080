"""Load-control state that must survive a restart: the STS maximum power and phase-unbalance limits
(a token cannot be entered twice), the class 71 settings written over DLMS, and the changeover's
selected source; plus the phase-unbalance supervision itself (minimum duration, trip, reconnect)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hw.changeover import Changeover
from hw.relay import LatchingRelay
from meterd.core.disconnect import ControlState
from meterd.core.disconnect import DisconnectorEvent as Ev
from meterd.core.limiter import LimiterConfig, LimiterState
from meterd.core.reading import PhaseValues, Reading
from meterd.core.supply import Source, SupplyConfig
from meterd.services.load_control import LoadControl
from meterd.store.relay_store import RelayStore
from tests.unit.services.test_load_control import Rig

C, R = ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION

LIM = LimiterConfig(threshold_normal=50_000.0, min_over_threshold_duration_s=10.0,
                    min_under_threshold_duration_s=5.0, reconnect_delay_s=30.0, max_reconnect_attempts=3)


def restart(r: Rig, tmp_path: Path) -> LoadControl:
    """A new driver, store and service on the same pins and database (the contact stays put)."""
    r.relay.close()
    r.relay = LatchingRelay.from_pins(23, 24, 25, r.clock, r.sched, pin_factory=r.factory)
    r.store.close()
    r.store = RelayStore(tmp_path / "relay.db")
    if r.changeover is not None:                  # contactors start on the preferred source
        r.changeover.close()
        r.changeover = Changeover.from_pins(17, 27, r.sched, pin_factory=r.factory)
    r.lc = r.new_service()
    r.lc.start()
    r.settle()
    return r.lc


def started(tmp_path: Path, **kw: object) -> Rig:
    r = Rig(tmp_path, **kw)  # type: ignore[arg-type]
    r.lc.start()
    r.settle()
    return r


def unbalanced(t: float, phase_w: tuple[float, float, float]) -> Reading:
    phases = tuple(PhaseValues(voltage_v=230.0, current_a=w / 230.0, active_power_w=w) for w in phase_w)
    return Reading(mono_s=t, phases=phases, energy={}, total_active_power_w=sum(phase_w))  # type: ignore[arg-type]


def run(r: Rig, seconds: int, phase_w: tuple[float, float, float]) -> None:
    for _ in range(seconds):
        r.settle(1.0)
        seen = phase_w if r.sim.closed else (0.0, 0.0, 0.0)
        r.lc.on_reading(unbalanced(r.clock.mono(), seen))
    r.settle(0.1)


# ------------------------------------------------------------------ phase unbalance supervision

def test_unbalance_shorter_than_the_minimum_duration_does_not_trip(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_phase_unbalance_w(2_000.0)
    run(r, 9, (4_000.0, 500.0, 500.0))            # 3.5 kW spread for 9 s < 10 s
    run(r, 5, (1_000.0, 900.0, 800.0))            # 200 W spread: below the limit
    run(r, 9, (4_000.0, 500.0, 500.0))            # the timer restarted
    assert r.sim.closed and r.lc.control_state is C and r.sim.operations == 0
    assert Ev.LIMITER_THRESHOLD_EXCEEDED not in r.sink.codes()
    r.close()


def test_unbalance_longer_than_the_minimum_duration_trips_and_reconnects(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_phase_unbalance_w(2_000.0)
    assert Ev.LIMITER_THRESHOLD_CHANGED in r.sink.codes()
    run(r, 11, (4_000.0, 500.0, 500.0))           # balanced total (5 kW) far below every other limit
    assert not r.sim.closed and r.lc.control_state is R
    trip = [d for c, _, d in r.sink.events if c == Ev.LIMITER_THRESHOLD_EXCEEDED]
    assert trip and trip[-1]["cause"] == "unbalance" and trip[-1]["value"] == 3_500.0
    assert trip[-1]["threshold"] == 2_000.0
    assert "limiter" in r.lc.status().local_causes and Ev.LOCAL_DISCONNECTION in r.sink.codes()
    run(r, 35, (4_000.0, 500.0, 500.0))           # relay open: no power, no unbalance -> reconnect
    assert r.sim.closed and r.lc.control_state is C and Ev.LIMITER_THRESHOLD_OK in r.sink.codes()
    r.close()


def test_unbalance_limit_zero_means_no_limit(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_phase_unbalance_w(2_000.0)
    r.lc.set_max_phase_unbalance_w(0.0)
    assert r.lc.limiter.max_phase_unbalance_w is None
    run(r, 30, (9_000.0, 0.0, 0.0))
    assert r.sim.closed and r.sim.operations == 0
    r.close()


# ------------------------------------------------------------------ restart

def test_sts_limits_survive_a_restart(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_power_w(3_000.0)
    r.lc.set_max_phase_unbalance_w(1_500.0)
    lc = restart(r, tmp_path)
    assert lc.limiter.max_power_w == 3_000.0 and lc.limiter.max_phase_unbalance_w == 1_500.0
    run(r, 11, (1_200.0, 1_200.0, 1_200.0))       # 3.6 kW, balanced: the restored power limit trips
    assert not r.sim.closed
    trip = [d for c, _, d in r.sink.events if c == Ev.LIMITER_THRESHOLD_EXCEEDED]
    assert trip[-1]["cause"] == "max_power"
    r.close()


def test_removed_sts_limit_stays_removed_after_a_restart(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_power_w(3_000.0)
    r.lc.set_max_power_w(0.0)
    assert restart(r, tmp_path).limiter.max_power_w is None
    r.close()


def test_dlms_limiter_settings_survive_a_restart_and_win_over_the_file(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    written = dataclasses.replace(LIM, threshold_normal=4_000.0, min_over_threshold_duration_s=3.0,
                                  emergency_group_ids=frozenset({2}))
    r.lc.set_limiter_config(written)
    lc = restart(r, tmp_path)                     # r.config still carries the file's LIM
    assert lc.limiter.config == written
    run(r, 4, (1_500.0, 1_500.0, 1_500.0))        # 4.5 kW > 4 kW for >= 3 s
    assert not r.sim.closed and lc.limiter.state is LimiterState.TRIPPED
    r.close()


def test_without_dlms_write_the_config_file_applies_after_restart(tmp_path: Path) -> None:
    r = started(tmp_path, mode=5, limiter=LIM)
    r.lc.set_max_power_w(3_000.0)
    r.config = dataclasses.replace(r.config, limiter=dataclasses.replace(LIM, threshold_normal=60_000.0))
    lc = restart(r, tmp_path)
    assert lc.limiter.config.threshold_normal == 60_000.0
    r.close()


def test_selected_supply_source_survives_a_restart(tmp_path: Path) -> None:
    r = started(tmp_path, supply=SupplyConfig(loss_duration_s=2.0, restore_duration_s=5.0))
    for grid_v in (230.0, 230.0, 0.0, 0.0, 0.0, 0.0):
        r.lc.on_supply_voltages(grid_v, 230.0)
        r.settle(1.0)
    assert r.lc.status().supply is Source.SOLAR
    swaps = r.sink.codes().count(Ev.SUPPLY_SWAP_TO_SOLAR)
    lc = restart(r, tmp_path)
    assert lc.status().supply is Source.SOLAR and r.changeover is not None
    assert r.changeover.closed("solar") and not r.changeover.closed("grid")   # driven back at start
    lc.on_supply_voltages(230.0, 230.0)           # the grid is back, but must prove itself first
    r.settle(1.0)
    assert lc.status().supply is Source.SOLAR
    for _ in range(7):
        lc.on_supply_voltages(230.0, 230.0)
        r.settle(1.0)
    assert lc.status().supply is Source.GRID and r.changeover.closed("grid")
    assert r.sink.codes().count(Ev.SUPPLY_SWAP_TO_SOLAR) == swaps
    assert r.store.load().supply_source == "grid"  # type: ignore[union-attr]
    r.close()

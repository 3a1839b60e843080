"""Class 71 limiter: durations, reconnect delay, attempt limit and lockout, emergency profile,
STS maximum power limit, over-current and overload protection."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.core.limiter import (
    ActionKind,
    Cause,
    EmergencyProfile,
    Limiter,
    LimiterConfig,
    LimiterConfigError,
    LimiterState,
    Monitored,
)
from meterd.core.reading import PhaseValues, Reading

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def reading(t: float, power_w: float, current_a: float | tuple[float, float, float] = 10.0) -> Reading:
    currents = current_a if isinstance(current_a, tuple) else (current_a,) * 3
    phases = tuple(PhaseValues(voltage_v=230.0, current_a=i, active_power_w=power_w / 3) for i in currents)
    return Reading(mono_s=t, phases=phases, energy={}, total_active_power_w=power_w)  # type: ignore[arg-type]


CFG = LimiterConfig(threshold_normal=10_000.0, threshold_emergency=3_000.0,
                    min_over_threshold_duration_s=10.0, min_under_threshold_duration_s=5.0,
                    reconnect_delay_s=30.0, max_reconnect_attempts=2, attempt_reset_s=600.0)


def feed(lim: Limiter, start: float, stop: float, power_w: float, step: float = 1.0, **kw: object):
    actions = []
    t = start
    while t < stop:
        actions += [(t, a) for a in lim.evaluate(reading(t, power_w, **kw), NOW)]
        t += step
    return actions


def test_short_overload_below_min_duration_does_not_trip() -> None:
    lim = Limiter(CFG)
    assert feed(lim, 0, 9.5, 12_000.0) == []        # over for 9 s < 10 s
    assert feed(lim, 10, 30, 5_000.0) == []
    assert feed(lim, 30, 39.5, 12_000.0) == []       # the timer restarted
    assert lim.state is LimiterState.ARMED


def test_sustained_overload_trips_after_min_duration() -> None:
    lim = Limiter(CFG)
    actions = feed(lim, 0, 20, 12_000.0)
    assert len(actions) == 1
    t, action = actions[0]
    assert t == 10.0 and action.kind is ActionKind.DISCONNECT and action.cause is Cause.THRESHOLD
    assert action.value == 12_000.0 and action.threshold == 10_000.0
    assert lim.state is LimiterState.TRIPPED


def test_equal_to_threshold_is_not_over() -> None:
    lim = Limiter(CFG)
    assert feed(lim, 0, 60, 10_000.0) == []


def test_reconnect_after_delay_and_under_duration() -> None:
    lim = Limiter(CFG)
    feed(lim, 0, 11, 12_000.0)                      # trip at t=10
    assert feed(lim, 11, 40, 0.0) == []             # delay 30 s not yet over (until t=40)
    actions = feed(lim, 40, 41, 0.0)
    assert [a.kind for _, a in actions] == [ActionKind.RECONNECT]
    assert lim.state is LimiterState.ARMED and lim.attempts == 1


def test_reconnect_waits_for_under_duration() -> None:
    lim = Limiter(CFG)
    feed(lim, 0, 11, 12_000.0)
    feed(lim, 11, 38, 0.0)
    assert feed(lim, 38, 39, 11_000.0) == []        # over again: under timer restarts
    assert feed(lim, 39, 43.5, 0.0) == []           # under 4 s < 5 s
    assert [a.kind for _, a in feed(lim, 44, 45, 0.0)] == [ActionKind.RECONNECT]


def test_lockout_after_attempt_limit_and_clear() -> None:
    lim = Limiter(CFG)
    t = 0.0
    kinds = []
    for _ in range(3):
        kinds += [a.kind for _, a in feed(lim, t, t + 11, 12_000.0)]
        t += 11
        kinds += [a.kind for _, a in feed(lim, t, t + 31, 0.0)]
        t += 31
    assert kinds == [ActionKind.DISCONNECT, ActionKind.RECONNECT,
                     ActionKind.DISCONNECT, ActionKind.RECONNECT,
                     ActionKind.DISCONNECT, ActionKind.LOCKOUT]
    assert lim.state is LimiterState.LOCKED_OUT
    assert feed(lim, t, t + 1000, 0.0, step=10.0) == []   # no automatic reconnect any more
    lim.clear()
    assert lim.state is LimiterState.ARMED and lim.attempts == 0


def test_attempts_reset_after_quiet_period() -> None:
    lim = Limiter(CFG)
    feed(lim, 0, 11, 12_000.0)
    feed(lim, 11, 41, 0.0)
    assert lim.attempts == 1
    feed(lim, 41, 700, 1_000.0, step=10.0)
    assert lim.attempts == 0


def test_emergency_profile_lowers_threshold_while_active() -> None:
    profile = EmergencyProfile(7, NOW - dt.timedelta(minutes=5), 600.0)
    cfg = LimiterConfig(**{**CFG.__dict__, "emergency_profile": profile,
                           "emergency_group_ids": frozenset({7})})
    lim = Limiter(cfg)
    assert lim.emergency_active(NOW) and lim.threshold_active(NOW) == 3_000.0
    assert lim.threshold_active(NOW + dt.timedelta(minutes=6)) == 10_000.0
    actions = feed(lim, 0, 12, 4_000.0)
    assert actions and actions[0][1].threshold == 3_000.0
    other_group = Limiter(LimiterConfig(**{**cfg.__dict__, "emergency_group_ids": frozenset({1})}))
    assert not other_group.emergency_active(NOW)


def test_sts_max_power_limit_feeds_the_limiter() -> None:
    lim = Limiter(CFG)
    lim.set_max_power_w(2_000.0)
    actions = feed(lim, 0, 12, 2_500.0)
    assert actions[0][1].cause is Cause.MAX_POWER and actions[0][1].threshold == 2_000.0
    lim2 = Limiter(CFG)
    lim2.set_max_power_w(2_000.0)
    lim2.set_max_power_w(0)                            # removed
    assert feed(lim2, 0, 30, 2_500.0) == []
    with pytest.raises(LimiterConfigError):
        lim2.set_max_power_w(-1)


def test_monitoring_current_uses_highest_phase() -> None:
    cfg = LimiterConfig(**{**CFG.__dict__, "monitored": Monitored.CURRENT, "threshold_normal": 40.0})
    lim = Limiter(cfg)
    actions = feed(lim, 0, 12, 5_000.0, current_a=(10.0, 45.0, 10.0))
    assert actions[0][1].cause is Cause.THRESHOLD and actions[0][1].value == 45.0


def test_phase_overcurrent_trips_faster() -> None:
    lim = Limiter(CFG)
    actions = feed(lim, 0, 8, 5_000.0, current_a=(10.0, 10.0, 120.0))
    assert len(actions) == 1
    t, action = actions[0]
    assert t == 5.0 and action.cause is Cause.OVERCURRENT and action.value == 120.0


def test_overload_on_total_power() -> None:
    cfg = LimiterConfig(**{**CFG.__dict__, "threshold_normal": 100_000.0, "overload_power_w": 50_000.0,
                           "overload_duration_s": 3.0})
    actions = feed(Limiter(cfg), 0, 5, 60_000.0)
    assert actions[0][0] == 3.0 and actions[0][1].cause is Cause.OVERLOAD


def test_config_validation() -> None:
    with pytest.raises(LimiterConfigError):
        LimiterConfig(threshold_normal=0)
    with pytest.raises(LimiterConfigError):
        LimiterConfig(min_over_threshold_duration_s=-1)
    with pytest.raises(LimiterConfigError):
        LimiterConfig(max_reconnect_attempts=-1)


def spread(t: float, phase_w: tuple[float, float, float]) -> Reading:
    phases = tuple(PhaseValues(voltage_v=230.0, current_a=5.0, active_power_w=w) for w in phase_w)
    return Reading(mono_s=t, phases=phases, energy={}, total_active_power_w=sum(phase_w))  # type: ignore[arg-type]


def test_phase_unbalance_limit_uses_the_minimum_duration_and_the_spread_of_phase_powers() -> None:
    lim = Limiter(CFG)
    lim.set_max_phase_unbalance_w(1_000.0)           # 900 W spread, high total: never over the limit
    assert all(not lim.evaluate(spread(t, (3_000.0, 2_100.0, 2_500.0)), NOW) for t in range(0, 30))
    assert lim.state is LimiterState.ARMED
    lim = Limiter(CFG)
    lim.set_max_phase_unbalance_w(1_200.0)
    for t in range(0, 9):                            # spread 1.3 kW for 9 s, then balanced
        assert lim.evaluate(spread(t, (2_000.0, 700.0, 1_000.0)), NOW) == []
    assert lim.evaluate(spread(9, (1_000.0, 1_000.0, 1_000.0)), NOW) == []
    actions = [a for t in range(10, 21) for a in lim.evaluate(spread(t, (2_000.0, 700.0, 1_000.0)), NOW)]
    assert [(a.kind, a.cause, a.value, a.threshold, a.mono_s) for a in actions] == [
        (ActionKind.DISCONNECT, Cause.UNBALANCE, 1_300.0, 1_200.0, 20)]
    lim.set_max_phase_unbalance_w(0.0)
    assert lim.max_phase_unbalance_w is None and Cause.UNBALANCE not in lim.limits(spread(0, (9e3, 0, 0)), NOW)
    with pytest.raises(LimiterConfigError):
        lim.set_max_phase_unbalance_w(-1.0)


def test_limiter_config_round_trips_through_its_dict() -> None:
    cfg = LimiterConfig(monitored=Monitored.CURRENT, threshold_normal=40.0, max_reconnect_attempts=7,
                        emergency_profile=EmergencyProfile(3, NOW, 900.0), emergency_group_ids=frozenset({3}))
    assert LimiterConfig.from_dict(cfg.to_dict()) == cfg
    assert LimiterConfig.from_dict(LimiterConfig().to_dict()) == LimiterConfig()
    with pytest.raises(LimiterConfigError):
        LimiterConfig.from_dict({**cfg.to_dict(), "threshold_normal": 0})
    with pytest.raises(LimiterConfigError):
        LimiterConfig.from_dict({"monitored": "1-0:1.7.0.255"})

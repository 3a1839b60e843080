"""The load-control service on the meter loop: relay and changeover pins, button, timers, supply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hw.changeover import Changeover
from hw.inputs import PushButton
from hw.relay import LatchingRelay, ManualScheduler, SimRelay
from meterd.core.supply import lowest_phase_voltage_v
from meterd.services.load_control import LoadControl, RelayStateStore
from meterd.services.metering import CycleResult
from meterd.services.relay_button import RelayButton
from meterd.services.relay_events import RelayEvents


class LoopScheduler:
    """``call_later`` on the running asyncio loop (real hardware: real time). The timers not yet
    run are kept, so :meth:`cancel_all` at shutdown leaves no callback to run on released pins."""

    def __init__(self) -> None:
        self._pending: set[asyncio.TimerHandle] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Timers neither run nor cancelled."""
        return sum(1 for handle in self._pending if not handle.cancelled())

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``delay`` (s); after :meth:`cancel_all` the timer is
        cancelled at once."""
        made: list[asyncio.TimerHandle] = []  # the handle, known before the loop can run it

        def fire() -> None:
            self._pending.difference_update(made)
            callback(*args)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        made.append(handle)
        if self._closed:
            handle.cancel()
        else:
            self._pending.add(handle)
        return handle

    def cancel_all(self) -> None:
        """Cancel every pending timer and any later one (at shutdown, before the pins go)."""
        self._closed = True
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()


@dataclass
class LoadControlUnit:
    """The disconnect control as built for one meter: the service, its relay (and the simulated
    one behind it), store, event sink, button, relay timers (simulation: on the meter clock),
    changeover and the solar source's inputs; :meth:`on_cycle` is its metering-cycle hook."""

    lc: LoadControl
    relay: LatchingRelay
    store: RelayStateStore
    events: RelayEvents
    button: RelayButton
    timers: ManualScheduler | None = None
    sim_relay: SimRelay | None = None
    changeover: Changeover | None = None
    solar_voltage_v: float = 0.0  # V, the simulated solar source without a voltage-detect input
    solar_input: PushButton | None = None
    cycles: int = 0
    closers: list[Callable[[], None]] = field(default_factory=list)

    def on_cycle(self, result: CycleResult) -> None:
        """Every metering cycle: due timers (sim), the button, the limiter, the changeover."""
        if self.timers is not None:
            self.timers.run_due()
        self.cycles += 1
        self.button.poll()
        reading = result.reading
        self.lc.on_reading(reading)
        if self.changeover is not None:
            self._supply(result)

    def _supply(self, result: CycleResult) -> None:
        """Grid from the metered phase voltages (V); solar from its voltage-detect input when
        wired, else from the simulated solar voltage (V)."""
        grid_v = lowest_phase_voltage_v(result.reading)
        if self.solar_input is not None:
            self.solar_input.poll()
            self.lc.on_supply_voltages(grid_v, None, solar_present=self.solar_input.pressed)
        else:
            self.lc.on_supply_voltages(grid_v, self.solar_voltage_v)

    def status_flags(self) -> set[str]:
        """The ``relay_open`` bit of the meter status word."""
        return set() if self.lc.output_state else {"relay_open"}

    def close(self) -> None:
        """Release pins and the store."""
        for closer in reversed(self.closers):
            closer()

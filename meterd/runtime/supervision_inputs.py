"""The supervision's inputs on the meter loop: tamper input edges per cycle, the power-fail edge."""

from __future__ import annotations

import asyncio
import datetime as _dt
import threading

from hw.inputs import COVER_OPEN, MAGNETIC_FIELD, MeterInputs
from meterd.core.clock import Clock
from meterd.services.metering import CycleResult
from meterd.services.supervision import Supervision


class InputEdges:
    """The per-cycle hook. A cover or magnet change confirmed by the debounce is first shown to
    the supervision at the time of its edge (inputs only, the electrical detectors frozen), so a
    tamper episode is stamped when the input moved, not when the next cycle confirmed it."""

    WATCHED = (COVER_OPEN, MAGNETIC_FIELD)

    def __init__(self, inputs: MeterInputs, clock: Clock, supervision: Supervision) -> None:
        self._inputs = inputs
        self._clock = clock
        self._supervision = supervision
        self._last = {name: self._inputs.states()[name] for name in self.WATCHED}

    def on_cycle(self, result: CycleResult) -> None:
        """Run the supervision for one metering cycle."""
        states = self._inputs.states()
        now_mono, now_utc = self._clock.mono(), self._clock.utc()
        edges = sorted((self._inputs.inputs[n].since_s, n) for n in self.WATCHED if states[n] != self._last[n])
        seen = dict(states)
        seen.update(self._last)
        for since_s, name in edges:
            seen[name] = states[name]
            at_s = min(since_s, now_mono)
            edge_utc = now_utc - _dt.timedelta(seconds=now_mono - at_s)
            self._supervision.on_cycle(edge_utc, None, seen, mono_s=at_s)
        self._last = {name: states[name] for name in self.WATCHED}
        measured = "metrology_fault" not in result.reading.status  # else nothing was measured
        self._supervision.on_cycle(now_utc, result.reading if measured else None, states, mono_s=now_mono)


class PowerFailEvents:
    """The power-fail edge → "power down" at once. On the loop's thread the record is queued
    behind the daemon's last-gasp energy checkpoint (energy first: it is the larger loss); an
    edge on a real pin's thread is handed to the loop; without a loop (in-process meter) it is
    recorded directly."""

    def __init__(self, clock: Clock, supervision: Supervision) -> None:
        self._clock = clock
        self._supervision = supervision
        self.loop: asyncio.AbstractEventLoop | None = None

    def changed(self, _name: str, active: bool, mono_s: float) -> None:
        """Input listener ``(name, active, mono_s)``."""
        utc = self._clock.utc()

        def act() -> None:
            self._supervision.on_power_fail_input(utc, mono_s, active)

        if threading.current_thread() is threading.main_thread():
            try:
                asyncio.get_running_loop().call_soon(act)
            except RuntimeError:
                act()
        elif self.loop is not None:
            loop = self.loop
            loop.call_soon_threadsafe(lambda: loop.call_soon(act))
        else:
            act()

"""The meter's features in the simulated world: what they drive and read there instead of wires.

* the terminal cover and magnet sensor: scenario signals ``cover_open`` and ``magnetic_field``
  (:func:`drive_sim_tamper_inputs`);
* the load behind the disconnect relay: :class:`SimLoadSide` cuts the grid model's load while the
  simulated relay's contacts are open; the relay timers run on the meter clock before each
  reading, the scenario signals ``button``, ``solar_voltage_v`` and ``solar_present``
  (:func:`wire_sim_load_control`);
* the waveform the power-quality chain analyses: :class:`GridWaveformSource` over the grid model.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from hw.inputs import COVER_OPEN, MAGNETIC_FIELD, DebouncedInput
from hw.sim.grid import Grid, GridError
from meterd.app.sim_faults import SimRelayPins
from meterd.app.sim_world import SimWorld
from meterd.core.clock import Clock
from meterd.pq.source import WaveformBlock
from meterd.runtime.load_control import LoadControlUnit

SAMPLE_RATE_HZ = 8000


def drive_sim_tamper_inputs(sim: SimWorld, pins: Any, cover: DebouncedInput, magnet: DebouncedInput) -> None:
    """The simulated cover starts closed; scenario signals ``cover_open`` and ``magnetic_field``
    drive the two inputs (the cover switch is normally closed to GND: an open cover lets the pin
    go high)."""
    cover_pin, magnet_pin = cover.config.pin, magnet.config.pin
    pins.pin(cover_pin).drive_low()
    cover.resync()
    magnet.resync()
    sim.input_pins[COVER_OPEN] = cover_pin
    sim.input_pins[MAGNETIC_FIELD] = magnet_pin

    def cover_signal(value: Any) -> None:
        mock = pins.pin(cover_pin)
        if value:
            mock.drive_high()  # switch released: the pull-up wins
        else:
            mock.drive_low()

    sim.extra_signals[COVER_OPEN] = cover_signal


class SimLoadSide:
    """The load behind the simulated relay: the grid model's load is disconnected while the
    contacts are open (voltage stays, no current flows) and the same load flows again when they
    close; load changes made meanwhile (``meterctl sim set``, scenarios) are kept by the grid."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    @property
    def open(self) -> bool:
        """True while the contacts are open (load cut)."""
        return not self.grid.state.phases[0].load_connected

    def contact(self, closed: bool, at_s: float | None = None) -> None:
        """The relay's main contacts moved to ``closed`` at ``at_s`` (s, monotonic; None = now)."""
        if closed == (not self.open):
            return
        try:
            self.grid.set_load_connected(closed, at_s)
        except GridError:  # a later change is already in the model: the contact moves now
            self.grid.set_load_connected(closed)


def wire_sim_load_control(unit: LoadControlUnit, world: SimWorld, button_pin: int | None,
                          solar_present_pin: int | None, coil_pins: tuple[int, int] | None = None) -> SimLoadSide:
    """The simulated relay's contacts cut the grid model's load; relay timers that fell due
    since the last cycle run before the front end reads, each dated at its due time (the contacts
    open 10 ms after the coil pulse, not a cycle later); the scenario signals ``button`` (on
    ``button_pin``), ``solar_voltage_v`` (V, with a changeover) and ``solar_present`` (on
    ``solar_present_pin``: true = the voltage-detect module drives its output high); with
    ``coil_pins`` (set, reset; BCM) the rig's relay faults reach the relay (``world.relay``)."""
    relay, timers = unit.sim_relay, unit.timers
    assert relay is not None and timers is not None
    if coil_pins is not None:
        world.relay = SimRelayPins(relay, coil_pins)
    load = SimLoadSide(world.grid)
    relay.contact_listeners.append(lambda closed: load.contact(closed, timers.due_mono))
    if not relay.closed:
        load.contact(False)

    def run_timers(_now_s: float) -> None:
        timers.run_due()

    world.cycle_hooks.append(run_timers)
    if button_pin is not None:
        world.input_pins["button"] = button_pin

    def solar(value: Any) -> None:
        unit.solar_voltage_v = float(value)

    if unit.changeover is not None:
        world.extra_signals["solar_voltage_v"] = solar
    if solar_present_pin is not None:
        pin = world.pins.pin(solar_present_pin)

        def solar_present(value: Any) -> None:
            if value:
                pin.drive_high()
            else:
                pin.drive_low()

        world.extra_signals["solar_present"] = solar_present
    return load


class GridWaveformSource:
    """:class:`meterd.pq.source.WaveformSource` over the simulated grid, indexed by the meter clock:
    sample index = (mono − grid start) × 8000. A step of meter time longer than ``max_step_s``
    (s) is a gap: not analysed, counted in :attr:`gaps`."""

    def __init__(self, grid: Any, clock: Clock, max_step_s: float) -> None:
        self._grid = grid
        self._clock = clock
        self._max_samples = round(max_step_s * SAMPLE_RATE_HZ)
        self._next: int | None = None
        self.gaps = 0

    def _index_now(self) -> int:
        t0: float = self._grid.t0
        return max(round((self._clock.mono() - t0) * SAMPLE_RATE_HZ), 0)

    def read_block(self, max_samples: int = 0) -> WaveformBlock | None:
        """The samples from the last read up to now; None at the start or after a gap."""
        end = self._index_now()
        limit = max_samples or self._max_samples
        start = self._next
        self._next = end
        if start is None or end <= start:
            return None
        if end - start > limit:
            self.gaps += 1
            return None
        utc_end = self._clock.utc()
        utc_first = utc_end - _dt.timedelta(seconds=(end - start) / SAMPLE_RATE_HZ)
        return WaveformBlock(start, self._grid.waveform_block(start, end - start), float(SAMPLE_RATE_HZ), utc_first)

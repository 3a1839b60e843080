"""The metrology test LED in software: pulses placed in time by power, counted by the billed energy.

On the Pi the test LED follows the chip's CF1 output in hardware (``[led] source = "cf1"``) and
nothing here runs. Where CF1 is not wired (simulation, ``source = "software"``) this module
times the pulses so that a reference standard gated on the LED sees the meter's energy:

* :class:`PulsePlacer` (pure) is a phase-continuous pulse generator. Each metering cycle it gets
  the read instant (s, monotonic), the cycle's billed active energy (integer mWh: import plus
  export, total) and the chip's mean total active power (W). The LED's energy phase advances
  between two reads by ``|P| · Δt``, and every time it crosses a multiple of the pulse energy
  (``1e6 / imp_per_kwh`` mWh) a pulse is placed at the interpolated instant of the crossing.
  The billed energy stays the truth for the count: the phase may lead or lag the billed total by
  at most one register resolution (``resolution_mwh``, the chip's internal sub-count residue),
  and is pulled back inside that band when the power disagrees with the registers (a fault
  cycle, a meter-constant mismatch). So no pulse is invented or lost over any run: the pulses
  emitted never differ from ``billed × imp_per_kwh / 1e6`` by more than one. The power only
  places the pulses in time: with 0.1 Wh counts per-cycle deltas alone could not.
* Pulses are placed one ``lag_s`` (s, one metering cycle) after their crossing, so they fall in
  the next cycle, after the read that knows them. The width is ``pulse_s`` or half the period at
  the present rate, whichever is shorter (the chip's CF rule: 50 % duty when fast).
* An emitter drives the output at the absolute instants: :class:`ScheduledEmitter` through a
  ``call_at`` scheduler (simulated time), :class:`ThreadEmitter` from a dedicated deadline thread
  (real time, outside the event loop). Both record each rising edge's instant for the listeners
  of :attr:`PulseLed.rise_listeners` (benches and tests act as the reference standard).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hw.monotonic import monotonic_s
from hw.timed_output import DeadlineWorker

_MWH_PER_KWH = 1_000_000
_J_PER_MWH = 3.6

GAIN_BLOCK_COUNTS = 10_000
"""Register counts one estimate of the power-to-registers gain rests on."""

GAIN_LIMIT = 0.05
"""Largest correction of the power by that gain (fraction): beyond it the band alone acts."""

LED_RT_PRIORITY = 40
"""SCHED_FIFO priority (1-99) of the LED pulse thread, where the process may use it."""


class OutputDevice(Protocol):
    """What the LED needs of a ``gpiozero.DigitalOutputDevice``."""

    def on(self) -> None:
        """Drive the LED on."""
        ...

    def off(self) -> None:
        """Drive the LED off."""
        ...


@dataclass(frozen=True)
class Pulse:
    """One LED pulse: rising edge at ``rise_mono`` (s, monotonic), lit for ``width_s`` (s)."""

    rise_mono: float
    width_s: float


class PulsePlacer:
    """Phase-continuous pulse placement from power, locked to the billed energy (pure, no I/O).

    ``imp_per_kwh``: LED constant (imp/kWh); ``resolution_mwh``: energy of one register count
    (mWh, e.g. 1 at 10000 imp/kWh and 0.01 CF, 100 at 1000 imp/kWh and 0.1 CF); ``pulse_s``: the
    nominal lit time (s); ``lag_s``: delay (s) from a crossing to its pulse (one metering cycle).
    """

    def __init__(self, imp_per_kwh: int, resolution_mwh: float, pulse_s: float = 0.020, lag_s: float = 1.0) -> None:
        if imp_per_kwh <= 0 or resolution_mwh <= 0 or pulse_s <= 0 or lag_s < 0:
            raise ValueError("imp_per_kwh, resolution_mwh and pulse_s must be positive, lag_s >= 0")
        self.imp_per_kwh = imp_per_kwh
        self.pulse_mwh = _MWH_PER_KWH / imp_per_kwh
        self.resolution_mwh = float(resolution_mwh)
        self.pulse_s = pulse_s
        self.lag_s = lag_s
        self.billed_mwh = 0        # every energy fed (mWh)
        self.placed = 0            # pulses placed so far
        self._frac_mwh = 0.0       # phase inside the current pulse (mWh), 0 <= frac < pulse_mwh
        self._lead_mwh = 0.0       # placed energy minus billed energy (mWh), within ±resolution
        self._last_mono: float | None = None
        self._owed_mwh = 0         # energy of a read with no interval before it (mWh)
        self._block_billed = 0     # billed energy in the present gain block (mWh)
        self._block_power = 0.0    # power-integrated energy in the present gain block (mWh)
        self.gain = 1.0            # billed / power-integrated energy (see _gain)
        self._free_mono = -math.inf  # earliest next rising edge: the previous pulse has ended
        self.corrections = 0       # cycles whose power disagreed with the registers beyond the band

    @property
    def lead_mwh(self) -> float:
        """Energy placed on the LED minus energy billed (mWh); |lead| <= resolution_mwh."""
        return self._lead_mwh

    def place(self, now_mono: float, energy_mwh: int, power_w: float) -> list[Pulse]:
        """Account one read at ``now_mono`` (s) with the energy billed since the previous read
        (mWh) and the mean total active power (W); return the pulses to emit, in time order."""
        if not isinstance(energy_mwh, int) or energy_mwh < 0:
            raise ValueError(f"energy_mwh must be a non-negative integer, got {energy_mwh!r}")
        self.billed_mwh += energy_mwh
        last, self._last_mono = self._last_mono, now_mono
        if last is None or now_mono <= last:
            # no interval to spread this energy over (the first read): it is owed to the LED and
            # spread over the next interval, which brings the phase level with the registers
            self._owed_mwh += energy_mwh
            return []
        dt_s = now_mono - last
        advance = self._gain(abs(power_w) * dt_s / _J_PER_MWH, energy_mwh)
        lead = self._lead_mwh + advance - energy_mwh
        band = self.resolution_mwh
        if self._owed_mwh:
            advance += self._owed_mwh
            self._owed_mwh = 0
        if not -band <= lead <= band:
            self.corrections += 1
            clamped = min(max(lead, -band), band)
            advance += clamped - lead   # never negative: see the class notes
            lead = clamped
        self._lead_mwh = lead
        return self._crossings(last, dt_s, max(advance, 0.0))

    def _gain(self, power_mwh: float, energy_mwh: int) -> float:
        """``power_mwh`` scaled by the registers' view of the power: the ratio of billed to
        power-integrated energy over the last block of :data:`GAIN_BLOCK_COUNTS` register counts
        (the register quantisation moves that by at most 1e-4; smaller changes are ignored),
        bounded to ±:data:`GAIN_LIMIT`.
        It takes up a steady disagreement between the mean power and the energy registers, so
        the band rarely has to act; it changes only once a block."""
        self._block_billed += energy_mwh
        self._block_power += power_mwh
        if self._block_billed >= GAIN_BLOCK_COUNTS * self.resolution_mwh:
            if self._block_power > 0:
                ratio = self._block_billed / self._block_power
                if abs(ratio - self.gain) > 2 / GAIN_BLOCK_COUNTS:   # more than the quantisation
                    self.gain = min(max(ratio, 1 - GAIN_LIMIT), 1 + GAIN_LIMIT)
            self._block_billed, self._block_power = 0, 0.0
        return power_mwh * self.gain

    def _crossings(self, start_mono: float, dt_s: float, advance_mwh: float) -> list[Pulse]:
        """Pulses for the thresholds crossed while the phase advances ``advance_mwh`` evenly
        over ``[start_mono, start_mono + dt_s]``."""
        pulses: list[Pulse] = []
        w = self.pulse_mwh
        end = self._frac_mwh + advance_mwh
        n = int(end // w)
        if n and advance_mwh > 0:
            width_s = min(self.pulse_s, dt_s * w / advance_mwh / 2)
            for k in range(1, n + 1):
                at = start_mono + dt_s * (k * w - self._frac_mwh) / advance_mwh + self.lag_s
                rise = max(at, self._free_mono)
                pulses.append(Pulse(rise, width_s))
                self._free_mono = rise + 2 * width_s
        self._frac_mwh = end - n * w
        self.placed += n
        return pulses


class PulseEmitter(Protocol):
    """Drives the LED at absolute instants; calls ``on_rise(instant_s)`` at each rising edge."""

    def emit(self, pulse: Pulse, on_rise: Callable[[float], None]) -> None: ...

    def close(self) -> None: ...


class CallAt(Protocol):
    """Runs a callback at an absolute time (s); ``hw.relay.ManualScheduler`` fits."""

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class ScheduledEmitter:
    """Edges through a ``call_at`` scheduler on the meter's (simulated) clock; a pulse whose
    instant has already passed (a late read) is lit at ``mono()``, and dated so."""

    def __init__(self, device: OutputDevice, scheduler: CallAt, mono: Callable[[], float]) -> None:
        self.device = device
        self._scheduler = scheduler
        self._mono = mono

    def emit(self, pulse: Pulse, on_rise: Callable[[float], None]) -> None:
        """Schedule the pulse's two edges."""
        rise = max(pulse.rise_mono, self._mono())

        def light() -> None:
            self.device.on()
            on_rise(rise)

        self._scheduler.call_at(rise, light)
        self._scheduler.call_at(rise + pulse.width_s, self.device.off)

    def close(self) -> None:
        """Leave the LED dark."""
        self.device.off()


class ThreadEmitter:
    """Edges from a dedicated deadline thread at absolute monotonic instants (real time, off the
    event loop); each rising edge is dated by ``mono()`` read right after the output switched."""

    def __init__(self, device: OutputDevice, worker: DeadlineWorker | None = None,
                 mono: Callable[[], float] | None = None) -> None:
        self.device = device
        self._mono = mono or monotonic_s
        self._worker = worker or DeadlineWorker("pulse-led", self._mono, realtime_priority=LED_RT_PRIORITY)

    def emit(self, pulse: Pulse, on_rise: Callable[[float], None]) -> None:
        """Queue the pulse's two edges on the worker thread."""

        def light() -> None:
            self.device.on()
            on_rise(self._mono())

        self._worker.at(pulse.rise_mono, light)
        self._worker.at(pulse.rise_mono + pulse.width_s, self.device.off)

    def close(self) -> None:
        """Stop the thread and leave the LED dark."""
        self._worker.close()
        self.device.off()


class PulseLed:
    """The software test LED: a :class:`PulsePlacer` feeding an emitter, with counters."""

    def __init__(self, placer: PulsePlacer, emitter: PulseEmitter) -> None:
        self.placer = placer
        self.emitter = emitter
        self.pulses_emitted = 0
        self.last_rise_mono: float | None = None
        self.rise_listeners: list[Callable[[float], None]] = []

    @property
    def imp_per_kwh(self) -> int:
        """The LED constant (imp/kWh)."""
        return self.placer.imp_per_kwh

    def feed(self, now_mono: float, energy_mwh: int, power_w: float) -> int:
        """One metering cycle: read instant (s), billed active energy (mWh), mean total active
        power (W); returns how many pulses were queued."""
        pulses = self.placer.place(now_mono, energy_mwh, power_w)
        for pulse in pulses:
            self.emitter.emit(pulse, self._rose)
        return len(pulses)

    def _rose(self, at_mono: float) -> None:
        self.pulses_emitted += 1
        self.last_rise_mono = at_mono
        for listener in self.rise_listeners:
            listener(at_mono)

    def close(self) -> None:
        """Stop the emitter (pulses not yet lit are dropped) and leave the LED dark."""
        self.emitter.close()

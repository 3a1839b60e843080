"""Driver for the 3-pole latching disconnect relay (set/reset coils, auxiliary-contact feedback).

The relay is bistable: a pulse on the *set* coil closes the three poles, a pulse on the *reset*
coil opens them, and the contacts stay where they are without coil current. Both coils are
gpiozero ``DigitalOutputDevice`` objects, the auxiliary contact is a gpiozero
``DigitalInputDevice`` (high = main contacts closed). The operation timing (minimum interval,
settle, feedback check) runs through an injected monotonic clock (``mono() -> s``) and scheduler
(``call_later(delay_s, callback)``, which an asyncio loop already provides), so nothing here
sleeps and tests drive time by hand.

The coil pulse itself is ended by a :class:`CoilPulser`, so its width does not depend on the
event loop: on a Pi with the lgpio pin factory :class:`LgpioPulser` hands the whole pulse to
lgpio's own timed output (``tx_pulse``, timed in lgpio's C thread); on any other pin factory
:class:`ThreadPulser` ends it from a dedicated thread at an absolute monotonic deadline
(:mod:`hw.timed_output`); on simulated time :class:`ScheduledPulser` ends it through the
scheduler, which there runs on the simulated clock. :func:`coil_pulser` picks one. The relay's
own state (busy, counters, commanded position) lives on the caller's loop only; a pulser thread
touches nothing but the coil output it switches off.

Rules enforced here, independent of the caller:

* interlock: the two coils are never energised at the same time, and only one pulse runs at once;
* fixed pulse width (default 50 ms, PMM1221 switching time <= 20 ms);
* a minimum interval between the starts of two operations (coil heating, contact wear);
* after each pulse the auxiliary contact is compared with the commanded position and the result
  (match or mismatch) goes back to the caller, who owns the retry policy.

:class:`SimRelay` is the simulated relay for ``backend = "sim"``: it sits on the gpiozero
``MockFactory`` pins, lets the contact follow the coils after a switching time, counts
operations and has fault modes (welded contact, missing feedback). This module imports nothing
from ``meterd``.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from hw.errors import HwError
from hw.timed_output import DeadlineWorker


class RelayError(HwError):
    """Base of every relay driver error."""


class RelayBusyError(RelayError):
    """An operation was requested while a coil pulse is still running."""


class RelayTooSoonError(RelayError):
    """An operation was requested before the minimum interval since the previous one elapsed."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"relay operated too recently; ready in {wait_s:.3f} s")
        self.wait_s = wait_s


class RelayInterlockError(RelayError):
    """Both coils would have been energised at the same time; both were switched off."""


class MonoClock(Protocol):
    """Monotonic time source (s)."""

    def mono(self) -> float: ...


class Cancellable(Protocol):
    """What a scheduled call returns (asyncio ``TimerHandle`` fits)."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Runs a callback after a delay (s); ``asyncio.AbstractEventLoop`` fits."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Cancellable: ...


class CoilPulser(Protocol):
    """Energises a coil now and de-energises it ``width_s`` (s) later by itself, whatever the
    caller's event loop does meanwhile."""

    def pulse(self, coil: DigitalOutputDevice, width_s: float) -> None: ...

    def close(self) -> None: ...


class ScheduledPulser:
    """The pulse ended through ``scheduler`` (simulated time: the scheduler runs on the simulated
    clock, so nothing can delay it)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def pulse(self, coil: DigitalOutputDevice, width_s: float) -> None:
        """Coil on now, off after ``width_s`` (s) on the scheduler."""
        coil.on()
        self._scheduler.call_later(width_s, coil.off)

    def close(self) -> None:
        """Nothing to release (the scheduler belongs to the caller)."""


COIL_RT_PRIORITY = 50
"""SCHED_FIFO priority (1-99) of the coil pulse thread, where the process may use it."""


class ThreadPulser:
    """The pulse ended by a dedicated thread at the absolute deadline ``t_on + width_s`` (s,
    ``time.monotonic``), for pin factories without a timed output (mock pins, native)."""

    def __init__(self, worker: DeadlineWorker | None = None, mono: Callable[[], float] = time.monotonic) -> None:
        self._mono = mono
        self._worker = worker or DeadlineWorker("relay-coil", mono, realtime_priority=COIL_RT_PRIORITY)
        self._lock = threading.Lock()

    def pulse(self, coil: DigitalOutputDevice, width_s: float) -> None:
        """Coil on now; the worker thread switches it off at the deadline."""
        with self._lock:
            coil.on()
            deadline = self._mono() + width_s
        self._worker.at(deadline, lambda: self._off(coil))

    def _off(self, coil: DigitalOutputDevice) -> None:
        with self._lock:
            coil.off()

    def close(self) -> None:
        """Stop the worker thread (the relay switches its coils off itself)."""
        self._worker.close()


class LgpioPulser:
    """The whole pulse timed by lgpio (``tx_pulse(handle, gpio, on_us, off_us, offset, cycles=1)``,
    run by lgpio's own thread in C): neither the event loop nor the GIL can stretch it. ``lgpio``
    is the module (injected by tests); the coil must sit on gpiozero's lgpio pin factory, whose
    chip handle the pulse is sent on."""

    OFF_US = 1000
    """Low time (µs) after the pulse that ends the one-cycle train."""

    def __init__(self, lgpio: Any = None) -> None:
        self._lg = lgpio if lgpio is not None else importlib.import_module("lgpio")
        self._busy: set[tuple[int, int]] = set()

    @staticmethod
    def _line(coil: DigitalOutputDevice) -> tuple[int, int]:
        pin = coil.pin
        handle = getattr(pin.factory, "_handle", None)  # gpiozero's LGPIOFactory chip handle
        if handle is None:
            raise RelayError(f"coil {pin!r} is not on an open lgpio pin factory")
        return int(handle), int(pin.number)

    def pulse(self, coil: DigitalOutputDevice, width_s: float) -> None:
        """Send one hardware-timed pulse of ``width_s`` (s) on the coil line."""
        handle, gpio = self._line(coil)
        result = self._lg.tx_pulse(handle, gpio, round(width_s * 1e6), self.OFF_US, 0, 1)
        if isinstance(result, int) and result < 0:
            raise RelayError(f"lgpio tx_pulse on GPIO{gpio} failed ({result})")
        self._busy.add((handle, gpio))

    def close(self) -> None:
        """Cancel any pulse still running (a zero pulse stops lgpio's output on the line)."""
        for handle, gpio in self._busy:
            with contextlib.suppress(Exception):  # the chip may already be closed at shutdown
                self._lg.tx_pulse(handle, gpio, 0, 0, 0, 0)
        self._busy.clear()


def coil_pulser(pin_factory: Any, lgpio: Any = None) -> CoilPulser:
    """The real-time pulser for ``pin_factory``: lgpio's timed output on gpiozero's lgpio
    factory, else a dedicated deadline thread."""
    if type(pin_factory).__name__ == "LGPIOFactory":
        return LgpioPulser(lgpio)
    return ThreadPulser()


@dataclass(frozen=True)
class RelayTiming:
    """Coil timing: pulse_width_s (s, datasheet typ. 30-100 ms), min_interval_s (s, between
    operation starts), settle_s (s, wait after the pulse before reading the auxiliary contact)."""

    pulse_width_s: float = 0.050
    min_interval_s: float = 1.0
    settle_s: float = 0.020

    def __post_init__(self) -> None:
        if not 0.010 <= self.pulse_width_s <= 0.500:
            raise ValueError(f"pulse_width_s must be 0.010..0.500 s, got {self.pulse_width_s}")
        if self.min_interval_s < self.pulse_width_s + self.settle_s:
            raise ValueError("min_interval_s must cover pulse_width_s + settle_s")
        if self.settle_s < 0:
            raise ValueError("settle_s must be >= 0")


@dataclass(frozen=True)
class OperationResult:
    """Outcome of one coil pulse.

    commanded_closed: the position asked for; sensed_closed: the auxiliary contact after the
    pulse (None without feedback); ok: sensed matches commanded (True when there is no feedback,
    which cannot be verified); operation: this driver's pulse counter after the pulse;
    started_mono / finished_mono: coil on / feedback read (s, monotonic).
    """

    commanded_closed: bool
    sensed_closed: bool | None
    ok: bool
    operation: int
    started_mono: float
    finished_mono: float


class LatchingRelay:
    """A 3-pole latching relay behind two coil outputs and an optional auxiliary-contact input."""

    def __init__(self, set_coil: DigitalOutputDevice, reset_coil: DigitalOutputDevice,
                 feedback: DigitalInputDevice | None, clock: MonoClock, scheduler: Scheduler,
                 timing: RelayTiming | None = None, pulser: CoilPulser | None = None) -> None:
        self._set = set_coil
        self._reset = reset_coil
        self._feedback = feedback
        self._clock = clock
        self._scheduler = scheduler
        self._pulser: CoilPulser = pulser or ScheduledPulser(scheduler)
        self.timing = timing or RelayTiming()
        self._set.off()
        self._reset.off()
        self._busy = False
        self._last_start_mono: float | None = None
        self._pulses = 0
        self._commanded: bool | None = None

    @classmethod
    def from_pins(cls, set_pin: int | str, reset_pin: int | str, feedback_pin: int | str | None,
                  clock: MonoClock, scheduler: Scheduler, timing: RelayTiming | None = None,
                  pin_factory: Any = None, feedback_pull_up: bool | None = None,
                  pulser: CoilPulser | None = None) -> LatchingRelay:
        """Build the relay from BCM pin numbers; ``pin_factory`` None uses gpiozero's default;
        ``pulser`` None ends the coil pulse through ``scheduler`` (see :func:`coil_pulser`).

        ``feedback_pull_up`` None means an external resistor sets the idle level of the auxiliary
        input (high = contacts closed); True/False enable the internal pull-up/pull-down.
        """
        set_coil = DigitalOutputDevice(set_pin, initial_value=False, pin_factory=pin_factory)
        reset_coil = DigitalOutputDevice(reset_pin, initial_value=False, pin_factory=pin_factory)
        feedback = None
        if feedback_pin is not None:
            active_state = True if feedback_pull_up is None else None
            feedback = DigitalInputDevice(feedback_pin, pull_up=feedback_pull_up,
                                          active_state=active_state, pin_factory=pin_factory)
        return cls(set_coil, reset_coil, feedback, clock, scheduler, timing, pulser)

    @property
    def busy(self) -> bool:
        """True while a coil pulse or its feedback check is running."""
        return self._busy

    @property
    def pulses(self) -> int:
        """Coil pulses issued by this driver instance since it was built."""
        return self._pulses

    @property
    def commanded_closed(self) -> bool | None:
        """The last commanded position (None before the first operation)."""
        return self._commanded

    @property
    def has_feedback(self) -> bool:
        """True when an auxiliary contact is wired."""
        return self._feedback is not None

    def sensed_closed(self) -> bool | None:
        """The auxiliary contact: True = main contacts closed; None when not wired."""
        if self._feedback is None:
            return None
        return bool(self._feedback.value)

    def ready_in_s(self) -> float:
        """Seconds (s) until a new operation is accepted (0 when ready now)."""
        if self._busy:
            return self.timing.pulse_width_s + self.timing.settle_s
        if self._last_start_mono is None:
            return 0.0
        elapsed_s = self._clock.mono() - self._last_start_mono
        return max(0.0, self.timing.min_interval_s - elapsed_s)

    def operate(self, close: bool, on_done: Callable[[OperationResult], None] | None = None) -> None:
        """Pulse the set (close=True) or reset (close=False) coil; report via ``on_done``.

        Raises RelayBusyError during a pulse and RelayTooSoonError inside the minimum interval.
        """
        if self._busy:
            raise RelayBusyError("a relay operation is already running")
        wait_s = self.ready_in_s()
        if wait_s > 0:
            raise RelayTooSoonError(wait_s)
        coil, other = (self._set, self._reset) if close else (self._reset, self._set)
        self._energise(coil, other)
        started = self._clock.mono()
        self._busy = True
        self._last_start_mono = started
        self._commanded = close
        self._pulses += 1
        self._scheduler.call_later(self.timing.pulse_width_s + self.timing.settle_s,
                                   self._check, close, started, on_done)

    def _energise(self, coil: DigitalOutputDevice, other: DigitalOutputDevice) -> None:
        """Interlock, then the timed pulse (the pulser ends it by itself)."""
        if other.value:
            self._set.off()
            self._reset.off()
            raise RelayInterlockError("refusing to energise both relay coils")
        self._pulser.pulse(coil, self.timing.pulse_width_s)

    def _check(self, close: bool, started: float,
               on_done: Callable[[OperationResult], None] | None) -> None:
        """After pulse + settle (on the caller's loop; not time-critical): read the feedback. A
        coil still energised here (a pulser that failed to end it) is switched off, so no pulse
        outlasts pulse width + settle by more than this callback's own lateness."""
        for coil in (self._set, self._reset):
            if coil.value:
                coil.off()
        sensed = self.sensed_closed()
        result = OperationResult(commanded_closed=close, sensed_closed=sensed,
                                 ok=sensed is None or sensed == close, operation=self._pulses,
                                 started_mono=started, finished_mono=self._clock.mono())
        self._busy = False
        if on_done is not None:
            on_done(result)

    def close(self) -> None:
        """Stop the pulser, de-energise both coils and release the pins."""
        self._pulser.close()
        self._set.off()
        self._reset.off()
        for device in (self._set, self._reset, self._feedback):
            if device is not None:
                device.close()

    def __enter__(self) -> LatchingRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- simulation


class ManualScheduler:
    """A scheduler for simulation and tests: callbacks run when :meth:`advance` passes their time.

    It reads time from ``clock`` (anything with ``mono()`` and ``advance(dt_s)``, e.g. the core
    ``SimClock``), and moves that clock callback by callback so each runs at its due time.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._queue: list[tuple[float, int, _Timer]] = []  # a heap in due order (time, then seq)
        self._seq = 0
        self.due_mono: float | None = None

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _Timer:
        """Schedule ``callback(*args)`` ``delay`` seconds (s) from now."""
        return self.call_at(self._clock.mono() + max(0.0, delay), callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _Timer:
        """Schedule ``callback(*args)`` at the absolute time ``when`` (s, on the clock)."""
        self._seq += 1
        timer = _Timer(when, self._seq, callback, args)
        heapq.heappush(self._queue, (when, self._seq, timer))
        return timer

    def pending(self) -> int:
        """Number of callbacks not yet run or cancelled."""
        return sum(1 for _, _, t in self._queue if not t.cancelled)

    def run_due(self) -> int:
        """Run, in due order, every callback due at or before the clock's present time without
        moving the clock (for an owner that advances the clock itself); returns how many ran.
        Callbacks scheduled meanwhile run too when they are already due. While a callback runs,
        :attr:`due_mono` holds the time (s) it was due, so it can date what it does."""
        ran = 0
        now = self._clock.mono()
        while self._queue and self._queue[0][0] <= now:
            timer = heapq.heappop(self._queue)[2]
            if not timer.cancelled:
                self.due_mono = timer.due_mono
                try:
                    timer.callback(*timer.args)
                finally:
                    self.due_mono = None
                ran += 1
        return ran

    def advance(self, dt_s: float) -> None:
        """Move time forward by ``dt_s`` (s), running every callback that falls due on the way."""
        end = self._clock.mono() + dt_s
        while self._queue and self._queue[0][0] <= end:
            timer = heapq.heappop(self._queue)[2]
            step = timer.due_mono - self._clock.mono()
            if step > 0:
                self._clock.advance(step)
            if not timer.cancelled:
                timer.callback(*timer.args)
        rest = end - self._clock.mono()
        if rest > 0:
            self._clock.advance(rest)


@dataclass
class _Timer:
    due_mono: float
    seq: int
    callback: Callable[..., Any]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class _CoilPin(MockPin):  # type: ignore[misc]
    """A mock output pin that tells a listener about each state change."""

    listener: Callable[[bool], None] | None = None

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed and self.listener is not None:
            self.listener(bool(value))
        return changed


class RelayFault(enum.Enum):
    """Fault modes of the simulated relay."""

    NONE = "none"
    WELDED = "welded"            # contacts stay closed whatever the coils do
    NO_FEEDBACK = "no_feedback"  # auxiliary contact frozen at its present level


class SimRelay:
    """Simulated latching relay on MockFactory pins.

    Build it *before* the driver: it claims the coil pins with a listening pin class, so the
    driver's ``DigitalOutputDevice`` objects get the same pins. The contact moves
    ``switching_time_s`` (s, <= 20 ms per datasheet) after a coil is energised, if that coil is
    still on; it then drives the auxiliary input. ``overlaps`` counts any instant both coils were
    on (must stay 0). ``contact_listeners`` are called with the new position (True = closed)
    each time the main contacts move (the simulated world cuts its load current with them).
    """

    def __init__(self, factory: MockFactory, set_pin: int, reset_pin: int, feedback_pin: int | None,
                 clock: MonoClock, scheduler: Scheduler, switching_time_s: float = 0.010,
                 initial_closed: bool = False) -> None:
        if not 0 < switching_time_s <= 0.020:
            raise ValueError("switching_time_s must be in (0, 0.020] s")
        self._clock = clock
        self._scheduler = scheduler
        self.switching_time_s = switching_time_s
        self.closed = initial_closed
        self.operations = 0
        self.overlaps = 0
        self.fault = RelayFault.NONE
        self.coil_edges: list[tuple[float, str, bool]] = []
        self.contact_listeners: list[Callable[[bool], None]] = []
        self._energised = {"set": False, "reset": False}
        self._epoch = {"set": 0, "reset": 0}
        self._feedback = None if feedback_pin is None else factory.pin(feedback_pin)
        for name, pin_no in (("set", set_pin), ("reset", reset_pin)):
            pin = factory.pin(pin_no, pin_class=_CoilPin)
            pin.listener = self._listener(name)
        self.sync_feedback()

    def _listener(self, name: str) -> Callable[[bool], None]:
        return lambda on: self._coil_changed(name, on)

    def _coil_changed(self, name: str, on: bool) -> None:
        self.coil_edges.append((self._clock.mono(), name, on))
        self._energised[name] = on
        if self._energised["set"] and self._energised["reset"]:
            self.overlaps += 1
        if on:
            self._epoch[name] += 1
            self._scheduler.call_later(self.switching_time_s, self._move, name, self._epoch[name])

    def _move(self, name: str, epoch: int) -> None:
        if not self._energised[name] or self._epoch[name] != epoch:
            return
        target = name == "set"
        if self.fault is RelayFault.WELDED and self.closed:
            return
        moved = target != self.closed
        if moved:
            self.closed = target
            self.operations += 1
        self.sync_feedback()
        if moved:
            for listener in self.contact_listeners:
                listener(target)

    def sync_feedback(self) -> None:
        """Drive the auxiliary input to the contact position (unless feedback is faulty)."""
        if self._feedback is None or self.fault is RelayFault.NO_FEEDBACK:
            return
        if self.closed:
            self._feedback.drive_high()
        else:
            self._feedback.drive_low()


def build_sim_relay(clock: Any, scheduler: Scheduler, factory: MockFactory | None = None,
                    set_pin: int = 23, reset_pin: int = 24, feedback_pin: int | None = 25,
                    timing: RelayTiming | None = None, switching_time_s: float = 0.010,
                    initial_closed: bool = False) -> tuple[LatchingRelay, SimRelay]:
    """Wire a simulated relay and the real driver on the same mock pins (``backend = "sim"``)."""
    factory = factory or MockFactory()
    sim = SimRelay(factory, set_pin, reset_pin, feedback_pin, clock, scheduler,
                   switching_time_s=switching_time_s, initial_closed=initial_closed)
    relay = LatchingRelay.from_pins(set_pin, reset_pin, feedback_pin, clock, scheduler, timing,
                                    pin_factory=factory)
    return relay, sim

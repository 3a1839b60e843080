"""Meter digital inputs: terminal-cover switch, magnetic-field sensor, power-fail signal.

Each input is a gpiozero ``DigitalInputDevice`` on an explicit pin factory (``lgpio`` on the Pi, ``MockFactory``
in simulation and tests). Debounce is done here, in software, with an injected monotonic clock
(``mono() -> s``): mock pins ignore ``bounce_time`` and real factories differ, so gpiozero's own
debounce is not used. A raw level must stay unchanged for ``debounce_s`` before the debounced
state follows; with ``debounce_s = 0`` (the power-fail signal) it follows at the edge itself.

Edges arrive on gpiozero's callback thread; :meth:`DebouncedInput.poll` (called by the owner each
cycle) confirms levels that have been stable long enough. Listeners run on whichever thread
confirmed the change: the owner must hand them to its own loop (``call_soon_threadsafe``) — or
the input is built with ``hand_over=True``: then a level that lasted ``debounce_s`` is also
confirmed at the next edge (a press shorter than a metering cycle is not lost), confirmed changes
are queued, and the listeners get them, with the time of their edge, only in :meth:`poll`, on
the owner's thread. :class:`PushButton` is such an input for a push button or a logic-level
detector (the relay button, the display's scroll button, the solar voltage-detect module).

Wiring (default, BCM numbers): terminal-cover switch NC to GND with pull-up on GPIO5 (cover
closed → pin low → pressed; *open* is the active state), Hall magnet sensor open-drain active low
on GPIO13, power-fail output of the supply supervisor active low on GPIO6. This module imports
nothing from ``meterd``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import DigitalInputDevice

from hw.errors import HwError

Mono = Callable[[], float]
Listener = Callable[[str, bool, float], None]

COVER_OPEN = "cover_open"
MAGNETIC_FIELD = "magnetic_field"
POWER_FAIL = "power_fail"


class InputError(HwError):
    """Base of the input driver errors (bad configuration)."""


@dataclass(frozen=True)
class InputConfig:
    """One input: BCM pin, pull-up, whether "pressed" (pin at the active level) means active,
    software debounce time (s)."""

    pin: int
    pull_up: bool = True
    active_when_pressed: bool = True
    debounce_s: float = 0.05

    def __post_init__(self) -> None:
        if self.debounce_s < 0:
            raise InputError(f"pin {self.pin}: debounce_s must be >= 0")


DEFAULT_CONFIG: dict[str, InputConfig] = {
    COVER_OPEN: InputConfig(5, pull_up=True, active_when_pressed=False, debounce_s=0.1),
    MAGNETIC_FIELD: InputConfig(13, pull_up=True, active_when_pressed=True, debounce_s=0.2),
    POWER_FAIL: InputConfig(6, pull_up=True, active_when_pressed=True, debounce_s=0.0),
}


class DebouncedInput:
    """One input with software debounce against an injected monotonic clock."""

    def __init__(self, name: str, config: InputConfig, pin_factory: Any, mono: Mono, *,
                 hand_over: bool = False) -> None:
        self.name = name
        self.config = config
        self._mono = mono
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._hand_over = hand_over
        self._queue: deque[tuple[bool, float]] = deque()  # (state, edge time), hand_over only
        # a plain input device: no hold thread to start and join (a Button would add one)
        self._button = DigitalInputDevice(config.pin, pull_up=config.pull_up, pin_factory=pin_factory)
        self._raw = self._read_raw()
        self._raw_since_s = mono()
        self._stable = self._raw
        self.stable_since_s = self._raw_since_s
        self.edges = 0
        self._button.when_activated = self._on_edge
        self._button.when_deactivated = self._on_edge

    def _read_raw(self) -> bool:
        return bool(self._button.is_active) == self.config.active_when_pressed

    @property
    def active(self) -> bool:
        """The debounced state (True = cover open / magnet sensed / power failing)."""
        return self._stable

    @property
    def since_s(self) -> float:
        """Monotonic time (s) of the raw edge that led to the present debounced state."""
        return self.stable_since_s

    @property
    def raw(self) -> bool:
        """The last raw level seen, as active/inactive."""
        return self._raw

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(name, active, mono_s)`` on each debounced change."""
        self._listeners.append(listener)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The listeners registered so far."""
        return tuple(self._listeners)

    def _on_edge(self, *_: object) -> None:
        now_s = self._mono()
        if self._hand_over:
            self._queue_edge(now_s)
            return
        with self._lock:
            level = self._read_raw()
            if level == self._raw:
                return
            self.edges += 1
            self._raw = level
            self._raw_since_s = now_s
            changed = self._confirm(now_s)
        self._notify(changed, now_s)

    def _confirm(self, now_s: float) -> bool:
        if self._raw == self._stable or now_s - self._raw_since_s < self.config.debounce_s:
            return False
        self._stable = self._raw
        self.stable_since_s = self._raw_since_s
        return True

    def _queue_edge(self, now_s: float) -> None:
        """hand_over: confirm the level the edge ends when it lasted long enough, then follow."""
        with self._lock:
            level = self._read_raw()
            if level == self._raw:
                return
            self.edges += 1
            if self._confirm(now_s):
                self._queue.append((self._stable, self.stable_since_s))
            self._raw = level
            self._raw_since_s = now_s

    def _notify(self, changed: bool, now_s: float) -> None:
        if changed:
            for listener in self._listeners:
                listener(self.name, self._stable, now_s)

    def poll(self) -> bool:
        """Confirm a level that has been stable for ``debounce_s``; returns True if the state
        changed. With ``hand_over`` the queued changes go to the listeners here, each with the
        time (s) of its edge."""
        now_s = self._mono()
        if self._hand_over:
            with self._lock:
                if self._confirm(now_s):
                    self._queue.append((self._stable, self.stable_since_s))
                changes = list(self._queue)
                self._queue.clear()
            for active, since_s in changes:
                for listener in self._listeners:
                    listener(self.name, active, since_s)
            return bool(changes)
        with self._lock:
            changed = self._confirm(now_s)
        self._notify(changed, now_s)
        return changed

    def resync(self) -> None:
        """Take the present pin level as the debounced state without telling the listeners
        (start-up: the level found at boot is a state, not an edge)."""
        with self._lock:
            self._raw = self._read_raw()
            self._raw_since_s = self._mono()
            self._stable = self._raw
            self.stable_since_s = self._raw_since_s

    def close(self) -> None:
        """Release the pin."""
        self._button.close()


class PushButton(DebouncedInput):
    """A push button on a GPIO input (active low, internal pull-up), or with ``pull_up=False``
    an active-high input with the internal pull-down (a voltage-detect module), debounced against
    the meter's monotonic clock with ``hand_over``: ``listener(pressed, edge_mono_s)`` gets each
    confirmed change in :meth:`poll`, on the owner's loop."""

    def __init__(self, pin: int, pin_factory: Any, mono: Mono, debounce_s: float, pull_up: bool = True,
                 name: str = "button") -> None:
        super().__init__(name, InputConfig(pin, pull_up=pull_up, active_when_pressed=True, debounce_s=debounce_s),
                         pin_factory, mono, hand_over=True)
        self.listener: Callable[[bool, float], None] | None = None
        self.add_listener(self._to_listener)

    def _to_listener(self, _name: str, pressed: bool, since_s: float) -> None:
        if self.listener is not None:
            self.listener(pressed, since_s)

    @property
    def pressed(self) -> bool:
        """The debounced state (True = pressed, or the detected level present)."""
        return self.active

    @property
    def debounce_s(self) -> float:
        """The debounce time (s)."""
        return self.config.debounce_s


class MeterInputs:
    """The meter's three inputs, polled together once per cycle."""

    def __init__(self, pin_factory: Any, mono: Mono, config: dict[str, InputConfig] | None = None) -> None:
        wanted = dict(DEFAULT_CONFIG)
        wanted.update(config or {})
        unknown = set(wanted) - set(DEFAULT_CONFIG)
        if unknown:
            raise InputError(f"unknown inputs: {sorted(unknown)}")
        self.inputs = {name: DebouncedInput(name, cfg, pin_factory, mono) for name, cfg in wanted.items()}

    def replace(self, name: str, config: InputConfig, pin_factory: Any, mono: Mono) -> DebouncedInput:
        """Rebuild input ``name`` on ``config`` (another pin, debounce or polarity); the old pin is
        released first. Listeners of the old input are carried over."""
        if name not in DEFAULT_CONFIG:
            raise InputError(f"unknown input {name!r}")
        old = self.inputs.get(name)
        listeners = old.listeners if old is not None else ()
        if old is not None:
            old.close()
        item = DebouncedInput(name, config, pin_factory, mono)
        for listener in listeners:
            item.add_listener(listener)
        self.inputs[name] = item
        return item

    def poll(self) -> dict[str, bool]:
        """Confirm stable levels and return the debounced states by name."""
        for item in self.inputs.values():
            item.poll()
        return self.states()

    def states(self) -> dict[str, bool]:
        """Debounced states: ``cover_open``, ``magnetic_field``, ``power_fail``."""
        return {name: item.active for name, item in self.inputs.items()}

    def add_listener(self, listener: Listener, names: tuple[str, ...] | None = None) -> None:
        """Listen to debounced changes of the named inputs (all by default)."""
        for name in names or tuple(self.inputs):
            self.inputs[name].add_listener(listener)

    def close(self) -> None:
        """Release every pin."""
        for item in self.inputs.values():
            item.close()

    def __enter__(self) -> MeterInputs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

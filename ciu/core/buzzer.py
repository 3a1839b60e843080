"""CIU buzzer: beep patterns for the low-credit alarm and token results, timed on the injected clock.

The buzzer is an output level (``set_level(True)`` sounds it): a gpiozero ``Buzzer`` or
``DigitalOutputDevice`` on the CIU's Pi, a mock pin in simulation. :meth:`Buzzer.observe` takes
each new :class:`~ciu.core.state.View` and starts a pattern on an edge: the low-credit alarm
when it appears (and again every ``low_credit_repeat_s`` while it lasts), a short beep for an
accepted token, two long ones for a rejected token. :meth:`Buzzer.tick` switches the level when
an edge falls due, so the timing follows the loop's monotonic clock (20 ms steps in the CIU) and
tests run on a simulated clock. While the view says ``muted`` (short code 81) nothing sounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ciu.core.state import Screen, View
from meterd.proto.ciu_link import MonoClock


@dataclass(frozen=True)
class Pattern:
    """``count`` beeps of ``on_s`` (s) separated by ``off_s`` (s) of silence."""

    on_s: float
    off_s: float
    count: int


LOW_CREDIT = Pattern(0.2, 0.2, 3)
ACCEPTED = Pattern(0.1, 0.0, 1)
REJECTED = Pattern(0.4, 0.15, 2)


class Buzzer:
    """Plays patterns on an output level; the newest pattern replaces one still playing."""

    def __init__(self, set_level: Callable[[bool], None], clock: MonoClock,
                 low_credit_repeat_s: float = 600.0) -> None:
        self._set_level = set_level
        self._clock = clock
        self._repeat_s = low_credit_repeat_s
        self._edges: deque[tuple[float, bool]] = deque()
        self._level = False
        self._next_alarm_mono: float | None = None
        self._last: View | None = None
        self.patterns_played = 0

    def observe(self, view: View) -> None:
        """Start the pattern a change of ``view`` calls for (alarm, token result), or stop on mute."""
        last, self._last = self._last, view
        now = self._clock.mono()
        if view.muted:
            self._edges.clear()
            self._next_alarm_mono = None if not view.alarm else now + self._repeat_s
            self._apply(False)
            return
        if view.screen is Screen.RESULT and (last is None or last.screen is not Screen.RESULT
                                             or last.result != view.result):
            self.play(ACCEPTED if view.result.get("accepted") else REJECTED)
        if not view.alarm:
            self._next_alarm_mono = None
        elif self._next_alarm_mono is None or now + 1e-6 >= self._next_alarm_mono:
            self.play(LOW_CREDIT)
            self._next_alarm_mono = now + self._repeat_s

    def play(self, pattern: Pattern) -> None:
        """Queue ``pattern`` from now (replacing what is still queued) and switch the first edge."""
        t = self._clock.mono()
        self._edges.clear()
        for n in range(pattern.count):
            self._edges.append((t, True))
            t += pattern.on_s
            self._edges.append((t, False))
            t += pattern.off_s if n < pattern.count - 1 else 0.0
        self.patterns_played += 1
        self.tick()

    def tick(self) -> None:
        """Apply the edges that are due (call every loop step)."""
        now = self._clock.mono() + 1e-6  # an edge due within a microsecond is due (float steps)
        while self._edges and self._edges[0][0] <= now:
            _, level = self._edges.popleft()
            self._apply(level)

    @property
    def sounding(self) -> bool:
        return self._level

    def _apply(self, level: bool) -> None:
        if level != self._level:
            self._level = level
            self._set_level(level)

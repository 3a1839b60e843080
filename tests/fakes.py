"""Small fakes more than one test module needs."""

from __future__ import annotations


class ManualMono:
    """Monotonic seconds (s) that move only when a test moves them: ``mono.t += 1.0``.

    Callable (``mono()``, what ``hw.inputs`` and the LCD's battery watch take) and a clock object
    (``mono.mono()``, what the clocked cores take)."""

    def __init__(self, start_s: float = 100.0) -> None:
        self.t = start_s

    def __call__(self) -> float:
        return self.t

    def mono(self) -> float:
        """The current value (s)."""
        return self.t

    def advance(self, dt_s: float) -> None:
        """Move forward by ``dt_s`` (s)."""
        self.t += dt_s

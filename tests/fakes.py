"""Small fakes more than one test module needs."""

from __future__ import annotations

import datetime as dt
from typing import Any


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


class RecordedEvents:
    """An event sink (``record(code, utc, detail)``) that keeps each event as
    ``(code, utc, detail as a dict)`` in :attr:`recorded`."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int, dt.datetime, dict[str, object]]] = []

    def record(self, code: int, utc: dt.datetime, detail: object = None) -> object:
        self.recorded.append((code, utc, dict(detail or {})))  # type: ignore[call-overload]
        return None


class FakeInstaller:
    """The update engine's port (:class:`meterd.services.firmware_port.FirmwareInstaller`) with
    verdicts a test chooses: ``verdict`` for verify, ``activation`` for activate (None: the same
    as ``verdict``); ``calls`` lists ("verify"|"activate", bundle path, content length). A
    successful activation makes the bundle's identity the running one, as the restart would."""

    def __init__(self, running: Any = None, verdict: Any = None) -> None:
        from meterd.core.firmware import BundleVerdict, FirmwareIdentity

        self.identity = running or FirmwareIdentity("1.0.0", "pmm1221-rpi4", "PMM-CORE 1.0", "aa" * 32, "A")
        self.verdict = verdict or BundleVerdict(
            FirmwareIdentity("1.1.0", "pmm1221-rpi4", "PMM-CORE 1.1", "bb" * 32), None)
        self.activation: Any = None
        self.calls: list[tuple[str, Any, int]] = []

    def running(self) -> Any:
        return self.identity

    async def verify(self, bundle: Any) -> Any:
        self.calls.append(("verify", bundle, len(bundle.read_bytes())))
        return self.verdict

    async def activate(self, bundle: Any, utc: Any) -> Any:
        self.calls.append(("activate", bundle, len(bundle.read_bytes())))
        verdict = self.activation or self.verdict
        if verdict.ok:
            self.identity = verdict.identity
        return verdict


class TaskList:
    """A ``spawn`` that keeps coroutines until the test runs them (:meth:`run_all`)."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def __call__(self, coro: Any) -> None:
        self.pending.append(coro)

    def run_all(self) -> int:
        """Run every pending coroutine to its end; the number run."""
        import asyncio

        n = 0
        while self.pending:
            asyncio.run(self.pending.pop(0))
            n += 1
        return n

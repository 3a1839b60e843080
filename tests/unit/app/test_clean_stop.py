"""Clean stops: the API socket removed on close, the hardware's pending timers cancelled."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meterd.api.server import ApiServer
from meterd.app.hardware import Backends, Hardware

SIM_BACKENDS = Backends(simulated=True, pin_factory="mock", clock="sim", lcd="png", throwaway_keys=True)


def test_close_removes_the_socket_it_bound(tmp_path: Path) -> None:
    path = tmp_path / "meterd.sock"

    async def run() -> None:
        server = ApiServer()
        await server.start(path)
        assert path.is_socket()
        await server.close()
        await server.close()  # idempotent

    asyncio.run(run())
    assert not path.exists()


def test_close_leaves_a_socket_another_server_bound_since(tmp_path: Path) -> None:
    path = tmp_path / "meterd.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    async def run() -> None:
        server = ApiServer()
        await server.start(path)
        path.unlink()
        other.bind(str(path))  # a newer meter's socket under the same name
        await server.close()

    try:
        asyncio.run(run())
        assert path.is_socket()
    finally:
        other.close()


class FakeTimer:
    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_hardware_close_cancels_the_timers_not_yet_fired() -> None:
    timers: list[FakeTimer] = []

    def scheduler(_delay_s: float, action: Callable[[], None]) -> Any:
        timers.append(FakeTimer(action))
        return timers[-1]

    fired: list[str] = []
    frontend, inputs = Closable(), Closable()
    hardware = Hardware(frontend=frontend, inputs=inputs, pin_factory=None, backends=SIM_BACKENDS)  # type: ignore[arg-type]
    hardware.scheduler = scheduler
    hardware.schedule(0.0, lambda: fired.append("first"))
    hardware.schedule(0.02, lambda: fired.append("second"))
    timers[0].action()  # the loop runs the first one
    assert fired == ["first"] and len(hardware.pending) == 1
    hardware.close()
    assert [t.cancelled for t in timers] == [False, True] and hardware.pending == {}
    assert frontend.closed and inputs.closed
    timers[1].action()  # a timer the loop had already taken off its heap: it does nothing now
    assert fired == ["first"]


def test_hardware_without_scheduler_runs_actions_at_once() -> None:
    fired: list[int] = []
    hardware = Hardware(frontend=Closable(), inputs=Closable(), pin_factory=None, backends=SIM_BACKENDS)  # type: ignore[arg-type]
    assert hardware.schedule(1.0, lambda: fired.append(1)) is None
    assert fired == [1] and hardware.pending == {}

"""The push engine's delivery task on the event loop: sends due messages as they become due.

The engine (:class:`meterd.services.push.PushEngine`) decides what is due; this task only asks
every ``poll_s`` (s, real time) and awaits the sends, one message at a time, so a slow head end
never blocks the metering loop. An unexpected error in a round is logged and the next round
goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from meterd.services.push import PushEngine

log = logging.getLogger("meterd.push")


class PushSender:
    """Runs :meth:`PushEngine.deliver_due` until closed."""

    def __init__(self, engine: PushEngine, poll_s: float = 0.2) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> PushSender:
        """Start the task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="push-sender")
        return self

    async def _run(self) -> None:
        while True:
            if self.engine.has_due():
                try:
                    await self.engine.deliver_due()
                except Exception:  # noqa: BLE001 - a bug in one round must not end the pushes
                    log.exception("push delivery round failed")
            await asyncio.sleep(self.poll_s)

    async def close(self) -> None:
        """Stop the task (a send in progress is abandoned; its message stays queued)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

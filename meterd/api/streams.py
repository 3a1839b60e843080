"""Fan-out of live data to WebSocket clients, without ever holding up the meter.

The meter publishes (:meth:`StreamHub.publish`) from its cycle and its event listeners; each
message is encoded once and appended to every subscriber's bounded queue. A subscriber that
does not keep up loses its oldest messages (counted, and told to it), never delays the meter.
A payload may be given as a function, called only when somebody listens (no cost otherwise).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]
QUEUE_DEPTH = 64  # messages kept per client (a second of values at 64 cycles/s)


@dataclass
class Subscriber:
    """One client's queue: encoded messages, the count of those dropped, and a wake-up."""

    stream: str
    depth: int = QUEUE_DEPTH
    queue: collections.deque[str] = field(default_factory=collections.deque)
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, message: str) -> None:
        """Queue ``message``, dropping the oldest when full."""
        if len(self.queue) >= self.depth:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(message)
        self.wake.set()

    async def take(self) -> list[str]:
        """Wait for messages, then all of them, oldest first."""
        while not self.queue:
            self.wake.clear()
            await self.wake.wait()
        out = list(self.queue)
        self.queue.clear()
        return out


@dataclass(frozen=True)
class Stream:
    """A stream's description (for the OpenAPI document) and its first message's content."""

    name: str
    description: str
    hello: Callable[[], Payload]


class StreamHub:
    """The streams and their subscribers."""

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self.subscribers: dict[str, list[Subscriber]] = {}
        self.published: dict[str, int] = {}
        self.dropped_total = 0

    def declare(self, name: str, description: str, hello: Callable[[], Payload] | None = None) -> None:
        """Offer stream ``name``; ``hello()`` is the content of each client's first message."""
        self.streams[name] = Stream(name, description, hello or (lambda: {}))
        self.subscribers.setdefault(name, [])
        self.published.setdefault(name, 0)

    def listening(self, name: str) -> bool:
        """True when somebody subscribes to ``name``."""
        return bool(self.subscribers.get(name))

    def publish(self, name: str, payload: Payload | Callable[[], Payload]) -> None:
        """Send ``payload`` (or what the function returns, made only when somebody listens) to
        every subscriber of ``name`` as ``{"stream": name, "seq": n, "data": payload}``."""
        subscribers = self.subscribers.get(name)
        if not subscribers:
            return
        data = payload() if callable(payload) else payload
        self.published[name] += 1
        message = json.dumps({"stream": name, "seq": self.published[name], "data": data},
                             separators=(",", ":"), default=str)
        for sub in subscribers:
            before = sub.dropped
            sub.put(message)
            self.dropped_total += sub.dropped - before

    def subscribe(self, name: str, depth: int = QUEUE_DEPTH) -> Subscriber:
        """A new subscriber of ``name`` (KeyError for an unknown stream)."""
        if name not in self.streams:
            raise KeyError(name)
        sub = Subscriber(name, depth)
        self.subscribers[name].append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget ``sub``."""
        subs = self.subscribers.get(sub.stream, [])
        if sub in subs:
            subs.remove(sub)

    def client_count(self) -> int:
        """Subscribers across all streams."""
        return sum(len(s) for s in self.subscribers.values())

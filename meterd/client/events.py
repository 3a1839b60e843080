"""A subscription to the events stream, read on a thread of its own (so a blocking test rig can
inject a fault and then wait for its event)."""

from __future__ import annotations

import asyncio
import json
import queue
import ssl
import threading
import time
from types import TracebackType
from typing import Any, Self

import aiohttp

Payload = dict[str, Any]


class EventWatcher:
    """Events recorded by the meter since the subscription opened; :meth:`wait_for` one of them."""

    def __init__(self, url: str, unix_path: str | None, token: str | None, tls: ssl.SSLContext | None,
                 connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.unix_path = unix_path
        self.token = token
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self.hello: Payload | None = None
        self.seen: list[Payload] = []
        self._queue: queue.Queue[Payload | BaseException] = queue.Queue()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def open(self) -> None:
        """Subscribe; returns once the meter has sent the stream's first message."""
        self._thread = threading.Thread(target=self._run, name="meter-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.connect_timeout_s):
            self.close()
            raise TimeoutError(f"no answer from the events stream at {self.url}")
        if self._error is not None:
            error, self._error = self._error, None
            self.close()
            raise error

    def close(self) -> None:
        """Unsubscribe and end the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=self.connect_timeout_s)
            self._thread = None

    def wait_for(self, match: int | str, timeout_s: float) -> Payload:
        """The first event (seen since the subscription, including ones already read) whose code
        or name is ``match``; TimeoutError after ``timeout_s`` (s)."""
        def fits(event: Payload) -> bool:
            return event.get("code") == match if isinstance(match, int) else event.get("name") == match

        for event in self.seen:
            if fits(event):
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event {match!r} within {timeout_s:g} s "
                                   f"(seen: {', '.join(str(e.get('name')) for e in self.seen) or 'none'})")
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise ConnectionError(f"events stream ended: {item}") from item
            self.seen.append(item)
            if fits(item):
                return item

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._read())
        finally:
            loop.close()

    async def _read(self) -> None:
        self._stop = asyncio.Event()
        connector = aiohttp.UnixConnector(path=self.unix_path) if self.unix_path is not None else None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with aiohttp.ClientSession(connector=connector) as session, \
                    session.ws_connect(self.url, headers=headers, ssl=self.tls if self.tls is not None else True,
                                       timeout=aiohttp.ClientWSTimeout(ws_close=self.connect_timeout_s)) as ws:
                first = await ws.receive_json(timeout=self.connect_timeout_s)
                self.hello = first.get("hello")
                self._ready.set()
                reader = asyncio.ensure_future(self._forward(ws))
                stopper = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait([reader, stopper], return_when=asyncio.FIRST_COMPLETED)
                for task in (reader, stopper):
                    task.cancel()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            if not self._ready.is_set():
                self._error = exc if isinstance(exc, OSError | TimeoutError) else ConnectionError(str(exc))
                self._ready.set()
            else:
                self._queue.put(exc)

    async def _forward(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(msg.data)
            if "data" in message:
                self._queue.put(message["data"])
        self._queue.put(ConnectionError("the meter closed the stream"))

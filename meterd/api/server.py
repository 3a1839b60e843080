"""Local HTTP/JSON API on a UNIX socket (``meterctl`` is its client).

A deliberately small HTTP/1.1 subset: one request per connection, JSON bodies, routes registered
by the composition root as ``(method, path) -> handler(body) -> (status, payload)``. Handlers run
on the meter's event loop, so they see and change meter state without locks. The socket is
created with mode 0660: only the meter's user and group may talk to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("meterd.api")

Payload = dict[str, Any]
Handler = Callable[[Payload], Awaitable[tuple[int, Payload]] | tuple[int, Payload]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}
MAX_BODY = 1 << 20


class ApiError(Exception):
    """A request the API refuses; carries the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ApiServer:
    """Routes and the UNIX-socket listener."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self._server: asyncio.base_events.Server | None = None
        self._socket: tuple[Path, int, int] | None = None  # path, st_dev, st_ino of the bound socket

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Register ``handler`` for ``method path``."""
        self.routes[(method.upper(), path)] = handler

    async def start(self, socket_path: Path) -> None:
        """Listen on ``socket_path`` (a stale socket file is replaced)."""
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        if socket_path.exists() or socket_path.is_symlink():
            socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(socket_path))
        os.chmod(socket_path, 0o660)
        st = socket_path.stat()
        self._socket = (socket_path, st.st_dev, st.st_ino)

    async def close(self) -> None:
        """Stop listening and remove the socket file (only if it is still the one this server
        bound), so that clients tell a stopped meter from a refused connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._socket is not None:
            path, dev, ino = self._socket
            self._socket = None
            try:
                st = path.stat()
                if (st.st_dev, st.st_ino) == (dev, ino):
                    path.unlink()
            except FileNotFoundError:
                pass

    async def dispatch(self, method: str, path: str, body: Payload) -> tuple[int, Payload]:
        """Run the handler of a route; errors become JSON error payloads."""
        handler = self.routes.get((method, path))
        if handler is None:
            if any(p == path for _, p in self.routes):
                return 405, {"error": f"{method} not allowed on {path}"}
            return 404, {"error": f"no such resource {path}"}
        try:
            result = handler(body)
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, tuple)
            return result
        except ApiError as exc:
            return exc.status, {"error": exc.message}
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": str(exc)}
        except Exception:  # a handler bug must not take the meter down
            log.exception("API handler %s %s failed", method, path)
            return 500, {"error": "internal error (see the meter log)"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await self._handle(reader)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.message}
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        data = json.dumps(payload, sort_keys=True).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, Payload]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3:
            raise ApiError(400, "malformed request line")
        method, target = parts[0].upper(), parts[1]
        length = 0
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                if not value.strip().isdigit():
                    raise ApiError(400, "bad Content-Length")
                length = int(value.strip())
        if length > MAX_BODY:
            raise ApiError(413, "body too large")
        body: Payload = {}
        if length:
            try:
                decoded = json.loads(await reader.readexactly(length))
            except json.JSONDecodeError as exc:
                raise ApiError(400, f"body is not JSON: {exc}") from None
            if not isinstance(decoded, dict):
                raise ApiError(400, "body must be a JSON object")
            body = decoded
        return await self.dispatch(method, target.split("?")[0], body)

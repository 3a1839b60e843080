"""The meter's HTTP/JSON and WebSocket API (aiohttp), on a UNIX socket and optionally on TCP.

Routes are registered by the composition root and the features as ``api.route(method, path,
handler)``: ``handler(body) -> (status, payload)`` (sync or async) with the JSON request body
(``{}`` without one); :class:`ApiError` becomes ``{"error": message}`` with its status. A route
may carry a short description and a :class:`~meterd.api.schema.Body`: the body is then checked
before the handler runs (unknown keys, types, ranges: 400 with the reason, nothing changed).
Handlers run on the meter's event loop, so they see and change meter state without locks.

Two listeners share the routes:

* the UNIX socket (mode 0660: only the meter's user and group), where no token is needed;
* TCP (``[api] listen``, TLS when a certificate is configured), where every request presents a
  token (``Authorization: Bearer …``, or ``?access_token=…`` for a browser's WebSocket): no or
  an unknown token is 401, a read token on a control route 403 (:mod:`meterd.api.tokens`).

Besides the routes: ``GET /openapi.json`` (the OpenAPI 3.1 document of the registered routes),
``GET /metrics`` (Prometheus text, when a registry is set) and ``GET /ws/<stream>`` (WebSocket
streams fed by :meth:`ApiServer.publish`, :mod:`meterd.api.streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from meterd.api.dashboard import add_dashboard, is_public
from meterd.api.errors import ApiError
from meterd.api.openapi import openapi_document
from meterd.api.schema import Body
from meterd.api.streams import Payload, StreamHub, Subscriber
from meterd.api.tokens import Role, Tokens

__all__ = ["MAX_BODY", "ApiError", "ApiServer", "Handler", "Payload", "RouteSpec"]

log = logging.getLogger("meterd.api")

Handler = Callable[[Payload], Awaitable[tuple[int, Payload]] | tuple[int, Payload]]
MAX_BODY = 1 << 20  # bytes of a request body
SHUTDOWN_TIMEOUT_S = 2.0  # how long a stop waits for requests in progress (s)
TOKEN_QUERY = "access_token"
_LOCAL = web.AppKey("local", bool)  # the UNIX socket's application


@dataclass(frozen=True)
class RouteSpec:
    """A registered route: its handler, what it is for, the body it takes, the role it needs on
    TCP (read for GET, control otherwise, unless given), and whether only the UNIX socket serves it."""

    method: str
    path: str
    handler: Handler
    description: str
    body: Body | None
    role: Role
    local_only: bool = False


class ApiServer:
    """Routes, streams, and the listeners."""

    def __init__(self, title: str = "meterd API", version: str = "0") -> None:
        self.title = title
        self.version = version
        self.routes: dict[tuple[str, str], Handler] = {}
        self.specs: dict[tuple[str, str], RouteSpec] = {}
        self.hub = StreamHub()
        self.metrics_registry: Any = None  # a prometheus_client CollectorRegistry (GET /metrics)
        self._runners: list[web.AppRunner] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket: tuple[Path, int, int] | None = None  # path, st_dev, st_ino of the bound socket
        self.tcp_address: tuple[str, int] | None = None
        self.static_dirs: dict[str, Path] = {}  # URL prefix -> directory of public files
        self.route("GET", "/openapi.json", self._openapi, description="This document (OpenAPI 3.1).")

    # -- registration -----------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler, *, description: str | None = None,
              body: Body | None = None, role: Role | None = None, local_only: bool = False) -> None:
        """Register ``handler`` for ``method path``; ``description`` (the OpenAPI summary, given
        here and never taken from the handler's docstring, which ``python -OO`` removes), the
        ``body`` it takes (checked before it runs), the ``role`` a TCP client needs (default read
        for GET, control otherwise) and ``local_only`` (served on the UNIX socket only)."""
        method = method.upper()
        needed = role if role is not None else (Role.READ if method == "GET" else Role.CONTROL)
        self.routes[(method, path)] = handler
        self.specs[(method, path)] = RouteSpec(method, path, handler, description or "",
                                               body, needed, local_only)

    def static(self, prefix: str, directory: Path) -> None:
        """Serve the files of ``directory`` under ``prefix`` (e.g. ``/ui``) on both listeners,
        without a token: they must hold no meter data (a page asks the API for that, with its
        token). Registered before the listeners start."""
        if not prefix.startswith("/") or prefix.endswith("/") or prefix.startswith(("/ws/", "/metrics")):
            raise ValueError(f"static prefix {prefix!r}: expected /name")
        self.static_dirs[prefix] = directory

    def stream(self, name: str, description: str, hello: Callable[[], Payload] | None = None) -> None:
        """Offer the WebSocket stream ``GET /ws/<name>``; ``hello()`` is each client's first message."""
        self.hub.declare(name, description, hello)

    def publish(self, stream: str, payload: Payload | Callable[[], Payload]) -> None:
        """Send ``payload`` to the subscribers of ``stream`` (a function is called only when
        somebody listens); never blocks (:mod:`meterd.api.streams`)."""
        self.hub.publish(stream, payload)

    # -- dispatch ---------------------------------------------------------------------------

    async def dispatch(self, method: str, path: str, body: Payload) -> tuple[int, Payload]:
        """Run the handler of a route (its body checked first); errors become JSON error payloads."""
        spec = self.specs.get((method, path))
        if spec is None:
            if any(p == path for _, p in self.specs):
                return 405, {"error": f"{method} not allowed on {path}"}
            return 404, {"error": f"no such resource {path}"}
        try:
            if spec.body is not None:
                spec.body.check(body)
            result = spec.handler(body)
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

    def _openapi(self, _: Payload) -> tuple[int, Payload]:
        return 200, openapi_document(self.title, self.version, list(self.specs.values()),
                                     list(self.hub.streams.values()), metrics=self.metrics_registry is not None)

    # -- listeners --------------------------------------------------------------------------

    async def start(self, socket_path: Path) -> None:
        """Listen on ``socket_path`` (a stale socket file is replaced; mode 0660), no token needed."""
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        if socket_path.exists() or socket_path.is_symlink():
            socket_path.unlink()
        runner = await self._runner(None)
        await web.UnixSite(runner, str(socket_path)).start()
        os.chmod(socket_path, 0o660)
        st = socket_path.stat()
        self._socket = (socket_path, st.st_dev, st.st_ino)

    async def start_tcp(self, host: str, port: int, tokens: Tokens,
                        tls: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: one the kernel picks) with token authentication and,
        given ``tls``, HTTPS; returns the bound address."""
        runner = await self._runner(tokens)
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        server = site._server  # the asyncio server: the only place the bound port is kept
        assert isinstance(server, asyncio.base_events.Server)
        bound = server.sockets[0].getsockname()
        self.tcp_address = (str(bound[0]), int(bound[1]))
        return self.tcp_address

    async def close(self) -> None:
        """Close the streams' clients, stop listening and remove the socket file (only if it is
        still the one this server bound), so that clients tell a stopped meter from a refused
        connection."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"meter stopping")
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        self.tcp_address = None
        if self._socket is not None:
            path, dev, ino = self._socket
            self._socket = None
            try:
                st = path.stat()
                if (st.st_dev, st.st_ino) == (dev, ino):
                    path.unlink()
            except FileNotFoundError:
                pass

    async def _runner(self, tokens: Tokens | None) -> web.AppRunner:
        middlewares = [_errors_as_json] + ([_authenticator(tokens, self.specs, tuple(self.static_dirs))]
                                           if tokens is not None else [])
        app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        app[_LOCAL] = tokens is None
        app.router.add_route("GET", "/metrics", self._metrics)
        app.router.add_route("GET", "/ws/{stream}", self._websocket)
        add_dashboard(app.router)
        for prefix, directory in self.static_dirs.items():
            app.router.add_static(prefix, directory, follow_symlinks=False)
        app.router.add_route("*", "/{tail:.*}", self._http)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)  # no URLs (tokens) in logs
        await runner.setup()
        self._runners.append(runner)
        return runner

    # -- request handlers -------------------------------------------------------------------

    async def _http(self, request: web.Request) -> web.StreamResponse:
        spec = self.specs.get((request.method, request.path))
        if spec is not None and spec.local_only and not request.app[_LOCAL]:
            status, payload = 404, {"error": f"no such resource {request.path}"}
        else:
            status, payload = await self.dispatch(request.method, request.path, await _json_body(request))
        return _json(status, payload)

    async def _metrics(self, _request: web.Request) -> web.StreamResponse:
        if self.metrics_registry is None:
            return _json(404, {"error": "no metrics on this meter"})
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        text = generate_latest(self.metrics_registry)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["stream"]
        if name not in self.hub.streams:
            return _json(404, {"error": f"no such stream {name!r} (streams: {', '.join(sorted(self.hub.streams))})"})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream = self.hub.streams[name]
        sub = self.hub.subscribe(name)
        self._sockets.append(ws)
        try:
            await ws.send_str(json.dumps({"stream": name, "hello": stream.hello()}, default=str))
            sender = asyncio.ensure_future(_send_loop(ws, sub))
            reader = asyncio.ensure_future(_read_until_closed(ws))
            try:
                await asyncio.wait([sender, reader], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sender, reader):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await task
        finally:
            self.hub.unsubscribe(sub)
            self._sockets.remove(ws)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws


async def _send_loop(ws: web.WebSocketResponse, sub: Subscriber) -> None:
    """Send the subscriber's messages as they come; a drop is told once it happened."""
    told = 0
    while not ws.closed:
        messages = await sub.take()
        if sub.dropped != told:
            told = sub.dropped
            await ws.send_str(json.dumps({"stream": sub.stream, "dropped": told}))
        for message in messages:
            await ws.send_str(message)


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """The streams are one-way: whatever the client sends is ignored until it closes."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _json_body(request: web.Request) -> Payload:
    """The request's JSON object (``{}`` without a body); ApiError for anything else."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "body must be a JSON object")
    return decoded


def _json(status: int, payload: Payload) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload, sort_keys=True), content_type="application/json")


@web.middleware
async def _errors_as_json(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Every refusal as ``{"error": …}``: ApiError, and aiohttp's own (413 for a body over
    :data:`MAX_BODY`, 405, …)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.status, {"error": exc.message})
    except web.HTTPRequestEntityTooLarge:
        return _json(413, {"error": f"body too large (at most {MAX_BODY} bytes)"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(exc.status, {"error": exc.reason})


def presented_token(request: web.Request) -> str | None:
    """The token of a request: ``Authorization: Bearer …``, else the ``access_token`` query
    parameter (a browser cannot give a WebSocket a header)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get(TOKEN_QUERY) or None


def _authenticator(tokens: Tokens, specs: dict[tuple[str, str], RouteSpec], public: tuple[str, ...]) -> Any:
    """The TCP listener's middleware: 401 without a known token, 403 when its role does not
    allow the route (the role a route needs is in its spec; GET needs read, others control);
    the static files under the ``public`` prefixes need none."""

    @web.middleware
    async def authenticate(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_public(request.method, request.path):  # the console's static files
            return await handler(request)
        if request.method in ("GET", "HEAD") and any(request.path.startswith(p + "/") for p in public):
            return await handler(request)
        token = presented_token(request)
        role = tokens.role_of(token) if token is not None else None
        if role is None:
            raise ApiError(401, "a valid API token is needed (Authorization: Bearer TOKEN)" if token is None
                           else "unknown API token")
        spec = specs.get((request.method, request.path))
        needed = spec.role if spec is not None else (Role.READ if request.method == "GET" else Role.CONTROL)
        if not role.allows(needed):
            raise ApiError(403, f"a {role.value} token may not use {request.method} {request.path} "
                                f"(it needs {needed.value})")
        return await handler(request)

    return authenticate

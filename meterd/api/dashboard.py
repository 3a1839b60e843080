"""The lab console: static files (HTML, CSS, JavaScript modules) served at ``/dashboard/``.

No build step and nothing fetched from elsewhere: the page, its styles and its scripts are the
files of ``meterd/api/dashboard/``, and its Content-Security-Policy lets it talk to this meter
only. The files hold no meter data, so they are served without a token; the page asks for one
(kept in the browser tab's sessionStorage) and presents it on every API request and WebSocket.
``/`` and ``/dashboard`` redirect to ``/dashboard/``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
PREFIX = "/dashboard/"
CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
       "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def is_public(method: str, path: str) -> bool:
    """True for a request of the console's files (served without a token)."""
    return method in ("GET", "HEAD") and (path in ("/", "/dashboard") or path.startswith(PREFIX))


async def _to_dashboard(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX)


async def _file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name") or "index.html"
    path = (DASHBOARD_DIR / name).resolve()
    if path.parent != DASHBOARD_DIR or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={**_HEADERS, "Content-Type": _content_type(path)})


def _content_type(path: Path) -> str:
    return {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
            ".js": "text/javascript; charset=utf-8"}.get(path.suffix, "application/octet-stream")


def add_dashboard(router: web.UrlDispatcher) -> None:
    """Serve the console's files on ``router`` (before any catch-all route)."""
    router.add_get("/", _to_dashboard)
    router.add_get("/dashboard", _to_dashboard)
    router.add_get(PREFIX, _file)
    router.add_get(PREFIX + "{name}", _file)

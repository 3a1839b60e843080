"""The console's static files on the TCP listener: served without a token, with their types and
a policy that keeps the page on this meter; nothing outside the console's directory; the API
itself still needs a token."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from meterd.api.dashboard import DASHBOARD_DIR, is_public
from meterd.api.server import ApiServer
from meterd.api.tokens import Tokens

TOKENS = Tokens(read=("r" * 20,), control=("c" * 20,))


def fetch_all(paths: list[str]) -> list[tuple[int, str, str, str]]:
    """(status, content type, Content-Security-Policy, body) of each GET, without a token."""

    async def main() -> list[tuple[int, str, str, str]]:
        api = ApiServer()
        api.route("GET", "/status", lambda _body: (200, {"ok": True}))
        host, port = await api.start_tcp("127.0.0.1", 0, TOKENS)
        out = []
        try:
            async with aiohttp.ClientSession() as session:
                for path in paths:
                    async with session.get(f"http://{host}:{port}{path}", allow_redirects=True) as r:
                        out.append((r.status, r.headers.get("Content-Type", ""),
                                    r.headers.get("Content-Security-Policy", ""), await r.text()))
        finally:
            await api.close()
        return out

    return asyncio.run(main())


def test_the_console_is_served_without_a_token() -> None:
    index, css, js, root, status = fetch_all(["/dashboard/", "/dashboard/dashboard.css", "/dashboard/main.js", "/",
                                              "/status"])
    assert index[0] == 200 and index[1].startswith("text/html") and "<main" in index[3]
    assert "default-src 'self'" in index[2] and "connect-src 'self' ws: wss:" in index[2]
    assert css[0] == 200 and css[1].startswith("text/css")
    assert js[0] == 200 and js[1].startswith("text/javascript") and "sessionStorage" in js[3]
    assert root[0] == 200 and "<main" in root[3]  # / leads to the console
    assert status[0] == 401  # the data needs a token


def test_nothing_outside_the_console_directory() -> None:
    answers = fetch_all(["/dashboard/..%2Fserver.py", "/dashboard/%2E%2E/dashboard.py", "/dashboard/missing.js"])
    assert [a[0] for a in answers] == [404, 401, 404]  # the second is /dashboard.py: not the console's, so an API path
    assert not any("import" in a[3] for a in answers)
    assert not is_public("POST", "/dashboard/index.html")
    assert not is_public("GET", "/dashboards")


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in DASHBOARD_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\b)", text), f"{path.name} refers to another site"
        for ref in re.findall(r'(?:src|href)="([^"]+)"', text) + re.findall(r'from "\./([^"]+)"', text):
            assert (DASHBOARD_DIR / Path(ref).name).is_file(), f"{path.name}: {ref} missing"

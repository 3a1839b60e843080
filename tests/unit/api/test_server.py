"""The API server: the UNIX socket and TCP listeners, tokens and roles, refusals, the OpenAPI
document and the WebSocket streams (ephemeral ports only)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from meterd.api.schema import Body, Field
from meterd.api.server import MAX_BODY, ApiError, ApiServer
from meterd.api.tokens import Tokens

READ, CONTROL = "r" * 20, "c" * 20
TOKENS = Tokens(read=(READ,), control=(CONTROL,))


def server_with_routes() -> tuple[ApiServer, list[dict[str, Any]]]:
    api = ApiServer()
    calls: list[dict[str, Any]] = []

    def get_thing(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A thing."""
        return 200, {"thing": 1}

    async def set_thing(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls.append(body)
        return 200, {"set": body}

    def refuse(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise ApiError(409, "not now")

    def broken(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise RuntimeError("bug")

    api.route("GET", "/thing", get_thing, description="A thing.")
    api.route("POST", "/thing", set_thing, body=Body((Field("level", int, minimum=0, maximum=9, required=True),)))
    api.route("POST", "/refuse", refuse)
    api.route("POST", "/broken", broken)
    api.route("GET", "/secret", get_thing, local_only=True)
    api.stream("values", "test stream", lambda: {"cycle_s": 1.0})
    return api, calls


def run(test: Callable[[ApiServer, str, list[dict[str, Any]], aiohttp.ClientSession], Awaitable[None]],
        tmp_path: Path) -> None:
    async def main() -> None:
        api, calls = server_with_routes()
        await api.start(tmp_path / "api.sock")
        host, port = await api.start_tcp("127.0.0.1", 0, TOKENS)
        assert port != 0
        try:
            async with aiohttp.ClientSession() as session:
                await test(api, f"http://{host}:{port}", calls, session)
        finally:
            await api.close()

    asyncio.run(main())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_and_roles_on_tcp(tmp_path: Path) -> None:
    async def test(_api: ApiServer, url: str, calls: list[dict[str, Any]], s: aiohttp.ClientSession) -> None:
        async with s.get(f"{url}/thing") as r:
            assert r.status == 401 and "token is needed" in (await r.json())["error"]
        async with s.get(f"{url}/thing", headers=bearer("w" * 20)) as r:
            assert r.status == 401 and (await r.json())["error"] == "unknown API token"
        async with s.get(f"{url}/thing", headers=bearer(READ)) as r:
            assert r.status == 200 and await r.json() == {"thing": 1}
        async with s.get(f"{url}/thing?access_token={READ}") as r:
            assert r.status == 200
        async with s.post(f"{url}/thing", json={"level": 3}, headers=bearer(READ)) as r:
            assert r.status == 403 and "needs control" in (await r.json())["error"]
        assert calls == []
        async with s.post(f"{url}/thing", json={"level": 3}, headers=bearer(CONTROL)) as r:
            assert r.status == 200 and await r.json() == {"set": {"level": 3}}
        async with s.get(f"{url}/secret", headers=bearer(CONTROL)) as r:
            assert r.status == 404  # the UNIX socket's own routes are not on TCP
        assert calls == [{"level": 3}]

    run(test, tmp_path)


def test_the_unix_socket_needs_no_token(tmp_path: Path) -> None:
    async def main() -> None:
        api, _ = server_with_routes()
        await api.start(tmp_path / "api.sock")
        assert (tmp_path / "api.sock").stat().st_mode & 0o777 == 0o660
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(tmp_path / "api.sock"))) as s:
                async with s.get("http://localhost/secret") as r:
                    assert r.status == 200
                async with s.post("http://localhost/thing", json={"level": 1}) as r:
                    assert r.status == 200
        finally:
            await api.close()
        assert not (tmp_path / "api.sock").exists()

    asyncio.run(main())


def test_bad_requests_get_the_reason_and_reach_no_handler(tmp_path: Path) -> None:
    async def test(_api: ApiServer, url: str, calls: list[dict[str, Any]], s: aiohttp.ClientSession) -> None:
        h = {**bearer(CONTROL), "Content-Type": "application/json"}
        cases = [
            (b"{not json", 400, "body is not JSON"),
            (b"[1, 2]", 400, "body must be a JSON object"),
            (json.dumps({"level": "3"}).encode(), 400, "level must be an integer"),
            (json.dumps({"level": 10}).encode(), 400, "level=10 out of range 0..9"),
            (json.dumps({"level": 1, "more": 2}).encode(), 400, "unknown key(s) more"),
            (json.dumps({}).encode(), 400, "body needs 'level'"),
            (b" " * (MAX_BODY + 1), 413, "body too large"),
        ]
        for data, status, reason in cases:
            async with s.post(f"{url}/thing", data=data, headers=h) as r:
                assert r.status == status, data[:20]
                assert reason in (await r.json())["error"]
        assert calls == []
        for method, path, status, reason in [("POST", "/refuse", 409, "not now"),
                                             ("POST", "/broken", 500, "internal error"),
                                             ("GET", "/nothing", 404, "no such resource /nothing"),
                                             ("DELETE", "/thing", 405, "DELETE not allowed on /thing")]:
            async with s.request(method, f"{url}{path}", headers=h) as r:
                assert r.status == status and reason in (await r.json())["error"]

    run(test, tmp_path)


def test_the_openapi_document_lists_every_route_and_stream(tmp_path: Path) -> None:
    async def test(api: ApiServer, url: str, _calls: list[dict[str, Any]], s: aiohttp.ClientSession) -> None:
        async with s.get(f"{url}/openapi.json", headers=bearer(READ)) as r:
            doc = await r.json()
        assert doc["openapi"] == "3.1.0"
        for method, path in api.specs:
            assert method.lower() in doc["paths"][path], (method, path)
        thing = doc["paths"]["/thing"]
        assert thing["get"]["summary"] == "A thing." and thing["get"]["x-role"] == "read"
        assert thing["post"]["x-role"] == "control"
        assert thing["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["level"]
        assert doc["paths"]["/secret"]["get"]["x-local-only"] is True
        assert "/ws/values" in doc["paths"]
        ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
        assert len(ids) == len(set(ids))

    run(test, tmp_path)


def test_a_stream_says_hello_then_fans_out_publications_and_drops_for_slow_clients(tmp_path: Path) -> None:
    async def test(api: ApiServer, url: str, _calls: list[dict[str, Any]], s: aiohttp.ClientSession) -> None:
        async with s.get(f"{url}/ws/values") as r:
            assert r.status == 401
        async with s.get(f"{url}/ws/nothing", headers=bearer(READ)) as r:
            assert r.status == 404
        clients = [await s.ws_connect(f"{url}/ws/values?access_token={READ}") for _ in range(3)]
        for ws in clients:
            assert await ws.receive_json(timeout=5) == {"stream": "values", "hello": {"cycle_s": 1.0}}
        assert api.hub.client_count() == 3
        api.publish("values", {"v": 1})
        api.publish("values", lambda: {"v": 2})
        for ws in clients:
            assert [(await ws.receive_json(timeout=5))["data"] for _ in range(2)] == [{"v": 1}, {"v": 2}]
        sub = api.hub.subscribers["values"][0]
        for n in range(sub.depth + 5):  # more than a client's queue before its sender runs
            api.publish("values", {"n": n})
        first = await clients[0].receive_json(timeout=5)
        assert first == {"stream": "values", "dropped": 5}
        assert (await clients[0].receive_json(timeout=5))["data"] == {"n": 5}
        for ws in clients:
            await ws.close()
        for _ in range(500):  # until the server has seen the closes (5 s at most)
            if api.hub.client_count() == 0:
                break
            await asyncio.sleep(0.01)
        assert api.hub.client_count() == 0

    run(test, tmp_path)


def test_static_files_need_no_token_and_stay_in_their_directory(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>meter</h1>")
    (tmp_path / "secret.txt").write_text("SECRET")

    async def main() -> None:
        api, _ = server_with_routes()
        api.static("/ui", site)
        host, port = await api.start_tcp("127.0.0.1", 0, TOKENS)
        url = f"http://{host}:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{url}/ui/index.html") as r:
                    assert r.status == 200 and await r.text() == "<h1>meter</h1>"
                async with s.get(URL(f"{url}/ui/%2e%2e/secret.txt", encoded=True)) as r:
                    assert r.status in (403, 404) and "SECRET" not in await r.text()
                async with s.get(f"{url}/uiother") as r:
                    assert r.status == 401  # only what is under the prefix is public
                async with s.get(f"{url}/thing") as r:
                    assert r.status == 401
        finally:
            await api.close()

    asyncio.run(main())

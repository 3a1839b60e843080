"""The blocking client's fault calls: what it sends (method, path, JSON body) and what it
returns, against a small HTTP server on a UNIX socket that records each request."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from meterd.client import ApiRefused, MeterClient

Seen = list[tuple[str, str, Any]]


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 with ``{"echo": body}``, or 400 when the body asks for ``"refuse"``."""

    seen: Seen

    def address_string(self) -> str:  # a UNIX socket has no (host, port)
        return "unix"

    def log_message(self, *_args: Any) -> None:
        return None

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, body))
        status, payload = (400, {"error": "refused"}) if body and "refuse" in body else (200, {"echo": body})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[MeterClient, Seen]]:
    seen: Seen = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = socketserver.UnixStreamServer(str(tmp_path / "api.sock"), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield MeterClient(tmp_path / "api.sock", timeout_s=10.0), seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10.0)


def test_sim_fault_sends_any_kinds_parameters(served: tuple[MeterClient, Seen]) -> None:
    client, seen = served
    client.sim_fault("voltage_dip", duration_s=2.5, phase="L2", residual_pct=40)
    client.sim_fault("rs485_noise", rate=0.01, line="ciu")
    client.sim_fault("relay_welded")
    assert seen == [
        ("POST", "/sim/fault", {"kind": "voltage_dip", "phase": "L2", "residual_pct": 40, "duration_s": 2.5}),
        ("POST", "/sim/fault", {"kind": "rs485_noise", "rate": 0.01, "line": "ciu"}),
        ("POST", "/sim/fault", {"kind": "relay_welded"}),
    ]


def test_sim_faults_is_a_get_of_the_list(served: tuple[MeterClient, Seen]) -> None:
    client, seen = served
    assert client.sim_faults() == {"echo": None}
    assert seen == [("GET", "/sim/faults", None)]


def test_a_refused_fault_raises_with_the_meters_reason(served: tuple[MeterClient, Seen]) -> None:
    client, _ = served
    with pytest.raises(ApiRefused) as refused:
        client.sim_fault("voltage_dip", refuse=1)
    assert refused.value.status == 400
    assert refused.value.message == "refused"

"""The blocking client: one HTTP request per call, over a UNIX socket or TCP (token, TLS)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from meterd.client.events import EventWatcher

Payload = dict[str, Any]


class ApiRefused(Exception):
    """The meter answered with an error status; ``status`` and the meter's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX stream socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class MeterClient:
    """A meter's API at ``address``: a UNIX socket path (``unix:`` prefix optional), or
    ``http://host:port`` / ``https://host:port`` with a ``token`` (read or control role).
    ``timeout_s``: per request (s); ``tls``: the context to verify an HTTPS meter with (default:
    the system's trust store)."""

    def __init__(self, address: str | Path, token: str | None = None, *, timeout_s: float = 10.0,
                 tls: ssl.SSLContext | None = None) -> None:
        text = str(address)
        self.address = text
        self.token = token
        self.timeout_s = timeout_s
        self.tls = tls
        if text.startswith(("http://", "https://")):
            url = urllib.parse.urlsplit(text)
            self.unix_path: str | None = None
            self.scheme = url.scheme
            self.host = url.hostname or "localhost"
            self.port = url.port or (443 if url.scheme == "https" else 80)
        else:
            self.unix_path = text.removeprefix("unix:")
            self.scheme, self.host, self.port = "http", "localhost", 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        return None

    # -- transport --------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self.unix_path is not None:
            return UnixHTTPConnection(self.unix_path, timeout=self.timeout_s)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                               context=self.tls or ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def request(self, method: str, path: str, body: Payload | None = None) -> tuple[int, Payload]:
        """One call; (HTTP status, JSON object). OSError when the meter cannot be reached."""
        conn = self._connection()
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                payload = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                payload = {"text": raw.decode("utf-8", "replace")}
            return resp.status, payload if isinstance(payload, dict) else {"value": payload}
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Payload | None = None) -> Payload:
        """One call; its JSON answer, or ApiRefused for an error status."""
        status, payload = self.request(method, path, body)
        if status != 200:
            raise ApiRefused(status, str(payload.get("error", f"HTTP status {status}")))
        return payload

    def text(self, path: str) -> str:
        """A GET whose answer is text (``/metrics``)."""
        conn = self._connection()
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"} if self.token else {})
            resp = conn.getresponse()
            raw = resp.read().decode("utf-8", "replace")
            if resp.status != 200:
                raise ApiRefused(resp.status, raw)
            return raw
        finally:
            conn.close()

    # -- the meter --------------------------------------------------------------------------

    def status(self) -> Payload:
        """Instantaneous values, energy registers, status flags and the features' state."""
        return self.call("GET", "/status")

    def events(self, limit: int = 50, log: str | None = None) -> list[Payload]:
        """The newest ``limit`` events (newest first), from all logs or one."""
        body: Payload = {"limit": limit}
        if log is not None:
            body["log"] = log
        events = self.call("POST", "/events", body).get("events", [])
        return list(events)

    def openapi(self) -> Payload:
        """The meter's OpenAPI document."""
        return self.call("GET", "/openapi.json")

    def metrics(self) -> str:
        """The Prometheus metrics (text)."""
        return self.text("/metrics")

    # -- the simulated world ----------------------------------------------------------------

    def sim_set(self, phase: str = "all", *, voltage_v: float | None = None, current_a: float | None = None,
                power_factor: str | float | None = None, frequency_hz: float | None = None) -> Payload:
        """Set a phase's (or all phases') voltage (V), current (A), power factor (``1``,
        ``0.5L``, ``0.8C``), and the frequency (Hz)."""
        body: Payload = {"phase": phase}
        for key, value in (("voltage_v", voltage_v), ("current_a", current_a), ("frequency_hz", frequency_hz)):
            if value is not None:
                body[key] = value
        if power_factor is not None:
            body["power_factor"] = str(power_factor)
        return self.call("POST", "/sim/set", body)

    def sim_scenario(self, toml: str, name: str = "scenario") -> Payload:
        """Load a scenario (TOML text); it starts now."""
        return self.call("POST", "/sim/scenario", {"toml": toml, "name": name})

    def sim_scenario_file(self, path: str | Path) -> Payload:
        """Load a scenario file."""
        return self.sim_scenario(Path(path).read_text(encoding="utf-8"), str(path))

    def sim_fault(self, kind: str, duration_s: float | None = None, **params: float | str) -> Payload:
        """Inject the fault ``kind`` for ``duration_s`` meter seconds (None: until cleared), with
        that kind's parameters by name (``phase="L2"``, ``residual_pct=40``, ``rate=1e-3``; the
        meter refuses a parameter the kind does not take, or one out of range, with ApiRefused).
        :meth:`sim_faults` lists the kinds and their parameters."""
        body: Payload = {"kind": kind, **params}
        if duration_s is not None:
            body["duration_s"] = duration_s
        return self.call("POST", "/sim/fault", body)

    def sim_faults(self) -> Payload:
        """``{"kinds": [...], "active": [...]}``: every fault kind (group, summary, the events it
        leads to, its parameters with ranges) and the faults in force (``remaining_s``: meter
        seconds left, None until cleared)."""
        return self.call("GET", "/sim/faults")

    def sim_fault_clear(self, kind: str | None = None) -> Payload:
        """End an injected fault (all of them when ``kind`` is None)."""
        return self.call("POST", "/sim/fault-clear", {"kind": kind} if kind else {})

    def sim_power(self, on: bool) -> Payload:
        """Restore (True) or cut (False) the simulated supply."""
        return self.call("POST", "/sim/power-restore" if on else "/sim/power-fail", {})

    # -- streams ----------------------------------------------------------------------------

    def watch_events(self) -> EventWatcher:
        """An open subscription to the events stream (use it as a context manager; open it
        before the action whose event you wait for)."""
        return EventWatcher(self.stream_url("events"), self.unix_path, self.token, self.tls,
                            connect_timeout_s=self.timeout_s)

    def wait_for_event(self, match: int | str, timeout_s: float) -> Payload:
        """The first event recorded from now on whose code or name is ``match`` (TimeoutError
        after ``timeout_s``)."""
        with self.watch_events() as watcher:
            return watcher.wait_for(match, timeout_s)

    def stream_url(self, stream: str) -> str:
        """The WebSocket URL of ``stream``."""
        if self.unix_path is not None:
            return f"ws://localhost/ws/{stream}"
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.host}:{self.port}/ws/{stream}"

"""The network API on a whole simulated meter: every endpoint, refusals that change nothing,
the streams fed by the meter's cycles and events, the metrics, and a rig driving a meterd
process with :mod:`meterd.client` over TCP with tokens (ephemeral ports only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from meterd.api.tokens import Tokens, ensure_tokens, load_tokens
from meterd.app.features.dlms import DlmsSecurity
from meterd.client import ApiRefused, MeterClient
from meterd.cosem.link_events import LinkEvents
from tests.meterd_process import MeterdProcess
from tests.simmeter import SimMeter

READ, CONTROL = "r" * 24, "c" * 24


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[SimMeter]:
    sim = SimMeter(tmp_path / "state")
    yield sim
    sim.close()


Test = Callable[[SimMeter, str, aiohttp.ClientSession], Awaitable[None]]


def serve(meter: SimMeter, test: Test) -> None:
    """Run ``test`` against the meter's API on a free TCP port (cycles driven by the test)."""
    async def main() -> None:
        api = meter.daemon.api
        host, port = await api.start_tcp("127.0.0.1", 0, Tokens(read=(READ,), control=(CONTROL,)))
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {CONTROL}"}) as session:
                await test(meter, f"http://{host}:{port}", session)
        finally:
            await api.close()

    asyncio.run(main())


def test_every_get_endpoint_answers_and_the_document_lists_every_route(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        m.run(2)
        async with s.get(f"{url}/openapi.json") as r:
            paths = (await r.json())["paths"]
        for method, path in m.daemon.api.specs:
            assert method.lower() in paths[path]
            if method == "GET":
                async with s.get(f"{url}{path}") as r:
                    assert r.status == 200, (path, await r.text())
        for stream in ("values", "events", "waveform"):
            assert f"/ws/{stream}" in paths
        async with s.get(f"{url}/metrics", headers={"Authorization": f"Bearer {READ}"}) as r:
            text = await r.text()
        assert r.status == 200
        assert 'meterd_voltage_volts{phase="L1"}' in text and "meterd_metering_cycles_total 2.0" in text
        assert 'meterd_energy_register_total{channel="total",obis="1.0.1.8.0.255",register="active_import_wh"}' in text
        assert "meterd_chip_in_fault 0.0" in text

    serve(meter, test)


def test_the_metrics_count_dlms_events_by_link_and_show_the_metering_lateness(meter: SimMeter) -> None:
    """Sessions and replays counted per link, the rate-limited ones too (the event log keeps one
    per window; the metrics keep the count); the tick lateness p99 and max as gauges."""
    security = meter.service(DlmsSecurity)
    events = LinkEvents(None, "tcp", security.event_limiter("tcp"), meter.clock.utc)
    events.session(True, 1, "public client", "public", authenticated=False)
    for _ in range(5):
        events.record("REPLAY_ATTACK", 16, "invocation counter not above the last")

    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        m.run(2)
        async with s.get(f"{url}/metrics", headers={"Authorization": f"Bearer {READ}"}) as r:
            text = await r.text()
        assert 'meterd_dlms_events_total{event="remote_session_opened",link="tcp"} 1.0' in text
        assert 'meterd_dlms_events_total{event="replay_attack",link="tcp"} 5.0' in text
        assert "meterd_metering_lateness_p99_ms " in text and "meterd_metering_lateness_max_ms " in text

    serve(meter, test)


def test_every_post_endpoint_needs_the_control_role(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        read = {"Authorization": f"Bearer {READ}"}
        for method, path in m.daemon.api.specs:
            spec = m.daemon.api.specs[(method, path)]
            if method == "POST":
                async with s.post(f"{url}{path}", json={}, headers=read) as r:
                    assert r.status == (403 if spec.role.value == "control" else 200), path
        async with s.post(f"{url}/events", json={"limit": 5}, headers=read) as r:
            assert r.status == 200  # a query of the logs is a read

    serve(meter, test)


def test_bad_input_is_refused_with_the_reason_and_changes_nothing(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        m.run(1)
        async with s.get(f"{url}/status") as r:
            status_before = (await r.json())["phases"]
        cases: list[tuple[str, Any, str]] = [
            ("/sim/set", {"phase": "A", "voltage_v": 900}, "voltage_v=900 out of range 0..480"),
            ("/sim/set", {"phase": "D", "voltage_v": 200}, "phase='D'"),
            ("/sim/set", {"frequency_hz": 55, "phase": "X"}, "phase='X'"),  # nothing set, not even the frequency
            ("/sim/set", {"voltage_v": "230"}, "voltage_v must be a number"),
            ("/sim/set", {"volts": 230}, "unknown key(s) volts"),
            ("/sim/fault", {"kind": "melted"}, "kind='melted'"),
            ("/sim/fault", {"kind": "miso_high", "duration_s": -1}, "duration_s=-1 out of range"),
            ("/sim/scenario", {"toml": "[[event]]\nat_s = 1\nbogus = 3\n"}, ""),
            ("/sim/scenario", {"name": "x"}, "body needs 'toml'"),
        ]
        for path, body, reason in cases:
            async with s.post(f"{url}{path}", json=body) as r:
                answer = await r.json()
                assert r.status == 400, (path, body, answer)
                assert reason in answer["error"]
        async with s.post(f"{url}/sim/set", data=b"{voltage", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and "body is not JSON" in (await r.json())["error"]
        m.run(1)
        async with s.get(f"{url}/status") as r:
            after = await r.json()
        assert after["phases"] == status_before
        assert after["metrology"]["faults"] == [] and m.world.scenario is None

    serve(meter, test)


def test_values_arrive_every_cycle_and_follow_the_grid(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"{url}/ws/values?access_token={READ}") as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello == {"stream": "values", "hello": {"cycle_s": m.daemon.cfg.meter.cycle_s}}
            m.run(3)
            got = [await ws.receive_json(timeout=5) for _ in range(3)]
            assert [g["seq"] for g in got] == [1, 2, 3]
            utcs = [g["data"]["utc"] for g in got]
            assert utcs == sorted(set(utcs))
            async with s.post(f"{url}/sim/set", json={"phase": "A", "voltage_v": 200.0, "current_a": 10.0}) as r:
                assert r.status == 200
            m.run(2)
            last = [await ws.receive_json(timeout=5) for _ in range(2)][-1]["data"]
            assert abs(last["phases"]["L1"]["voltage_v"] - 200.0) < 1.0
            assert abs(last["phases"]["L1"]["current_a"] - 10.0) < 0.1

    serve(meter, test)


def test_an_injected_fault_arrives_on_the_events_stream(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"{url}/ws/events?access_token={READ}") as ws:
            assert (await ws.receive_json(timeout=5))["hello"] == {"available": True}
            m.run(2)
            async with s.post(f"{url}/sim/fault", json={"kind": "miso_high"}) as r:
                assert r.status == 200
            m.run(3)
            event = (await ws.receive_json(timeout=5))["data"]
            assert event["name"] == "MEASUREMENT_SYSTEM_ERROR" and event["code"] == 16
            assert event["utc"].startswith("2026-01-01T00:00:0")

    serve(meter, test)


def test_waveform_snapshots_of_the_simulated_grid(meter: SimMeter) -> None:
    async def test(m: SimMeter, url: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"{url}/ws/waveform?access_token={READ}") as ws:
            hello = (await ws.receive_json(timeout=5))["hello"]
            assert hello["available"] is True and hello["channels"] == ["U1", "I1", "U2", "I2", "U3", "I3", "IN"]
            m.run(1)
            data = (await ws.receive_json(timeout=5))["data"]
            u1 = data["channels"]["U1"]
            assert len(u1) == 320 and data["sample_rate_hz"] == 8000
            assert 300 < max(u1) < 350 and -350 < min(u1) < -300  # 230 V RMS: 325 V peak

    serve(meter, test)


def test_a_rig_drives_a_meterd_process_over_tcp_with_the_client(tmp_path: Path) -> None:
    proc = MeterdProcess(tmp_path, speed="20")
    try:
        url = proc.view["links"]["api_url"]
        tokens = load_tokens(proc.state / "api-tokens.toml")
        assert proc.client.call("GET", "/api/tokens")["control"] == list(tokens.control)
        rig = MeterClient(url, token=tokens.control[0])
        assert rig.status()["serial"] == proc.view["serial"]
        rig.sim_set("A", voltage_v=210.0, current_a=8.0, power_factor="0.5L")
        with rig.watch_events() as events:
            assert rig.sim_fault("miso_high", duration_s=2)["fault"] == "miso_high"
            event = events.wait_for("MEASUREMENT_SYSTEM_ERROR", timeout_s=30)
        assert event["code"] == 16
        assert "meterd_metering_cycles_total" in rig.metrics()
        reader = MeterClient(url, token=tokens.read[0])
        assert reader.events(limit=5)
        with pytest.raises(ApiRefused) as err:
            reader.sim_fault_clear()
        assert err.value.status == 403
        with pytest.raises(ApiRefused) as err:
            MeterClient(url, token="x" * 32).status()
        assert err.value.status == 401
        assert ensure_tokens(proc.state / "api-tokens.toml", create=True) == tokens  # kept, not remade
    finally:
        assert proc.stop() == 0

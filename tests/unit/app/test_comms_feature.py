"""The comms feature in a whole simulated meter: modem faults never touch metering; with the real loop,
the stand-in ModemManager, cuttable loopback media and a head end, the meter switches media within the
configured time, back with hysteresis, reconnects the bearer, and records it all."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meterd.app import meterctl
from meterd.app.daemon import Daemon
from meterd.app.features import start_all
from meterd.app.features.comms import Comms, CommsSection, ModemSection
from meterd.app.sim_faults import KINDS
from meterd.core import event_codes as ec
from meterd.core.energy import Quantity
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.core.modem import Bearer, ModemState, ModemStatus, Registration, SimState, Technology
from meterd.core.reading import Channel
from meterd.runtime.media_uplink import MediaUplink
from meterd.services.modem import ModemSupervisor
from meterd.services.uplink import Uplink
from tests.simmeter import SimMeter, sim_config

MODEM = ModemSection(enabled=True, bus="sim", apn="iot.example", reconnect_min_s=2.0, reconnect_max_s=16.0,
                     connect_timeout_s=10.0, stable_s=30.0, poll_s=5.0, signal_rate_s=5)
FAST = dict(enabled=True, media=("ethernet", "cellular"), ethernet_source="127.0.0.2", check_period_s=1.0,
            recheck_s=0.5, confirm_failures=2, connect_timeout_s=0.5, standby_check_s=2.0, switch_back_s=5.0,
            switch_within_s=4.0, modem=MODEM)
ROOT = Path(__file__).resolve().parents[3]
REGISTERED = ModemStatus(state=ModemState.REGISTERED, sim=SimState.READY, registration=Registration.HOME,
                         technology=Technology.LTE, quality_pct=60)


def comms_section(**changes: object) -> CommsSection:
    return dataclasses.replace(CommsSection(), **{**FAST, "head_end": "127.0.0.1:9", **changes})


def communication_events(recorder: EventRecorder) -> list[str]:
    return [ec.lookup(e.code).name for e in recorder.log(LogId.COMMUNICATION).entries()]


def test_modem_faults_leave_metering_and_the_other_links_untouched(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path / "m")
    cfg = dataclasses.replace(cfg, features={**cfg.features, "comms": comms_section()})
    with_comms = Daemon(cfg)
    model = with_comms.build()
    model.start()
    ref = SimMeter(tmp_path / "ref")
    try:
        sup = with_comms.registry.need(ModemSupervisor, by="test")
        assert with_comms.registry.find(Uplink) is not None  # type: ignore[type-abstract]
        up = REGISTERED
        for second in range(190):
            minute, s = divmod(second, 60)
            if s == 0:  # every minute a change: bearer up, no SIM, not registered, bearer up
                fault = minute % 3
                if fault == 0:
                    up = dataclasses.replace(REGISTERED, bearer=Bearer(True, "wwan0", "10.1.1.2", 30))
                elif fault == 1:
                    up = dataclasses.replace(REGISTERED, sim=SimState.MISSING, state=ModemState.FAILED,
                                             failed_reason="sim-missing")
                else:
                    up = dataclasses.replace(REGISTERED, registration=Registration.SEARCHING)
                sup.observe(up)
            with_comms.step(1.0)
            ref.daemon.step(1.0)
        for q in (Quantity.ACTIVE_IMPORT, Quantity.APPARENT_IMPORT):
            assert model.registers.get(q, Channel.TOTAL) == ref.meter.registers.get(q, Channel.TOTAL) > 0
        names = communication_events(with_comms.registry.need(EventRecorder, by="test"))
        assert [n for n in names if n.startswith("MODEM_")] == ["MODEM_BEARER_UP", "MODEM_FAULT", "MODEM_BEARER_LOST",
                                                               "MODEM_FAULT", "MODEM_BEARER_UP"]
        assert [n for n in names if n.startswith("INTERFACE_")] == ["INTERFACE_OFF", "INTERFACE_ON"]
        status = with_comms.status_extras["modem"]()
        assert status["fault"] == "" and status["drops"] == 1 and status["connects"] == 2
        interfaces = with_comms.status_extras["interfaces"]()
        assert interfaces["modem"]["state"] == "on" and interfaces["modem"]["times_off"] == 1
    finally:
        with_comms.close()
        ref.close()


async def _until(cond: Callable[[], bool], step: Callable[[], None], timeout_s: float = 20.0,
                 uplink: MediaUplink | None = None) -> None:
    """Step meter time until ``cond``; with ``uplink``, every due health check is started and
    finished before the next step, so meter time never runs ahead of a check the loop is slow to
    finish (a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        step()
        await asyncio.sleep(0.02)
        if uplink is not None:
            uplink.start_due()
            while uplink.checking:
                assert time.monotonic() < deadline, "a health check did not finish"
                await asyncio.sleep(0.005)


def test_fallback_and_modem_end_to_end_with_the_stand_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = sim_config(tmp_path, dlms={"tcp_host": "127.0.0.1", "tcp_port": 0, "hdlc_port": "", "optical_port": ""},
                         ciu={"port": "off"})
        cfg = dataclasses.replace(cfg, features={**cfg.features,
                                                 "comms": comms_section(head_end=f"127.0.0.1:{port}")})
        daemon = Daemon(cfg)
        daemon.build().start()
        comms = daemon.registry.need(Comms, by="test")
        assert comms.modem is not None and comms.sim_modem is not None
        clock = daemon.clock
        assert clock is not None
        world = daemon.hardware.sim if daemon.hardware is not None else None
        assert world is not None

        def step() -> None:
            daemon.step(0.25)
        try:
            await start_all(daemon.context())
            sel, sup = comms.selector, comms.modem
            await _until(lambda: sup.connected and sel.health("cellular").healthy is True
                         and sel.state().up, step)
            assert sel.state().current == "ethernet" and sup.status.bearer.ipv4 == "127.0.0.3"
            # the primary is cut: the meter switches within switch_within_s of meter time
            undo = KINDS["medium_cut"].start(world, {"medium": "ethernet"})
            t_cut = clock.mono()
            await _until(lambda: sel.state().current == "cellular", step, uplink=comms.uplink)
            assert clock.mono() - t_cut <= 4.0
            reader, writer = await comms.uplink.open_stream("127.0.0.1", port, 1.0)
            assert writer.get_extra_info("sockname")[0] == "127.0.0.3"  # out of the cellular bearer
            writer.close()
            # the network drops the bearer: lost, reconnected after the back-off
            drop = KINDS["modem_bearer_drop"].start(world, {})
            await _until(lambda: not sup.connected, step)
            await _until(lambda: sup.connected and sel.state().up and sel.state().current == "cellular", step)
            drop()
            # the primary returns: back only after switch_back_s of good checks (the cellular being healthy)
            undo()
            t_back = clock.mono()
            await _until(lambda: sel.state().current == "ethernet", step, uplink=comms.uplink)
            assert clock.mono() - t_back >= 5.0
            names = communication_events(daemon.registry.need(EventRecorder, by="test"))
            assert names.count("MEDIUM_SWITCHED") == 2 and "MEDIUM_UNHEALTHY" in names
            assert names.count("MODEM_BEARER_LOST") == 1 and names.count("MODEM_BEARER_UP") == 2
            assert comms.sim_modem.stand_in.connects() == 2
            interfaces = daemon.status_extras["interfaces"]()
            assert interfaces["dlms_tcp"]["state"] == "on" and interfaces["dlms_tcp"]["times_off"] == 0
            assert interfaces["modem"]["state"] == "on" and interfaces["modem"]["times_off"] == 1
            # meterctl modem and /status show the same diagnostics
            sock = tmp_path / "api.sock"
            await daemon.api.start(sock)
            code = await asyncio.to_thread(meterctl.main, ["modem", "--socket", str(sock), "--json"])
            shown = json.loads(capsys.readouterr().out)
            assert code == 0 and shown["modem"]["bearer"]["ipv4"] == "127.0.0.3"
            assert shown["modem"]["registration"] == "home" and shown["modem"]["operator"]["name"] == "TheOperator"
            assert shown["modem"]["technology"] == "lte" and shown["modem"]["signal"]["rsrp_dbm"] == -95.0
            assert shown["media"]["current"] == "ethernet" and shown["modem"]["drops"] == 1
            _status, view = await asyncio.to_thread(meterctl.request, str(sock), "GET", "/status")
            assert view["modem"]["bearer"] == shown["modem"]["bearer"] and view["media"]["current"] == "ethernet"
        finally:
            await daemon.shutdown()
            server.close()
            await server.wait_closed()
        assert not comms.sim_modem.running and not comms.sim_modem.stand_in.bus.running
    asyncio.run(scenario())


def test_a_meter_without_python_dbusmock_loads_the_feature() -> None:
    """python-dbusmock (and dbus-python) are simulator and test dependencies: a Pi's meterd
    imports the feature without them."""
    code = ("import sys; sys.modules['dbus'] = None; sys.modules['dbusmock'] = None\n"
            "import meterd.app.features, meterd.app.features.comms, meterd.app.sim_faults\n"
            "assert 'hw.dbus_modem_mock' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr

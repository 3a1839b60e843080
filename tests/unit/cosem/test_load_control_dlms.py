"""Disconnect control (class 70), its script table (class 9) and the limiter (class 71) through
DLMS, driven by the gurux client (an implementation we did not write) over the TCP wrapper of
the whole simulated meter's own object registry; management association HLS-GMAC, throwaway
keys. Every class 70 transition a-h is observed over DLMS: a-d are carried out by the remote
methods, e-h by the button and the credit/limiter paths, as on a real meter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.objects import (
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSLimiter,
    GXDLMSRegister,
    GXDLMSScriptTable,
)

from meterd.app.features.dlms import registry_for
from meterd.core.disconnect import ControlState
from meterd.core.disconnect import DisconnectorEvent as Ev
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import make_keyring
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, make_client
from tests.dlms_harness import LoopThread, SocketIO
from tests.unit.app.test_load_control_feature import LcMeter

DC_LN, SCRIPTS_LN, LIMITER_LN = "0.0.96.3.10.255", "0.0.10.0.106.255", "0.0.17.0.0.255"


class Link:
    """The meter's registry served on a wrapper port; gurux sessions for SAP 1 and 17."""

    def __init__(self, meter: LcMeter) -> None:
        self.meter = meter
        self.store = MemoryCounterStore()
        self.loop = LoopThread()
        factory = build_session_factory(meter.meter, self.store, make_keyring(),
                                        ServerConfig(registry=registry_for(meter.daemon.context())))
        self.port = self.loop.tcp(factory)

    def session(self, sap: int) -> GuruxSession:
        ic = self.store.last_accepted("management/in") + 1
        io = SocketIO(self.port)
        gs = GuruxSession(make_client(sap, invocation_counter=ic), io.send, io.receive)
        gs.connect()
        return gs

    def stop(self) -> None:
        self.loop.stop()


@pytest.fixture
def link(tmp_path: Path):
    meter = LcMeter(tmp_path / "m", threshold_normal=5000.0, min_over_threshold_s=5.0,
                    min_under_threshold_s=5.0, reconnect_delay_s=10.0)
    ln = Link(meter)
    yield ln
    ln.stop()
    meter.close()


def state(gs: GuruxSession) -> tuple[bool, int, int]:
    dc = GXDLMSDisconnectControl(DC_LN)
    return bool(gs.read(dc, 2)), int(gs.read(dc, 3)), int(gs.read(dc, 4))


def metered_current_a(gs: GuruxSession) -> float:
    reg = GXDLMSRegister("1.0.31.7.0.255")
    gs.read(reg, 3)
    return float(gs.read(reg, 2))


def set_mode(gs: GuruxSession, mode: int) -> None:
    dc = GXDLMSDisconnectControl(DC_LN)
    dc.controlMode = mode
    gs.write(dc, 4)


def call(gs: GuruxSession, method: int) -> Any:
    return gs.method(GXDLMSDisconnectControl(DC_LN), method, 0, DataType.INT8)


C, D, R = int(ControlState.CONNECTED), int(ControlState.DISCONNECTED), int(ControlState.READY_FOR_RECONNECTION)


def test_every_class_70_transition_over_dlms(link):
    m, lc = link.meter, link.meter.f.lc
    gs = link.session(1)
    try:
        assert state(gs) == (True, C, 5)
        set_mode(gs, 2)                       # 2: b c f g a e
        assert state(gs) == (True, C, 2)
        call(gs, 1)                           # b: connected -> disconnected
        m.run(2)
        assert state(gs) == (False, D, 2) and metered_current_a(gs) == 0.0
        call(gs, 2)                           # a: disconnected -> connected
        m.run(2)
        assert state(gs) == (True, C, 2) and metered_current_a(gs) == pytest.approx(5.0, rel=0.01)
        set_mode(gs, 1)                       # 1: b c f g d e
        call(gs, 1)
        m.run(2)
        call(gs, 2)                           # d: disconnected -> ready
        m.run(2)
        assert state(gs) == (False, R, 1)
        m.call("POST", "/relay/button", {})   # e: ready -> connected (customer button)
        m.run(2)
        assert state(gs) == (True, C, 1)
        m.call("POST", "/relay/button", {"long": True})  # f: connected -> ready (long press)
        m.run(2)
        assert state(gs) == (False, R, 1)
        call(gs, 1)                           # c: ready -> disconnected
        m.run(2)
        assert state(gs) == (False, D, 1)
        set_mode(gs, 5)                       # 5: b c f g d e h
        call(gs, 2)                           # d
        m.run(1)
        m.call("POST", "/relay/button", {})   # e
        m.run(2)
        assert state(gs) == (True, C, 5)
        lc.credit_disconnect()                # g: connected -> ready (local)
        m.run(2)
        assert state(gs) == (False, R, 5) and metered_current_a(gs) == 0.0
        lc.credit_reconnect()                 # h: ready -> connected (local)
        m.run(2)
        assert state(gs) == (True, C, 5) and metered_current_a(gs) == pytest.approx(5.0, rel=0.01)
    finally:
        gs.close()
    transitions = [e["transition"] for e in m.f.events.recent if "transition" in e]
    assert set(transitions) == set("abcdefgh")
    assert lc.status().operation_count == 8


def test_refusals_over_dlms(link):
    m = link.meter
    gs = link.session(1)
    try:
        set_mode(gs, 0)                       # mode 0: always connected, no transition
        with pytest.raises(DlmsClientError):
            call(gs, 1)
        m.run(2)
        assert state(gs) == (True, C, 0)
        with pytest.raises(DlmsClientError):
            set_mode(gs, 7)
        set_mode(gs, 1)
        call(gs, 1)
        m.run(2)
        with pytest.raises(DlmsClientError):  # mode 1 has no direct reconnection (a): ready, not connected
            dc = GXDLMSDisconnectControl(DC_LN)
            dc.controlState = C
            gs.write(dc, 3)
        assert state(gs) == (False, D, 1)
    finally:
        gs.close()
    reader = link.session(17)
    try:
        assert state(reader) == (False, D, 1)  # the reader reads
        with pytest.raises(DlmsClientError):
            call(reader, 2)
        with pytest.raises(DlmsClientError):
            set_mode(reader, 2)
        m.run(2)
        assert state(reader) == (False, D, 1) and m.f.lc.status().operation_count == 1
    finally:
        reader.close()
    public = link.session(16)
    try:
        with pytest.raises(DlmsClientError):
            state(public)
    finally:
        public.close()


def test_writes_of_output_state_and_control_state_go_through_the_table(link):
    m = link.meter
    gs = link.session(1)
    try:
        dc = GXDLMSDisconnectControl(DC_LN)
        dc.outputState = False
        gs.write(dc, 2)                       # = remote_disconnect (b)
        m.run(2)
        assert state(gs) == (False, D, 5)
        dc.controlState = R
        gs.write(dc, 3)                       # = remote_reconnect (d in mode 5)
        m.run(2)
        assert state(gs) == (False, R, 5)
        set_mode(gs, 4)                       # 4: b c g a e
        dc.outputState = True
        with pytest.raises(DlmsClientError):  # from ready, a remote reconnect cannot connect
            gs.write(dc, 2)
        dc.controlState = D
        gs.write(dc, 3)                       # c
        dc.outputState = True
        gs.write(dc, 2)                       # a
        m.run(2)
        assert state(gs) == (True, C, 4)
    finally:
        gs.close()


def test_script_table_executes_the_remote_methods(link):
    m = link.meter
    gs = link.session(1)
    try:
        table = GXDLMSScriptTable(SCRIPTS_LN)
        scripts = gs.read_raw(table, 2)
        assert [int(s[0]) for s in scripts] == [1, 2]
        assert int(scripts[0][1][0][1]) == 70 and bytes(scripts[0][1][0][2]) == bytes([0, 0, 96, 3, 10, 255])
        gs.method(table, 1, 1, DataType.UINT16)
        m.run(2)
        assert state(gs)[:2] == (False, D)
        with pytest.raises(DlmsClientError):
            gs.method(table, 1, 9, DataType.UINT16)
    finally:
        gs.close()


def test_limiter_attributes_and_threshold_write(link):
    m = link.meter
    gs = link.session(1)
    try:
        lim = GXDLMSLimiter(LIMITER_LN)
        monitored = gs.read_raw(lim, 2)
        assert int(monitored[0]) == 3 and bytes(monitored[1]) == bytes([1, 0, 1, 7, 0, 255]) and monitored[2] == 2
        assert gs.read_raw(lim, 4) == 50_000  # 5000 W in 0.1 W
        assert gs.read_raw(lim, 3) == 50_000
        assert gs.read_raw(lim, 6) == 5 and gs.read_raw(lim, 7) == 5
        assert gs.read_raw(lim, 10) is False
        actions = gs.read_raw(lim, 11)
        assert bytes(actions[0][0]) == bytes([0, 0, 10, 0, 106, 255]) and int(actions[0][1]) == 3
        lim.thresholdNormal = 30_000          # 3000 W: the 3.45 kW load is now too much
        lim.setDataType(4, DataType.UINT32)
        gs.write(lim, 4)
        assert m.f.lc.limiter.config.threshold_normal == pytest.approx(3000.0)
        lim.minOverThresholdDuration = 2
        gs.write(lim, 6)
        m.run(4)
        assert state(gs)[:2] == (False, R)
        assert int(Ev.LIMITER_THRESHOLD_CHANGED) in m.codes()
        status = GXDLMSData("0.0.96.5.0.255")
        assert int(gs.read(status, 2)) & (1 << 10)  # relay_open bit of the status word
    finally:
        gs.close()
    reader = link.session(17)
    try:
        lim = GXDLMSLimiter(LIMITER_LN)
        lim.thresholdNormal = 90_000
        lim.setDataType(4, DataType.UINT32)
        with pytest.raises(DlmsClientError):
            reader.write(lim, 4)
        assert m.f.lc.limiter.config.threshold_normal == pytest.approx(3000.0)
    finally:
        reader.close()


def test_limiter_settings_written_over_dlms_survive_a_restart(tmp_path):
    settings = {"threshold_normal": 5000.0, "min_over_threshold_s": 5.0, "min_under_threshold_s": 5.0}
    ln = Link(LcMeter(tmp_path / "m", **settings))
    try:
        gs = ln.session(1)
        try:
            lim = GXDLMSLimiter(LIMITER_LN)
            lim.thresholdNormal = 30_000      # 3000 W
            lim.setDataType(4, DataType.UINT32)
            gs.write(lim, 4)
            lim.minOverThresholdDuration = 2
            gs.write(lim, 6)
        finally:
            gs.close()
    finally:
        ln.stop()
        ln.meter.close()
    ln = Link(LcMeter(tmp_path / "m", **settings))    # the configuration still says 5000 W, 5 s
    try:
        cfg = ln.meter.f.lc.limiter.config
        assert cfg.threshold_normal == pytest.approx(3000.0) and cfg.min_over_threshold_duration_s == 2.0
        gs = ln.session(1)
        try:
            lim = GXDLMSLimiter(LIMITER_LN)
            assert gs.read_raw(lim, 4) == 30_000 and gs.read_raw(lim, 6) == 2
            ln.meter.run(4)                    # 3.45 kW > 3 kW for more than 2 s
            assert state(gs)[:2] == (False, R)
        finally:
            gs.close()
    finally:
        ln.stop()
        ln.meter.close()

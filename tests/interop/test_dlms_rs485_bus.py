"""Two meters on one RS-485 bus (in-process sessions on :class:`tests.rs485_bus.MultiDropBus`):
each answers only its own physical HDLC address, a gurux head end reads both in turn, a
broadcast is answered by none, and a head end polling one meter never keeps the other's link
open."""

from __future__ import annotations

import dataclasses

import pytest
from gurux_dlms import GXDLMSClient
from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.cosem.sessions import HdlcSession
from meterd.proto import hdlc
from meterd.proto.hdlc import Frame, HdlcParameters, LinkState, encode_address
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.rs485_bus import MultiDropBus, NoAnswer

pytestmark = pytest.mark.interop

ADDRESSES = {"A": 0x23, "B": 0x24}
CLIENT = encode_address(16, None, 1)


def _meter(name: str) -> tuple[FakeMeter, HdlcSession]:
    model = FakeMeter()
    model.identity = dataclasses.replace(model.identity, serial=f"PMM12210000{name}",
                                         logical_device_name=f"PMM00012210000{ord(name)}")
    params = HdlcParameters(physical_address=ADDRESSES[name], max_info_tx=2030, max_info_rx=2030,
                            window_tx=7, window_rx=7)
    factory = build_session_factory(model, MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", link_name="rs485", hdlc_params=params,
                                                 inactivity_timeout_s=120.0))
    session = factory()
    assert isinstance(session, HdlcSession)
    return model, session


@pytest.fixture
def bus() -> MultiDropBus:
    line = MultiDropBus(baud=9600)
    for name in ADDRESSES:
        line.attach(name, _meter(name)[1])
    return line


def _head_end(bus: MultiDropBus, physical: int, sap: int = 17, max_info: int = 128) -> GuruxSession:
    client = make_client(sap, hdlc=True, max_info=max_info)
    client.serverAddress = GXDLMSClient.getServerAddress(1, physical)
    return GuruxSession(client, bus.send, bus.receive)


@pytest.mark.parametrize("max_info", [128, 2030])
def test_a_head_end_reads_both_meters_each_answering_its_own_address(bus, max_info):
    for name, physical in ADDRESSES.items():
        start = len(bus.answered_by)
        gs = _head_end(bus, physical, max_info=max_info)
        gs.connect()
        ldn = GXDLMSData("0.0.42.0.0.255")
        gs.read(ldn, 2)
        assert bytes(ldn.value) == f"PMM00012210000{ord(name)}".encode()
        reg = GXDLMSRegister("1.0.1.8.0.255")
        gs.read(reg, 3)
        gs.read(reg, 2)
        assert reg.value > 0
        if max_info == 2030:
            objects = gs.object_list()  # several kB: one 2030-octet segment window after another
            assert len(objects) >= 90
            assert bus.meters[name].link.max_info_tx == 2030  # type: ignore[attr-defined]
        gs.close()
        assert set(bus.answered_by[start:]) == {name}  # the other meter never spoke
    assert bus.collisions == 0


def test_a_broadcast_is_answered_by_none(bus):
    everyone = encode_address(1, 0x7F, 2)
    for control, info in ((0x93, b""), (0x13, hdlc.LLC_REQUEST + bytes.fromhex("c001c100080000010000ff0200")),
                          (0x53, b"")):
        bus.send(Frame(everyone, CLIENT, control, info).encode())
        with pytest.raises(NoAnswer):
            bus.receive()
    for session in bus.meters.values():
        assert session.link.broadcast_frames == 3  # type: ignore[attr-defined]
        assert session.link.state is LinkState.NDM  # type: ignore[attr-defined]
    assert bus.answered_by == []


def test_a_one_octet_address_names_no_meter_of_the_bus(bus):
    bus.send(Frame(encode_address(1, None, 1), CLIENT, 0x93).encode())
    with pytest.raises(NoAnswer):
        bus.receive()


def test_polling_one_meter_never_keeps_the_others_link_open(bus):
    a, b = bus.meters["A"], bus.meters["B"]
    _head_end(bus, ADDRESSES["B"]).connect()
    opened = bus.now_s
    gs = _head_end(bus, ADDRESSES["A"])
    gs.connect()
    reg = GXDLMSRegister("1.0.1.8.0.255")
    while bus.now_s < opened + 130.0:  # the head end polls A every 5 s, and noise comes in between
        gs.read(reg, 2)
        bus.send(b"\x7e\xa7\xff\x03\x23")  # a corrupt header on the line
        bus.advance(5.0)
    assert b.deadline_s is not None and b.deadline_s <= opened + 120.0
    assert b.link.state is LinkState.NRM  # type: ignore[attr-defined]  # the shell times it out at the deadline
    assert a.deadline_s is not None and a.deadline_s > bus.now_s - 10.0

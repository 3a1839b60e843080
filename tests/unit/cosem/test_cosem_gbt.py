"""General block transfer (meterd.cosem.gbt, meterd.cosem.server): granted only when the client
proposes it, long responses streamed in windows and long requests reassembled, octet by octet
and end to end with the gurux client (a library we did not write) over the TCP wrapper
in-process, ciphered and not; a fuzz of the block decoder and the transfer state."""

from __future__ import annotations

from typing import Any

import pytest
from gurux_dlms import GXDLMSSettings
from gurux_dlms.enums import Conformance, DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.cosem import acse
from meterd.cosem.errors import ApduError
from meterd.cosem.gbt import WAIT, Deliver, GbtTransfer, Send
from meterd.cosem.xdlms_codec import GbtBlock, parse_gbt
from tests.dlms_fakes import WrapperRig
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, Spy, connect_in_memory, make_client

LP_BUFFER = bytes.fromhex("c001c1 0007 0100630100ff 02 00".replace(" ", ""))


class _GbtClientSettings(GXDLMSSettings):  # type: ignore[misc]
    """gurux's client numbers its acknowledgements from ``settings.blockNumber``, which its
    Python port never defines; its block index is that number."""

    blockNumber = property(lambda self: self.blockIndex)  # noqa: N815 - gurux's name


def _gbt_client(rig: WrapperRig, sap: int) -> tuple[GuruxSession, Spy]:
    spy = Spy(rig.factory())
    client = make_client(sap)
    # general block transfer in place of GET data blocks: long answers then come in GBT blocks
    client.proposedConformance = ((client.proposedConformance | Conformance.GENERAL_BLOCK_TRANSFER)
                                  & ~Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ)
    client.settings.__class__ = _GbtClientSettings
    gs = GuruxSession(client, spy.send, spy.receive)
    gs.connect()
    return gs, spy


def _blocks(apdus: Any) -> list[GbtBlock]:
    return [parse_gbt(a) for a in apdus]


# --- the transfer, octet by octet ------------------------------------------------------------------


def test_a_block_encodes_as_the_green_book_says():
    block = GbtBlock(last=True, streaming=False, window=7, number=2, ack=5, data=b"\xAA\xBB")
    assert block.encode() == bytes.fromhex("e0 87 0002 0005 02 aabb".replace(" ", ""))
    assert parse_gbt(block.encode()) == block
    assert GbtBlock(False, True, 1, 1, 0, b"").encode() == bytes.fromhex("e0410001000000")
    for bad in ("e0", "e0010001000105aa", "c0010001000100"):
        with pytest.raises(ApduError):
            parse_gbt(bytes.fromhex(bad))


def test_a_long_response_streams_a_window_at_a_time_and_a_lost_block_is_sent_again():
    gbt = GbtTransfer(window=8, block_size=20, max_request=100)
    first = _blocks(gbt.send(bytes(range(55))).apdus)
    assert [(b.number, b.streaming, b.last, len(b.data)) for b in first] == [(1, False, False, 10)]  # window 1
    ack = GbtBlock(False, False, 3, 1, 1, b"")  # the client received block 1 and has a window of 3
    window = _blocks(gbt.receive(ack).apdus)  # type: ignore[union-attr]
    assert [(b.number, b.streaming, b.ack) for b in window] == [(2, True, 1), (3, True, 1), (4, False, 1)]
    lost = GbtBlock(False, False, 3, 2, 2, b"")  # block 3 and 4 lost: from 3 again
    again = _blocks(gbt.receive(lost).apdus)  # type: ignore[union-attr]
    assert [b.number for b in again] == [3, 4, 5] and again[0].ack == 2
    rest = _blocks(gbt.receive(GbtBlock(False, False, 3, 3, 5, b"")).apdus)  # type: ignore[union-attr]
    assert [(b.number, b.last) for b in rest] == [(6, True)]
    assert b"".join(b.data for b in first + window[:1] + again + rest) == bytes(range(55))
    assert gbt.receive(GbtBlock(False, False, 3, 4, 6, b"")) == WAIT and not gbt.sending


def test_a_long_request_is_acknowledged_block_by_block_or_per_window_and_delivered_whole():
    gbt = GbtTransfer(window=4, block_size=64, max_request=100)
    ack = gbt.receive(GbtBlock(False, False, 1, 1, 0, b"\xc0\x01"))
    assert isinstance(ack, Send) and _blocks(ack.apdus)[0].ack == 1 and not _blocks(ack.apdus)[0].data
    assert gbt.receive(GbtBlock(False, True, 1, 2, 0, b"\xc1")) == WAIT  # streamed: no answer yet
    assert gbt.receive(GbtBlock(True, False, 1, 3, 0, b"\x00")) == Deliver(b"\xc0\x01\xc1\x00", 3)
    with pytest.raises(ApduError):
        gbt.receive(GbtBlock(False, False, 1, 2, 0, b"\x00"))  # out of sequence: the transfer ends
    gbt.receive(GbtBlock(False, False, 1, 1, 0, bytes(60)))
    with pytest.raises(ApduError):
        gbt.receive(GbtBlock(False, False, 1, 2, 0, bytes(60)))  # beyond max_request


# --- served by the meter ---------------------------------------------------------------------------


def test_general_block_transfer_is_granted_only_when_proposed():
    rig = WrapperRig()
    plain, _ = connect_in_memory(rig.factory(), 17)
    assert not plain.client.negotiatedConformance & Conformance.GENERAL_BLOCK_TRANSFER
    gs, _ = _gbt_client(rig, 17)
    assert gs.client.negotiatedConformance & Conformance.GENERAL_BLOCK_TRANSFER
    assert acse.SERVER_CONFORMANCE & acse.CONF_GENERAL_BLOCK_TRANSFER


def test_with_get_data_blocks_also_proposed_long_answers_stay_in_get_data_blocks():
    rig = WrapperRig()
    spy = Spy(rig.factory())
    client = make_client(17)
    client.proposedConformance |= Conformance.GENERAL_BLOCK_TRANSFER  # and block transfer with GET
    gs = GuruxSession(client, spy.send, spy.receive)
    gs.connect()
    assert gs.client.negotiatedConformance & Conformance.GENERAL_BLOCK_TRANSFER
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    assert len(gs.read(pg, 2)) == 96
    assert all(a[:2] == b"\xc4\x02" for a in spy.received[-3:])


def test_a_ciphered_long_read_comes_in_gbt_blocks_that_gurux_reassembles():
    rig = WrapperRig()
    gs, spy = _gbt_client(rig, 1)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    assert len(gs.read(pg, 2)) == 96
    blocks = [b for b in spy.received if b[0] == 0xE0]
    assert len(blocks) >= 3 and all(len(b) <= 1024 for b in blocks)
    assert blocks[-1][1] & 0x80  # the last block says so
    assert parse_gbt(blocks[0]).data[0] == 0xDB  # GBT carries the general-glo-ciphered APDU, cut
    assert len(gs.read(GXDLMSClock(), 2).toFormatString()) > 0  # short answers come whole


def test_a_long_request_in_gbt_blocks_is_reassembled_and_answered():
    rig = WrapperRig()
    gs, spy = _gbt_client(rig, 17)
    name = GXDLMSData("0.0.42.0.0.255")
    name.value = bytearray(3000)
    name.setDataType(2, DataType.OCTET_STRING)
    with pytest.raises(DlmsClientError, match="3"):  # three blocks, one SET: the name is not writable
        gs.write(name, 2)
    assert sum(1 for a in spy.sent if a[0] == 0xE0) == 3
    assert spy.received[-1].endswith(bytes.fromhex("c501c103"))


def test_the_server_streams_its_window_when_the_client_has_one():
    rig = WrapperRig()
    gs, spy = _gbt_client(rig, 17)
    server = spy.session.server
    first = server.handle_apdus(17, LP_BUFFER)
    assert len(first) == 1 and parse_gbt(first[0]).number == 1
    window = _blocks(server.handle_apdus(17, GbtBlock(False, False, 4, 1, 1, b"").encode()))
    assert [(b.number, b.streaming) for b in window] == [(2, True), (3, True), (4, True), (5, False)]
    assert window[0].window == 8  # the meter's own receive window on the wrapper
    rest = _blocks(server.handle_apdus(17, GbtBlock(False, False, 4, 2, 5, b"").encode()))
    assert [(b.number, b.last) for b in rest] == [(6, True)]


@settings(max_examples=50, deadline=None)
@given(blocks=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 6), st.integers(0, 6), st.binary(max_size=40)),
                       max_size=6), cut=st.integers(0, 60))
def test_fuzz_gbt_blocks_get_clean_answers_and_the_association_survives(blocks, cut):
    rig = WrapperRig()
    gs, spy = _gbt_client(rig, 17)
    server = spy.session.server
    for control, number, ack, data in blocks:
        raw = bytes((0xE0, control)) + number.to_bytes(2, "big") + ack.to_bytes(2, "big") + bytes((len(data),)) + data
        for answer in server.handle_apdus(17, raw[:6 + cut]):
            assert answer[0] in (0xE0, 0xD8)
    assert server.associated
    assert server.handle_apdus(17, bytes.fromhex("c001c1000100002a0000ff0200"))[0].endswith(
        b"PMM0001221000042")
    assert rig.meter.clock_sets == []

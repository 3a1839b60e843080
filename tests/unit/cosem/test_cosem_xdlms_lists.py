"""GET/SET/ACTION-with-list and SET with data blocks (meterd.cosem.xdlms, meterd.cosem.xdlms_codec):
the encodings octet by octet, each element answered on its own with its own access rights, long
answers in GET data blocks, and the gurux client (a library we did not write) reading and writing
lists over the TCP wrapper in-process; a fuzz of the new decoders."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import pytest
from gurux_dlms import GXDateTime, GXReplyData
from gurux_dlms.enums import Conformance, DataType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric, GXDLMSRegister
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterd.cosem import xdlms_codec as codec
from meterd.cosem.axdr import read_ber_length
from meterd.cosem.errors import ApduError
from tests.dlms_fakes import UTC, WrapperRig
from tests.dlms_gurux_client import DlmsClientError, connect_in_memory

CLOCK = bytes.fromhex("0008 0000010000ff 02 00".replace(" ", ""))
ENERGY = bytes.fromhex("0003 0100010800ff 02 00".replace(" ", ""))
LDN = bytes.fromhex("0001 00002a0000ff 02 00".replace(" ", ""))
SECRET = bytes.fromhex("000f 0000280000ff 07 00".replace(" ", ""))  # the association's secret: never served
UNKNOWN = bytes.fromhex("0001 010203040506 02 00".replace(" ", ""))


def _get_list(*items: bytes, invoke: int = 0xC1) -> bytes:
    return bytes((0xC0, 0x03, invoke, len(items))) + b"".join(items)


def _session(sap: int = 17) -> Any:
    rig = WrapperRig()
    session = rig.factory()
    connect_in_memory(session, sap)
    return rig, session.server


# --- codec -----------------------------------------------------------------------------------------


def test_data_end_skips_every_a_xdr_type_and_refuses_nonsense():
    assert codec.data_end(b"\x00", 0) == 1
    assert codec.data_end(bytes.fromhex("0202 1100 0903616263"), 0) == 9
    assert codec.data_end(bytes.fromhex("0402c0"), 0) == 3  # bit-string of 2 bits: 1 octet
    assert codec.data_end(bytes.fromhex("0101 0a00 ff"), 0) == 4
    for bad in ("", "13", "09", "0905616263", "0105", "0201", "ff", "06000000"):
        with pytest.raises(ApduError):
            codec.data_end(bytes.fromhex(bad), 0)
    with pytest.raises(ApduError):
        codec.data_end(b"\x02\x01" * 40 + b"\x00", 0)  # nested too deep


def test_with_list_requests_decode_to_their_normal_requests():
    request = codec.parse_get_with_list(_get_list(CLOCK, LDN))
    assert request.items == (CLOCK, LDN)
    assert codec.normal_request(request, 1) == bytes.fromhex("c001c1") + LDN
    setlist = bytes.fromhex("c104c202") + CLOCK + ENERGY + bytes.fromhex("02 0600000005 1100".replace(" ", ""))
    request = codec.parse_set_with_list(setlist)
    assert request.values == (bytes.fromhex("0600000005"), b"\x11\x00")
    assert codec.normal_request(request, 0) == bytes.fromhex("c101c2") + CLOCK + bytes.fromhex("0600000005")
    action = bytes.fromhex("c303c302 0008 0000010000ff 06 0008 0000010000ff 03 02 100001 00".replace(" ", ""))
    request = codec.parse_action_with_list(action)
    assert codec.normal_request(request, 0) == bytes.fromhex("c301c3 0008 0000010000ff 06 01 100001".replace(" ", ""))
    assert codec.normal_request(request, 1) == bytes.fromhex("c301c3 0008 0000010000ff 03 01 00".replace(" ", ""))


def test_with_list_responses_and_data_blocks_octet_by_octet():
    assert codec.get_with_list_response(0xC1, [b"\x00\x11\x05", b"\x01\x03"]) == bytes.fromhex("c403c102 001105 0103"
                                                                                               .replace(" ", ""))
    assert codec.set_with_list_response(0xC1, [0, 3]) == bytes.fromhex("c505c1020003")
    assert codec.action_with_list_response(0xC1, [b"\x00\x00", b"\x03\x00"]) == bytes.fromhex("c703c10200000300")
    assert codec.get_datablock_response(0xC1, False, 1, b"\xAA") == bytes.fromhex("c402c1 00 00000001 00 01 aa"
                                                                                 .replace(" ", ""))
    assert codec.get_datablock_error(0xC1, 2, 15) == bytes.fromhex("c402c1 01 00000002 01 0f".replace(" ", ""))
    assert codec.set_block_ack(0xC1, 3) == bytes.fromhex("c502c100000003")
    assert codec.set_last_block_response(0xC1, 0, 4) == bytes.fromhex("c503c10000000004")
    assert codec.set_last_block_with_list_response(0xC1, [0, 3], 2) == bytes.fromhex("c504c102000300000002")
    block = codec.parse_set_block(bytes.fromhex("c102c1") + CLOCK + bytes.fromhex("00 00000001 03 090141".replace(" ",
                                                                                                                 "")))
    assert (block.items, block.last, block.number, block.raw) == ((CLOCK,), False, 1, b"\x09\x01\x41")


@pytest.mark.parametrize("apdu", [
    "c003c1", "c003c100", "c003c141" + "00" * 9, "c003c101" + "0008 0000010000ff 02 01".replace(" ", ""),
    "c003c102" + CLOCK.hex(), "c003c101" + CLOCK.hex() + "00", "c104c101" + CLOCK.hex() + "02 1100 1100".replace(" ", ""),
    "c303c101" + CLOCK[:8].hex(), "c102c1" + CLOCK.hex() + "00 000001", "c102c1" + CLOCK.hex() + "02 00000001 0100",
    "c103c1 00 00000002 05 0102".replace(" ", ""),
])
def test_truncated_oversized_and_nonsense_lists_are_refused_by_the_decoders(apdu):
    raw = bytes.fromhex(apdu)
    parse = {(0xC0, 3): codec.parse_get_with_list, (0xC1, 4): codec.parse_set_with_list,
             (0xC3, 3): codec.parse_action_with_list}.get((raw[0], raw[1]), codec.parse_set_block)
    with pytest.raises(ApduError):
        parse(raw)


# --- served by the meter ---------------------------------------------------------------------------


def test_get_with_list_answers_each_element_with_its_own_access_rights():
    _, server = _session(17)
    answer = server.handle_apdu(17, _get_list(CLOCK, ENERGY, SECRET, UNKNOWN, LDN))
    assert answer[:4] == bytes.fromhex("c403c105")
    assert answer[4:6] == b"\x00\x09"  # the clock's date-time
    assert bytes.fromhex("0103 0104") in answer  # secret denied, unknown object undefined
    assert answer.endswith(b"\x00\x09\x10PMM0001221000042")
    public = _session(16)[1]  # the public client may not read the energy register
    answer = public.handle_apdu(16, _get_list(ENERGY, LDN))
    assert answer.startswith(bytes.fromhex("c403c1020103"))


def test_set_and_action_with_list_are_answered_per_element():
    rig, server = _session(1)
    new_time = bytes.fromhex("090c 07ea 03 02 ff 0c 00 00 00 8000 00".replace(" ", ""))
    register = bytes.fromhex("0003 0100010800ff 02 00".replace(" ", ""))
    answer = server._serve_plain(bytes.fromhex("c104c102") + CLOCK + register + b"\x02" + new_time
                                 + bytes.fromhex("0600000005"))
    assert answer == bytes.fromhex("c505c1020003")  # the clock written, the register never writable
    assert rig.meter.clock_sets[-1][0] == dt.datetime(2026, 3, 2, 12, tzinfo=UTC)
    shift = bytes.fromhex("0008 0000010000ff 06".replace(" ", ""))
    unknown = bytes.fromhex("0008 0000010000ff 09".replace(" ", ""))
    answer = server._serve_plain(bytes.fromhex("c303c302") + shift + unknown + bytes.fromhex("02 10000a 100000"
                                                                                             .replace(" ", "")))
    assert answer[:4] == bytes.fromhex("c703c302") and answer[4:6] == b"\x00\x00" and answer[6] != 0


def test_a_long_get_with_list_answer_goes_out_in_data_blocks_and_a_wrong_block_aborts_it():
    _, server = _session(17)
    lp = bytes.fromhex("0007 0100630100ff 02 00".replace(" ", ""))
    first = server.handle_apdu(17, _get_list(lp, CLOCK))
    assert first[:4] == bytes.fromhex("c402c100") and first[4:8] == b"\x00\x00\x00\x01"
    raw = bytearray()
    answer, number = first, 1
    while True:
        n, pos = read_ber_length(answer, 9)  # after tag, choice, invoke-id, last, number, choice
        raw += answer[pos:pos + n]
        if answer[3] == 1:
            break
        answer = server.handle_apdu(17, bytes.fromhex("c002c1") + struct.pack(">I", number))
        number += 1
    assert raw[0] == 2 and raw[1:3] == b"\x00\x01"  # two results, the first an array
    assert raw.endswith(b"\x00\x09\x0c" + raw[-12:])
    server.handle_apdu(17, _get_list(lp, CLOCK))
    aborted = server.handle_apdu(17, bytes.fromhex("c002c1") + struct.pack(">I", 7))
    assert aborted == codec.get_datablock_error(0xC1, 1, 15)


def test_set_in_data_blocks_is_reassembled_and_a_wrong_block_number_refused():
    rig, server = _session(1)
    new_time = bytes.fromhex("090c 07ea 03 03 ff 0c 00 00 00 8000 00".replace(" ", ""))
    first = bytes.fromhex("c102c1") + CLOCK + b"\x00\x00\x00\x00\x01\x05" + new_time[:5]
    assert server._serve_plain(first) == codec.set_block_ack(0xC1, 1)
    last = bytes.fromhex("c103c1 01 00000002".replace(" ", "")) + bytes((len(new_time) - 5,)) + new_time[5:]
    assert server._serve_plain(last) == codec.set_last_block_response(0xC1, 0, 2)
    assert rig.meter.clock_sets[-1][0] == dt.datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert server._serve_plain(first) == codec.set_block_ack(0xC1, 1)
    wrong = bytes.fromhex("c103c1 01 00000005".replace(" ", "")) + bytes((len(new_time) - 5,)) + new_time[5:]
    assert server._serve_plain(wrong) == codec.set_last_block_response(0xC1, 19, 5)
    assert server._serve_plain(last) == codec.set_last_block_response(0xC1, 18, 2)  # no transfer any more
    assert len(rig.meter.clock_sets) == 1


def test_set_in_blocks_longer_than_the_reassembly_limit_is_aborted():
    _, server = _session(1)
    chunk = bytes(900)
    answer = server._serve_plain(bytes.fromhex("c102c1") + CLOCK + b"\x00\x00\x00\x00\x01\x82\x03\x84" + chunk)
    number = 1
    while answer == codec.set_block_ack(0xC1, number):
        number += 1
        answer = server._serve_plain(bytes.fromhex("c103c100") + struct.pack(">I", number) + b"\x82\x03\x84" + chunk)
    assert answer == codec.set_last_block_response(0xC1, 17, number)
    assert number * 900 > 0xFFFF


# --- the gurux client ------------------------------------------------------------------------------


class _WriteItem:
    """What gurux's ``writeList`` reads of an item."""

    def __init__(self, target: Any, index: int) -> None:
        self.target, self.index, self.selector, self.parameters = target, index, 0, None

    def getDataType(self) -> Any:
        return self.target.getDataType(self.index)


def test_gurux_reads_and_writes_lists_over_the_wrapper():
    rig = WrapperRig()
    reader, _ = connect_in_memory(rig.factory(), 17)
    assert reader.client.negotiatedConformance & Conformance.MULTIPLE_REFERENCES
    clock, energy, ldn = GXDLMSClock(), GXDLMSRegister("1.0.1.8.0.255"), GXDLMSData("0.0.42.0.0.255")
    reply = GXReplyData()
    for messages in reader.client.readList([(clock, 2), (energy, 2), (ldn, 2)]):
        reader._block(messages, reply)
    assert reply.value[1:] == [rig.meter.registers[next(iter(rig.meter.registers))], bytearray(b"PMM0001221000042")]
    reply = GXReplyData()
    for messages in reader.client.readList([(GXDLMSProfileGeneric("1.0.99.1.0.255"), 2), (clock, 2)]):
        reader._block(messages, reply)  # longer than the PDU: GET data blocks
    assert len(reply.value[0]) == 96
    manager, _ = connect_in_memory(rig.factory(), 1)
    clock.time = GXDateTime(dt.datetime(2026, 3, 4, 12, tzinfo=UTC))
    energy.value = 5
    energy.setDataType(2, DataType.UINT32)
    with pytest.raises(DlmsClientError, match="3"):  # the register is never writable, the clock is
        manager._block(manager.client.writeList([_WriteItem(clock, 2), _WriteItem(energy, 2)]), GXReplyData())
    assert rig.meter.clock_sets[-1][0] == dt.datetime(2026, 3, 4, 12, tzinfo=UTC)


# --- fuzz ------------------------------------------------------------------------------------------

_PREFIXES = [bytes.fromhex(h) for h in ("c003c1", "c104c1", "c303c1", "c102c1", "c103c1", "c105c1", "c002c1")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=80),
       items=st.lists(st.sampled_from([CLOCK, LDN, ENERGY, SECRET, UNKNOWN]), max_size=4),
       cut=st.integers(min_value=0, max_value=120))
def test_fuzz_lists_and_blocks_get_a_clean_answer_and_change_nothing(prefix, body, items, cut):
    rig, server = _session(17)  # the reader: nothing it sends can change the meter
    apdu = (prefix + bytes((len(items),)) + b"".join(items) + body)[:3 + cut]
    answer = server.handle_apdu(17, apdu)
    assert answer and answer[0] in (0xC4, 0xC5, 0xC7, 0xD8)
    assert rig.meter.clock_sets == []
    assert server.associated
    assert server.handle_apdu(17, bytes.fromhex("c001c1") + LDN).endswith(b"PMM0001221000042")

"""xDLMS data services (meterd.cosem.xdlms): error answers octet by octet, what a request asks for
in terms of the association table, and the dispatcher's refusals before gurux."""

from __future__ import annotations

from typing import Any

from gurux_dlms.enums import AccessMode, MethodAccessMode
from gurux_dlms.objects import GXDLMSData

from meterd.cosem.association import Request
from meterd.cosem.xdlms import LnDispatcher, data_access_error, exception_response, ln_settings, requests_of

GET_LDN = bytes.fromhex("c001c1000100002a0000ff0200")  # GET data 0-0:42.0.0.255/2, invoke-id 0xC1
HLS_REPLY = bytes.fromhex("c301c1000f0000280000ff0101091100")  # ACTION 0-0:40.0.0.255 method 1


def test_exception_response_is_tag_state_error_service_error():
    assert exception_response(1, 5) == b"\xd8\x01\x05"


def test_data_access_errors_answer_in_the_family_of_the_request():
    assert data_access_error(GET_LDN, 4) == bytes.fromhex("c401c10104")
    assert data_access_error(bytes.fromhex("c101c2"), 3) == bytes.fromhex("c501c203")
    assert data_access_error(bytes.fromhex("c301c3"), 250) == bytes.fromhex("c701c3fa00")
    assert data_access_error(bytes.fromhex("c002c1"), 3) == b"\xd8\x01\x03"  # not a -normal request
    assert data_access_error(b"\xc0", 3) == b"\xd8\x01\x03"


def test_requests_of_name_the_services_and_the_hls_reply():
    assert requests_of(GET_LDN) == (Request.GET,)
    assert requests_of(bytes.fromhex("c101c1")) == (Request.SET,)
    assert requests_of(bytes.fromhex("c301c10001")) == (Request.ACTION,)
    assert requests_of(HLS_REPLY) == (Request.HLS_REPLY, Request.ACTION)
    assert requests_of(HLS_REPLY[:11]) == (Request.ACTION,)  # too short to name the method
    assert requests_of(b"\xc2\x01") == (Request.OTHER,)


class Policy:
    """Reads of everything, nothing else."""

    association_name = "test"

    def attribute_access(self, obj: Any, index: int) -> int:
        return int(AccessMode.READ)

    def method_access(self, obj: Any, index: int) -> int:
        return int(MethodAccessMode.NO_ACCESS)

    def on_hls_done(self, ok: bool) -> None:
        raise AssertionError("no HLS here")


def _dispatcher() -> LnDispatcher:
    ldn = GXDLMSData("0.0.42.0.0.255")
    ldn.value = "PMM"
    return LnDispatcher(ln_settings([ldn], 0xFFFFFF, 1024), Policy())


def test_dispatcher_serves_a_get_and_refuses_what_is_not_offered():
    d = _dispatcher()
    assert d.serve(GET_LDN) == bytes.fromhex("c401c100") + b"\x0a\x03PMM"
    assert d.serve(b"\xc2\x01\xc1") == b"\xd8\x02\x02"  # unknown service
    assert d.serve(b"\xc0\x01") == b"\xd8\x02\x02"  # too short
    assert d.serve(bytes.fromhex("c001c1270f00002a0000ff0200")) == bytes.fromhex("c401c10104")  # class 9999
    assert d.serve(bytes.fromhex("c003c1") + GET_LDN[3:]) == b"\xd8\x01\x03"  # GET-with-list of no element
    assert d.serve(bytes.fromhex("c001c1000100002a0000ff0200")) == bytes.fromhex("c401c100") + b"\x0a\x03PMM"


def test_dispatcher_answers_malformed_requests_and_keeps_serving():
    d = _dispatcher()
    assert d.serve(bytes.fromhex("c001c1000100002a")) == bytes.fromhex("c401c101fa")  # cut short: other reason
    assert d.serve(GET_LDN) == bytes.fromhex("c401c100") + b"\x0a\x03PMM"

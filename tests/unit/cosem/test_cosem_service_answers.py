"""Answers to requests the meter refuses (meterd.cosem.xdlms): a denied ACTION is a complete
Action-Response-Normal that dlms-cosem (the client that found it broken) parses, and a request
choice that does not exist gets an exception-response."""

from __future__ import annotations

from typing import Any

import pytest
from dlms_cosem import cosem, enumerations
from dlms_cosem.client import ActionError, DlmsClient
from dlms_cosem.io import TcpTransport
from dlms_cosem.protocol.xdlms import ActionResponseNormal
from dlms_cosem.security import LowLevelSecurityAuthentication

from tests.dlms_fakes import TEST_PASSWORD, WrapperRig
from tests.dlms_gurux_client import connect_in_memory

CLOCK_SHIFT = bytes.fromhex("c301c1 0008 0000010000ff 06 01 10000a".replace(" ", ""))  # shift_time by 10 s


class MemoryIO:
    """dlms-cosem's IoImplementation on an in-memory session."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.buffer = bytearray()

    def connect(self) -> None:
        """Already connected."""

    def disconnect(self) -> None:
        self.session.close()

    def send(self, data: bytes) -> None:
        for chunk in self.session.receive(bytes(data)):
            self.buffer += chunk

    def recv(self, amount: int = 1) -> bytes:
        if len(self.buffer) < amount:
            raise TimeoutError("no answer from the meter")
        out, self.buffer = bytes(self.buffer[:amount]), self.buffer[amount:]
        return out


def _reader() -> Any:
    rig = WrapperRig()
    session = rig.factory()
    connect_in_memory(session, 17)
    return session.server


def test_a_denied_action_is_a_complete_action_response_normal():
    answer = _reader().handle_apdu(17, CLOCK_SHIFT)
    assert answer == bytes.fromhex("c701c10300")  # read-write-denied, no return parameters
    parsed = ActionResponseNormal.from_bytes(answer)
    assert parsed.status.name == "READ_WRITE_DENIED"


def test_dlms_cosem_gets_the_refusal_and_goes_on_reading():
    rig = WrapperRig()
    transport = TcpTransport(client_logical_address=17, server_logical_address=1, io=MemoryIO(rig.factory()))
    client = DlmsClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=TEST_PASSWORD))
    clock = cosem.Obis(0, 0, 1, 0, 0)
    with client.session() as c:
        with pytest.raises(ActionError, match="READ_WRITE_DENIED"):
            c.action(cosem.CosemMethod(enumerations.CosemInterface.CLOCK, clock, 6), b"\x10\x00\x0a")
        raw = c.get(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, clock, 2))
    assert len(raw) == 14
    assert rig.meter.clock_sets == []


@pytest.mark.parametrize("request_", ["c000c1", "c004c1000100002a0000ff0200", "c0ffc1", "c106c1", "c107c1",
                                      "c302c100000001", "c307c1", "c3ffc1"])
def test_a_request_choice_that_does_not_exist_gets_an_exception_response(request_):
    server = _reader()
    assert server.handle_apdu(17, bytes.fromhex(request_)) == b"\xd8\x02\x02"  # service unknown, not supported
    assert server.handle_apdu(17, bytes.fromhex("c001c1000100002a0000ff0200")).startswith(b"\xc4\x01\xc1\x00")

"""A malformed request is one log line at most, at INFO or below, with its reason; the traceback
only at DEBUG (meterd.cosem.xdlms.LnDispatcher, meterd.cosem.server.CosemServer). A seeded fuzz
round of malformed GET, SET and ACTION requests on a public and a reader association."""

from __future__ import annotations

import logging
import random

import pytest

from meterd.cosem.xdlms import failure_reason
from tests.dlms_fakes import WrapperRig
from tests.dlms_gurux_client import make_client

AARQ = {16: bytes(make_client(16).aarqRequest()[0]), 17: bytes(make_client(17).aarqRequest()[0])}
ACCEPTED = b"\xa2\x03\x02\x01\x00"
REQUESTS = 400


def _malformed(rng: random.Random) -> bytes:
    """A GET, SET or ACTION request with a plausible head and a random, often cut, body."""
    tag = rng.choice((0xC0, 0xC1, 0xC3))
    kind = rng.choice((1, 1, 2, 3, 4, 5))
    body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
    head = bytes((tag, kind, 0xC1)) + bytes((0, rng.choice((1, 3, 7, 8, 15, 70)))) + bytes((0, 0, 1, 0, 0, 255, 2))
    return (head + body)[: rng.randrange(3, 18 + len(body))]


@pytest.mark.parametrize("sap", [16, 17])
def test_a_fuzz_round_logs_one_line_per_request_and_no_traceback_at_info(
        sap: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(13 + sap)
    rig = WrapperRig()
    session = rig.factory()
    assert ACCEPTED in session.receive(AARQ[sap])[0]
    server = session.server
    caplog.set_level(logging.DEBUG)
    answered = tracebacks_at_debug = 0
    for _ in range(REQUESTS):
        if not server.associated:  # a request that failed in the server released it: associate again
            assert ACCEPTED in session.receive(AARQ[sap])[0]
        caplog.clear()
        answered += server.handle_apdu(sap, _malformed(rng)) is not None
        loud = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(loud) <= 1, [r.getMessage() for r in loud]
        assert not [r for r in loud if r.exc_info], "a traceback above DEBUG"
        assert all(len(r.getMessage().splitlines()) == 1 for r in loud)
        tracebacks_at_debug += any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
    assert answered == REQUESTS
    assert tracebacks_at_debug > 0  # the round did reach the dispatcher's failures: kept at DEBUG


def test_the_reason_is_the_exception_type_and_its_first_line() -> None:
    assert failure_reason(ValueError("bad length\nmore")) == "ValueError: bad length"
    assert failure_reason(Exception()) == "Exception"
    assert len(failure_reason(RuntimeError("x" * 500))) == 120

"""The test matrix of the security suites: suites 0/1/2 × TCP wrapper / RS-485 HDLC / optical port
(mode E sign-on, then HDLC) × public / LLS / HLS-GMAC / HLS-ECDSA, each cell reading the clock,
the active energy 1-0:1.8.0.255 and the load profile 1-0:99.1.0.255 by range with the gurux client
(a library we did not write), in process: the sessions are fed octet by octet, no sockets.

The public client may read the clock only (energy and profile are refused with
read-write-denied, as the access rules say); a combination that does not exist, HLS-ECDSA on
suite 0, is asserted refused: the keys file cannot configure it, and a client proposing it to a
suite-0 meter gets mechanism-name-not-recognised without counting toward the lockout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister

from meterd.cosem.errors import KeyFileError
from meterd.cosem.security import split_ciphered
from tests.dlms_gurux_client import DlmsClientError
from tests.pki_fakes import SuiteRig, suite_keys

UTC = dt.UTC
SUITES = (0, 1, 2)
LINKS = ("wrapper", "hdlc", "optical")
AUTHS = {"public": 16, "lls": 17, "hls-gmac": 1, "hls-ecdsa": 1}
READ_WRITE_DENIED = 3
ENERGY_LN = "1.0.1.8.0.255"
RANGE = (dt.datetime(2026, 1, 1, 6, tzinfo=UTC), dt.datetime(2026, 1, 1, 8, tzinfo=UTC))

CELLS = [pytest.param(suite, link, auth, id=f"suite{suite}-{link}-{auth}")
         for suite in SUITES for link in LINKS for auth in AUTHS if not (suite == 0 and auth == "hls-ecdsa")]


GLO_TAGS = frozenset({0xC8, 0xC9, 0xCB, 0xCC, 0xCD, 0xCF, 0xDB})


def _sc(apdu: bytes) -> int:
    return split_ciphered(apdu).payload[0]


def _check_clock(gs: Any, rig: SuiteRig) -> None:
    clock = gs.read(GXDLMSClock(), 2)
    assert clock.value.astimezone(UTC) == rig.meter.now_utc()


def _read_all(gs: Any, rig: SuiteRig) -> None:
    _check_clock(gs, rig)
    energy = gs.read(GXDLMSRegister(ENERGY_LN), 2)
    assert energy == rig.meter.registers[next(iter(rig.meter.registers))]
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    gs.read(pg, 3)
    rows = gs.rows_by_range(pg, *RANGE)
    assert rig.meter.load_profile is not None
    expected = rig.meter.load_profile.rows_between(*RANGE)
    assert len(rows) == len(expected) == 9  # 06:00 to 08:00 every 15 min, both ends included
    assert [list(r[2:]) for r in rows] == [list(e.values[1:]) for e in expected]


@pytest.mark.parametrize("suite, link, auth", CELLS)
def test_suite_link_and_authentication_read_clock_energy_and_profile(suite: int, link: str, auth: str) -> None:
    rig = SuiteRig(suite, mechanism=7 if auth == "hls-ecdsa" else 5)
    gs, transport = rig.gurux(link, AUTHS[auth])
    gs.connect()
    if auth == "public":
        _check_clock(gs, rig)
        for obj, attribute in ((GXDLMSRegister(ENERGY_LN), 2), (GXDLMSProfileGeneric("1.0.99.1.0.255"), 2)):
            with pytest.raises(DlmsClientError) as refused:
                gs.read(obj, attribute)
            assert refused.value.code == READ_WRITE_DENIED
    else:
        _read_all(gs, rig)
    gs.close()
    aarq, aare = transport.apdus[0][0], transport.apdus[0][1][0]
    assert aarq[0] == 0x60 and aare[0] == 0x61
    if AUTHS[auth] == 1:  # ciphered: every request after the AARQ is protected under the suite
        mechanism = 7 if auth == "hls-ecdsa" else 5
        assert bytes.fromhex("8907608574050802") + bytes((mechanism,)) in aare
        served = [(request, answers[0]) for request, answers in transport.apdus[1:-1]]  # the RLRQ is plain
        assert len(served) >= 5
        for request, answer in served:
            assert request[0] in GLO_TAGS and answer[0] in GLO_TAGS
            assert _sc(request) == 0x30 | suite and _sc(answer) == 0x30 | suite
        assert 46 not in rig.sink.codes() and 49 not in rig.sink.codes()
    else:
        assert all(request[0] not in GLO_TAGS for request, _ in transport.apdus)


def test_hls_ecdsa_on_suite_0_cannot_be_configured() -> None:
    with pytest.raises(KeyFileError, match="hls-ecdsa needs security_suite 1 or 2"):
        suite_keys(0, mechanism=7)


@pytest.mark.parametrize("link", LINKS)
def test_hls_ecdsa_on_suite_0_is_refused_without_counting(link: str) -> None:
    rig = SuiteRig(0, mechanism=5)
    for _ in range(4):  # beyond the lockout's 3 failures
        gs, transport = rig.gurux(link, 1, ecdsa=True, suite=0)
        with pytest.raises(Exception):  # noqa: B017 - gurux raises its own exception type for a refused AARE
            gs.connect()
        aare = b"".join(transport.received)
        assert b"\xa2\x03\x02\x01\x01" in aare  # result: rejected-permanent
        assert b"\xa3\x05\xa1\x03\x02\x01\x0b" in aare  # mechanism-name-not-recognised
    assert 46 not in rig.sink.codes()
    gs, _ = rig.gurux(link, 1)
    gs.connect()  # HLS-GMAC on suite 0 is served at once: nothing was locked out
    gs.close()

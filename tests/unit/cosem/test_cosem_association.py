"""The association phases of a DLMS session (meterd.cosem.association): every phase x trigger and
every phase x request of the table, the tables of the module's docstring, and the server obeying
them (IDLE, pending HLS, associated, released)."""

from __future__ import annotations

import re

import pytest
from gurux_dlms import GXReplyData
from gurux_dlms.GXDLMSExceptionResponse import GXDLMSExceptionResponse
from gurux_dlms.objects import GXDLMSAssociationLogicalName, GXDLMSData

from meterd.cosem import association
from meterd.cosem.association import ALLOWED, TRANSITIONS, Association, Phase, Request, Trigger, allows, step
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import (
    DlmsClientError,
    GuruxSession,
    InMemoryTransport,
    connect_in_memory,
    make_client,
)

ID, P, A = Phase.IDLE, Phase.PENDING_HLS, Phase.ASSOCIATED
_ = None  # ignored: the phase stays

EXPECTED_NEXT: dict[Trigger, tuple[Phase | None, Phase | None, Phase | None]] = {
    #                               from IDLE  PENDING  ASSOCIATED
    Trigger.AARQ_ACCEPTED: (A, _, _),
    Trigger.AARQ_ACCEPTED_HLS: (P, _, _),
    Trigger.AARQ_REFUSED: (ID, _, _),
    Trigger.HLS_PASSED: (_, A, _),
    Trigger.HLS_FAILED: (_, ID, _),
    Trigger.RELEASED: (ID, ID, ID),
}

EXPECTED_ALLOWED: dict[Request, tuple[bool, bool, bool]] = {
    #                               IDLE  PENDING  ASSOCIATED
    Request.AARQ: (True, True, True),
    Request.RLRQ: (True, True, True),
    Request.GET: (False, False, True),
    Request.SET: (False, False, True),
    Request.ACTION: (False, False, True),
    Request.HLS_REPLY: (False, True, False),
    Request.OTHER: (False, False, True),
}


def test_expectations_cover_every_trigger_and_request():
    assert set(EXPECTED_NEXT) == set(Trigger)
    assert set(EXPECTED_ALLOWED) == set(Request)


@pytest.mark.parametrize("trigger", list(Trigger))
@pytest.mark.parametrize("column", range(3))
def test_every_phase_and_trigger(trigger: Trigger, column: int) -> None:
    phase = (ID, P, A)[column]
    expected = EXPECTED_NEXT[trigger][column]
    result = step(phase, trigger)
    assert result.before is phase and result.trigger is trigger
    assert result.taken is (expected is not None)
    assert result.after is (phase if expected is None else expected)
    assert TRANSITIONS.get((phase, trigger)) is expected


@pytest.mark.parametrize("request_", list(Request))
@pytest.mark.parametrize("column", range(3))
def test_every_phase_and_request(request_: Request, column: int) -> None:
    phase = (ID, P, A)[column]
    assert allows(phase, request_) is EXPECTED_ALLOWED[request_][column]
    assert association.serves_data(phase) is (phase is not ID)


def test_opened_and_closed_mark_the_sessions():
    assert step(ID, Trigger.AARQ_ACCEPTED).opened
    assert not step(ID, Trigger.AARQ_ACCEPTED_HLS).opened
    assert step(P, Trigger.HLS_PASSED).opened
    assert step(A, Trigger.RELEASED).closed
    assert not step(P, Trigger.RELEASED).closed and not step(P, Trigger.HLS_FAILED).closed
    assert not any(step(ph, t).opened and step(ph, t).closed for ph in Phase for t in Trigger)


def test_association_walks_the_hls_path_and_ignores_what_has_no_row():
    assoc = Association()
    assert assoc.phase is ID and not assoc.allows(Request.GET)
    assert not assoc.apply(Trigger.HLS_PASSED).taken and assoc.phase is ID  # no HLS without an AARQ
    assoc.apply(Trigger.AARQ_ACCEPTED_HLS)
    assert assoc.phase is P and assoc.allows(Request.HLS_REPLY) and not assoc.allows(Request.GET)
    assert not assoc.apply(Trigger.AARQ_ACCEPTED).taken and assoc.phase is P
    assert assoc.apply(Trigger.HLS_PASSED).opened
    assert assoc.phase is A and assoc.allows(Request.SET) and assoc.serves_data()
    assert not assoc.apply(Trigger.HLS_FAILED).taken and assoc.phase is A
    assert assoc.apply(Trigger.RELEASED).closed and assoc.phase is ID


def _doc_table(first_column: str) -> dict[str, list[str]]:
    """A table of the module docstring: first-column label -> the cells of its row."""
    doc = association.__doc__ or ""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if line.startswith("="):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def test_docstring_tables_match_the_code():
    transitions = _doc_table("trigger")
    assert set(transitions) == {t.name for t in Trigger}
    for trigger in Trigger:
        cells = transitions[trigger.name]
        expected = [TRANSITIONS[(ph, trigger)].name if (ph, trigger) in TRANSITIONS else "--" for ph in (ID, P, A)]
        assert cells == expected, trigger
    requests = _doc_table("request")
    for label, cells in requests.items():
        for name in label.split(", "):
            assert [("yes" if allows(ph, Request[name]) else "no") for ph in (ID, P, A)] == cells, name
    assert {n for label in requests for n in label.split(", ")} == {r.name for r in Request}
    assert set(ALLOWED) == set(Phase)


# --- the server obeys the table ----------------------------------------------------------------------

LDN = GXDLMSData("0.0.42.0.0.255")


def _session():
    return build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring())()


def _pending_hls(session) -> GuruxSession:
    """An HLS-GMAC association (SAP 1) stopped after the AARE (passes 1 and 2)."""
    transport = InMemoryTransport(session)
    client = make_client(1)
    gs = GuruxSession(client, transport.send, transport.receive)
    reply = GXReplyData()
    gs._block(client.aarqRequest(), reply)
    client.parseAareResponse(reply.data)
    return gs


def test_pending_hls_serves_only_the_hls_reply_then_everything():
    session = _session()
    gs = _pending_hls(session)
    assert session.server.association_name == "management" and not session.server.associated
    with pytest.raises(GXDLMSExceptionResponse, match="Service not allowed. Operation not possible"):
        gs.read(LDN, 2)  # GET before pass 3: exception-response state-error 1, service-error 1
    assert session.server.association_name == "management"  # refused, not released
    reply = GXReplyData()
    gs._block(gs.client.getApplicationAssociationRequest(), reply)  # passes 3 and 4
    gs.client.parseApplicationAssociationResponse(reply.data)
    assert session.server.associated
    assert gs.read(LDN, 2)


def test_the_hls_reply_is_denied_once_associated():
    session = _session()
    gs, _ = connect_in_memory(session, 1)
    with pytest.raises(DlmsClientError) as refused:
        gs.method(GXDLMSAssociationLogicalName("0.0.40.0.0.255"), 1, bytearray(17), 9)
    assert refused.value.code == 3  # read-write-denied: method 1 of the current association
    assert session.server.associated
    assert gs.read(LDN, 2)


def test_release_returns_to_idle_from_every_phase():
    for sap in (16, 17, 1):
        session = _session()
        connect_in_memory(session, sap)
        assert session.server.associated
        session.server.release("test")
        assert session.server.association_name == "none" and not session.server.associated
    session = _session()
    _pending_hls(session)
    session.server.release("test")
    assert session.server.association_name == "none"

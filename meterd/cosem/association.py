"""The application association of one DLMS server session as a transition table.

An association (IEC 62056-5-3 §9.3, DLMS UA 1000-2 §9.2.7) goes through these phases:

* ``IDLE``: no association; only ACSE requests (AARQ, RLRQ) are answered;
* ``PENDING_HLS``: the AARQ of an HLS association (GMAC, mechanism 5, or ECDSA, mechanism 7)
  was accepted (AARE "authentication required", passes 1 and 2); the only service allowed is pass 3, the ACTION
  reply_to_HLS_authentication (class 15, 0-0:40.0.0.255, method 1);
* ``ASSOCIATED``: accepted without HLS (lowest security, LLS) or HLS passes 3 and 4 done; GET,
  SET and ACTION are served (each object's access rights still apply).

===================  ============  ============  ============
trigger              IDLE          PENDING_HLS   ASSOCIATED
===================  ============  ============  ============
AARQ_ACCEPTED        ASSOCIATED    --            --
AARQ_ACCEPTED_HLS    PENDING_HLS   --            --
AARQ_REFUSED         IDLE          --            --
HLS_PASSED           --            ASSOCIATED    --
HLS_FAILED           --            IDLE          --
RELEASED             IDLE          IDLE          IDLE
===================  ============  ============  ============

"--": the trigger has no meaning in that phase and is ignored. A new AARQ first releases the
association in place (``RELEASED``), so it is always judged from ``IDLE``. ``RELEASED`` covers
RLRQ, a refused AARQ's clean-up, the link closing (TCP close, HDLC DISC or SNRM reset), inactivity
and an internal error.

=============  ====  ===========  ==========
request        IDLE  PENDING_HLS  ASSOCIATED
=============  ====  ===========  ==========
AARQ, RLRQ     yes   yes          yes
GET            no    no           yes
SET            no    no           yes
ACTION         no    no           yes
HLS_REPLY      no    yes          no
OTHER          no    no           yes
=============  ====  ===========  ==========

A request that is not allowed is refused before it reaches an object (exception-response
state-error service-not-allowed); in ``IDLE`` that is every request but AARQ and RLRQ, even before
a ciphered APDU is deciphered. ``OTHER`` (an xDLMS service the meter does not offer) is let through
only to be answered "service unknown". The HLS reply is also an ACTION: in ``ASSOCIATED`` it reaches the
dispatcher as one and the current association object denies its method 1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    """Where the association of a session stands."""

    IDLE = "idle"
    PENDING_HLS = "pending HLS"
    ASSOCIATED = "associated"


class Trigger(enum.Enum):
    """What moves an association from one phase to another."""

    AARQ_ACCEPTED = "AARQ accepted"
    AARQ_ACCEPTED_HLS = "AARQ accepted, HLS pending"
    AARQ_REFUSED = "AARQ refused"
    HLS_PASSED = "HLS passed"
    HLS_FAILED = "HLS failed"
    RELEASED = "released"


class Request(enum.Enum):
    """The DLMS requests whose admission depends on the phase."""

    AARQ = "AARQ"
    RLRQ = "RLRQ"
    GET = "GET"
    SET = "SET"
    ACTION = "ACTION"
    HLS_REPLY = "ACTION reply_to_HLS_authentication"
    OTHER = "another xDLMS request"


_I, _P, _A = Phase.IDLE, Phase.PENDING_HLS, Phase.ASSOCIATED

TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (_I, Trigger.AARQ_ACCEPTED): _A,
    (_I, Trigger.AARQ_ACCEPTED_HLS): _P,
    (_I, Trigger.AARQ_REFUSED): _I,
    (_P, Trigger.HLS_PASSED): _A,
    (_P, Trigger.HLS_FAILED): _I,
    (_I, Trigger.RELEASED): _I,
    (_P, Trigger.RELEASED): _I,
    (_A, Trigger.RELEASED): _I,
}
"""(phase, trigger) -> next phase; a pair not listed leaves the phase as it is."""

_ACSE = frozenset({Request.AARQ, Request.RLRQ})

ALLOWED: dict[Phase, frozenset[Request]] = {
    _I: _ACSE,
    _P: _ACSE | {Request.HLS_REPLY},
    _A: _ACSE | {Request.GET, Request.SET, Request.ACTION, Request.OTHER},
}
"""The requests served in each phase."""


@dataclass(frozen=True)
class Step:
    """The result of a trigger: the phases before and after, and whether the table has a row
    for it (False: ignored, ``after == before``)."""

    trigger: Trigger
    before: Phase
    after: Phase
    taken: bool

    @property
    def opened(self) -> bool:
        """True when this step completed the association (a session opened)."""
        return self.after is Phase.ASSOCIATED and self.before is not Phase.ASSOCIATED

    @property
    def closed(self) -> bool:
        """True when this step ended a completed association (a session closed)."""
        return self.before is Phase.ASSOCIATED and self.after is not Phase.ASSOCIATED


def step(phase: Phase, trigger: Trigger) -> Step:
    """Where ``trigger`` takes an association in ``phase`` (pure; ignored triggers stay put)."""
    after = TRANSITIONS.get((phase, trigger))
    if after is None:
        return Step(trigger, phase, phase, False)
    return Step(trigger, phase, after, True)


def allows(phase: Phase, request: Request) -> bool:
    """True when ``request`` is served in ``phase``."""
    return request in ALLOWED[phase]


def serves_data(phase: Phase) -> bool:
    """True when ``phase`` serves some request beyond AARQ and RLRQ."""
    return bool(ALLOWED[phase] - _ACSE)


class Association:
    """The phase of one session's association, changed only through :data:`TRANSITIONS`."""

    def __init__(self) -> None:
        self._phase = Phase.IDLE

    @property
    def phase(self) -> Phase:
        """The present phase."""
        return self._phase

    def apply(self, trigger: Trigger) -> Step:
        """Take ``trigger``; returns the step (the phase is unchanged when it is ignored)."""
        result = step(self._phase, trigger)
        self._phase = result.after
        return result

    def allows(self, request: Request) -> bool:
        """True when ``request`` is served in the present phase."""
        return allows(self._phase, request)

    def serves_data(self) -> bool:
        """True when the present phase serves some request beyond AARQ and RLRQ."""
        return serves_data(self._phase)

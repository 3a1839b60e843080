"""The DLMS/COSEM server: associations, security and LN services for one link or connection.

Layers, outermost first:

* :class:`~meterd.cosem.sessions.WrapperSession` (IEC 62056-47 TCP wrapper,
  :mod:`meterd.proto.wrapper`) or :class:`~meterd.cosem.sessions.HdlcSession` (HDLC,
  :mod:`meterd.proto.hdlc`): both implement :class:`meterd.proto.session.ByteSession`;
* :class:`CosemServer`: APDU in, APDUs out. ACSE (AARQ/AARE, RLRQ/RLRE) and security suites
  0, 1 and 2 (glo-, ded-, general-glo-, general-ded- and general-ciphering, general-signing,
  HLS-GMAC and HLS-ECDSA, the security policy, invocation counters per client system title;
  :mod:`meterd.cosem.protection`) are our own code; the key pairs and certificates of suites 1
  and 2 come from a :class:`~meterd.cosem.pki.Pki`; general block transfer, when the client proposes it, wraps
  the (ciphered) APDUs (:mod:`meterd.cosem.gbt`); the association phases follow the table of
  :mod:`meterd.cosem.association`; GET, SET and ACTION go to
  :class:`meterd.cosem.xdlms.LnDispatcher` (the with-list services and SET data blocks its own,
  the -normal ones gurux's ``GXDLMSLNCommandHandler``) against the objects of
  :mod:`meterd.cosem.objects`.

Entry point for the composition root: :func:`build_session_factory`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import secrets
import struct
from collections.abc import Callable, Mapping
from typing import Any

from gurux_dlms.enums import AccessMode, MethodAccessMode
from gurux_dlms.objects.enums import AssociationStatus

from meterd.core.clock import Clock
from meterd.core.model import MeterModel
from meterd.cosem import acse, association, ecdsa_auth
from meterd.cosem.association import Association, Phase, Request, Trigger
from meterd.cosem.config import ServerConfig
from meterd.cosem.errors import ApduError, CosemError, ReplayError, SecurityError, UnsupportedSuite
from meterd.cosem.event_limit import EventLimiter
from meterd.cosem.gbt import GbtTransfer, Send
from meterd.cosem.key_transfer import KeyTransfer
from meterd.cosem.keys import KeyRing
from meterd.cosem.link_events import LinkEvents
from meterd.cosem.objects import (
    AccessLevel,
    AssociationConfig,
    CosemContext,
    CosemEntry,
    default_registry,
)
from meterd.cosem.pki import KeyUse, Pki
from meterd.cosem.protection import PROTECTED_TAGS, PolicyError, Protection
from meterd.cosem.security import (
    SC_AUTH,
    SC_AUTH_ENC,
    AuthLockout,
    CounterStore,
    LockoutStore,
    MemoryLockoutStore,
    SecurityContext,
    UtcOnlyClock,
    gmac,
    gmac_matches,
    key_length,
    plain_of,
    split_ciphered,
    suite_of,
    unprotect,
)
from meterd.cosem.sessions import HdlcSession, SessionMaker, WrapperSession
from meterd.cosem.xdlms import (
    MAX_REASSEMBLY,
    SERVICE_DECIPHERING_ERROR,
    SERVICE_INVOCATION_COUNTER_ERROR,
    SERVICE_NOT_SUPPORTED,
    SERVICE_OPERATION_NOT_POSSIBLE,
    SERVICE_OTHER_REASON,
    SERVICE_PDU_TOO_LONG,
    STATE_SERVICE_NOT_ALLOWED,
    LnDispatcher,
    exception_response,
    failure_reason,
    ln_settings,
    requests_of,
)
from meterd.cosem.xdlms_codec import GENERAL_BLOCK_TRANSFER, parse_gbt

_log = logging.getLogger("meterd.cosem")

CIPHER_OVERHEAD = 32  # general-glo header + SC + IC + tag, octets
SIGNING_OVERHEAD = 160  # general-signing header, titles and a P-384 signature, octets
MECHANISM_NAMES = {acse.MECH_HLS_GMAC: "HLS-GMAC", acse.MECH_HLS_ECDSA: "HLS-ECDSA"}
MIN_PDU = 64
GBT_WINDOW = 8
"""The meter's general block transfer window on the TCP wrapper (blocks streamed before an
acknowledgement, and received before it acknowledges); 1 on HDLC, whose own window paces it."""


def make_lockout(store: object, config: ServerConfig, utc: Callable[[], _dt.datetime],
                 clock: Clock | None = None) -> AuthLockout:
    """The authentication lockout of one link: durable in ``store`` when it is a
    :class:`~meterd.cosem.security.LockoutStore`, in memory otherwise; timed by ``clock``
    (monotonic for running lockouts) or, without one, by ``utc`` alone."""
    lockout_store = store if isinstance(store, LockoutStore) else MemoryLockoutStore()
    return AuthLockout(lockout_store, config.lockout, config.link_name, clock or UtcOnlyClock(utc))


class CosemServer:
    """One DLMS server instance (one association at a time) bound to the shared meter model."""

    def __init__(self, model: MeterModel, keys: KeyRing, store: CounterStore, config: ServerConfig | None = None,
                 lockout: AuthLockout | None = None, event_limit: EventLimiter | None = None,
                 source: str = "", pki: Pki | None = None) -> None:
        self.model = model
        self.keys = keys
        self.store = store
        self.pki = pki
        """The key pairs and certificates of suites 1 and 2 (None: those suites are refused)."""
        self.config = config or ServerConfig()
        self.registry = self.config.registry or default_registry()
        self.source = source or self.config.link_name
        """Where this session's client is (the TCP peer's address; a serial link's name): its
        authentication failures lock out that source only."""
        self.lockout = lockout if lockout is not None else make_lockout(store, self.config, model.now_utc)
        """Authentication failures and lockouts of this link (shared by its sessions)."""
        self.event_limit = event_limit or EventLimiter(UtcOnlyClock(model.now_utc), self.config.event_window_s)
        """The rate limit of this link's :data:`~meterd.cosem.event_limit.RATE_LIMITED_EVENTS`
        (shared by its sessions)."""
        self._events = LinkEvents(self.config.events, self.config.link_name, self.event_limit, model.now_utc)
        self._assoc: AssociationConfig | None = None
        self._association = Association()
        self._security: SecurityContext | None = None
        self._protection: Protection | None = None
        self._settings: Any = None
        self._dispatcher: LnDispatcher | None = None
        self._access: dict[int, CosemEntry] = {}
        self._current_assoc_obj: Any = None
        self._stoc = b""
        self._ctos = b""
        self._key_transfer = KeyTransfer(keys)
        self._max_pdu = self.config.max_pdu
        self._client_sap = 0
        self._gbt: GbtTransfer | None = None
        self._gbt_responses = False

    @property
    def association_name(self) -> str:
        """Name of the current association ("none" when idle)."""
        return self._assoc.name if self._assoc and self._association.phase is not Phase.IDLE else "none"

    @property
    def associated(self) -> bool:
        """True once the association is fully established (HLS pass 4 done)."""
        return self._association.phase is Phase.ASSOCIATED

    # --- entry points ---------------------------------------------------------------------------

    def handle_apdus(self, client_sap: int, apdu: bytes) -> list[bytes]:
        """Serve one request APDU; returns the response APDUs in order: one, none (a block of a
        streamed general block transfer window) or several (a streamed window of blocks)."""
        if not apdu:
            return []
        try:
            return self._serve(client_sap, apdu)
        finally:
            self._events.report_suppressed()

    def handle_apdu(self, client_sap: int, apdu: bytes) -> bytes | None:
        """Serve one request APDU; returns the first response APDU (None: no answer)."""
        answers = self.handle_apdus(client_sap, apdu)
        return answers[0] if answers else None

    def _serve(self, client_sap: int, apdu: bytes) -> list[bytes]:
        try:
            return self._dispatch(client_sap, apdu)
        except ReplayError as exc:
            recorded = self._events.record("REPLAY_ATTACK", client_sap, str(exc))
            (_log.warning if recorded else _log.debug)("client SAP %d on %s: %s", client_sap,
                                                       self.config.link_name, exc)
            return self._failed(exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_INVOCATION_COUNTER_ERROR))
        except SecurityError as exc:
            _log.warning("client SAP %d on %s: rejected protected APDU: %s", client_sap, self.config.link_name, exc)
            self._events.record("DECRYPTION_FAILURE", client_sap, str(exc))
            return self._failed(exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_DECIPHERING_ERROR))
        except (ApduError, CosemError) as exc:
            _log.info("client SAP %d: bad APDU: %s", client_sap, exc)
            return self._failed(exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_OTHER_REASON))
        except Exception as exc:  # last line of defence: a request must never take the link down
            _log.warning("client SAP %d on %s: request failed, association released: %s", client_sap,
                         self.config.link_name, failure_reason(exc))
            _log.debug("client SAP %d: request traceback", client_sap, exc_info=True)
            self.release("internal error")
            return self._failed(exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_OTHER_REASON))

    def _authenticated(self) -> bool:
        """True when the present association's client proves who it is (LLS or HLS); the public
        client's sessions (anyone can open them) are logged at DEBUG and their events limited."""
        return self._assoc is not None and self._assoc.mechanism != acse.MECH_NONE

    def release(self, reason: str = "link closed") -> None:
        """Drop the association (link closed, DISC, inactivity)."""
        self._leave(Trigger.RELEASED, reason)

    def _leave(self, trigger: Trigger, reason: str) -> None:
        """Back to no association by ``trigger``; keys and state of the association go."""
        name = self.association_name
        authenticated = self._authenticated()
        moved = self._association.apply(trigger)
        if moved.before is not Phase.IDLE:
            (_log.info if authenticated else _log.debug)("association %s released: %s", name, reason)
        if moved.closed:
            self._events.session(False, self._client_sap, reason, name, authenticated)
        self._security = None
        self._protection = None
        self._gbt = None
        self._key_transfer.discard()
        if self._dispatcher is not None:
            self._dispatcher.reset()

    # --- dispatch -------------------------------------------------------------------------------

    def _failed(self, answer: bytes) -> list[bytes]:
        """An error answer; a general block transfer in progress ends with it."""
        if self._gbt is not None:
            self._gbt.reset()
        return [answer]

    def _dispatch(self, client_sap: int, apdu: bytes) -> list[bytes]:
        tag = apdu[0]
        if tag == acse.AARQ:
            return [self._on_aarq(client_sap, apdu)]
        if tag == acse.RLRQ:
            return [self._on_rlrq(apdu)]
        if not self._association.serves_data() or self._assoc is None or client_sap != self._assoc.client_sap:
            return [exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_OPERATION_NOT_POSSIBLE)]
        signing = SIGNING_OVERHEAD if self._protection is not None and self._protection.suite else 0
        if len(apdu) > self.config.max_pdu + CIPHER_OVERHEAD + signing:
            return self._failed(exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_PDU_TOO_LONG))
        if tag == GENERAL_BLOCK_TRANSFER:
            return self._on_block(apdu)
        if self._gbt is None:
            return [self._serve_data(apdu)]
        self._gbt.reset()  # a whole request ends any transfer in progress
        response = self._serve_data(apdu)
        if len(response) <= self._max_pdu or not self._gbt_responses:
            return [response]
        return list(self._gbt.send(response).apdus)

    def _on_block(self, apdu: bytes) -> list[bytes]:
        """A general-block-transfer APDU: a block of a request, or the acknowledgement of blocks
        of a response."""
        if self._gbt is None:
            return [exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_NOT_SUPPORTED)]
        outcome = self._gbt.receive(parse_gbt(apdu))
        if isinstance(outcome, Send):
            return list(outcome.apdus)
        if not outcome.apdu or outcome.apdu[0] in (GENERAL_BLOCK_TRANSFER, acse.AARQ, acse.RLRQ):
            raise ApduError("a general block transfer must carry an xDLMS service request")
        return list(self._gbt.send(self._serve_data(outcome.apdu), outcome.ack).apdus)

    def _serve_data(self, apdu: bytes) -> bytes:
        """A whole GET, SET or ACTION request, ciphered or plain."""
        assert self._assoc is not None  # checked by the caller
        if apdu[0] in PROTECTED_TAGS:
            return self._on_ciphered(apdu)
        if self._assoc.ciphered:
            _log.info("client SAP %d on %s: unprotected APDU 0x%02X refused in a ciphered association",
                      self._client_sap, self.config.link_name, apdu[0])
            return exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_DECIPHERING_ERROR)
        return self._serve_plain(apdu)

    def _on_ciphered(self, apdu: bytes) -> bytes:
        protection = self._protection  # kept: a failed HLS releases the association while serving
        if protection is None:
            return exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_NOT_SUPPORTED)
        try:
            opened = protection.open(apdu, establishing=self._association.phase is Phase.PENDING_HLS)
        except PolicyError as exc:
            _log.info("client SAP %d on %s: request refused: %s", self._client_sap, self.config.link_name, exc)
            return exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_DECIPHERING_ERROR)
        inner = plain_of(opened.tag)
        if inner is not None and inner != opened.plain[0]:
            raise ApduError("glo/ded tag does not match the ciphered service")
        response = self._serve_plain(opened.plain)
        sealed = protection.seal(opened, response)
        self._apply_pending_keys()
        return sealed

    def _serve_plain(self, apdu: bytes) -> bytes:
        if not any(self._association.allows(r) for r in requests_of(apdu)):
            return exception_response(STATE_SERVICE_NOT_ALLOWED, SERVICE_OPERATION_NOT_POSSIBLE)
        assert self._dispatcher is not None  # built with the association
        return self._dispatcher.serve(apdu)

    # --- ACSE -----------------------------------------------------------------------------------

    def _associations(self) -> tuple[AssociationConfig, ...]:
        """The configured associations, the ciphered ones with the HLS mechanism of the keys file."""
        mechanism = self.keys.current.mechanism
        return tuple(dataclasses.replace(a, mechanism=mechanism) if a.ciphered and a.mechanism != mechanism
                     else a for a in self.config.associations)

    def _find_association(self, client_sap: int) -> AssociationConfig | None:
        return next((a for a in self._associations() if a.client_sap == client_sap), None)

    def _reject(self, context_id: int, diagnostic: int, why: str, client_sap: int,
                user_info: bytes | None = None, event: str = "ASSOCIATION_REJECTED",
                extra: Mapping[str, object] | None = None) -> bytes:
        recorded = self._events.record(event, client_sap, why, **(extra or {}))
        (_log.warning if recorded else _log.debug)("association refused for client SAP %d on %s: %s", client_sap,
                                                   self.config.link_name, why)
        self._leave(Trigger.AARQ_REFUSED, "rejected")
        return acse.Aare(context_id or 1, acse.RESULT_REJECTED_PERMANENT, diagnostic,
                         user_information=user_info).encode()

    # --- authentication failures and lockout ----------------------------------------------------

    def _auth_failed(self, context_id: int, diagnostic: int, why: str, client_sap: int,
                     event: str = "AUTHENTICATION_FAILURES") -> bytes:
        """Count an authentication failure (it may start a lockout), record it, refuse the AARQ."""
        extra = self._count_failure(client_sap)
        return self._reject(context_id, diagnostic, why, client_sap, event=event, extra=extra)

    def _count_failure(self, client_sap: int) -> dict[str, object]:
        lock_s = self.lockout.failure(client_sap, self.source)
        extra: dict[str, object] = {"failures": self.lockout.failures(client_sap, self.source), "source": self.source}
        if lock_s > 0:
            extra["lockout_s"] = lock_s
            _log.warning("client SAP %d from %s locked out of %s for %.0f s after %d authentication failures",
                         client_sap, self.source, self.config.link_name, lock_s, extra["failures"])
        return extra

    def _locked_out(self, client_sap: int) -> bool:
        """True (and the attempt counted, without an event) while ``client_sap`` is locked out
        from this session's source."""
        left_s = self.lockout.remaining_s(client_sap, self.source)
        if left_s <= 0:
            return False
        refused = self.lockout.refuse(client_sap, self.source)
        (_log.warning if refused == 1 else _log.debug)(
            "association refused for client SAP %d from %s on %s: locked out for %.0f s more (attempt %d)",
            client_sap, self.source, self.config.link_name, left_s, refused)
        return True

    def _report_ended_lockouts(self) -> None:
        """One event per lockout that refused attempts, once it is over."""
        for ended in self.lockout.ended():
            self._events.record("AUTHENTICATION_FAILURES", ended.client_sap,
                                "association attempts refused during a lockout", source=ended.source,
                                refused=ended.refused, lockout_s=ended.lockout_s, failures=ended.failures)

    # --- association establishment --------------------------------------------------------------

    def _on_aarq(self, client_sap: int, apdu: bytes) -> bytes:
        self.release("new AARQ")
        self._report_ended_lockouts()
        assoc = self._find_association(client_sap)
        try:
            aarq = acse.parse_aarq(apdu)
        except ApduError as exc:
            return self._reject(1, acse.DIAG_NO_REASON, f"malformed AARQ ({exc})", client_sap)
        if assoc is None:
            return self._reject(aarq.context_id, acse.DIAG_NO_REASON, "unknown client SAP", client_sap)
        if self._locked_out(client_sap):
            return acse.Aare(aarq.context_id or 1, acse.RESULT_REJECTED_TRANSIENT, acse.DIAG_AUTH_FAILURE).encode()
        expected_ctx = acse.CONTEXT_LN_CIPHERED if assoc.ciphered else acse.CONTEXT_LN
        if aarq.context_id != expected_ctx:
            return self._reject(aarq.context_id, acse.DIAG_CONTEXT_NOT_SUPPORTED, "context name", client_sap)
        if aarq.mechanism != assoc.mechanism:
            return self._reject(aarq.context_id, acse.DIAG_MECHANISM_NOT_RECOGNISED,
                                f"mechanism {aarq.mechanism} offered, {assoc.mechanism} required", client_sap)
        if assoc.mechanism == acse.MECH_LLS and not self._lls_ok(aarq.auth_value):
            return self._auth_failed(aarq.context_id, acse.DIAG_AUTH_FAILURE, "wrong LLS password", client_sap)
        security = None
        if assoc.ciphered:
            keys = self.keys.current
            security = SecurityContext(assoc.name, keys.server_system_title, keys.global_unicast_key,
                                       keys.authentication_key, self.store, keys.security_suite)
            if keys.security_suite and self.pki is None:
                return self._reject(aarq.context_id, acse.DIAG_NO_REASON,
                                    f"security suite {keys.security_suite} needs the meter's key pairs and "
                                    "certificates, and no PKI is available", client_sap)
            if not aarq.calling_title or len(aarq.calling_title) != 8:
                return self._reject(aarq.context_id, acse.DIAG_NO_REASON, "no client system title", client_sap)
            allowed = self.keys.current.client_system_titles
            if allowed and aarq.calling_title not in allowed:
                return self._reject(aarq.context_id, acse.DIAG_CALLING_AP_TITLE_NOT_RECOGNISED,
                                    f"client system title {aarq.calling_title.hex().upper()} not configured", client_sap)
            if not aarq.auth_value or not 8 <= len(aarq.auth_value) <= 64:
                return self._auth_failed(aarq.context_id, acse.DIAG_AUTH_FAILURE, "bad CtoS challenge", client_sap)
            security.client_title = aarq.calling_title
            if assoc.mechanism == acse.MECH_HLS_ECDSA:
                refused = self._ecdsa_keys_missing(security)
                if refused is not None:
                    return self._reject(aarq.context_id, refused[0], refused[1], client_sap)
        return self._accept(assoc, aarq, security, client_sap)

    def _ecdsa_keys_missing(self, security: SecurityContext) -> tuple[int, str] | None:
        """Why HLS-ECDSA cannot run for this client (AARE diagnostic, reason), None when it can:
        the meter needs its digital-signature key, the client a valid certificate."""
        assert self.pki is not None and security.client_title is not None  # checked by the caller
        if self.pki.own_key(KeyUse.DIGITAL_SIGNATURE, security.suite) is None:
            return acse.DIAG_NO_REASON, f"no digital-signature key of the meter for suite {security.suite}"
        if self.pki.peer_public_key(security.client_title, KeyUse.DIGITAL_SIGNATURE, security.suite,
                                    self.model.now_utc()) is None:
            return (acse.DIAG_CALLING_AP_TITLE_NOT_RECOGNISED, "no valid digital-signature certificate of client "
                    f"system title {security.client_title.hex().upper()} for suite {security.suite}")
        return None

    def _lls_ok(self, password: bytes | None) -> bool:
        import hmac

        return password is not None and hmac.compare_digest(password, self.keys.current.lls_password)

    def _initiate(self, aarq: acse.Aarq, security: SecurityContext | None) -> acse.InitiateRequest:
        info = aarq.user_information
        if info is None:
            raise ApduError("no xDLMS InitiateRequest")
        if security is not None:
            if info[0] != 0x21:
                raise SecurityError("the InitiateRequest must be glo-ciphered")
            payload = split_ciphered(info).payload
            if suite_of(payload) != security.suite:
                raise UnsupportedSuite(f"security suite {suite_of(payload)} is not offered (the association "
                                       f"uses suite {security.suite})")
            sc, ic, info = unprotect(security.ek, security.ak, security.client_title or b"", payload, security.suite)
            if sc & 0xF0 != SC_AUTH_ENC:
                raise SecurityError("the InitiateRequest must be authenticated and encrypted")
            security.check_incoming(ic)
        request = acse.parse_initiate_request(info)
        if request.dedicated_key is not None:
            if security is None:
                raise ApduError("a dedicated key in an association without ciphering")
            need = key_length(security.suite)
            if len(request.dedicated_key) != need:
                raise ApduError(f"a dedicated key of {len(request.dedicated_key)} octets (suite {security.suite}: "
                                f"{need})")
            security.dedicated_key = request.dedicated_key
        return request

    def _accept(self, assoc: AssociationConfig, aarq: acse.Aarq, security: SecurityContext | None,
                client_sap: int) -> bytes:
        try:
            request = self._initiate(aarq, security)
        except UnsupportedSuite as exc:  # not a failure to authenticate: the suite is not offered
            return self._reject(aarq.context_id, acse.DIAG_CONTEXT_NOT_SUPPORTED, f"InitiateRequest: {exc}",
                                client_sap)
        except ReplayError as exc:
            return self._reject(aarq.context_id, acse.DIAG_NO_REASON, f"InitiateRequest: {exc}", client_sap,
                                event="REPLAY_ATTACK")
        except SecurityError as exc:  # wrong keys: the client failed to prove it holds them
            return self._auth_failed(aarq.context_id, acse.DIAG_NO_REASON, f"InitiateRequest: {exc}", client_sap,
                                     event="DECRYPTION_FAILURE")
        except ApduError as exc:
            return self._reject(aarq.context_id, acse.DIAG_NO_REASON, f"InitiateRequest: {exc}", client_sap)
        error = None
        negotiated = request.conformance & acse.SERVER_CONFORMANCE
        client_pdu = request.max_pdu_size or 0xFFFF
        if request.dlms_version < 6:
            error = acse.INIT_ERR_DLMS_VERSION_TOO_LOW
        elif not negotiated:
            error = acse.INIT_ERR_INCOMPATIBLE_CONFORMANCE
        elif client_pdu < MIN_PDU:
            error = acse.INIT_ERR_PDU_TOO_SHORT
        if error is not None:
            return self._reject(aarq.context_id, acse.DIAG_NO_REASON, f"initiate error {error}", client_sap,
                                acse.initiate_error(error))
        self._assoc, self._security, self._client_sap = assoc, security, client_sap
        if security is not None:
            keys = self.keys
            self._protection = Protection(security, keys.current.security_policy, self.pki,
                                          lambda: keys.current.master_key, self.model.now_utc)
        self._max_pdu = min(self.config.max_pdu, client_pdu)
        if negotiated & acse.CONF_GENERAL_BLOCK_TRANSFER:
            window = GBT_WINDOW if self.config.link == "wrapper" else 1
            self._gbt = GbtTransfer(window, self._max_pdu, MAX_REASSEMBLY)
        # long answers in GBT blocks only for a client without GET data blocks: some clients
        # (dlms-cosem) propose GBT and then cannot read it, while every client that proposes
        # block transfer with GET reads GET data blocks
        self._gbt_responses = bool(self._gbt) and not negotiated & acse.CONF_BLOCK_GET
        self._build_objects(assoc, negotiated)
        response = acse.initiate_response(negotiated, self.config.max_pdu)
        aare = acse.Aare(aarq.context_id, acse.RESULT_ACCEPTED, acse.DIAG_NONE)
        if security is not None:
            response = security.seal(0x21, SC_AUTH_ENC, response)
            aare.responding_title = security.server_title
        if assoc.mechanism in MECHANISM_NAMES:
            self._ctos = aarq.auth_value or b""
            self._stoc = secrets.token_bytes(32 if assoc.mechanism == acse.MECH_HLS_ECDSA else 16)
            aare.diagnostic, aare.mechanism, aare.stoc = acse.DIAG_AUTH_REQUIRED, assoc.mechanism, self._stoc
            self._association.apply(Trigger.AARQ_ACCEPTED_HLS)
        else:
            self._association.apply(Trigger.AARQ_ACCEPTED)
            self._set_status(AssociationStatus.ASSOCIATED)
            if assoc.mechanism != acse.MECH_NONE:
                self.lockout.success(client_sap, self.source)
            self._events.session(True, self._client_sap, "AARQ accepted", assoc.name, self._authenticated())
        aare.user_information = response
        (_log.info if self._authenticated() else _log.debug)(
            "association %s (client SAP %d) %s", assoc.name, client_sap, self._association.phase.value)
        return aare.encode()

    def _on_rlrq(self, apdu: bytes) -> bytes:
        user_info = acse.parse_rlrq(apdu)
        answer = None
        if user_info and self._security is not None and self._assoc is not None:
            answer = self._security.seal(0x21, SC_AUTH_ENC, acse.initiate_response(
                acse.SERVER_CONFORMANCE, self.config.max_pdu))
        self.release("RLRQ")
        return acse.rlre(answer)

    # --- HLS ------------------------------------------------------------------------------------

    def _hls_reply(self, f_stoc: bytes) -> bytes | None:
        sec = self._security
        if sec is None or sec.client_title is None:
            return None
        if self._locked_out(self._client_sap):  # locked out by another session after this AARQ
            return None
        if self._assoc is not None and self._assoc.mechanism == acse.MECH_HLS_ECDSA:
            return self._hls_ecdsa_reply(sec, f_stoc)
        expected = None
        if len(f_stoc) == 17 and f_stoc[0] == SC_AUTH | sec.suite:
            expected = gmac(sec.ek, sec.ak, sec.client_title, struct.unpack(">I", f_stoc[1:5])[0], self._stoc,
                            sec.suite)
        if expected is None or not gmac_matches(expected, f_stoc):
            _log.warning("HLS-GMAC: client %s (SAP %d) from %s on %s failed authentication", self.association_name,
                         self._client_sap, self.source, self.config.link_name)
            extra = self._count_failure(self._client_sap)
            self._events.record("AUTHENTICATION_FAILURES", self._client_sap, "wrong HLS-GMAC response", **extra)
            return None
        return gmac(sec.ek, sec.ak, sec.server_title, sec.next_ic(), self._ctos, sec.suite)

    def _hls_ecdsa_reply(self, sec: SecurityContext, f_stoc: bytes) -> bytes | None:
        """HLS-ECDSA passes 3 and 4: check the client's signature over ST_C || ST_S || StoC ||
        CtoS with its certificate's key, answer with the meter's over ST_S || ST_C || CtoS || StoC
        (:mod:`meterd.cosem.ecdsa_auth`); None (a counted authentication failure) when it fails."""
        assert sec.client_title is not None and self.pki is not None  # set when the AARQ was accepted
        now = self.model.now_utc()
        peer = self.pki.peer_public_key(sec.client_title, KeyUse.DIGITAL_SIGNATURE, sec.suite, now)
        own = self.pki.own_key(KeyUse.DIGITAL_SIGNATURE, sec.suite)
        try:
            if peer is None or own is None:
                raise ecdsa_auth.SignatureError("the keys of HLS-ECDSA are no longer available")
            ecdsa_auth.verify(peer, f_stoc, ecdsa_auth.client_proof_data(sec.client_title, sec.server_title,
                                                                         self._stoc, self._ctos), sec.suite)
        except ecdsa_auth.SignatureError as exc:
            _log.warning("HLS-ECDSA: client %s (SAP %d) from %s on %s failed authentication: %s",
                         self.association_name, self._client_sap, self.source, self.config.link_name, exc)
            extra = self._count_failure(self._client_sap)
            self._events.record("AUTHENTICATION_FAILURES", self._client_sap, f"HLS-ECDSA: {exc}", **extra)
            return None
        return ecdsa_auth.sign(own, ecdsa_auth.server_proof_data(sec.server_title, sec.client_title, self._ctos,
                                                                 self._stoc), sec.suite)

    def on_hls_done(self, ok: bool) -> None:
        """Called after ACTION reply_to_HLS_authentication (ignored unless HLS is pending)."""
        trigger = Trigger.HLS_PASSED if ok else Trigger.HLS_FAILED
        if not association.step(self._association.phase, trigger).taken:
            return
        if not ok:
            self._leave(trigger, "HLS failed")
            return
        self._association.apply(trigger)
        self.lockout.success(self._client_sap, self.source)
        name = MECHANISM_NAMES.get(self._assoc.mechanism if self._assoc else 0, "HLS")
        _log.info("association %s established (%s)", self.association_name, name)
        self._events.session(True, self._client_sap, f"{name} passed", self.association_name)

    def _set_status(self, status: int) -> None:
        if self._current_assoc_obj is not None:
            self._current_assoc_obj.associationStatus = status

    # --- objects and access ---------------------------------------------------------------------

    def _build_objects(self, assoc: AssociationConfig, conformance: int) -> None:
        ctx = CosemContext(
            model=self.model, association=assoc, associations=self._associations(),
            server_sap=self.config.server_sap, server_title=self.keys.current.server_system_title,
            conformance=conformance, max_pdu=self.config.max_pdu,
            set_clock=lambda utc: self.model.set_clock(utc, f"dlms:{assoc.name}"),
            frame_counter=self._frame_counter, client_title=self._client_title,
            stage_keys=self._key_transfer.stage, hdlc=self.config.hdlc_setup, optical=self.config.optical,
            link_name=self.config.link_name,
        )
        entries = self.registry.build(ctx)
        overhead = 0
        if assoc.ciphered:
            overhead = CIPHER_OVERHEAD + (SIGNING_OVERHEAD if self.keys.current.security_suite else 0)
        # gurux never sees general block transfer: it would wrap its own GET data blocks in GBT
        # blocks inside the ciphering; the meter's GBT (gbt.py) wraps whole APDUs
        gurux_conformance = acse.wire_to_gurux_conformance(conformance & ~acse.CONF_GENERAL_BLOCK_TRANSFER)
        self._settings = ln_settings([e.obj for e in entries], gurux_conformance,
                                     max(MIN_PDU, self._max_pdu - overhead))
        self._dispatcher = LnDispatcher(self._settings, self, self.config.legal, whole=self._gbt_responses)
        self._access = {id(e.obj): e for e in entries}
        self._current_assoc_obj = entries_current = next(
            (e.obj for e in entries if e.obj.logicalName == "0.0.40.0.0.255"), None)
        if entries_current is not None:
            visible = [e.obj for e in entries if self._visible(e, assoc)]
            entries_current.objectList.clear()
            for obj in visible:
                entries_current.objectList.append(obj)
            entries_current.hls_reply = self._hls_reply if assoc.mechanism in MECHANISM_NAMES else None
            entries_current.associationStatus = AssociationStatus.ASSOCIATION_PENDING

    @staticmethod
    def _visible(entry: CosemEntry, assoc: AssociationConfig) -> bool:
        return assoc.level > AccessLevel.PUBLIC or entry.access.public

    def attribute_access(self, obj: Any, index: int) -> int:
        """gurux AccessMode of an attribute for the current association."""
        entry = self._access.get(id(obj))
        if entry is None or self._assoc is None or index in entry.access.hidden:
            return int(AccessMode.NO_ACCESS)
        level = self._assoc.level
        if level is AccessLevel.PUBLIC and not entry.access.public:
            return int(AccessMode.NO_ACCESS)
        if level is AccessLevel.MANAGER and index in entry.access.write and self._association.allows(Request.SET):
            return int(AccessMode.READ_WRITE)
        return int(AccessMode.READ)

    def method_access(self, obj: Any, index: int) -> int:
        """gurux MethodAccessMode of a method for the current association."""
        entry = self._access.get(id(obj))
        if entry is None or self._assoc is None or index not in entry.access.methods:
            return int(MethodAccessMode.NO_ACCESS)
        if obj is self._current_assoc_obj:
            allowed = index == 1 and self._association.allows(Request.HLS_REPLY)
        else:
            allowed = self._assoc.level is AccessLevel.MANAGER and self._association.allows(Request.ACTION)
        return int(MethodAccessMode.ACCESS if allowed else MethodAccessMode.NO_ACCESS)

    def _frame_counter(self, instance: int) -> int:
        assoc = next((a for a in self.config.associations if a.security_instance == instance), None)
        return self.store.last_accepted(f"{assoc.name}/in") if assoc else 0

    def _client_title(self) -> bytes | None:
        return self._security.client_title if self._security else None

    # --- key transfer ---------------------------------------------------------------------------

    def _apply_pending_keys(self) -> None:
        changed = False
        for name in self._key_transfer.apply():
            self._events.record("KEY_CHANGED", self._client_sap, "key_transfer", key=name)
            changed = True
        if changed and self._security is not None:
            self._security.rekey(self.keys.current.global_unicast_key, self.keys.current.authentication_key)


def build_session_factory(model: MeterModel, security_store: CounterStore, keys: KeyRing,
                          config: ServerConfig | None = None, *, clock: Clock | None = None,
                          auth_lockout: AuthLockout | None = None,
                          event_limit: EventLimiter | None = None, pki: Pki | None = None) -> SessionMaker:
    """A factory of fresh sessions of one link (``config``, default: a TCP wrapper link) sharing the
    model, keys, counters and object registry.

    The sessions share one authentication lockout per link: ``auth_lockout``, or one made with
    ``config.lockout``, kept in ``security_store`` when it stores lockouts and timed by ``clock``
    (default: the model's UTC); and one :class:`~meterd.cosem.event_limit.EventLimiter` for the
    events any client can cause (``event_limit``, or one of ``config.event_window_s`` timed by
    ``clock``). The factory takes the session's source (see :class:`SessionMaker`). ``pki``: the
    key pairs and certificates of security suites 1 and 2 (None: their associations are refused).
    """
    cfg = config or ServerConfig()
    if cfg.registry is None:
        cfg = dataclasses.replace(cfg, registry=default_registry())
    shared_lockout = auth_lockout if auth_lockout is not None else make_lockout(security_store, cfg, model.now_utc, clock)
    shared_limit = event_limit or EventLimiter(clock or UtcOnlyClock(model.now_utc), cfg.event_window_s)

    def make(source: str = "") -> WrapperSession | HdlcSession:
        server = CosemServer(model, keys, security_store, cfg, shared_lockout, shared_limit, source, pki)
        if cfg.link == "wrapper":
            return WrapperSession(server, cfg.inactivity_timeout_s)
        return HdlcSession(server, cfg.hdlc_params, cfg.inactivity_timeout_s)

    return make

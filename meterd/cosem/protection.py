"""The protection of one ciphered association's requests and responses under its security policy
(version 1, class 64 attribute 2): which protections a request must carry, how it is opened and
how its response is protected.

A request reaches the server as one of

* glo-xxx, ded-xxx, general-glo-ciphering or general-ded-ciphering (:mod:`meterd.cosem.security`);
* general-ciphering with identified, wrapped or agreed key (:mod:`meterd.cosem.general_protection`);
* general-signing around one of the above (suites 1 and 2: the client's signature is checked with
  the public key of its digital-signature certificate, found by its system title in the
  :class:`~meterd.cosem.pki.Pki`).

Policy bits: 0x04 authenticated, 0x08 encrypted, 0x10 digitally signed request; 0x20, 0x40, 0x80
the same for the response. A request lacking a protection the policy demands is refused
(:class:`PolicyError`); a response gets the protections of its request plus those the policy
demands, in the family of the request (a signed request gets a signed response).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from meterd.cosem import ecdsa_auth
from meterd.cosem.errors import ApduError, SecurityError
from meterd.cosem.general_protection import (
    AGREED_ONE_PASS_DH,
    AGREED_STATIC_UNIFIED,
    GENERAL_CIPHERING,
    GENERAL_SIGNING,
    KEK_MASTER,
    KEY_ID_GLOBAL_UNICAST,
    KEY_INFO_AGREED,
    KEY_INFO_IDENTIFIED,
    KEY_INFO_WRAPPED,
    GeneralCiphering,
    Header,
    agree,
    build_general_ciphering,
    build_general_signing,
    derive_key,
    parse_general_ciphering,
    parse_general_signing,
    public_key_of,
    unwrap_content_key,
)
from meterd.cosem.pki import KeyUse, Pki
from meterd.cosem.security import (
    CIPHERED_TAGS,
    SC_AUTH,
    SC_ENC,
    SecurityContext,
    protect,
    split_ciphered,
    unprotect,
)

POLICY_AUTH_REQUEST, POLICY_ENC_REQUEST, POLICY_SIGNED_REQUEST = 0x04, 0x08, 0x10
POLICY_AUTH_RESPONSE, POLICY_ENC_RESPONSE, POLICY_SIGNED_RESPONSE = 0x20, 0x40, 0x80
PROTECTED_TAGS = frozenset({*CIPHERED_TAGS, GENERAL_CIPHERING, GENERAL_SIGNING})
"""Every protected APDU tag a ciphered association opens."""


class PolicyError(SecurityError):
    """A request without a protection the association's security policy demands."""


@dataclass(frozen=True)
class Opened:
    """An opened request: the plain APDU and how it was protected (what its response needs).

    ``tag``: the ciphered APDU's tag (the family of the response); ``sc``: its security control;
    ``signed``: the general-signing header (None: not signed); ``ciphering``: the
    general-ciphering header and content key (None: another family); ``establishing``: HLS pass 3."""

    plain: bytes
    tag: int
    sc: int
    signed: Header | None = None
    ciphering: tuple[Header, bytes] | None = None
    establishing: bool = False


class Protection:
    """Opens requests and protects responses of one ciphered association (``security``) under
    ``policy``; ``pki`` (suites 1 and 2) gives the keys of signatures and key agreement,
    ``master_key()`` the current master key (KEK of wrapped keys), ``now_utc()`` the time at which
    certificates must be valid."""

    def __init__(self, security: SecurityContext, policy: int, pki: Pki | None,
                 master_key: Callable[[], bytes], now_utc: Callable[[], _dt.datetime]) -> None:
        self.security = security
        self.policy = policy
        self.pki = pki
        self._master_key = master_key
        self._now_utc = now_utc

    @property
    def suite(self) -> int:
        return self.security.suite

    def open(self, apdu: bytes, establishing: bool = False) -> Opened:
        """Check and open a protected request; :class:`SecurityError` (a deciphering or signature
        failure), :class:`PolicyError` (protection missing) or :class:`ApduError` (malformed).
        Nothing changes in the association unless it opens (only the client's invocation
        counter then moves on). ``establishing``: the request completes the association (HLS
        pass 3), which the policy's digital signatures do not cover (its own signature or
        GMAC proves the client), and neither its response."""
        signed = None
        if apdu[0] == GENERAL_SIGNING:
            message = parse_general_signing(apdu)
            self._check_titles(message.header)
            ecdsa_auth.verify(self._peer_key(KeyUse.DIGITAL_SIGNATURE), message.signature, message.signed,
                              self.suite)
            signed, apdu = message.header, message.content
            if not apdu or apdu[0] == GENERAL_SIGNING:
                raise ApduError("general-signing must carry one xDLMS APDU")
        if signed is None and self.policy & POLICY_SIGNED_REQUEST and not establishing:
            raise PolicyError("the security policy requires digitally signed requests")
        if self._signs_response(signed, establishing):
            self._own_key(KeyUse.DIGITAL_SIGNATURE)  # the response must be signable before serving
        if apdu[0] == GENERAL_CIPHERING:
            opened = self._open_general_ciphering(parse_general_ciphering(apdu), signed, establishing)
        elif apdu[0] in CIPHERED_TAGS:
            self._check_policy(_sc_of(split_ciphered(apdu).payload))  # before the counter moves on
            sc, plain = self.security.open(apdu)
            opened = Opened(plain, apdu[0], sc, signed, establishing=establishing)
        else:
            opened = Opened(apdu, 0, 0, signed, establishing=establishing)
        self._check_policy(opened.sc)
        if not opened.plain:
            raise ApduError("empty protected APDU")
        return opened

    def seal(self, opened: Opened, response: bytes) -> bytes:
        """The response to ``opened``, protected as its request was plus what the policy demands."""
        sc = opened.sc & (SC_AUTH | SC_ENC)
        if self.policy & POLICY_AUTH_RESPONSE:
            sc |= SC_AUTH
        if self.policy & POLICY_ENC_RESPONSE:
            sc |= SC_ENC
        sealed = response
        if opened.ciphering is not None:
            header, key = opened.ciphering
            answer = header.answer()
            payload = protect(sc | self.suite, key, self.security.ak, self.security.server_title,
                              self.security.next_ic(), response, answer.encode())
            sealed = build_general_ciphering(answer, None, payload)
        elif opened.tag and sc:
            sealed = self.security.seal(opened.tag, sc, response)
        if self._signs_response(opened.signed, opened.establishing):
            header = (opened.signed.answer() if opened.signed is not None
                      else Header(b"", self.security.server_title, self.security.client_title or b""))
            signer = self._own_key(KeyUse.DIGITAL_SIGNATURE)
            sealed = build_general_signing(header, sealed, lambda data: ecdsa_auth.sign(signer, data, self.suite))
        return sealed

    # --- parts ----------------------------------------------------------------------------------

    def _signs_response(self, signed: Header | None, establishing: bool) -> bool:
        return signed is not None or bool(self.policy & POLICY_SIGNED_RESPONSE) and not establishing

    def _check_policy(self, sc: int) -> None:
        if self.policy & POLICY_AUTH_REQUEST and not sc & SC_AUTH:
            raise PolicyError("the security policy requires authenticated requests")
        if self.policy & POLICY_ENC_REQUEST and not sc & SC_ENC:
            raise PolicyError("the security policy requires encrypted requests")

    def _check_titles(self, header: Header) -> None:
        if header.originator != self.security.client_title:
            raise SecurityError("originator system title differs from the one of the association")
        if header.recipient not in (b"", self.security.server_title):
            raise SecurityError("recipient system title is not the meter's")

    def _needs_pki(self) -> Pki:
        if self.suite == 0 or self.pki is None:
            raise SecurityError(f"public-key operations are not available in security suite {self.suite}")
        return self.pki

    def _peer_key(self, use: KeyUse) -> ec.EllipticCurvePublicKey:
        title = self.security.client_title or b""
        key = self._needs_pki().peer_public_key(title, use, self.suite, self._now_utc())
        if key is None:
            raise SecurityError(f"no valid {use.name.lower().replace('_', '-')} certificate of client system title "
                                f"{title.hex().upper()}")
        return key

    def _own_key(self, use: KeyUse) -> ec.EllipticCurvePrivateKey:
        key = self._needs_pki().own_key(use, self.suite)
        if key is None:
            raise SecurityError(f"the meter has no {use.name.lower().replace('_', '-')} key for suite {self.suite}")
        return key

    def _open_general_ciphering(self, message: GeneralCiphering, signed: Header | None,
                                establishing: bool) -> Opened:
        self._check_titles(message.header)
        key = self._content_key(message)
        payload = message.ciphered_content
        self._check_policy(_sc_of(payload))  # before the counter moves on
        sc, ic, plain = unprotect(key, self.security.ak, message.header.originator, payload, self.suite,
                                  message.header.encode())
        self.security.check_incoming(ic)
        return Opened(plain, GENERAL_CIPHERING, sc, signed, (message.header, key), establishing)

    def _content_key(self, message: GeneralCiphering) -> bytes:
        info = message.key_info
        if info is None or info.choice == KEY_INFO_IDENTIFIED:
            if info is not None and info.key_id != KEY_ID_GLOBAL_UNICAST:
                raise SecurityError(f"identified key {info.key_id} is not held (global unicast key only)")
            return self.security.ek
        if info.choice == KEY_INFO_WRAPPED:
            if info.key_id != KEK_MASTER:
                raise SecurityError(f"kek-id {info.key_id} unknown (master key only)")
            return unwrap_content_key(self._master_key(), info.data, self.suite)
        if info.choice == KEY_INFO_AGREED:
            own = self._own_key(KeyUse.KEY_AGREEMENT)
            if info.key_id == AGREED_ONE_PASS_DH:
                peer = public_key_of(info.data, self.suite)
            elif info.key_id == AGREED_STATIC_UNIFIED and not info.data:
                peer = self._peer_key(KeyUse.KEY_AGREEMENT)
            else:
                raise SecurityError(f"agreed-key parameters {info.key_id} not supported")
            header = message.header
            return derive_key(agree(own, peer), self.suite, header.originator, header.recipient,
                              header.transaction_id)
        raise ApduError(f"unknown key-info choice {info.choice}")


def _sc_of(payload: bytes) -> int:
    if not payload:
        raise ApduError("empty ciphered content")
    return payload[0]

"""Security setup version 1 (class 64, 0-0:43.0.E.255) with the key and certificate management of
security suites 1 and 2: :class:`SecuritySetupV1` and its object factory.

Attributes: 2 security_policy (enum, version 1 bits: the policy in force, the keys file's
``security_policy``; by default authenticated and encrypted requests and responses, 0x6C),
3 security_suite (the keys file's ``security_suite``), 4 client_system_title, 5
server_system_title, 6 certificates (array of certificate_info). Both are read at each use from
what the association is configured with (``suite_of`` / ``policy_of`` of the factory), so the
object never shows another suite or policy than the association applies. Methods, with the Blue
Book's parameters:

=== ===================================== =====================================================
 1  security_activate(enum policy)         OK when it names the policy in force; any other
                                           (weaker, stronger or signed): other-reason, as the
                                           policy changes only in the keys file
 2  key_transfer(array {enum, octet-str})  keys wrapped with the master key, of the suite's
                                           length (:mod:`meterd.cosem.key_transfer`)
 3  key_agreement(array {enum key_id,      ECDH per :mod:`meterd.cosem.key_agreement`; answers
    octet-string key_agreement_data})      the same array; keys 0 (global unicast) and 2
                                           (authentication), 16 octets on suite 1, 32 on suite 2;
                                           the key takes effect after the response went out
                                           (and is saved in the keys file), evented as
                                           KEY_CHANGED (48)
 4  generate_key_pair(enum key_pair_type)  0 digital signature, 1 key agreement, 2 TLS; on the
                                           suite of this object; event KEY_PAIR_GENERATED (193)
 5  generate_certificate_request(enum)     returns the PKCS #10 request (octet-string, DER)
 6  import_certificate(octet-string DER)   event CERTIFICATE_IMPORTED (191)
 7  export_certificate(certificate_identification) returns the certificate (octet-string, DER)
 8  remove_certificate(certificate_identification) event CERTIFICATE_REMOVED (192)
=== ===================================== =====================================================

``certificate_identification`` = structure {enum 0 by entity: structure {enum entity, enum
type, octet-string system_title}, or enum 1 by serial: structure {octet-string serial_number,
octet-string issuer}}. ``certificate_info`` = structure {enum entity, enum type, octet-string
serial_number, octet-string issuer, octet-string subject, octet-string subject_alt_name}. The
meter encodes serial_number as the integer's big-endian octets and issuer, subject and
subject_alt_name as UTF-8 text (RFC 4514 for names); it reads a serial number as big-endian
octets or as a DER INTEGER, an issuer as that text or as a DER Name.

Refusals answer a standard action-result: type-unmatched (12) for parameters of the wrong shape,
read-write-denied (3) for a key id the meter does not agree, object-unavailable (11) when no
certificate matches, other-reason (250) for a refused certificate or key operation; each is
logged once, with its reason, never with key material. Only the association whose object this
is may invoke methods 1-8 (its access rule; the reader has none).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from gurux_dlms.enums import ErrorCode

from meterd.core import event_codes
from meterd.core.ports import EventSink
from meterd.cosem import axdr
from meterd.cosem.adapters import ModelSecuritySetup, _answer, _deny
from meterd.cosem.key_agreement import agree
from meterd.cosem.keys import KEY_IDS
from meterd.cosem.objects import (
    Access,
    AccessLevel,
    AssociationConfig,
    CosemContext,
    CosemEntry,
    ObjectFactory,
)
from meterd.cosem.pki import CertificateEntity, CertificateInfo, KeyUse, Pki, PkiError, curve_of_suite
from meterd.cosem.pki_store import titles_of

_log = logging.getLogger("meterd.cosem")

OK = int(ErrorCode.OK)
DENIED = int(ErrorCode.READ_WRITE_DENIED)
TYPE_UNMATCHED = int(ErrorCode.UNMATCHED_TYPE)
UNAVAILABLE = int(ErrorCode.UNAVAILABLE_OBJECT)
OTHER_REASON = int(ErrorCode.OTHER_REASON)

MANAGEMENT_METHODS = frozenset(range(1, 9))
AGREED_KEY_IDS = frozenset({0, 2})
"""Keys key_agreement may set: 0 global unicast encryption, 2 authentication (no broadcast key)."""


class _Refused(Exception):
    """A method refused: ``result`` is the action-result, ``str()`` the reason logged."""

    def __init__(self, result: int, reason: str) -> None:
        super().__init__(reason)
        self.result = result


def certificate_info_encoding(info: CertificateInfo) -> bytes:
    """One ``certificate_info`` structure (see the module docstring)."""
    serial = info.serial_number.to_bytes(max(1, (info.serial_number.bit_length() + 7) // 8), "big")
    return axdr.encode_structure(
        axdr.encode_value(axdr.ENUM, int(info.entity)), axdr.encode_value(axdr.ENUM, int(info.use)),
        axdr.encode_value(axdr.OCTET_STRING, serial),
        axdr.encode_value(axdr.OCTET_STRING, info.issuer.encode()),
        axdr.encode_value(axdr.OCTET_STRING, info.subject.encode()),
        axdr.encode_value(axdr.OCTET_STRING, info.subject_alt_name.encode()))


def serial_from_octets(raw: bytes) -> int:
    """A serial number sent as a DER INTEGER (tag 02) or as big-endian octets."""
    if len(raw) >= 3 and raw[0] == 0x02 and raw[1] == len(raw) - 2 and raw[1] < 0x80:
        return int.from_bytes(raw[2:], "big", signed=True)
    if not raw:
        raise _Refused(TYPE_UNMATCHED, "serial_number is empty")
    return int.from_bytes(raw, "big")


class SecuritySetupV1(ModelSecuritySetup):
    """Security setup (class 64, version 1) of one ciphered association, with methods 1-8.

    ``pki``: the keys and certificates; ``suite`` and ``policy``: the security suite and the
    security policy (version 1 bits) the association applies, read at each use;
    ``master_key``: the current key-encrypting key (an agreed key is staged as a wrapped
    key_transfer item, so it is applied like one); ``events``: the security log; ``now_utc``: the
    meter's clock (certificate validity, event times); ``client_sap``: named in event details.
    """

    def __init__(self, ln: str, server_title: bytes, client_title: Callable[[], bytes | None],
                 stage_keys: Callable[[Sequence[tuple[int, bytes]]], int], *, pki: Pki,
                 suite: Callable[[], int], policy: Callable[[], int], master_key: Callable[[], bytes],
                 events: EventSink | None, now_utc: Callable[[], Any], client_sap: int) -> None:
        super().__init__(ln, server_title, client_title, stage_keys)
        self._pki = pki
        self._suite = suite
        self._policy = policy
        self._master_key = master_key
        self._events = events
        self._now = now_utc
        self._client_sap = client_sap

    def attribute_values(self) -> Mapping[int, Any]:
        values = dict(super().attribute_values())
        values[2] = lambda: axdr.encode_value(axdr.ENUM, self._policy())
        values[3] = lambda: axdr.encode_value(axdr.ENUM, self._suite())
        values[6] = lambda: axdr.encode_array([certificate_info_encoding(c) for c in self._pki.certificates()])
        return values

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index == 2:
            return super().invoke(settings, e)
        method = {1: self._activate, 3: self._key_agreement, 4: self._generate_key_pair,
                  5: self._certificate_request, 6: self._import, 7: self._export, 8: self._remove}.get(e.index)
        if method is None:
            return _deny(e)
        try:
            answer = method(e.parameters)
        except _Refused as refused:
            _log.warning("security setup %s: method %d refused: %s", self.logicalName, e.index, refused)
            e.error = ErrorCode(refused.result)
            return None
        if answer is None:
            return None
        return _answer(e, answer)

    # --- the methods ----------------------------------------------------------------------------

    def _activate(self, params: Any) -> bytes | None:
        asked, in_force = _int(params, "security_policy"), self._policy()
        if asked != in_force:
            raise _Refused(OTHER_REASON, f"security policy {asked:#04x} asked, {in_force:#04x} in force: "
                           "the policy changes only in the keys file")
        return None

    def _ecc_suite(self) -> int:
        suite = self._suite()
        try:
            curve_of_suite(suite)
        except PkiError as exc:
            raise _Refused(OTHER_REASON, str(exc)) from None
        return suite

    def _key_use(self, params: Any) -> KeyUse:
        value = _int(params, "key_pair_type")
        if value not in (KeyUse.DIGITAL_SIGNATURE, KeyUse.KEY_AGREEMENT, KeyUse.TLS):
            raise _Refused(OTHER_REASON, f"key pair type {value} unknown (0 signature, 1 agreement, 2 TLS)")
        return KeyUse(value)

    def _generate_key_pair(self, params: Any) -> bytes | None:
        use, suite = self._key_use(params), self._ecc_suite()
        try:
            self._pki.generate_key_pair(use, suite)
        except PkiError as exc:
            raise _Refused(OTHER_REASON, str(exc)) from None
        _log.warning("server key pair for %s on suite %d generated", use.name.lower(), suite)
        self._record("KEY_PAIR_GENERATED", use=use.name.lower(), suite=suite)
        return None

    def _certificate_request(self, params: Any) -> bytes:
        use, suite = self._key_use(params), self._ecc_suite()
        try:
            request = self._pki.certificate_request(use, suite)
        except PkiError as exc:
            raise _Refused(OTHER_REASON, str(exc)) from None
        return axdr.encode_value(axdr.OCTET_STRING, request)

    def _import(self, params: Any) -> bytes | None:
        if not isinstance(params, bytes | bytearray):
            raise _Refused(TYPE_UNMATCHED, "import_certificate takes an octet-string")
        try:
            info = self._pki.import_certificate(bytes(params), self._now())
        except PkiError as exc:
            raise _Refused(OTHER_REASON, f"certificate refused: {exc}") from None
        self._certificate_changed("imported", "CERTIFICATE_IMPORTED", info)
        return None

    def _certificate_changed(self, what: str, event: str, info: CertificateInfo) -> None:
        """Log and record a certificate ``what`` (imported, removed) as ``event``, with its serial
        number, entity and use."""
        entity, use = info.entity.name.lower(), info.use.name.lower()
        _log.warning("certificate %X %s (%s, %s)", info.serial_number, what, entity, use)
        self._record(event, serial=f"{info.serial_number:X}", entity=entity, use=use)

    def _identified(self, params: Any) -> CertificateInfo:
        """The held certificate a ``certificate_identification`` names."""
        try:
            kind, options = _enum(params[0]), params[1]
            if kind == 0:
                entity, use, title = _enum(options[0]), _enum(options[1]), _octets(options[2])
            elif kind == 1:
                serial, issuer = _octets(options[0]), _octets(options[1])
            else:
                raise _Refused(TYPE_UNMATCHED, f"certificate_identification_type {kind} unknown")
        except (TypeError, ValueError, IndexError, KeyError):
            raise _Refused(TYPE_UNMATCHED, "certificate_identification malformed") from None
        if kind == 0:
            return self._by_entity(entity, use, title)
        return self._by_serial(serial_from_octets(serial), issuer)

    def _by_entity(self, entity: int, use: int, title: bytes) -> CertificateInfo:
        try:
            wanted_entity, wanted_use = CertificateEntity(entity), KeyUse(use)
        except ValueError:
            raise _Refused(TYPE_UNMATCHED, f"certificate entity {entity} or type {use} unknown") from None
        for info in self._pki.certificates():
            if info.entity is not wanted_entity or info.use is not wanted_use:
                continue
            der = self._pki.export_certificate(info.entity, info.use, None, info.serial_number)
            if not title or _carries(der, title) or wanted_entity is CertificateEntity.CERTIFICATION_AUTHORITY:
                return info
        raise _Refused(UNAVAILABLE, f"no {wanted_entity.name.lower()} certificate for {wanted_use.name.lower()} "
                       f"of system title {title.hex().upper()} held")

    def _by_serial(self, serial: int, issuer: bytes) -> CertificateInfo:
        for info in self._pki.certificates():
            if info.serial_number != serial:
                continue
            if issuer == info.issuer.encode():
                return info
            der = self._pki.export_certificate(info.entity, info.use, None, serial)
            if x509.load_der_x509_certificate(der).issuer.public_bytes() == issuer:
                return info
        raise _Refused(UNAVAILABLE, f"no certificate with serial number {serial:X} from that issuer held")

    def _export(self, params: Any) -> bytes:
        info = self._identified(params)
        der = self._pki.export_certificate(info.entity, info.use, None, info.serial_number)
        return axdr.encode_value(axdr.OCTET_STRING, der)

    def _remove(self, params: Any) -> bytes | None:
        info = self._identified(params)
        try:
            self._pki.remove_certificate(info.serial_number, info.issuer)
        except PkiError as exc:
            raise _Refused(OTHER_REASON, str(exc)) from None
        self._certificate_changed("removed", "CERTIFICATE_REMOVED", info)
        return None

    def _key_agreement(self, params: Any) -> bytes:
        suite = self._ecc_suite()
        try:
            items = [(_enum(item[0]), _octets(item[1])) for item in params]
        except (TypeError, ValueError, IndexError):
            raise _Refused(TYPE_UNMATCHED, "key_agreement takes an array of {enum, octet-string}") from None
        if not items:
            raise _Refused(TYPE_UNMATCHED, "key_agreement with no key")
        unknown = [key_id for key_id, _ in items if key_id not in AGREED_KEY_IDS]
        if unknown:
            raise _Refused(DENIED, f"key id {unknown[0]} cannot be agreed (0 global unicast, 2 authentication)")
        client_title = self._client_title()
        if client_title is None:
            raise _Refused(OTHER_REASON, "no client system title in this association")
        now = self._now()
        peer = self._pki.peer_public_key(client_title, KeyUse.DIGITAL_SIGNATURE, suite, now)
        if peer is None:
            raise _Refused(OTHER_REASON, f"no valid digital-signature certificate of client "
                           f"{client_title.hex().upper()} on suite {suite}")
        own = self._pki.own_key(KeyUse.DIGITAL_SIGNATURE, suite)
        if own is None:
            raise _Refused(OTHER_REASON, f"no server digital-signature key pair on suite {suite}")
        try:
            agreed = [agree(key_id, data, suite, peer, own, client_title, self._server_title)
                      for key_id, data in items]
        except PkiError as exc:
            raise _Refused(OTHER_REASON, str(exc)) from None
        kek = self._master_key()
        result = self._stage([(a.key_id, aes_key_wrap(kek, a.key)) for a in agreed])
        if result != OK:
            raise _Refused(result, "the agreed keys could not be staged")
        _log.warning("key agreement on suite %d for %s", suite, ", ".join(KEY_IDS[a.key_id] for a in agreed))
        return axdr.encode_array([axdr.encode_structure(axdr.encode_value(axdr.ENUM, a.key_id),
                                                        axdr.encode_value(axdr.OCTET_STRING, a.answer))
                                  for a in agreed])

    def _record(self, name: str, **detail: object) -> None:
        if self._events is not None:
            self._events.record(event_codes.code(name), self._now(), dict(detail, client=self._client_sap))


def _enum(value: Any) -> int:
    """An enum (or unsigned) parameter as gurux decoded it; TypeError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an enum")
    return value


def _octets(value: Any) -> bytes:
    """An octet-string parameter as gurux decoded it; TypeError for anything else."""
    if not isinstance(value, bytes | bytearray):
        raise TypeError("not an octet-string")
    return bytes(value)


def _int(params: Any, name: str) -> int:
    if isinstance(params, bool) or not isinstance(params, int):
        raise _Refused(TYPE_UNMATCHED, f"{name} must be an enum")
    return params


def _carries(der: bytes, title: bytes) -> bool:
    """True when the certificate ``der`` names ``title`` in its subject (CN or alternative name)."""
    return title in titles_of(x509.load_der_x509_certificate(der))


class SecuritySetupFactory:
    """The COSEM factory serving :class:`SecuritySetupV1` for every ciphered association
    (``replaces`` the plain Security setup objects of the base model; the frame counters stay).

    ``master_key()``: the current key-encrypting key; ``suite_of`` / ``policy_of``: the security
    suite and policy an association applies (the daemon reads both from the keys file in force).
    """

    def __init__(self, pki: Pki, events: EventSink | None, master_key: Callable[[], bytes],
                 associations: Iterable[AssociationConfig], *, suite_of: Callable[[AssociationConfig], int],
                 policy_of: Callable[[AssociationConfig], int]) -> None:
        self._pki = pki
        self._events = events
        self._master_key = master_key
        self._suite_of = suite_of
        self._policy_of = policy_of
        self.replaces = frozenset(f"0.0.43.0.{a.security_instance}.255" for a in associations
                                  if a.security_instance is not None)

    def __call__(self, ctx: CosemContext) -> Iterable[CosemEntry]:
        for cfg in ctx.associations:
            e = cfg.security_instance
            if e is None or f"0.0.43.0.{e}.255" not in self.replaces:
                continue
            # equal, not identical: the server hands the associations over again with the
            # keys file's HLS mechanism (HLS-ECDSA) as new copies
            is_current = cfg == ctx.association
            manages = is_current and ctx.association.level >= AccessLevel.MANAGER
            obj = SecuritySetupV1(f"0.0.43.0.{e}.255", ctx.server_title,
                                  ctx.client_title if is_current else (lambda: None), ctx.stage_keys,
                                  pki=self._pki, suite=functools.partial(self._suite_of, cfg),
                                  policy=functools.partial(self._policy_of, cfg), master_key=self._master_key,
                                  events=self._events, now_utc=ctx.model.now_utc,
                                  client_sap=ctx.association.client_sap)
            yield CosemEntry(obj, Access(methods=MANAGEMENT_METHODS if manages else frozenset()))


def security_setup_factory(pki: Pki, events: EventSink | None, master_key: Callable[[], bytes],
                           associations: Iterable[AssociationConfig], *,
                           suite_of: Callable[[AssociationConfig], int],
                           policy_of: Callable[[AssociationConfig], int]) -> ObjectFactory:
    """The factory of :class:`SecuritySetupFactory` for ``ObjectRegistry.add``."""
    return SecuritySetupFactory(pki, events, master_key, associations, suite_of=suite_of, policy_of=policy_of)

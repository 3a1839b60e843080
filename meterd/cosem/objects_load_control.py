"""COSEM objects of load control: disconnect control, its script table, and the limiter.

* Disconnect control (class 70, version 0) 0-0:96.3.10.255: attribute 2 output_state (boolean,
  the relay's sensed position), 3 control_state (enum 0 disconnected, 1 connected, 2
  ready_for_reconnection), 4 control_mode (enum 0-6). Methods 1 remote_disconnect and 2
  remote_reconnect (data integer(0)). The management association (SAP 1, HLS-GMAC) may write
  attributes 2-4 and invoke the methods; writes of 2 and 3 are carried out as the remote trigger
  that leads there through the class 70 state table (nothing bypasses it; a value the table
  cannot reach from the present state is refused with ``other-reason`` and nothing changes).
* Disconnector script table (class 9) 0-0:10.0.106.255: scripts 1 (remote disconnect) and 2
  (remote reconnect), each one ``execute method`` of 0-0:96.3.10.255; method 1 execute
  (long-unsigned script id) for the management association.
* Limiter (class 71) 0-0:17.0.0.255: 2 monitored_value (1-0:1.7.0.255 class 3 attribute 2, W,
  or 1-0:31.7.0.255, A), 3 threshold_active, 4 threshold_normal, 5 threshold_emergency (in the
  monitored register's units: scaler -1 W, i.e. 0.1 W, or scaler -3 A, i.e. mA,
  double-long-unsigned), 6 min_over_threshold_duration, 7 min_under_threshold_duration (s,
  double-long-unsigned), 8 emergency_profile (id long-unsigned, activation date-time, duration
  s), 9 emergency_profile_group_id_list (array of long-unsigned), 10 emergency_profile_active,
  11 actions (over: script 3, under: script 4 of 0-0:10.0.106.255: the meter's own local
  disconnection g and local reconnection h, not executable from outside). Attributes 2 and 4-9
  are writable by the management association.

Readers (SAP 17) read everything here; the public client sees none of it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import GXDLMSDisconnectControl, GXDLMSLimiter, GXDLMSScriptTable

from meterd.core.disconnect import ActionResult, ControlModeError, ControlState, Trigger
from meterd.core.limiter import EmergencyProfile, LimiterConfig, LimiterConfigError, Monitored
from meterd.cosem import axdr, datetime_codec, profile
from meterd.cosem.adapters import DENIED, OK, OTHER_REASON, TYPE_UNMATCHED, AttributeTable, AttributeValue
from meterd.cosem.errors import ApduError
from meterd.cosem.objects import Access, CosemContext, CosemEntry, ObjectFactory
from meterd.services.load_control import LoadControl

DISCONNECT_CONTROL_LN = "0.0.96.3.10.255"
DISCONNECT_SCRIPTS_LN = "0.0.10.0.106.255"
LIMITER_LN = "0.0.17.0.0.255"
CLASS_DISCONNECT_CONTROL, CLASS_REGISTER = 70, 3
SCRIPT_REMOTE_DISCONNECT, SCRIPT_REMOTE_RECONNECT = 1, 2
SCRIPT_LOCAL_DISCONNECT, SCRIPT_LOCAL_RECONNECT = 3, 4

MONITORED_LN = {Monitored.ACTIVE_POWER: "1.0.1.7.0.255", Monitored.CURRENT: "1.0.31.7.0.255"}
"""Monitored value -> OBIS of the register it reads (attribute 2)."""
MONITORED_SCALER = {Monitored.ACTIVE_POWER: -1, Monitored.CURRENT: -3}
"""Scaler of the monitored register: thresholds travel in 0.1 W or mA."""
_CURRENT_LNS = {"1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255"}


def _fail(e: Any, code: int) -> None:
    e.error = ErrorCode(code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- class 70


class DisconnectControlObject(AttributeTable, GXDLMSDisconnectControl):  # type: ignore[misc]  # gurux is untyped
    """Disconnect control (class 70) bound to the meter's :class:`LoadControl`."""

    def __init__(self, ln: str, lc: LoadControl) -> None:
        super().__init__(ln)
        self.version = 0
        self._lc = lc

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        lc = self._lc
        return {
            2: lambda: axdr.encode_value(axdr.BOOLEAN, lc.output_state),
            3: lambda: axdr.encode_value(axdr.ENUM, int(lc.control_state)),
            4: lambda: axdr.encode_value(axdr.ENUM, lc.control_mode),
        }

    def write(self, e: Any) -> int:
        """SET attribute 4 (mode), 2 (output_state) or 3 (control_state) through the table."""
        value = e.value
        if e.index == 4:
            if not _is_int(value):
                return TYPE_UNMATCHED
            try:
                self._lc.set_control_mode(int(value))
            except ControlModeError:
                return OTHER_REASON
            return OK
        if e.index == 2:
            if not isinstance(value, bool):
                return TYPE_UNMATCHED
            target = ControlState.CONNECTED if value else ControlState.DISCONNECTED
            return self._reach(target, accept_ready=not value)
        if e.index == 3:
            if not _is_int(value) or value not in (0, 1, 2):
                return TYPE_UNMATCHED if not _is_int(value) else OTHER_REASON
            return self._reach(ControlState(value), accept_ready=False)
        return DENIED

    def _reach(self, target: ControlState, accept_ready: bool) -> int:
        """Run the remote trigger that takes the state table to ``target`` (for output_state
        False also ready_for_reconnection, which keeps the relay open)."""
        lc = self._lc
        wanted = {target} | ({ControlState.READY_FOR_RECONNECTION} if accept_ready else set())
        if lc.control_state in wanted:
            return OK
        for trigger in (Trigger.REMOTE_DISCONNECT, Trigger.REMOTE_RECONNECT):
            outcome = lc.dc.evaluate(trigger)
            if outcome.accepted and outcome.changed and outcome.after in wanted:
                done = lc.command(trigger)
                return OK if done.accepted else OTHER_REASON
        return OTHER_REASON

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index not in (1, 2):
            _fail(e, DENIED)
            return None
        if e.parameters is not None and not _is_int(e.parameters):
            _fail(e, TYPE_UNMATCHED)
            return None
        result = self._lc.remote_disconnect() if e.index == 1 else self._lc.remote_reconnect()
        if result is not ActionResult.SUCCESS:
            _fail(e, int(result))
        return None


# --------------------------------------------------------------------------- class 9


class DisconnectScriptTable(AttributeTable, GXDLMSScriptTable):  # type: ignore[misc]  # gurux is untyped
    """Disconnector script table (class 9): scripts 1 and 2 call class 70 methods 1 and 2 (fixed)."""

    SCRIPTS = {SCRIPT_REMOTE_DISCONNECT: 1, SCRIPT_REMOTE_RECONNECT: 2}

    def __init__(self, ln: str, target: DisconnectControlObject) -> None:
        super().__init__(ln)
        self._target = target

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: self._scripts}

    def _scripts(self) -> bytes:
        scripts = []
        for script_id, method in self.SCRIPTS.items():
            action = axdr.encode_structure(
                axdr.encode_value(axdr.ENUM, 2),  # execute a method
                axdr.encode_value(axdr.UINT16, CLASS_DISCONNECT_CONTROL),
                axdr.encode_logical_name(DISCONNECT_CONTROL_LN),
                axdr.encode_value(axdr.INT8, method),
                axdr.encode_value(axdr.INT8, 0))
            scripts.append(axdr.encode_structure(axdr.encode_value(axdr.UINT16, script_id),
                                                 axdr.encode_array([action])))
        return axdr.encode_array(scripts)

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1 or not _is_int(e.parameters):
            _fail(e, DENIED if e.index != 1 else TYPE_UNMATCHED)
            return None
        method = self.SCRIPTS.get(int(e.parameters))
        if method is None:
            _fail(e, DENIED)
            return None
        e.index = method
        try:
            return self._target.invoke(settings, e)
        finally:
            e.index = 1


# --------------------------------------------------------------------------- class 71


class LimiterObject(AttributeTable, GXDLMSLimiter):  # type: ignore[misc]  # gurux is untyped
    """Limiter (class 71) bound to the service's :class:`~meterd.core.limiter.Limiter`."""

    def __init__(self, ln: str, lc: LoadControl, now_utc: Callable[[], _dt.datetime]) -> None:
        super().__init__(ln)
        self._lc = lc
        self._now = now_utc

    @property
    def _config(self) -> LimiterConfig:
        return self._lc.limiter.config

    def _units(self, value: float) -> int:
        """A threshold (W or A) in the monitored register's units (0.1 W or mA)."""
        return max(0, round(value / 10.0 ** MONITORED_SCALER[self._config.monitored]))

    def _from_units(self, raw: int) -> float:
        return raw * 10.0 ** MONITORED_SCALER[self._config.monitored]

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {
            2: self._monitored, 3: lambda: self._threshold(self._lc.limiter.threshold_active(self._now())),
            4: lambda: self._threshold(self._config.threshold_normal),
            5: lambda: self._threshold(self._config.threshold_emergency),
            6: lambda: axdr.encode_value(axdr.UINT32, round(self._config.min_over_threshold_duration_s)),
            7: lambda: axdr.encode_value(axdr.UINT32, round(self._config.min_under_threshold_duration_s)),
            8: self._emergency_profile,
            9: lambda: axdr.encode_array([axdr.encode_value(axdr.UINT16, i)
                                          for i in sorted(self._config.emergency_group_ids)]),
            10: lambda: axdr.encode_value(axdr.BOOLEAN, self._lc.limiter.emergency_active(self._now())),
            11: self._actions,
        }

    def _threshold(self, value: float) -> bytes:
        return axdr.encode_value(axdr.UINT32, min(self._units(value), 0xFFFFFFFF))

    def _monitored(self) -> bytes:
        return axdr.encode_structure(axdr.encode_value(axdr.UINT16, CLASS_REGISTER),
                                     axdr.encode_logical_name(MONITORED_LN[self._config.monitored]),
                                     axdr.encode_value(axdr.INT8, 2))

    def _emergency_profile(self) -> bytes:
        p = self._config.emergency_profile
        if p is None:
            return axdr.encode_structure(axdr.encode_value(axdr.UINT16, 0),
                                         axdr.encode_value(axdr.OCTET_STRING, datetime_codec.UNSPECIFIED),
                                         axdr.encode_value(axdr.UINT32, 0))
        return axdr.encode_structure(axdr.encode_value(axdr.UINT16, p.profile_id),
                                     axdr.encode_value(axdr.OCTET_STRING, datetime_codec.encode_utc(p.activation_utc)),
                                     axdr.encode_value(axdr.UINT32, round(p.duration_s)))

    @staticmethod
    def _actions() -> bytes:
        return axdr.encode_structure(
            axdr.encode_structure(axdr.encode_logical_name(DISCONNECT_SCRIPTS_LN),
                                  axdr.encode_value(axdr.UINT16, SCRIPT_LOCAL_DISCONNECT)),
            axdr.encode_structure(axdr.encode_logical_name(DISCONNECT_SCRIPTS_LN),
                                  axdr.encode_value(axdr.UINT16, SCRIPT_LOCAL_RECONNECT)))

    def write(self, e: Any) -> int:
        """SET attributes 2 and 4-9; the new settings replace the limiter's (event 67)."""
        try:
            changes = self._changes(e.index, e.value)
        except (TypeError, ValueError, IndexError, ApduError):
            return TYPE_UNMATCHED
        if changes is None:
            return DENIED
        try:
            config = dataclasses.replace(self._config, **changes)
        except LimiterConfigError:
            return OTHER_REASON
        self._lc.set_limiter_config(config)
        return OK

    def _changes(self, index: int, value: Any) -> dict[str, Any] | None:
        if index == 2:
            return {"monitored": _monitored_from(value)}
        if index in (4, 5):
            if not _is_int(value):
                raise TypeError("threshold must be an integer")
            name = "threshold_normal" if index == 4 else "threshold_emergency"
            return {name: self._from_units(int(value))}
        if index in (6, 7):
            if not _is_int(value) or value < 0:
                raise TypeError("duration must be an unsigned integer")
            name = "min_over_threshold_duration_s" if index == 6 else "min_under_threshold_duration_s"
            return {name: float(value)}
        if index == 8:
            return {"emergency_profile": _profile_from(value)}
        if index == 9:
            ids = [int(v) for v in (value or [])]
            if not all(0 <= i <= 0xFFFF for i in ids):
                raise ValueError("group ids are long-unsigned")
            return {"emergency_group_ids": frozenset(ids)}
        return None


def _monitored_from(value: Any) -> Monitored:
    class_id, ln, attribute = value[0], bytes(value[1]), value[2]
    obis = ".".join(str(b) for b in ln)
    if class_id != CLASS_REGISTER or attribute != 2 or len(ln) != 6:
        raise ValueError("monitored value must be attribute 2 of a register")
    if obis == MONITORED_LN[Monitored.ACTIVE_POWER]:
        return Monitored.ACTIVE_POWER
    if obis in _CURRENT_LNS:
        return Monitored.CURRENT
    raise ValueError(f"cannot monitor {obis}")


def _profile_from(value: Any) -> EmergencyProfile | None:
    profile_id, when, duration = int(value[0]), value[1], int(value[2])
    if profile_id == 0 and duration == 0:
        return None
    raw = bytes(when) if isinstance(when, bytes | bytearray) else None
    if raw is None:
        raise TypeError("activation time must be an octet-string date-time")
    if not 0 <= profile_id <= 0xFFFF or duration < 0:
        raise ValueError("emergency profile id or duration out of range")
    return EmergencyProfile(profile_id, profile.request_datetime(raw), float(duration))


# --------------------------------------------------------------------------- factory


def load_control_factory(lc: LoadControl) -> ObjectFactory:
    """The COSEM factory of load control for ``daemon.cosem_factories``."""

    def objects(ctx: CosemContext) -> Iterable[CosemEntry]:
        dc = DisconnectControlObject(DISCONNECT_CONTROL_LN, lc)
        yield CosemEntry(dc, Access(write=frozenset({2, 3, 4}), methods=frozenset({1, 2})))
        yield CosemEntry(DisconnectScriptTable(DISCONNECT_SCRIPTS_LN, dc), Access(methods=frozenset({1})))
        yield CosemEntry(LimiterObject(LIMITER_LN, lc, ctx.model.now_utc),
                         Access(write=frozenset({2, 4, 5, 6, 7, 8, 9})))

    return objects

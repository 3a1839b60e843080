"""The meter's event codes: one table per event log, each code with its name, text and source.

Codes are DLMS ``unsigned`` (0…255), the value of the event code objects 0-0:96.11.x.255. Where
the IDIS companion specification (DLMS UA Blue Book event numbering as used by IDIS package 2)
defines a code, it is used as is (``source="IDIS"``). Where it has none (mostly the *end* of a
tamper episode, per-phase reverse current, the token, firmware and security logs), the project
defines one (``source="project"``) in the block 195…255, which IDIS leaves free for an electricity
meter without M-Bus channels (IDIS 231…255 is manufacturer-specific). That block is full; the
second project block is 160…194, numbers the IDIS tables this meter follows leave unassigned
(firmware update 160…169, pushes 170…174, communication media 175…181, time 182…185, power
quality settings and statistics 186…187, links and certificates 188…194).

Each code belongs to one or more logs (:class:`LogId`); the :class:`~meterd.core.events.EventRecorder`
routes a recorded code to every log listed here. The power-failure log 1-0:99.97.0.255 carries
no event code column; it holds the end time and duration of long power failures.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class LogId(enum.Enum):
    """An event log, valued by its short name."""

    STANDARD = "standard"
    FRAUD = "fraud"
    DISCONNECTOR = "disconnector"
    POWER_QUALITY = "power_quality"
    COMMUNICATION = "communication"
    POWER_FAILURE = "power_failure"
    FIRMWARE = "firmware"
    TOKEN = "token"
    SECURITY = "security"


@dataclass(frozen=True)
class LogObis:
    """OBIS codes of one log: the profile (class 7) and its event code object (class 1, or None)."""

    profile: str
    event_code: str | None


# IDIS numbering: 0-0:99.98.0 standard, .1 fraud, .2 disconnector, .4 power quality, .5
# communication (.3 is the M-Bus log, not used). .6, .7, .8 are project choices (no IDIS code).
LOG_OBIS: Mapping[LogId, LogObis] = MappingProxyType({
    LogId.STANDARD: LogObis("0.0.99.98.0.255", "0.0.96.11.0.255"),
    LogId.FRAUD: LogObis("0.0.99.98.1.255", "0.0.96.11.1.255"),
    LogId.DISCONNECTOR: LogObis("0.0.99.98.2.255", "0.0.96.11.2.255"),
    LogId.POWER_QUALITY: LogObis("0.0.99.98.4.255", "0.0.96.11.4.255"),
    LogId.COMMUNICATION: LogObis("0.0.99.98.5.255", "0.0.96.11.5.255"),
    LogId.FIRMWARE: LogObis("0.0.99.98.6.255", "0.0.96.11.6.255"),
    LogId.TOKEN: LogObis("0.0.99.98.7.255", "0.0.96.11.7.255"),
    LogId.SECURITY: LogObis("0.0.99.98.8.255", "0.0.96.11.8.255"),
    LogId.POWER_FAILURE: LogObis("1.0.99.97.0.255", None),
})


@dataclass(frozen=True)
class EventCode:
    """One event code: number (0…255), symbolic name, human text, logs it goes to, source."""

    code: int
    name: str
    text: str
    logs: tuple[LogId, ...]
    source: str = "IDIS"


_S, _F, _D, _Q = LogId.STANDARD, LogId.FRAUD, LogId.DISCONNECTOR, LogId.POWER_QUALITY
_C, _P, _W, _T, _X = LogId.COMMUNICATION, LogId.POWER_FAILURE, LogId.FIRMWARE, LogId.TOKEN, LogId.SECURITY

_TABLE: tuple[EventCode, ...] = (
    # --- standard event log (IDIS) ---
    EventCode(1, "POWER_DOWN", "Power down", (_S,)),
    EventCode(2, "POWER_UP", "Power up", (_S,)),
    EventCode(3, "DST_CHANGED", "Daylight saving time enabled or disabled", (_S,)),
    EventCode(4, "CLOCK_ADJUSTED_OLD", "Clock adjusted (old date/time)", (_S,)),
    EventCode(5, "CLOCK_ADJUSTED_NEW", "Clock adjusted (new date/time)", (_S,)),
    EventCode(6, "CLOCK_INVALID", "Clock invalid", (_S,)),
    EventCode(7, "REPLACE_BATTERY", "Replace battery", (_S,)),
    EventCode(8, "BATTERY_VOLTAGE_LOW", "Battery voltage low", (_S,)),
    EventCode(9, "TOU_ACTIVATED", "Passive TOU calendar activated", (_S,)),
    EventCode(10, "ERROR_REGISTER_CLEARED", "Error register cleared", (_S,)),
    EventCode(11, "ALARM_REGISTER_CLEARED", "Alarm register cleared", (_S,)),
    EventCode(12, "PROGRAM_MEMORY_ERROR", "Program memory error", (_S,)),
    EventCode(13, "RAM_ERROR", "RAM error", (_S,)),
    EventCode(14, "NV_MEMORY_ERROR", "NV memory error", (_S,)),
    # a restart of the meter's software without a power cut (a crash, kill or watchdog restart of
    # meterd while the host kept running): the microcontroller meter's watchdog reset
    EventCode(15, "WATCHDOG_ERROR", "Watchdog error (software restarted, supply kept)", (_S,)),
    EventCode(16, "MEASUREMENT_SYSTEM_ERROR", "Measurement system error", (_S,)),
    EventCode(17, "FIRMWARE_READY", "Firmware ready for activation", (_S, _W)),
    EventCode(18, "FIRMWARE_ACTIVATED", "Firmware activated", (_S, _W)),
    EventCode(47, "PARAMETERS_CHANGED", "One or more parameters changed", (_S,)),
    # --- fraud detection log (IDIS) ---
    EventCode(40, "TERMINAL_COVER_REMOVED", "Terminal cover removed", (_F,)),
    EventCode(41, "TERMINAL_COVER_CLOSED", "Terminal cover closed", (_F,)),
    EventCode(42, "STRONG_DC_FIELD", "Strong DC field detected", (_F,)),
    EventCode(43, "NO_STRONG_DC_FIELD", "No strong DC field anymore", (_F,)),
    EventCode(44, "METER_COVER_REMOVED", "Meter cover removed", (_F,)),
    EventCode(45, "METER_COVER_CLOSED", "Meter cover closed", (_F,)),
    EventCode(46, "AUTHENTICATION_FAILURES", "Association authentication failure (n times)", (_F, _X)),
    EventCode(48, "KEY_CHANGED", "Security key changed", (_S, _X)),
    EventCode(49, "DECRYPTION_FAILURE", "Decryption or authentication failure", (_F, _X)),
    EventCode(50, "REPLAY_ATTACK", "Replay attack", (_F, _X)),
    # --- disconnector control log (IDIS) ---
    EventCode(59, "READY_FOR_RECONNECTION", "Disconnector ready for manual reconnection", (_D,)),
    EventCode(60, "MANUAL_DISCONNECTION", "Manual disconnection", (_D,)),
    EventCode(61, "MANUAL_CONNECTION", "Manual connection", (_D,)),
    EventCode(62, "REMOTE_DISCONNECTION", "Remote disconnection", (_D,)),
    EventCode(63, "REMOTE_CONNECTION", "Remote connection", (_D,)),
    EventCode(64, "LOCAL_DISCONNECTION", "Local disconnection", (_D,)),
    EventCode(65, "LIMITER_EXCEEDED", "Limiter threshold exceeded", (_D,)),
    EventCode(66, "LIMITER_OK", "Limiter threshold ok", (_D,)),
    EventCode(67, "LIMITER_CHANGED", "Limiter threshold changed", (_D,)),
    EventCode(68, "DISCONNECT_FAILURE", "Disconnect/reconnect failure", (_D,)),
    EventCode(69, "LOCAL_RECONNECTION", "Local reconnection", (_D,)),
    # --- power quality log (IDIS) ---
    EventCode(76, "UNDER_VOLTAGE_L1", "Under voltage L1", (_Q,)),
    EventCode(77, "UNDER_VOLTAGE_L2", "Under voltage L2", (_Q,)),
    EventCode(78, "UNDER_VOLTAGE_L3", "Under voltage L3", (_Q,)),
    EventCode(79, "OVER_VOLTAGE_L1", "Over voltage L1", (_Q,)),
    EventCode(80, "OVER_VOLTAGE_L2", "Over voltage L2", (_Q,)),
    EventCode(81, "OVER_VOLTAGE_L3", "Over voltage L3", (_Q,)),
    EventCode(82, "MISSING_VOLTAGE_L1", "Missing voltage L1", (_Q,)),
    EventCode(83, "MISSING_VOLTAGE_L2", "Missing voltage L2", (_Q,)),
    EventCode(84, "MISSING_VOLTAGE_L3", "Missing voltage L3", (_Q,)),
    EventCode(85, "VOLTAGE_NORMAL_L1", "Voltage L1 normal", (_Q,)),
    EventCode(86, "VOLTAGE_NORMAL_L2", "Voltage L2 normal", (_Q,)),
    EventCode(87, "VOLTAGE_NORMAL_L3", "Voltage L3 normal", (_Q,)),
    EventCode(88, "PHASE_SEQUENCE_REVERSAL", "Phase sequence reversal", (_Q, _F)),
    EventCode(89, "MISSING_NEUTRAL", "Missing neutral", (_Q,)),
    EventCode(90, "PHASE_ASYMMETRY", "Phase asymmetry (current imbalance)", (_F,)),
    EventCode(91, "CURRENT_REVERSAL", "Current reversal", (_F,)),
    # --- project codes: ends of tamper episodes and per-phase tampers (fraud log) ---
    EventCode(195, "PHASE_SEQUENCE_NORMAL", "Phase sequence normal", (_Q, _F), "project"),
    EventCode(196, "PHASE_ASYMMETRY_END", "Current imbalance ended", (_F,), "project"),
    EventCode(197, "REVERSE_CURRENT_L1", "Reverse current L1", (_F,), "project"),
    EventCode(198, "REVERSE_CURRENT_L2", "Reverse current L2", (_F,), "project"),
    EventCode(199, "REVERSE_CURRENT_L3", "Reverse current L3", (_F,), "project"),
    EventCode(200, "REVERSE_CURRENT_END_L1", "Reverse current L1 ended", (_F,), "project"),
    EventCode(201, "REVERSE_CURRENT_END_L2", "Reverse current L2 ended", (_F,), "project"),
    EventCode(202, "REVERSE_CURRENT_END_L3", "Reverse current L3 ended", (_F,), "project"),
    EventCode(203, "NEUTRAL_MISMATCH", "Neutral current mismatch", (_F,), "project"),
    EventCode(204, "NEUTRAL_MISMATCH_END", "Neutral current mismatch ended", (_F,), "project"),
    EventCode(205, "MISSING_POTENTIAL_L1", "Missing potential L1 (current without voltage)", (_F,), "project"),
    EventCode(206, "MISSING_POTENTIAL_L2", "Missing potential L2 (current without voltage)", (_F,), "project"),
    EventCode(207, "MISSING_POTENTIAL_L3", "Missing potential L3 (current without voltage)", (_F,), "project"),
    EventCode(208, "MISSING_POTENTIAL_END_L1", "Missing potential L1 ended", (_F,), "project"),
    EventCode(209, "MISSING_POTENTIAL_END_L2", "Missing potential L2 ended", (_F,), "project"),
    EventCode(210, "MISSING_POTENTIAL_END_L3", "Missing potential L3 ended", (_F,), "project"),
    EventCode(211, "CURRENT_WITHOUT_VOLTAGE", "Current without voltage (all phases)", (_F,), "project"),
    EventCode(212, "CURRENT_WITHOUT_VOLTAGE_END", "Current without voltage ended", (_F,), "project"),
    # --- project codes: power-quality events of the waveform analysis (IEC 61000-4-30, EN 50160);
    # recorded at their start time with the duration (s) and residual / maximum voltage (V) ---
    EventCode(213, "VOLTAGE_DIP", "Voltage dip", (_Q,), "project"),
    EventCode(214, "VOLTAGE_SWELL", "Voltage swell", (_Q,), "project"),
    EventCode(217, "SHORT_INTERRUPTION", "Short supply interruption (up to 180 s)", (_Q,), "project"),
    EventCode(218, "LONG_INTERRUPTION", "Long supply interruption (over 180 s)", (_Q,), "project"),
    EventCode(253, "SUSTAINED_UNDERVOLTAGE", "Under-voltage (10/12-cycle RMS)", (_Q,), "project"),
    EventCode(254, "SUSTAINED_OVERVOLTAGE", "Over-voltage (10/12-cycle RMS)", (_Q,), "project"),
    # --- project codes: power failure ---
    EventCode(215, "LONG_POWER_FAILURE", "Long power failure (end time, duration)", (_P,), "project"),
    EventCode(216, "SHORT_POWER_FAILURE", "Short power failure (end time, duration)", (_S, _P), "project"),
    # --- project codes: the copies of the energy registers (meterd.store.energy_copies); damage to
    # a copy and failed writes are IDIS 14 "NV memory error" (alarm bit 10), with the copy ---
    EventCode(219, "STORAGE_FALLBACK", "Registers restored from an older copy (energy after it may be missing)",
              (_S,), "project"),
    EventCode(255, "METER_COMMISSIONED", "Meter commissioned as new (registers start from zero)", (_S,), "project"),
    # --- project codes: communication log ---
    EventCode(220, "LOCAL_SESSION_OPENED", "Local (optical) association opened", (_C,), "project"),
    EventCode(221, "LOCAL_SESSION_CLOSED", "Local (optical) association closed", (_C,), "project"),
    EventCode(222, "REMOTE_SESSION_OPENED", "Remote association opened", (_C,), "project"),
    EventCode(223, "REMOTE_SESSION_CLOSED", "Remote association closed", (_C,), "project"),
    # an interface of the meter (a DLMS serial port, the DLMS server, the CIU port, the LCD) switched
    # off because it failed, and back on; the detail names the interface (and the reason)
    EventCode(224, "INTERFACE_ON", "Interface back on", (_C,), "project"),
    EventCode(225, "INTERFACE_OFF", "Interface off (failed at start or while running)", (_C,), "project"),
    EventCode(226, "CIU_LINK_LOST", "Customer interface unit link lost", (_C,), "project"),
    EventCode(227, "CIU_LINK_RESTORED", "Customer interface unit link restored", (_C,), "project"),
    EventCode(228, "CIU_PAIRED", "Customer interface unit paired", (_C, _X), "project"),
    EventCode(229, "CIU_PAIRING_FAILED", "Customer interface unit pairing failed", (_C, _X), "project"),
    # --- second project block, communication media 175-181 (meterd.services.media, .modem); the
    # detail names the medium (and the one before), the reason, or the modem's state ---
    EventCode(175, "MEDIUM_SWITCHED", "Communication medium switched (from, to, reason)", (_C,), "project"),
    EventCode(176, "MEDIUM_UNHEALTHY", "Communication medium lost the head end", (_C,), "project"),
    EventCode(177, "MEDIUM_HEALTHY", "Communication medium reaches the head end again", (_C,), "project"),
    EventCode(178, "NO_MEDIUM", "No communication medium reaches the head end", (_C,), "project"),
    EventCode(179, "MODEM_FAULT", "Cellular modem fault (no SIM, SIM locked, not registered, failed)", (_C,),
              "project"),
    EventCode(180, "MODEM_BEARER_LOST", "Cellular data connection lost", (_C,), "project"),
    EventCode(181, "MODEM_BEARER_UP", "Cellular data connection established", (_C,), "project"),
    # --- project codes: disconnector log (meterd.core.disconnect.DisconnectorEvent) ---
    EventCode(234, "RELAY_FAULT_RETRIES_EXHAUSTED", "Relay did not follow its coils; retries used up", (_D,),
              "project"),
    EventCode(235, "LIMITER_LOCKOUT", "Limiter locked out after its reconnection attempts", (_D,), "project"),
    EventCode(236, "OVERCURRENT_TRIP", "Over-current or overload protection opened the relay", (_D,), "project"),
    EventCode(237, "SUPPLY_SWAP_TO_SOLAR", "Supply changed over to solar", (_D,), "project"),
    EventCode(238, "SUPPLY_SWAP_TO_GRID", "Supply changed over to grid", (_D,), "project"),
    EventCode(239, "SUPPLY_BOTH_LOST", "Grid and solar supply both lost", (_D,), "project"),
    # --- project codes: firmware log ---
    EventCode(230, "FIRMWARE_TRANSFER_STARTED", "Firmware image transfer started", (_W,), "project"),
    EventCode(231, "FIRMWARE_VERIFY_FAILED", "Firmware image verification failed", (_W, _S), "project"),
    EventCode(232, "FIRMWARE_ACTIVATION_FAILED", "Firmware activation failed", (_W, _S), "project"),
    EventCode(233, "FIRMWARE_SELF_CHECK_OK", "Firmware self-check after update passed", (_W,), "project"),
    # second project block, firmware update 160...169 (the A/B update engine: 160...164)
    EventCode(160, "FIRMWARE_INSTALLED", "Firmware installed to the inactive slot; trial boot next", (_W,),
              "project"),
    EventCode(161, "FIRMWARE_SELF_CHECK_FAILED", "Firmware self-check after update failed", (_W, _S), "project"),
    EventCode(162, "FIRMWARE_ROLLED_BACK", "Firmware update rolled back: the previous slot runs again", (_W, _S),
              "project"),
    # the CIU's update, carried over the MCU-CIU link (meterd.services.ciu_update): 163, 164, 167;
    # the detail says the step, the versions (from, to) and the reason
    EventCode(163, "CIU_FIRMWARE_TRANSFER", "CIU firmware update: bundle transfer started, resumed or complete",
              (_W,), "project"),
    EventCode(164, "CIU_FIRMWARE_REFUSED",
              "CIU firmware update refused (signature, hardware, version) or failed to install", (_W, _S), "project"),
    EventCode(167, "CIU_FIRMWARE_OUTCOME",
              "CIU firmware update: installed for a trial boot, activated after its self-check, or rolled back",
              (_W, _S), "project"),
    # the DLMS image transfer: 165...169
    EventCode(165, "FIRMWARE_ACTIVATION_SCHEDULED", "Firmware activation scheduled", (_W,), "project"),
    EventCode(166, "FIRMWARE_TRANSFER_RESUMED", "Firmware image block transfer resumed", (_W,), "project"),
    # store schemas across a rollback (meterd.store.schema): 168 when this version opens a store a
    # newer slot migrated and reads it as it is (additive change), 169 when it first runs the
    # down-migration the newer slot left in the file; the detail names the store, the file, the
    # version found, its oldest reader and the version this software knows
    EventCode(168, "STORE_SCHEMA_NEWER", "A store written by newer firmware is read by this version", (_W,),
              "project"),
    EventCode(169, "STORE_SCHEMA_MIGRATED_BACK", "A store was migrated back to a schema this version reads",
              (_W, _S), "project"),
    # --- project codes: trusted time (meterd.core.time_trust); the detail gives the state, the
    # reason and the last sync; the clock steps themselves are IDIS 4/5 with their source ---
    EventCode(182, "TIME_UNTRUSTED", "Time not trusted (never synchronised, no sync for too long, RTC time lost)",
              (_S,), "project"),
    EventCode(183, "TIME_TRUSTED", "Time trusted again (synchronised)", (_S,), "project"),
    # --- project codes: token log ---
    EventCode(240, "TOKEN_ACCEPTED", "Credit token accepted", (_T,), "project"),
    EventCode(241, "TOKEN_REJECTED_INVALID", "Token rejected: invalid", (_T,), "project"),
    EventCode(242, "TOKEN_REJECTED_USED", "Token rejected: already used", (_T,), "project"),
    EventCode(243, "TOKEN_REJECTED_OLD", "Token rejected: too old", (_T,), "project"),
    EventCode(244, "TOKEN_REJECTED_KEY_EXPIRED", "Token rejected: key expired", (_T,), "project"),
    EventCode(245, "TOKEN_MANAGEMENT_ACCEPTED", "Management token accepted", (_T,), "project"),
    EventCode(246, "KEY_CHANGE_TOKEN_ACCEPTED", "Key change token accepted", (_T, _X), "project"),
    EventCode(247, "CREDIT_LOW", "Credit below the low-credit threshold", (_T,), "project"),
    EventCode(248, "CREDIT_EXHAUSTED", "Credit exhausted", (_T,), "project"),
    EventCode(249, "EMERGENCY_CREDIT_GRANTED", "Emergency credit granted", (_T,), "project"),
    # --- project codes: pushes to the head end (meterd.services.push; second block 170-174) ---
    EventCode(170, "PUSH_RETRIES_EXHAUSTED", "Push not delivered after its retries (kept queued)", (_C,), "project"),
    EventCode(171, "PUSH_DROPPED", "Push dropped: the push queue is full", (_C,), "project"),
    EventCode(172, "PUSH_BACKLOG_DELIVERED", "Queued pushes delivered after an outage", (_C,), "project"),
    # --- project codes, second block: power-quality settings and statistics (186-187;
    # meterd.services.pq_thresholds, .pq_week) ---
    EventCode(186, "PQ_THRESHOLDS_CHANGED", "Power-quality thresholds changed (old -> new in the detail)", (_Q, _S),
              "project"),
    EventCode(187, "EN50160_WEEK_NOT_COMPLIANT", "EN 50160 week closed not compliant (limits not met in the detail)",
              (_Q,), "project"),
    # --- project codes: security log ---
    EventCode(250, "ASSOCIATION_REJECTED", "Association rejected", (_X,), "project"),
    EventCode(251, "FRAME_COUNTER_RESERVED", "Invocation counter range reserved", (_X,), "project"),
    EventCode(252, "UNAUTHORISED_CLOCK_SET", "Clock set refused", (_X,), "project"),
    # --- project codes, second block: links (188-194) ---
    # the DLMS TCP wrapper's connection guard (detail: how many since the last such event)
    EventCode(188, "TCP_ASSOCIATION_TIMEOUT", "TCP connection closed: no association within the association time-out",
              (_C, _X), "project"),
    EventCode(189, "TCP_CONNECTION_DISPLACED", "TCP connection without association dropped for a new one",
              (_C, _X), "project"),
    EventCode(190, "TCP_CONNECTION_REFUSED", "TCP connection refused: every connection associated", (_C, _X),
              "project"),
    # keys and certificates of security suites 1 and 2 (Security setup 0-0:43.0.x.255, version 1;
    # detail: the certificate's serial number (hex), entity and use, or the key pair's use and suite)
    EventCode(191, "CERTIFICATE_IMPORTED", "Certificate imported", (_X,), "project"),
    EventCode(192, "CERTIFICATE_REMOVED", "Certificate removed", (_X,), "project"),
    EventCode(193, "KEY_PAIR_GENERATED", "Server key pair generated", (_X,), "project"),
)

EVENT_CODES: Mapping[int, EventCode] = MappingProxyType({e.code: e for e in _TABLE})
BY_NAME: Mapping[str, EventCode] = MappingProxyType({e.name: e for e in EVENT_CODES.values()})


def codes_of(log: LogId) -> Mapping[int, EventCode]:
    """The code table of one log (code → definition)."""
    return MappingProxyType({c: e for c, e in EVENT_CODES.items() if log in e.logs})


def lookup(code: int) -> EventCode:
    """The definition of ``code``; :class:`KeyError` for a code the meter does not know."""
    return EVENT_CODES[code]


def code(name: str) -> int:
    """The number of the event called ``name`` (e.g. ``code("POWER_DOWN") == 1``)."""
    return BY_NAME[name].code


def check_table() -> None:
    """Raise ValueError if the table has duplicate numbers/names or codes outside 0…255."""
    numbers = [e.code for e in _TABLE]
    names = [e.name for e in _TABLE]
    if len(set(numbers)) != len(numbers) or len(set(names)) != len(names):
        raise ValueError("duplicate event code or name")
    if any(not 0 <= n <= 255 for n in numbers):
        raise ValueError("event code outside 0..255")
    if any(not e.logs for e in _TABLE):
        raise ValueError("event code without a log")

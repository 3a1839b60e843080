"""Run-time patches for the defects of gurux-dlms 1.0.203 on the server paths the meter uses.

The meter uses gurux only as the A-XDR codec, the COSEM interface-class attribute encoders and the
LN service dispatcher (``GXDLMSLNCommandHandler``); framing, association control (ACSE) and
ciphering are the meter's own code (see ``docs/dlms.md``). That removes most of the ~22 defects
listed in the project's DLMS reference; the remaining ones sit on the LN GET/SET/ACTION paths and
are fixed here. Every patch records whether the stock library still had the defect when it was
applied (:attr:`Patch.defect_in_stock`); the unit tests assert that, so an upstream change is
noticed and the patch reviewed. :func:`apply` is idempotent and checks the pinned version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from gurux_dlms import GXDLMSSettings, ValueEventArgs
from gurux_dlms.GXDLMSLNParameters import GXDLMSLNParameters
from gurux_dlms.GXDLMSLongTransaction import GXDLMSLongTransaction
from gurux_dlms.objects import GXDLMSExtendedRegister

from meterd.cosem.errors import CosemError

PINNED_VERSION = "1.0.203"
_log = logging.getLogger("meterd.cosem.gurux")


@dataclass
class Patch:
    """One fix: ``probe()`` is True while the defect is present; ``fix()`` removes it."""

    name: str
    description: str
    probe: Callable[[], bool]
    fix: Callable[[], None]
    defect_in_stock: bool | None = field(default=None)
    applied: bool = False

    def apply(self) -> None:
        """Record the stock state, then fix (once)."""
        if self.applied:
            return
        self.defect_in_stock = self.probe()
        self.fix()
        self.applied = True


# --- 1. GXDLMSLNParameters: isMultipleBlocks() / setStatus() are called by the SET handler -------

def _lnparams_multiple_blocks_probe() -> bool:
    return not hasattr(GXDLMSLNParameters, "isMultipleBlocks")


def _lnparams_multiple_blocks_fix() -> None:
    def is_multiple_blocks(self: Any) -> bool:
        return bool(self.multipleBlocks)

    GXDLMSLNParameters.isMultipleBlocks = is_multiple_blocks


def _lnparams_set_status_probe() -> bool:
    return not hasattr(GXDLMSLNParameters, "setStatus")


def _lnparams_set_status_fix() -> None:
    def set_status(self: Any, value: int) -> None:
        self.status = value

    GXDLMSLNParameters.setStatus = set_status


# --- 2. GXDLMSSettings: getMaxPduSize(), setConnected() and the ``gbtWndowSize`` typo -----------

def _settings_max_pdu_probe() -> bool:
    return not hasattr(GXDLMSSettings, "getMaxPduSize")


def _settings_max_pdu_fix() -> None:
    def get_max_pdu_size(self: Any) -> int:
        return int(self.maxPduSize)

    GXDLMSSettings.getMaxPduSize = get_max_pdu_size


def _settings_set_connected_probe() -> bool:
    return not hasattr(GXDLMSSettings, "setConnected")


def _settings_set_connected_fix() -> None:
    def set_connected(self: Any, value: int) -> None:
        self.connected = value

    GXDLMSSettings.setConnected = set_connected


def _settings_gbt_typo_probe() -> bool:
    return not hasattr(GXDLMSSettings(True, None), "gbtWndowSize")


def _settings_gbt_typo_fix() -> None:
    GXDLMSSettings.gbtWndowSize = property(lambda self: self.gbtWindowSize)


# --- 3. GXDLMSLongTransaction.setData() is called between GET blocks ---------------------------

def _transaction_probe() -> bool:
    return not hasattr(GXDLMSLongTransaction, "setData")


def _transaction_fix() -> None:
    def set_data(self: Any, buff: Any) -> None:
        remaining = bytes(buff.array()[buff.position:]) if hasattr(buff, "array") else bytes(buff)
        self.data.clear()
        self.data.set(remaining)

    GXDLMSLongTransaction.setData = set_data


# --- 4. ValueEventArgs: not iterable, ``server`` never set, missing accessors ------------------

class _Holder:
    """Stand-in for a server: the event-args constructor only reads ``.settings``."""

    def __init__(self) -> None:
        self.settings = GXDLMSSettings(True, None)


def _event_args() -> Any:
    return ValueEventArgs(_Holder(), None, 2)


def _vea_iterable_probe() -> bool:
    try:
        iter(_event_args())
    except TypeError:
        return True
    return False


def _vea_iterable_fix() -> None:
    def iterate(self: Any) -> Any:
        return iter((self,))

    ValueEventArgs.__iter__ = iterate


def _vea_server_probe() -> bool:
    return _event_args().server is None


def _vea_server_fix() -> None:
    stock_init = ValueEventArgs.__init__

    def init(self: Any, s: Any, target: Any, index: int, selector: int = 0, parameters: Any = None) -> None:
        stock_init(self, s, target, index, selector, parameters)
        if not isinstance(s, GXDLMSSettings):
            self.server = s

    ValueEventArgs.__init__ = init


def _missing_attribute_probe(name: str) -> Callable[[], bool]:
    return lambda: not hasattr(_event_args(), name)


def _vea_set_value_fix() -> None:
    def set_value(self: Any, value: Any) -> None:
        self.value = value

    ValueEventArgs.setValue = set_value


def _vea_skip_max_pdu_fix() -> None:
    ValueEventArgs.isSkipMaxPduSize = property(lambda self: self.skipMaxPduSize)


def _vea_row_end_index_fix() -> None:
    ValueEventArgs.getRowEndIndex = lambda self: self.rowEndIndex


# --- 5. GXDLMSExtendedRegister: no methods counted, though class 4 has reset (method 1) -----------

def _extended_register_methods_probe() -> bool:
    return int(GXDLMSExtendedRegister().getMethodCount()) < 1


def _extended_register_methods_fix() -> None:
    GXDLMSExtendedRegister.getMethodCount = lambda self: 1  # Blue Book class 4: method 1 reset


# --- 6. print() noise on stdout from library internals -----------------------------------------

_NOISY_MODULES = (
    "gurux_dlms.GXDLMSLNCommandHandler", "gurux_dlms.GXDLMS", "gurux_dlms._GXAPDU",
    "gurux_dlms.GXDLMSSettings", "gurux_dlms.GXDLMSChippering", "gurux_dlms.GXSecure",
    "gurux_dlms.GXDLMSChipperingStream", "gurux_dlms.objects.GXDLMSProfileGeneric",
    "gurux_dlms.objects.GXDLMSSecuritySetup", "gurux_dlms.objects.GXDLMSObjectCollection",
    "gurux_dlms.GXDLMSConverter",
)


def _log_print(*args: Any, **_kwargs: Any) -> None:
    _log.debug("gurux: %s", " ".join(str(a) for a in args))


def _print_probe() -> bool:
    """True when a library path known to print (an HDLC frame check that fails) writes to stdout."""
    import io
    from contextlib import redirect_stdout

    captured = io.StringIO()
    with redirect_stdout(captured):
        GXDLMSSettings(True, None).checkFrame(0x32, None)
    return captured.getvalue() != ""


def _print_fix() -> None:
    import importlib

    for name in _NOISY_MODULES:
        importlib.import_module(name).print = _log_print  # type: ignore[attr-defined]


PATCHES: dict[str, Patch] = {
    p.name: p
    for p in (
        Patch("lnparams_is_multiple_blocks", "SET handler calls missing GXDLMSLNParameters.isMultipleBlocks()",
              _lnparams_multiple_blocks_probe, _lnparams_multiple_blocks_fix),
        Patch("lnparams_set_status", "SET handler calls missing GXDLMSLNParameters.setStatus()",
              _lnparams_set_status_probe, _lnparams_set_status_fix),
        Patch("settings_get_max_pdu_size", "GET-next-block calls missing GXDLMSSettings.getMaxPduSize()",
              _settings_max_pdu_probe, _settings_max_pdu_fix),
        Patch("settings_set_connected", "ACTION calls missing GXDLMSSettings.setConnected()",
              _settings_set_connected_probe, _settings_set_connected_fix),
        Patch("settings_gbt_wndow_size", "GET-next-block reads the misspelt settings.gbtWndowSize",
              _settings_gbt_typo_probe, _settings_gbt_typo_fix),
        Patch("transaction_set_data", "GET-next-block calls missing GXDLMSLongTransaction.setData()",
              _transaction_probe, _transaction_fix),
        Patch("value_event_args_iterable", "ACTION handler does list(e) on a ValueEventArgs",
              _vea_iterable_probe, _vea_iterable_fix),
        Patch("value_event_args_server", "ValueEventArgs.server never set: object_list access rights empty",
              _vea_server_probe, _vea_server_fix),
        Patch("value_event_args_set_value", "ValueEventArgs.setValue() missing",
              _missing_attribute_probe("setValue"), _vea_set_value_fix),
        Patch("value_event_args_skip_max_pdu", "ValueEventArgs.isSkipMaxPduSize missing",
              _missing_attribute_probe("isSkipMaxPduSize"), _vea_skip_max_pdu_fix),
        Patch("value_event_args_row_end_index", "ValueEventArgs.getRowEndIndex() missing",
              _missing_attribute_probe("getRowEndIndex"), _vea_row_end_index_fix),
        Patch("extended_register_methods", "class 4 counts no methods: the object list hides reset (method 1)",
              _extended_register_methods_probe, _extended_register_methods_fix),
        Patch("quiet_stdout", "library internals print() to stdout", _print_probe, _print_fix),
    )
}


def apply() -> dict[str, Patch]:
    """Apply every patch once; raises :class:`CosemError` on an unexpected gurux version."""
    version = metadata.version("gurux-dlms")
    if version != PINNED_VERSION:
        raise CosemError(f"gurux-dlms {version} is not the reviewed {PINNED_VERSION}; re-check the patches")
    for patch in PATCHES.values():
        patch.apply()
    return PATCHES


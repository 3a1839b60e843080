"""Every gurux patch: the defect was present in the stock library, and the patched path works.

If one of the ``defect_in_stock`` assertions fails, upstream changed: review the patch.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
from gurux_dlms import GXByteBuffer, GXDLMSSettings, ValueEventArgs
from gurux_dlms.GXDLMSLNParameters import GXDLMSLNParameters
from gurux_dlms.GXDLMSLongTransaction import GXDLMSLongTransaction
from gurux_dlms.objects import GXDLMSData

from meterd.cosem import gurux_patches
from meterd.cosem.errors import CosemError


@pytest.fixture(scope="module")
def patches():
    return gurux_patches.apply()


def test_every_patch_saw_its_defect_in_the_pinned_stock_library(patches):
    assert set(patches) == {
        "lnparams_is_multiple_blocks", "lnparams_set_status", "settings_get_max_pdu_size",
        "settings_set_connected", "settings_gbt_wndow_size", "transaction_set_data",
        "value_event_args_iterable", "value_event_args_server", "value_event_args_set_value",
        "value_event_args_skip_max_pdu", "value_event_args_row_end_index", "extended_register_methods",
        "quiet_stdout"}
    for patch in patches.values():
        assert patch.applied
        assert patch.defect_in_stock is True, f"{patch.name}: upstream fixed it? review the patch"
        assert patch.probe() is False, f"{patch.name}: still defective after the fix"


def test_apply_is_idempotent(patches):
    again = gurux_patches.apply()
    assert again is patches


def test_version_guard(monkeypatch):
    monkeypatch.setattr(gurux_patches.metadata, "version", lambda _name: "1.0.999")
    with pytest.raises(CosemError):
        gurux_patches.apply()


def test_lnparams_accessors(patches):
    settings = GXDLMSSettings(True, None)
    settings.count, settings.index = 3, 1
    p = GXDLMSLNParameters(settings, 1, 0xC5, 1, None, None, 0)
    assert p.isMultipleBlocks() is True
    p.setStatus(4)
    assert p.status == 4


def test_settings_accessors(patches):
    settings = GXDLMSSettings(True, None)
    settings.maxPduSize = 321
    settings.gbtWindowSize = 3
    settings.setConnected(2)
    assert settings.getMaxPduSize() == 321
    assert settings.gbtWndowSize == 3
    assert settings.connected == 2


def test_transaction_set_data_keeps_only_the_unsent_rest(patches):
    buff = GXByteBuffer(bytearray(b"abcdef"))
    buff.position = 4
    t = GXDLMSLongTransaction(None, 0xC0, GXByteBuffer())
    t.setData(buff)
    assert bytes(t.data.array()) == b"ef"


def test_value_event_args_are_iterable_and_know_their_server(patches):
    class Host:
        settings = GXDLMSSettings(True, None)

    host = Host()
    e = ValueEventArgs(host, GXDLMSData("0.0.1.0.0.255"), 2)
    assert list(e) == [e]
    assert e.server is host
    e.setValue(5)
    assert e.value == 5
    assert e.isSkipMaxPduSize is False
    assert e.getRowEndIndex() == 0
    only_settings = ValueEventArgs(GXDLMSSettings(True, None), None, 2)
    assert only_settings.server is None


def test_library_print_goes_to_the_log_not_stdout(patches, caplog):
    settings = GXDLMSSettings(True, None)
    out = io.StringIO()
    with redirect_stdout(out), caplog.at_level("DEBUG", logger="meterd.cosem.gurux"):
        assert settings.checkFrame(0x32, None) is False  # a library path that prints
    assert out.getvalue() == ""
    assert "Invalid HDLC Frame" in caplog.text


def test_each_probe_sees_only_its_own_defect(patches, monkeypatch):
    """A partial upstream fix is noticed: undoing one fix makes exactly its probe report again."""
    undo = {
        "lnparams_set_status": (GXDLMSLNParameters, "setStatus"),
        "settings_set_connected": (GXDLMSSettings, "setConnected"),
        "settings_gbt_wndow_size": (GXDLMSSettings, "gbtWndowSize"),
        "value_event_args_set_value": (ValueEventArgs, "setValue"),
        "value_event_args_row_end_index": (ValueEventArgs, "getRowEndIndex"),
    }
    for name, (cls, attr) in undo.items():
        with monkeypatch.context() as m:
            m.delattr(cls, attr)
            still = {n for n, p in patches.items() if p.probe()}
        assert still == {name}, name


def test_quiet_stdout_probe_watches_what_gurux_prints(patches, monkeypatch):
    import builtins
    import sys

    settings_module = sys.modules["gurux_dlms.GXDLMSSettings"]  # the package exports the class by that name
    monkeypatch.setattr(settings_module, "print", builtins.print)  # the stock behaviour is back
    assert patches["quiet_stdout"].probe() is True
    monkeypatch.setattr(settings_module, "print", lambda *args, **kwargs: None)  # silent by other means
    assert patches["quiet_stdout"].probe() is False

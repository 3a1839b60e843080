"""The ATM90E36 driver and simulator name every register through ``hw.atm90e36.regmap``: no integer
literal stands for a register address in them (masks, bit values and reset codes are fine)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hw.atm90e36 import regmap as rm

PACKAGE = Path(rm.__file__).resolve().parent
CHECKED = ("driver.py", "sim.py")

#: Calls whose first argument is a register address (``_Acc``: its first two).
ADDRESS_CALLS = {"read_register": 1, "write_register": 1, "read_pair": 1, "_read_scaled": 1, "_raw_read": 1,
                 "_raw_write": 1, "_put16": 1, "_put_pair": 1, "_Acc": 2, "_read": 1, "_write": 1,
                 "_register_value": 1, "_running": 1}
#: Names of the register images indexed by address.
REGISTER_IMAGES = {"r", "_regs", "values", "regs"}


def _is_hex(node: ast.AST, source: str) -> bool:
    segment = ast.get_source_segment(source, node) or ""
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and segment.lower().startswith("0x")


def _int_literals(node: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool)]


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def raw_addresses(source: str) -> list[str]:
    """``line: text`` of each integer literal used as a register address in ``source``."""
    found: list[ast.AST] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _name(node.value) in REGISTER_IMAGES:
            found += _int_literals(node.slice)
        elif isinstance(node, ast.Call) and _name(node.func) in ADDRESS_CALLS:
            for arg in node.args[:ADDRESS_CALLS[_name(node.func)]]:
                found += _int_literals(arg)
        elif isinstance(node, ast.Call) and _name(node.func) == "range":
            found += [a for a in node.args if _is_hex(a, source)]
        elif isinstance(node, ast.Dict):
            found += [k for k in node.keys if k is not None and _is_hex(k, source)]
        elif isinstance(node, ast.Compare) and any("addr" in _name(n) for n in (node.left, *node.comparators)):
            found += [n for n in (node.left, *node.comparators) if _is_hex(n, source)]
    return sorted({f"{n.lineno}: {ast.get_source_segment(source, n)}" for n in found})


@pytest.mark.parametrize("name", CHECKED)
def test_no_raw_register_address(name: str) -> None:
    assert raw_addresses((PACKAGE / name).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("snippet", [
    "x = self.read_register(0x95)",
    "x = self.read_pair(0xD9 + i)",
    "r[0x01] |= 8",
    "values = {0x31: pl >> 16}",
    "self._put_pair(0xB0, p, 4.0, signed=True)",
    "if address == 0x0F: pass",
    "keep = frozenset(range(0x100, 0x1C0))",
    "acc = _Acc(0x80 + i, rm.ANENERGY, 3)",
])
def test_the_check_finds_raw_addresses(snippet: str) -> None:
    assert raw_addresses(snippet) != []


@pytest.mark.parametrize("snippet", [
    "value |= 0x1000 if sixty else 0",
    "r[rm.SYS_STATUS1] |= 0x0200",
    "self.write_register(block.start_addr, rm.START_OPERATE)",
    "self._put_pair(rm.SMEAN[i], s, 1.0, signed=False, limit=0x7FFFFF00)",
    "flags = {15: 'noload_total_q'}",
    "rx = self.spi.xfer2([0x80 | (address >> 8) & 0x03, address & 0xFF, 0x00, 0x00])",
])
def test_masks_values_and_frames_are_not_addresses(snippet: str) -> None:
    assert raw_addresses(snippet) == []


def test_named_addresses_match_the_datasheet_map() -> None:
    assert (rm.SOFT_RESET, rm.SYS_STATUS0, rm.SYS_STATUS1, rm.LAST_SPI_DATA) == (0x00, 0x01, 0x02, 0x0F)
    assert (rm.EN_STATUS0, rm.EN_STATUS1, rm.SVENERGY_T, rm.DFT_CTRL) == (0x95, 0x96, 0x94, 0x1D1)
    assert rm.URMS == (0xD9, 0xDA, 0xDB) and rm.IRMS == (0xDD, 0xDE, 0xDF)
    assert (rm.IRMS_N1, rm.IRMS_N0, rm.FREQ, rm.TEMP) == (0xD8, 0xDC, 0xF8, 0xFC)
    assert tuple(range(0x35, 0x3B)) == rm.START_THRESHOLDS
    assert rm.UGAIN == (0x61, 0x65, 0x69) and rm.IOFFSET == (0x64, 0x68, 0x6C)
    assert frozenset(range(0x100, 0x1C0)) | frozenset(range(0x10, 0x14)) == rm.KEPT_BY_SOFT_RESET
    assert rm.harmonic_addrs("CV") == tuple(range(0x1A0, 0x1BF))
    assert all(rm.REGISTERS[a].lsb_addr is not None for a in (*rm.URMS, *rm.PMEAN_H, rm.SVMEAN_T, rm.PMEAN_TF))

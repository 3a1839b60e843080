"""The shipped DejaVu faces: small subsets that still hold every character the displays draw."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parents[3]
FONTS = ROOT / "assets" / "fonts"
DEBIAN_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# the modules whose string literals reach the meter LCD or the CIU display
DISPLAY_TEXT_MODULES = ("meterd/ui/screens.py", "meterd/ui/live_values.py", "meterd/ui/battery.py",
                        "meterd/ui/meter_lcd.py", "meterd/ui/meter_display.py", "ciu/ui/texts.py", "ciu/ui/render.py")


def _tool():
    spec = importlib.util.spec_from_file_location("subset_fonts", ROOT / "tools" / "subset_fonts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_arabic(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff" or "\ufb50" <= ch <= "\ufeff"


def _display_characters() -> set[str]:
    """Every character of the string literals of the display modules, Arabic left out."""
    chars: set[str] = set()
    for rel in DISPLAY_TEXT_MODULES:
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                chars.update(ch for ch in node.value if ch.isprintable() and not _is_arabic(ch))
    return chars


@pytest.mark.parametrize("face", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_face_holds_every_display_character(face: str) -> None:
    cmap = TTFont(str(FONTS / face))["cmap"].getBestCmap()
    needed = _display_characters() | {chr(cp) for cp in range(0x20, 0x7F)}
    assert {"φ", "°", "…"} <= needed  # the scan sees the non-ASCII texts
    missing = sorted(ch for ch in needed if ord(ch) not in cmap)
    assert not missing, f"{face} lacks {missing}: add them to tools/subset_fonts.py KEPT_RANGES"


@pytest.mark.parametrize("face", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_face_is_the_subset(face: str) -> None:
    kept = set(_tool().kept_code_points())
    font = TTFont(str(FONTS / face))
    assert set(font["cmap"].getBestCmap()) <= kept
    assert "kern" in font  # Pillow's basic layout kerns from it
    assert (FONTS / face).stat().st_size < 200_000  # every size in use maps the whole file


@pytest.mark.skipif(not (DEBIAN_DEJAVU / "DejaVuSans.ttf").is_file(), reason="fonts-dejavu-core is not installed")
@pytest.mark.parametrize("face", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_tool_remakes_the_shipped_face(face: str, tmp_path: Path) -> None:
    _tool().subset_face(DEBIAN_DEJAVU / face, tmp_path / face)
    assert (tmp_path / face).read_bytes() == (FONTS / face).read_bytes()

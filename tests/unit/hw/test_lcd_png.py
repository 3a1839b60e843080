"""The simulator's PNG display: the current screen, a bounded ring of frames, and no per-frame
growth of the process (a simulated meter draws some 20 000 frames a day)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from hw.lcd import PngDevice


def _frame(shade: int) -> Image.Image:
    image = Image.new("1", (128, 64))
    image.putpixel((shade % 128, 0), 1)
    return image


def test_screen_and_the_last_frames_are_kept(tmp_path: Path) -> None:
    device = PngDevice(tmp_path, keep=4)
    for n in range(10):
        device.display(_frame(n))
    assert (tmp_path / "screen.png").is_file()
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == [f"frame_{n:06d}.png" for n in range(6, 10)]
    assert Image.open(tmp_path / "screen.png").convert("1").getpixel((9, 0)) == 255


def test_frame_names_are_not_interned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pathlib interns every path component it parses; a unique name per frame would stay in the
    interpreter's table of interned strings for good."""
    interned: list[str] = []
    real = sys.intern

    def spy(text: str) -> str:
        interned.append(text)
        return real(text)

    device = PngDevice(tmp_path, keep=2)
    monkeypatch.setattr(sys, "intern", spy)
    for n in range(5):
        device.display(_frame(n))
    monkeypatch.undo()
    assert [t for t in interned if t.startswith("frame_")] == []
    assert len(list(tmp_path.glob("frame_*.png"))) == 2

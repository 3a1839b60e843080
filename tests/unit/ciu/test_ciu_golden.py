"""Golden images of the CIU display screens (English and Arabic), compared pixel by pixel.

Regenerate with ``PMM_REGEN_GOLDEN=1`` and inspect ``tests/golden/ciu/`` before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ciu.core.state import Screen, View
from ciu.ui.render import render
from hw.lcd import raqm_available
from tests.paths import GOLDEN as golden_root
from tests.unit.ui.test_meter_lcd_golden import check_golden

GOLDEN = golden_root / "ciu"
STATUS = {"credit": "153.25", "unit": "kWh", "relay": True, "low_credit": False}
UTC_S = 1772633109  # 2026-03-04 14:05:09 UTC

VIEWS = {
    "home": View(Screen.HOME, link_up=True, status=STATUS, utc_s=UTC_S, utc_offset_s=7200),  # shows 16:05
    "home-low-credit-no-link": View(Screen.HOME, link_up=False, alarm=True, utc_s=UTC_S,
                                    status={**STATUS, "credit": "3.5", "low_credit": True}),
    "entry-partial": View(Screen.ENTRY, entry="1234 5678 9012 3456 78", link_up=True, notice="err_length"),
    "entry-full": View(Screen.ENTRY, entry="1234 5678 9012 3456 7890", link_up=True),
    "waiting-queued": View(Screen.WAITING, entry="1234 5678 9012 3456 7890", notice="queued"),
    "result-accepted": View(Screen.RESULT, link_up=True,
                            result={"accepted": True, "code": "accepted", "amount": "50", "credit": "203.25", "unit": "kWh"}),
    "result-used": View(Screen.RESULT, link_up=True, result={"accepted": False, "code": "used"}),
    "result-not-enabled": View(Screen.RESULT, link_up=True, result={"accepted": False, "code": "not_enabled"}),
    "info-energy": View(Screen.INFO, link_up=True, info={"code": 7, "import_kwh": "12345.678", "export_kwh": "12.5"}),
    "info-last-token": View(Screen.INFO, link_up=True, info={"code": 2, "last_token": "12345678901234567890",
                                                              "last_token_code": "accepted"}),
    "info-time": View(Screen.INFO, link_up=True, utc_s=UTC_S, utc_offset_s=7200,
                      info={"code": 5, "utc_s": UTC_S, "time_v": 2, "utc_offset_s": 7200, "dst": False}),
    "pair-entry": View(Screen.PAIR_ENTRY, entry="0427", link_up=False),
    "pair-ok": View(Screen.PAIR_RESULT, link_up=True, notice="paired", info={"fingerprint": "042917"}),
    "not-paired": View(Screen.HOME, paired=False),
}


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("name", sorted(VIEWS))
def test_ciu_screen_matches_golden(name: str, lang: str, tmp_path: Path) -> None:
    if lang == "ar" and not raqm_available():
        pytest.skip("Arabic goldens are drawn with raqm (install libfribidi0)")
    from dataclasses import replace

    image = render(replace(VIEWS[name], lang=lang))
    assert image.size == (240, 240) and image.mode == "RGB"
    check_golden(image, f"{name}-{lang}", GOLDEN, tmp_path)


def test_arabic_screens_are_laid_out_right_to_left() -> None:
    if not raqm_available():
        pytest.skip("needs raqm")
    from dataclasses import replace

    en = render(VIEWS["home"]).convert("L").crop((0, 30, 240, 70))
    ar = render(replace(VIEWS["home"], lang="ar")).convert("L").crop((0, 30, 240, 70))
    en_box, ar_box = en.point(lambda v: 255 if v > 60 else 0).getbbox(), ar.point(lambda v: 255 if v > 60 else 0).getbbox()
    assert en_box is not None and ar_box is not None
    assert en_box[0] < 20 and ar_box[2] > 220  # label at the left in English, at the right in Arabic


def test_every_token_result_code_has_a_text_in_both_languages() -> None:
    from ciu.ui.texts import text
    from meterd.services.ciu_meter import RESULT_CODES

    codes = set(RESULT_CODES.values()) | {"invalid", "not_enabled", "format", "meter-error", "rejected"}
    for code in sorted(codes):
        for lang in ("en", "ar"):
            assert text(f"code_{code}", lang) != f"code_{code}", (code, lang)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_full_token_stays_inside_the_entry_box(lang: str) -> None:
    from dataclasses import replace

    from ciu.ui.render import ENTRY_BOX

    for digits in ("1234 5678 9012 3456 7890", "8888 8888 8888 8888 8888", "0000 0000 0000 0000 0000"):
        image = render(replace(VIEWS["entry-full"], entry=digits, lang=lang)).convert("L")
        left, top, right, bottom = ENTRY_BOX
        inside = image.crop((left + 1, top + 1, right, bottom)).point(lambda v: 255 if v > 200 else 0)
        box = inside.getbbox()
        assert box is not None and box[0] >= 3 and box[2] <= right - left - 4, (digits, box)
        border = image.crop((left, top, left + 1, bottom)).point(lambda v: 255 if v > 200 else 0)
        assert border.getbbox() is None  # no digit pixel on the box's outline

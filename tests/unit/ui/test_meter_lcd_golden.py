"""Golden images of the meter LCD screens (English and Arabic), compared pixel by pixel.

Regenerate after an intended change with ``PMM_REGEN_GOLDEN=1 pytest tests/unit/ui/test_meter_lcd_golden.py``
and inspect the PNGs under ``tests/golden/meter/`` before committing them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from hw.lcd import raqm_available
from meterd.ui.display_data import DisplayData
from meterd.ui.screens import ITEMS_BY_ID, render_item
from tests.paths import GOLDEN as golden_root

GOLDEN = golden_root / "meter"
REGEN = os.environ.get("PMM_REGEN_GOLDEN") == "1"

DATA = DisplayData(
    voltage_v=(230.1, 229.8, 231.0), current_a=(12.5, 8.2, 10.0), power_factor=(0.98, 0.95, 0.99),
    current_angle_deg=(-11.5, -138.2, 112.0), active_power_w=6850.0, import_energy_kwh=12345.678,
    export_energy_kwh=12.5, max_demand_kw=9.876, max_demand_time=dt.datetime(2026, 3, 2, 18, 15),
    credit=153.25, local_time=dt.datetime(2026, 3, 4, 14, 5, 9), cover_open=True,
)
EXPORTING = DisplayData(active_power_w=-2500.0, relay_closed=False, battery_low=True, credit=0.5, low_credit=True,
                        local_time=dt.datetime(2026, 3, 4, 23, 59, 59))

ELECTRICAL = DisplayData(active_power_w=-1200.0, cover_open=False,
                         tamper_other=("reverse_current_L2", "current_imbalance", "missing_potential_L3"))

CASES = [
    ("credit", DATA, False), ("import", DATA, False), ("export", EXPORTING, False), ("max_demand", DATA, False),
    ("power", DATA, False), ("voltage_l1", DATA, False), ("current_l2", DATA, False), ("pf_l3", DATA, False),
    ("phasor", DATA, False), ("time", DATA, False), ("relay", EXPORTING, False), ("battery", EXPORTING, False),
    ("tamper", DATA, False), ("credit", EXPORTING, True), ("tamper-electrical", ELECTRICAL, False),
]


def check_golden(image: Image.Image, name: str, directory: Path, tmp_path: Path) -> None:
    path = directory / f"{name}.png"
    if REGEN:
        directory.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return
    assert path.is_file(), f"missing golden {path}; run with PMM_REGEN_GOLDEN=1"
    expected = Image.open(path)
    actual = image.convert(expected.mode)
    if expected.size != actual.size or ImageChops.difference(expected.convert("L"), actual.convert("L")).getbbox():
        actual.save(tmp_path / f"{name}.png")
        pytest.fail(f"{name} differs from {path}; actual picture in {tmp_path / (name + '.png')}")


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize(("ident", "data", "battery"), CASES, ids=[f"{c[0]}{'-bat' if c[2] else ''}" for c in CASES])
def test_meter_screen_matches_golden(ident: str, data: DisplayData, battery: bool, lang: str, tmp_path: Path) -> None:
    if lang == "ar" and not raqm_available():
        pytest.skip("Arabic goldens are drawn with raqm (install libfribidi0)")
    image = render_item(ITEMS_BY_ID[ident.partition("-")[0]], data, lang, on_battery=battery)
    assert image.size == (128, 64) and image.mode == "1"
    check_golden(image, f"{ident}{'-bat' if battery else ''}-{lang}", GOLDEN, tmp_path)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_pairing_screens_match_golden(lang: str, tmp_path: Path) -> None:
    if lang == "ar" and not raqm_available():
        pytest.skip("Arabic goldens are drawn with raqm (install libfribidi0)")
    from meterd.ui.screens import render_pairing

    check_golden(render_pairing("04271953", None, lang), f"pairing-code-{lang}", GOLDEN, tmp_path)
    check_golden(render_pairing("04271953", "042917", lang), f"pairing-done-{lang}", GOLDEN, tmp_path)

"""Make the shipped DejaVu Sans faces (``assets/fonts``) from Debian's ``fonts-dejavu-core``.

The displays only draw Latin, Greek and a few symbols in DejaVu Sans (Arabic is drawn in Noto Sans
Arabic UI), so the shipped faces keep only those code points: 0.13 MB instead of 0.76 MB a face.
FreeType maps the whole font file once for every size in use, so the full faces cost meterd
about 2 MiB of resident memory for glyphs it never draws.

Every glyph kept is unchanged (outlines, hinting programs, advance widths, the legacy ``kern``
table that Pillow's basic layout reads), so the displays draw exactly the same pixels: the golden
screen tests compare them.

Usage (a maintainer's tool; needs fontTools, a dev dependency)::

    python tools/subset_fonts.py [--source /usr/share/fonts/truetype/dejavu] [--out assets/fonts]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")

# The code points kept (inclusive ranges). tests/unit/hw/test_fonts.py checks that every
# non-Arabic character of the display texts is among them.
KEPT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x017F),  # Latin-1 Supplement (°, µ, ±), Latin Extended-A (names, places)
    (0x0370, 0x03FF),  # Greek (φ, Ω, Δ)
    (0x2010, 0x2027),  # dashes, quotes, bullet, ellipsis
    (0x2030, 0x203A),  # per mille, primes, angle quotes
    (0x2070, 0x209F),  # superscripts and subscripts
    (0x20A0, 0x20CF),  # currency signs (€, ₦, ₹…)
    (0x2100, 0x2126),  # letterlike symbols (℃, №, ™, Ω)
    (0x2190, 0x2199),  # arrows
    (0x2202, 0x2202), (0x2206, 0x2206), (0x2211, 0x2212), (0x221A, 0x221A), (0x221E, 0x221E),
    (0x2248, 0x2248), (0x2260, 0x2265),  # ∂ ∆ ∑ − √ ∞ ≈ ≠ ≡ ≤ ≥
    (0x2580, 0x259F),  # block elements (bar graphs)
    (0x25A0, 0x25FF),  # geometric shapes (▲ ▼ ● ■)
    (0xFFFD, 0xFFFD),  # replacement character
)


def kept_code_points() -> list[int]:
    """Every code point of :data:`KEPT_RANGES`, in order."""
    return [cp for low, high in KEPT_RANGES for cp in range(low, high + 1)]


def subset_face(source: Path, target: Path) -> None:
    """Write ``target``: ``source`` with only the glyphs of :data:`KEPT_RANGES` (and .notdef)."""
    options = subset.Options()
    options.legacy_kern = True          # Pillow's basic layout kerns from 'kern', not GPOS
    options.hinting = True              # keep the TrueType programs: same pixels at small sizes
    options.notdef_outline = True
    options.glyph_names = True
    options.name_IDs = ["*"]            # keep the copyright and licence strings
    options.name_legacy = True
    options.name_languages = ["*"]
    options.drop_tables += ["MATH", "FFTM"]
    font = TTFont(str(source), recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=kept_code_points())
    subsetter.subset(font)
    font.save(str(target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/fonts/truetype/dejavu"),
                        help="directory of the full DejaVu faces (Debian fonts-dejavu-core)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "fonts")
    args = parser.parse_args()
    missing = [str(args.source / name) for name in FACES if not (args.source / name).is_file()]
    if missing:
        raise SystemExit(f"subset_fonts: {', '.join(missing)} not found (Debian: apt-get install fonts-dejavu-core)")
    for name in FACES:
        subset_face(args.source / name, args.out / name)
        print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()

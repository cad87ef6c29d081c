"""Make the PDF font: Noto Sans SC cut down to the characters Chinese business documents use.

Run once, by hand, when the font or the character set changes; the result is committed under
`reports/fonts/` with its licence, so nothing is downloaded at run time. The source is the static Noto Sans
SC of the npm package `@expo-google-fonts/noto-sans-sc` (SIL Open Font License 1.1), obtained with
`npm pack @expo-google-fonts/noto-sans-sc`:

    python scripts/subset_cjk_font.py package/400Regular/NotoSansSC_400Regular.ttf \
        reports/fonts/NotoSansSC-Regular-GB2312.ttf

The character set is every character of GB2312 (its 6,763 hanzi, kana, fullwidth forms and symbols),
printable ASCII and Latin-1, general punctuation, CJK symbols and punctuation, and the currency signs.
"""

from __future__ import annotations

import sys

from fontTools import subset


def gb2312_characters() -> set[int]:
    """Return every code point GB2312 encodes (rows 0xA1-0xF7, cells 0xA1-0xFE)."""
    found: set[int] = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                found.update(ord(c) for c in bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return found


def document_characters() -> set[int]:
    """Return the code points a reconciliation document may show."""
    ranges = [
        (0x20, 0x7E),  # ASCII
        (0xA0, 0xFF),  # Latin-1: ¥, ×, ·, accented names
        (0x2000, 0x206F),  # general punctuation: “ ” ‘ ’ — … • ‰
        (0x20A0, 0x20CF),  # currency signs
        (0x2100, 0x214F),  # letterlike symbols: №, ℃
        (0x2190, 0x21FF),  # arrows
        (0x3000, 0x303F),  # CJK symbols and punctuation: 、。「」【】〜
        (0xFF00, 0xFFEF),  # halfwidth and fullwidth forms: ，（）：￥
    ]
    chars = gb2312_characters()
    for low, high in ranges:
        chars.update(range(low, high + 1))
    return chars


def main(source: str, target: str) -> None:
    """Write the subset of `source` to `target` (TrueType, no hinting: a PDF needs none)."""
    options = subset.Options()
    options.hinting = False
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(document_characters()))
    subsetter.subset(font)
    subset.save_font(font, target, options)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

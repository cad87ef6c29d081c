"""Property-based: any card-key file (separators, blank lines, BOMs, encodings, line endings, garbage)
either parses into rows with line numbers or is refused with a message, and never crashes the parser.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import fileformats
from catalog.fileformats import CellReader, FileFormatError, KeyRow, Rejection, RowChecker

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-_卡密充值会员"
SEPARATORS = [*fileformats.DELIMITERS, "", "\t\t", " -- ", '","']
BLANKS = st.sampled_from(["", " ", "\t", "  \t ", "\u3000", "\ufeff"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "big5"])
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def key_line(draw: st.DrawFn) -> str:
    card = draw(st.text(KEY_ALPHABET, min_size=0, max_size=20))
    secret = draw(st.text(KEY_ALPHABET, min_size=0, max_size=30))
    return draw(BLANKS) + card + draw(st.sampled_from(SEPARATORS)) + secret + draw(BLANKS)


@st.composite
def card_key_file(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(key_line(), BLANKS), min_size=0, max_size=40))
    text = "".join(line + draw(LINE_ENDS) for line in lines)
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode(draw(ENCODINGS), errors="replace")


def parse(content: bytes) -> list[KeyRow | Rejection]:
    """Detect and read a file the way an import does; FileFormatError is the only refusal allowed."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys.txt"
        path.write_bytes(content)
        detection = fileformats.detect(path)
        checker = RowChecker(detection.format, "Asia/Shanghai", NOW)
        return [checker.check(line_no, cells) for line_no, cells in CellReader(path, detection.format)]


def assert_parses_or_is_refused(content: bytes) -> None:
    try:
        rows = parse(content)
    except FileFormatError as refusal:
        assert str(refusal).strip()  # a message the operator can read
        return
    line_numbers = [row.line_no for row in rows]
    assert line_numbers == sorted(set(line_numbers)) and all(n >= 1 for n in line_numbers)
    for row in rows:
        if isinstance(row, Rejection):
            assert row.reason
        else:
            assert row.secret and "\n" not in row.secret and "\r" not in row.secret


@pytest.fixture
def in_app(app: Flask) -> Flask:
    return app


@PROPERTY_SETTINGS
@given(content=card_key_file())
def test_any_mix_of_separators_blank_lines_boms_and_encodings_parses_or_is_refused(
    in_app: Flask, content: bytes
) -> None:
    assert_parses_or_is_refused(content)


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(in_app: Flask, content: bytes) -> None:
    assert_parses_or_is_refused(content)


@PROPERTY_SETTINGS
@given(
    keys=st.lists(
        st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=6, max_size=24), min_size=1, max_size=30
    ),
    separator=st.sampled_from(["----", "\t", ",", ";", "|"]),
    blank_every=st.integers(min_value=2, max_value=5),
    encoding=ENCODINGS,
    line_end=LINE_ENDS,
)
def test_well_formed_pairs_come_out_as_written_with_their_line_numbers(
    in_app: Flask, keys: list[str], separator: str, blank_every: int, encoding: str, line_end: str
) -> None:
    lines: list[str] = []
    expected: dict[int, tuple[str, str]] = {}
    for n, key in enumerate(keys):
        if n % blank_every == 1:
            lines.append("  ")
        lines.append(f"C{n:06d}{separator}{key}")
        expected[len(lines)] = (f"C{n:06d}", key)
    rows = parse(line_end.join(lines).encode(encoding))
    assert {row.line_no: (row.card, row.secret) for row in rows if isinstance(row, KeyRow)} == expected

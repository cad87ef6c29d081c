"""Read supplier card-key files as a stream of rows: plain lines, `card----secret`, CSV/TSV, XLSX.

Nothing here loads a whole file: text is read line by line with a length limit (a 10 MB line costs
one rejection, not 10 MB of memory per row), XLSX through openpyxl's read-only streaming mode.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from charset_normalizer import from_bytes
from flask_babel import lazy_gettext as _l

SAMPLE_BYTES = 256 * 1024
SAMPLE_LINES = 50
MAX_LINE_CHARS = 4096
MAX_CARD_CHARS = 128
MAX_SECRET_CHARS = 512
ROLES = ("card", "secret", "expires")
DELIMITERS = ("----", "---", "\t", ",", ";", "|", "——", " ")
CSV_DELIMITERS = frozenset({",", "\t", ";", "|"})
DELIMITER_LABELS = {
    "": _l("none (one key per line)"),
    "----": "----",
    "---": "---",
    "\t": _l("tab"),
    ",": _l("comma"),
    ";": _l("semicolon"),
    "|": "|",
    "——": "——",
    " ": _l("space"),
}
ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "gbk", "big5", "utf-16")
HEADER_WORDS = {
    "card": {
        "卡号",
        "卡号码",
        "卡片号",
        "账号",
        "帐号",
        "序列号",
        "card",
        "cardno",
        "card no",
        "card_no",
        "card number",
        "card_number",
        "number",
        "account",
        "serial",
        "sn",
    },
    "secret": {
        "卡密",
        "密码",
        "密钥",
        "兑换码",
        "激活码",
        "券码",
        "卡密码",
        "secret",
        "password",
        "pwd",
        "pin",
        "code",
        "key",
        "cdkey",
        "redeem code",
        "redemption code",
    },
    "expires": {
        "有效期",
        "过期时间",
        "到期时间",
        "到期日",
        "失效时间",
        "截止日期",
        "有效期至",
        "expiry",
        "expires",
        "expires_at",
        "expiry date",
        "expiration",
        "expiration date",
        "valid until",
        "valid_to",
    },
}
_BLANK_EDGES = " \t\r\n\u3000\ufeff\u200b\u00a0"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Full signatures of binary formats someone may upload by mistake. Short prefixes such as `MZ`, `BZh` or
# `GIF8` are valid starts of card numbers (`MZ3K9Q2L8P----X1Y2Z3`): a file is binary by its whole
# signature, or because it does not decode as text (see `sniff_kind`), never by two letters. Executables
# (MZ, ELF) and most other binaries are refused by their NUL and control bytes.
_BINARY_SIGNATURES: tuple[re.Pattern[bytes], ...] = tuple(
    re.compile(pattern, re.DOTALL)
    for pattern in (
        rb"%PDF-\d\.\d",
        rb"\x89PNG\r\n\x1a\n",
        rb"GIF8[79]a",
        rb"\xff\xd8\xff[\xc0-\xfe]",  # JPEG: SOI then a marker
        rb"\x1f\x8b\x08",  # gzip, deflate
        rb"BZh[1-9]1AY&SY",  # bzip2: header then the block magic
        rb"\x7fELF[\x01\x02]",
        rb"Rar!\x1a\x07",
        rb"7z\xbc\xaf\x27\x1c",
        rb"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE: an old .xls or .doc
    )
)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1a")  # \x1a: DOS end of file
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y年%m月%d日",
)


class FileFormatError(ValueError):
    """The file cannot be imported at all (empty, not text, unreadable); nothing was read from it."""


@dataclass
class ImportFormat:
    """How to read one file: kind, encoding, delimiter, header, column mapping (0-based), sheet."""

    kind: str = "text"  # "text" or "xlsx"
    encoding: str | None = "utf-8"
    delimiter: str | None = None  # None: the whole line is the key
    has_header: bool = False
    mapping: dict[str, int] = field(default_factory=lambda: {"secret": 0})
    sheet: str | None = None
    columns: int = 1  # fields per row the file was detected with

    def to_dict(self) -> dict[str, Any]:
        """Return the format as JSON-able data (stored with the batch)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportFormat:
        """Rebuild a format saved with `to_dict`."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """Return a one-line human description, e.g. 'text, gb18030, separator "----", no header'."""
        if self.kind == "xlsx":
            return f"XLSX, sheet {self.sheet or '1'}, {'header row' if self.has_header else 'no header'}"
        delimiter = "one key per line" if self.delimiter is None else f"separator {self.delimiter!r}"
        return f"text, {self.encoding}, {delimiter}, {'header row' if self.has_header else 'no header'}"


@dataclass
class Detection:
    """What a look at the start of a file found: its format, header cells, sample rows, sheets."""

    format: ImportFormat
    header: list[str]
    sample: list[tuple[int, list[Any]]]
    sheets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KeyRow:
    """One card key read from a file, already checked: card number (may be empty), secret, expiry."""

    line_no: int
    card: str
    secret: str
    expires_at: dt.datetime | None

    @property
    def identity(self) -> str:
        """Return what makes a key unique in stock: the card number, or the secret when there is none."""
        return self.card or self.secret

    def payload(self) -> bytes:
        """Return the bytes that get encrypted (card and secret, separated by a unit separator)."""
        return f"{self.card}\x1f{self.secret}".encode()


@dataclass(frozen=True)
class Rejection:
    """A row that cannot be imported, with its line number and why."""

    line_no: int
    reason: str


def split_payload(payload: bytes) -> tuple[str, str]:
    """Return (card, secret) from decrypted payload bytes."""
    card, _, secret = payload.decode().partition("\x1f")
    return card, secret


def mask(value: str) -> str:
    """Mask a key for display: AB12••••••7F9Q (short keys keep fewer characters)."""
    keep = min(4, len(value) // 4)
    return f"{value[:keep]}••••••{value[-keep:] if keep else ''}"


def clean(value: Any) -> str:
    """Return a cell as text without surrounding spaces (full-width and zero-width included)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip(_BLANK_EDGES)


# ---------------------------------------------------------------- detection


def sniff_kind(head: bytes) -> str:
    """Tell 'xlsx' from 'text'; FileFormatError for empty or binary files.

    XLSX is a ZIP (its full local-header signature). Otherwise a file is text when its start decodes as
    text (UTF-16 with a BOM, UTF-8, GB18030, or what charset_normalizer finds) without control bytes; a
    binary format's full signature (PDF, images, archives, executables, OLE) is refused first.
    """
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise FileFormatError(str(_l("The file is empty.")))
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "text"
    if any(signature.match(head) for signature in _BINARY_SIGNATURES) or not _looks_like_text(head):
        raise FileFormatError(str(_l("This is not a text, CSV or XLSX file.")))
    return "text"


def _looks_like_text(head: bytes) -> bool:
    """Tell whether a file's start decodes as text with no control characters but line breaks and tabs."""
    sample = head[:8192]
    if b"\x00" in sample:
        return False
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            text = decoder.decode(sample, final=False)  # a cut character at the end is not an error
        except UnicodeDecodeError:
            continue
        return not any((ord(c) < 32 and c not in _TEXT_CONTROLS) or c == "\x7f" for c in text)

    return from_bytes(sample).best() is not None


def _decodes(sample: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        decoder.decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(sample: bytes) -> str:
    """Guess a text file's encoding: BOMs, then strict UTF-8, then GB18030 (a superset of GBK)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(sample, "utf-8"):
        return "utf-8"
    if _decodes(sample, "gb18030"):
        return "gb18030"

    best = from_bytes(sample).best()
    if best is None:
        raise FileFormatError(str(_l("Cannot tell this file's text encoding; choose one.")))
    return str(best.encoding)


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return [clean(line)]
    if delimiter in CSV_DELIMITERS and '"' in line:
        return [clean(cell) for cell in next(csv.reader([line], delimiter=delimiter))]
    return [clean(cell) for cell in line.split(delimiter)]


def detect_delimiter(lines: list[str]) -> str | None:
    """Pick the separator that splits (nearly) every sample line into the same number (≥ 2) of fields."""
    if not lines:
        return None
    for delimiter in DELIMITERS:
        counts = [len([c for c in _split(line, delimiter) if c]) for line in lines]
        if len(set(counts)) == 1 and counts[0] >= 2:
            return delimiter
    for delimiter in DELIMITERS[:-1]:  # a malformed row in the sample: accept a clear majority
        counts = [len([c for c in _split(line, delimiter) if c]) for line in lines]
        usual = max(set(counts), key=counts.count)
        if usual >= 2 and counts.count(usual) >= max(2, 0.75 * len(lines)):
            return delimiter
    return None


def header_role(cell: str) -> str | None:
    """Return which role a header cell names (card, secret, expires), if any."""
    word = cell.strip().lower()
    for role, words in HEADER_WORDS.items():
        if word in words:
            return role
    return None


def guess_mapping(header: list[str], first_rows: list[list[Any]], columns: int) -> dict[str, int]:
    """Map roles to columns from the header, else by position (secret; card+secret; card+secret+expiry)."""
    if header:
        mapping = {}
        for index, cell in enumerate(header):
            role = header_role(cell)
            if role and role not in mapping:
                mapping[role] = index
        if "secret" not in mapping and "card" in mapping and columns == 1:
            mapping = {"secret": mapping["card"]}
        if "secret" in mapping:
            return mapping
    if columns <= 1:
        return {"secret": 0}
    mapping = {"card": 0, "secret": 1}
    if (
        columns >= 3
        and first_rows
        and all(len(row) > 2 and parse_expiry(row[2], "UTC") is not None for row in first_rows)
    ):
        mapping["expires"] = 2
    return mapping


def detect(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    has_header: bool | None = None,
    sheet: str | None = None,
) -> Detection:
    """Look at the start of a file and decide how to read it; explicit choices win over guesses."""
    with path.open("rb") as raw:
        head = raw.read(SAMPLE_BYTES)
    kind = sniff_kind(head)
    if kind == "xlsx":
        return _detect_xlsx(path, sheet, has_header)
    encoding = encoding or detect_encoding(head)
    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise FileFormatError(str(_l("Unknown encoding %(e)s.", e=encoding))) from error
    lines: list[str] = []
    overlong = 0
    with open_text(path, encoding) as text:
        for _line_no, line in iter_lines(text):
            if line is None:
                overlong += 1
            elif clean(line):
                lines.append(line.rstrip("\r\n"))
            if len(lines) >= SAMPLE_LINES:
                break
    if not lines and not overlong:
        raise FileFormatError(str(_l("The file is empty.")))
    if "\ufffd" in "".join(lines[:5]):
        raise FileFormatError(
            str(_l("The file is not valid %(e)s text; choose another encoding.", e=encoding))
        )
    chosen = delimiter if delimiter is not None else detect_delimiter(lines)
    chosen = chosen or None
    rows = [_split(line, chosen) for line in lines]
    return _finish_detection("text", encoding, chosen, rows, has_header, None, [])


def _finish_detection(
    kind: str,
    encoding: str | None,
    delimiter: str | None,
    rows: list[list[Any]],
    has_header: bool | None,
    sheet: str | None,
    sheets: list[str],
) -> Detection:
    first = [clean(cell) for cell in rows[0]] if rows else []
    if has_header is None:
        has_header = any(header_role(cell) for cell in first)
    header = first if has_header else []
    body = rows[1:] if has_header else rows
    columns = len(header) if header else max((len(r) for r in body), default=1)
    fmt = ImportFormat(
        kind=kind,
        encoding=encoding,
        delimiter=delimiter,
        has_header=has_header,
        mapping=guess_mapping(header, body[:10], columns),
        sheet=sheet,
        columns=columns,
    )
    start = 2 if has_header else 1
    return Detection(fmt, header, [(start + i, row) for i, row in enumerate(body[:10])], sheets)


def _detect_xlsx(path: Path, sheet: str | None, has_header: bool | None) -> Detection:
    workbook = _open_workbook(path)
    try:
        sheets = list(workbook.sheetnames)
        worksheet = _worksheet(workbook, sheet)
        rows: list[list[Any]] = []
        for values in worksheet.iter_rows(values_only=True):
            if any(clean(v) for v in values):
                rows.append(_trim_row(list(values)))
            if len(rows) >= SAMPLE_LINES:
                break
    finally:
        workbook.close()
    if not rows:
        raise FileFormatError(str(_l("The sheet %(s)s is empty.", s=worksheet.title)))
    return _finish_detection("xlsx", None, None, rows, has_header, worksheet.title, sheets)


XLSX_MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024  # all members together, as the archive declares them
XLSX_MAX_MEMBERS = 10_000
XLSX_MAX_RATIO = 200  # uncompressed / compressed, for members over XLSX_RATIO_FROM_BYTES
XLSX_RATIO_FROM_BYTES = 1024 * 1024


def check_xlsx_archive(path: Path) -> None:
    """Refuse a workbook that would unpack to far more than it weighs (a zip bomb), before it is opened.

    The declared sizes are enough: `zipfile` (and so openpyxl) never returns more bytes for a member than
    its declared size, so a member that lies about its size is cut short, not expanded.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise FileFormatError(str(_l("This ZIP file is not a readable XLSX workbook."))) from error
    total = sum(member.file_size for member in members)
    if len(members) > XLSX_MAX_MEMBERS or total > XLSX_MAX_UNCOMPRESSED_BYTES:
        raise FileFormatError(
            str(_l("This workbook unpacks to more than %(mb)s MB; split it or save it as CSV.", mb=512))
        )
    for member in members:
        if member.file_size > XLSX_RATIO_FROM_BYTES and (
            member.file_size > XLSX_MAX_RATIO * max(member.compress_size, 1)
        ):
            raise FileFormatError(
                str(_l("This workbook is compressed suspiciously well (a zip bomb?); save it as CSV."))
            )


def _open_workbook(path: Path) -> Any:
    """Open a workbook read-only with cached values only: formulas are never evaluated."""
    from openpyxl import load_workbook

    check_xlsx_archive(path)
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # a zip that is not a workbook, or a damaged one
        raise FileFormatError(str(_l("This ZIP file is not a readable XLSX workbook."))) from error


def _worksheet(workbook: Any, sheet: str | None) -> Any:
    if sheet is None:
        return workbook.worksheets[0]
    if sheet not in workbook.sheetnames:
        raise FileFormatError(str(_l("The workbook has no sheet named %(s)s.", s=sheet)))
    return workbook[sheet]


def _trim_row(values: list[Any]) -> list[Any]:
    while values and clean(values[-1]) == "":
        values.pop()
    return values


# ---------------------------------------------------------------- reading


def open_text(path: Path, encoding: str) -> IO[str]:
    """Open a text file for streaming: the given encoding, any newline, undecodable bytes marked."""
    return io.TextIOWrapper(path.open("rb"), encoding=encoding, errors="replace", newline=None)


def iter_lines(stream: IO[str]) -> Iterator[tuple[int, str | None]]:
    """Yield (line number, line) — or (line number, None) for a line longer than MAX_LINE_CHARS."""
    line_no = 0
    readline = stream.readline
    limit = MAX_LINE_CHARS + 1
    while True:
        line = readline(limit)
        if not line:
            return
        line_no += 1
        if len(line) == limit and not line.endswith("\n"):
            while True:  # skip the rest of an overlong line without holding it
                rest = readline(65536)
                if not rest or rest.endswith("\n"):
                    break
            yield line_no, None
            continue
        yield line_no, line


class CellReader:
    """Iterate (line number, cells) over a file's data rows and tell how far through the file it is.

    Blank lines and the header row are skipped; cells is None for a line longer than MAX_LINE_CHARS.
    """

    def __init__(self, path: Path, fmt: ImportFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.size = max(1, path.stat().st_size)
        self._raw: IO[bytes] | None = None
        self._rows_total = 0
        self._row_no = 0

    def fraction(self) -> float:
        """Return the share of the file read so far (0–1)."""
        if self._raw is not None and not self._raw.closed:
            return min(1.0, self._raw.tell() / self.size)
        if self._rows_total:
            return min(1.0, self._row_no / self._rows_total)
        return 0.0

    def __iter__(self) -> Iterator[tuple[int, list[Any] | None]]:
        if self.fmt.kind == "xlsx":
            return self._xlsx_rows()
        return self._text_rows()

    def _text_rows(self) -> Iterator[tuple[int, list[Any] | None]]:
        assert self.fmt.encoding is not None
        header_pending = self.fmt.has_header
        delimiter = self.fmt.delimiter
        with self.path.open("rb") as raw:
            self._raw = raw
            text = io.TextIOWrapper(raw, encoding=self.fmt.encoding, errors="replace", newline=None)
            for line_no, line in iter_lines(text):
                if line is None:
                    yield line_no, None
                    continue
                stripped = line.strip(_BLANK_EDGES)
                if not stripped:
                    continue
                if header_pending:
                    header_pending = False
                    continue
                if delimiter is None:
                    yield line_no, [stripped]
                else:
                    yield line_no, _split(line.rstrip("\r\n"), delimiter)
            text.detach()

    def _xlsx_rows(self) -> Iterator[tuple[int, list[Any] | None]]:
        workbook = _open_workbook(self.path)
        try:
            worksheet = _worksheet(workbook, self.fmt.sheet)
            self._rows_total = int(worksheet.max_row or 0)
            header_pending = self.fmt.has_header
            for row_no, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                self._row_no = row_no
                cells = _trim_row(list(values))
                if not any(clean(v) for v in cells):
                    continue
                if header_pending:
                    header_pending = False
                    continue
                yield row_no, cells
        finally:
            workbook.close()


def parse_expiry(value: Any, zone: str) -> dt.datetime | None:
    """Read an expiry cell: a date means the end of that day in the tenant's zone; None if unreadable."""
    tz = ZoneInfo(zone)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=tz)
        if moment.time() == dt.time(0, 0):
            moment = moment.replace(hour=23, minute=59, second=59)
        return moment.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(23, 59, 59), tzinfo=tz).astimezone(dt.UTC)
    text = clean(value)
    if not text:
        return None
    for pattern in _DATE_FORMATS:
        try:
            moment = dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
        if "%H" not in pattern:
            moment = moment.replace(hour=23, minute=59, second=59)
        return moment.replace(tzinfo=tz).astimezone(dt.UTC)
    return None


class RowChecker:
    """Turn raw cells into a KeyRow or a Rejection, with the reasons an operator can act on."""

    def __init__(self, fmt: ImportFormat, zone: str, now: dt.datetime) -> None:
        self.fmt = fmt
        self.zone = zone
        self.now = now
        self.card_col = fmt.mapping.get("card")
        self.secret_col = fmt.mapping["secret"]
        self.expires_col = fmt.mapping.get("expires")
        self.needed = max(fmt.mapping.values()) + 1
        self.columns = max(fmt.columns, self.needed)

    def check(self, line_no: int, cells: list[Any] | None) -> KeyRow | Rejection:
        """Validate one row."""
        if cells is None:
            return Rejection(line_no, f"line longer than {MAX_LINE_CHARS} characters")
        if len(cells) < self.needed:
            return Rejection(line_no, f"expected {self.needed} columns, found {len(cells)}")
        if (
            self.fmt.delimiter is not None
            and len(cells) > self.columns
            and any(clean(c) for c in cells[self.columns :])
        ):
            return Rejection(line_no, f"expected {self.columns} columns, found {len(cells)}")
        secret = clean(cells[self.secret_col])
        card = clean(cells[self.card_col]) if self.card_col is not None else ""
        problem = self._problem(card, secret)
        if problem:
            return Rejection(line_no, problem)
        expires_at = None
        if self.expires_col is not None and self.expires_col < len(cells) and clean(cells[self.expires_col]):
            expires_at = parse_expiry(cells[self.expires_col], self.zone)
            if expires_at is None:
                return Rejection(line_no, "unreadable expiry date")
            if expires_at <= self.now:
                return Rejection(line_no, "already expired")
        return KeyRow(line_no, card, secret, expires_at)

    @staticmethod
    def _problem(card: str, secret: str) -> str | None:
        if not secret:
            return "missing secret"
        if len(secret) > MAX_SECRET_CHARS:
            return f"secret longer than {MAX_SECRET_CHARS} characters"
        if len(card) > MAX_CARD_CHARS:
            return f"card number longer than {MAX_CARD_CHARS} characters"
        if "\ufffd" in secret or "\ufffd" in card:
            return "not valid text in the chosen encoding"
        if _CONTROL.search(secret) or _CONTROL.search(card):
            return "contains control characters"
        return None


def parse_mapping(text: str, header: list[str]) -> dict[str, int]:
    """Read an operator's mapping: 'card=1,secret=2,expires=3' (1-based columns) or header names."""
    mapping: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, column = part.partition("=")
        role, column = role.strip().lower(), column.strip()
        if not sep or role not in ROLES or not column:
            raise FileFormatError(str(_l("Write the mapping as card=1,secret=2,expires=3.")))
        if column.isdigit() and int(column) >= 1:
            mapping[role] = int(column) - 1
        elif column in header:
            mapping[role] = header.index(column)
        else:
            raise FileFormatError(str(_l("No column %(c)s in this file.", c=column)))
    if "secret" not in mapping:
        raise FileFormatError(str(_l("The mapping must name the secret column.")))
    return mapping

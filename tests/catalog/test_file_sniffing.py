"""Telling a key file from a binary one: by whether it decodes as text, and by full binary signatures."""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import string
import struct
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest

from catalog.fileformats import FileFormatError, detect, sniff_kind

PRINTABLE = [c for c in string.printable if c.isprintable() and not c.isspace()]  # 94 characters


def key_file(first_two: str, *, encoding: str = "utf-8", crlf: bool = False) -> bytes:
    """Return a plain key file (card----secret per line) whose first card number starts with `first_two`."""
    lines = [f"{first_two}3K9Q2L8P----X1Y2Z3", "AB12CD34EF----SECRET99", "卡号0003----密码0003"]
    return (("\r\n" if crlf else "\n").join(lines) + "\n").encode(encoding)


def test_a_key_file_starting_with_mz_is_text(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes(key_file("MZ"))
    assert sniff_kind(path.read_bytes()) == "text"
    assert detect(path).format.delimiter == "----"


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030", "utf-8-sig"])
def test_every_leading_pair_of_characters_is_read_as_text(encoding: str) -> None:
    refused = []
    for first, second in itertools.product(PRINTABLE, repeat=2):
        try:
            sniff_kind(key_file(first + second, encoding=encoding, crlf=first < "M"))
        except FileFormatError:
            refused.append(first + second)
    assert not refused, f"{len(refused)} of {len(PRINTABLE) ** 2} pairs refused, e.g. {refused[:10]}"


def test_key_files_named_like_magic_numbers_are_text() -> None:
    for start in ("MZ", "BZh", "BZh9", "GIF8", "PK", "7z", "Rar!", "%PDF", "%PDF-", "ELF"):
        assert sniff_kind(key_file(start)) == "text", start


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("keys.txt", "AB12----CD34\n")
    return out.getvalue()


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["MZ3K9Q2L8P", "X1Y2Z3"])  # type: ignore[union-attr]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


BINARIES = {
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "png": _png(),
    "gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "gzip": gzip.compress(b"AB12----CD34\n" * 50),
    "bzip2": bz2.compress(b"AB12----CD34\n" * 50),
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56,
    "exe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00",
    "rar": b"Rar!\x1a\x07\x01\x00" + bytes(range(32)),
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(32)),
    "old xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
    "random bytes": bytes((i * 37 + 11) % 256 for i in range(4096)),
}


@pytest.mark.parametrize("name", BINARIES)
def test_real_binary_formats_are_refused(name: str) -> None:
    with pytest.raises(FileFormatError, match="not a text"):
        sniff_kind(BINARIES[name])


def test_zip_containers_go_to_the_xlsx_reader() -> None:
    assert sniff_kind(_xlsx()) == "xlsx" and sniff_kind(_zip()) == "xlsx"


def test_utf16_with_a_bom_is_text() -> None:
    assert sniff_kind("\ufeffMZ3K9Q2L8P----X1Y2Z3\n".encode("utf-16")) == "text"

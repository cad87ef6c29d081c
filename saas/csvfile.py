"""CSV files people open in a spreadsheet: UTF-8 with a BOM, and no cell a spreadsheet would run.

Every CSV the product writes — dashboard downloads, reconciliation exports, import rejection reports — goes
through `SafeCsvWriter`. A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a
formula to Excel, WPS and LibreOffice (a bundle named `=cmd|' /C calc'!A0` would start a program through
DDE); the writer prefixes such text with `'`, which spreadsheets read as "this is text" and do not show.
Numbers stay numbers: write counts as `int` and money as `Decimal` (`saas.money.to_decimal`), never as text,
so a negative amount is not mistaken for a formula. The BOM makes Excel read Chinese as UTF-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

BOM = "\ufeff"
ENCODING = "utf-8-sig"  # writes the BOM first
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MIME_TYPE = "text/csv; charset=utf-8"


def defuse(value: str) -> str:
    """Return text a spreadsheet shows as text: prefix `'` when it would start a formula."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


class SafeCsvWriter:
    """Write rows of a CSV file with every text cell defused (see the module's docstring).

    `text_columns`, when given, names the only columns that may hold text (by index); the others hold
    numbers, dates or text the program made (a fixed label, a money figure), and are written as they are.
    A hot path such as a million-line export gives them; everyone else defuses every text cell.
    """

    def __init__(self, stream: TextIO, *, text_columns: Collection[int] | None = None) -> None:
        self._writerow = csv.writer(stream).writerow
        self._text_columns = tuple(sorted(text_columns)) if text_columns is not None else None

    def writerow(self, row: Sequence[Any]) -> None:
        """Write one row."""
        if self._text_columns is None:
            self._writerow([defuse(cell) if isinstance(cell, str) else cell for cell in row])
            return
        cells = list(row)
        for index in self._text_columns:
            cell = cells[index]
            if cell.__class__ is str and cell.startswith(FORMULA_TRIGGERS):
                cells[index] = "'" + cell
        self._writerow(cells)

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Write several rows."""
        for row in rows:
            self.writerow(row)


def open_csv(path: Path) -> TextIO:
    """Open a CSV file for writing with a SafeCsvWriter: UTF-8 with a BOM, the csv module's newlines."""
    return path.open("w", encoding=ENCODING, newline="")


def csv_document(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """Return a whole CSV document (BOM, header, rows) as text, for a download built in memory."""
    out = io.StringIO()
    out.write(BOM)
    writer = SafeCsvWriter(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()

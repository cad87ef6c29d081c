"""The tables behind every chart: typed columns, rows of plain values, and the same values as JSON and CSV.

Row values are what the API returns: counts and money as integers (money in minor units), ratios as decimal
strings with four places (`"0.4000"`), days as decimal strings (`">365"`: more than a year), dates as ISO
text, and None where a value does not exist (a ROI without spend). The pages format the same values for
people ("—" for None), and the CSV holds them for spreadsheets: headers in the tenant's language, money in
major units as Decimal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import gettext as _

from saas.csvfile import csv_document
from saas.money import format_money, to_decimal

NO_FIGURE = "—"  # a figure that does not exist (a ROI without spend), never a misleading 0
COLUMN_KINDS = ("text", "date", "count", "money", "ratio", "days", "hours")
MORE_THAN_A_YEAR = ">365"  # days of cover beyond a year: shown as "more than a year" (超过一年)
RATIO_PLACES = Decimal("0.0001")
DAYS_PLACES = Decimal("0.1")


def ratio(numerator: int | Decimal, denominator: int | Decimal) -> str | None:
    """Return numerator / denominator as a 4-place decimal string; None when the denominator is 0."""
    if not denominator:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(RATIO_PLACES, ROUND_HALF_UP))


def one_place(value: Decimal | float | int | None) -> str | None:
    """Return a number as a 1-place decimal string (days of cover, hours); None stays None."""
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(DAYS_PLACES, ROUND_HALF_UP))


@dataclass(frozen=True)
class Column:
    """One column: its key in the rows, its heading, and what kind of value it holds."""

    key: str
    label: str
    kind: str = "count"
    definition: str = ""  # how the figure is computed, shown beside it


@dataclass
class Table:
    """The numbers of one chart (or a list), in rows keyed by column."""

    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    currency: str = "CNY"  # of its money columns; a dashboard gives its tables its own

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def as_json(self) -> dict[str, Any]:
        """Return the table as the API serves it."""
        return {
            "key": self.key,
            "title": str(self.title),
            "note": str(self.note),
            "columns": [{"key": c.key, "label": str(c.label), "kind": c.kind} for c in self.columns],
            "rows": [{c.key: row.get(c.key) for c in self.columns} for row in self.rows],
        }

    def as_csv(self) -> str:
        """Return the table as a CSV document for a spreadsheet (BOM, formula-safe: `saas.csvfile`).

        Headers are the column labels in the current language (the download renders in the tenant's), a
        money column saying its currency; money is major units as Decimal (1675.60, like the
        reconciliation exports), ratios and days decimals, and a value that does not exist is empty.
        """
        header = [f"{c.label} ({self.currency})" if c.kind == "money" else str(c.label) for c in self.columns]
        return csv_document(
            header, ([csv_value(row.get(c.key), c, self.currency) for c in self.columns] for row in self.rows)
        )


def csv_value(value: Any, column: Column, currency: str) -> Any:
    """Return one value as a CSV cell: money as Decimal major units, numbers as Decimal, none as empty."""
    if value is None:
        return ""
    if column.kind == "money":
        return to_decimal(int(value), currency)
    if column.kind in ("ratio", "days", "hours") and value != MORE_THAN_A_YEAR:
        return Decimal(str(value))
    if value == MORE_THAN_A_YEAR and column.kind == "days":
        return _("more than a year")
    return str(value)


def display(value: Any, column: Column, currency: str) -> str:
    """Format one value for a person: money with its symbol, ratios as percent, n/a for nothing."""
    if value is None:
        return NO_FIGURE
    if column.kind == "money":
        return format_money(int(value), currency)
    if column.kind == "ratio":
        return f"{(Decimal(value) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"
    if column.kind == "count":
        return f"{int(value):,}"
    if column.kind == "days" and value == MORE_THAN_A_YEAR:
        return _("more than a year")
    if column.kind in ("days", "hours"):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@dataclass
class Chart:
    """One chart: the plotly spec (data + layout, JSON-able) and the key of the table it draws."""

    table_key: str
    spec: dict[str, Any]


@dataclass
class Dashboard:
    """A dashboard's datasets for one set of filters: its tables and the charts drawn from them."""

    name: str
    title: str
    currency: str
    tables: list[Table]
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for table in self.tables:
            table.currency = self.currency

    @property
    def is_empty(self) -> bool:
        """Tell whether there is nothing to show for these filters."""
        return all(table.is_empty for table in self.tables)

    def table(self, key: str) -> Table | None:
        """Return the table with this key."""
        return next((t for t in self.tables if t.key == key), None)

    def chart_for(self, key: str) -> Chart | None:
        """Return the chart drawn from the table with this key."""
        return next((c for c in self.charts if c.table_key == key), None)

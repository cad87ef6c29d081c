"""Write a run's detail as CSV, XLSX and PDF, incrementally, and keep the files with their checksums.

- CSV: through `saas.csvfile.SafeCsvWriter`, like every CSV of the product: UTF-8 with a BOM (Excel then
  reads Chinese correctly); a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets
  a leading `'` so a spreadsheet never runs it as a formula.
- XLSX: openpyxl in write-only mode (rows go to disk as they come), a summary sheet and a detail sheet,
  numbers as numbers with a money format, the header row frozen; text cells are typed as text.
- PDF: WeasyPrint from an HTML template in the Noto Sans SC subset shipped in `reports/fonts/` (never a
  system font, so Chinese renders on a machine that has none); page numbers in the margin. A PDF of a
  very large run would be unreadable, so it is written only up to `PDF_MAX_LINES` detail rows.

Each writer sums nothing itself: the totals row it writes is the `Totals` of the lines it was given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template

from reports.reconciliation.services import MONEY_TOTALS, DetailLine, Totals
from saas.csvfile import SafeCsvWriter, open_csv
from saas.money import minor_unit, to_decimal, to_text

PDF_MAX_LINES = 5000
PDF_FONTS_DIR = Path(__file__).resolve().parents[1] / "fonts"  # reports/fonts/, shipped as package data
PDF_FONTS = {
    "regular": PDF_FONTS_DIR / "NotoSansSC-Regular-GB2312.ttf",
    "bold": PDF_FONTS_DIR / "NotoSansSC-Bold-GB2312.ttf",
}
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# (field, header): headers are bilingual and fixed, so a file reads the same whatever the reader's locale.
DETAIL_HEADERS: tuple[tuple[str, str], ...] = (
    ("kind", "类型 Type"),
    ("at", "时间 Date"),
    ("channel_name", "渠道 Channel"),
    ("external_id", "渠道订单号 Channel order id"),
    ("order_id", "订单ID Order id"),
    ("line_no", "行 Line"),
    ("sku", "SKU"),
    ("title", "商品 Item"),
    ("quantity", "数量 Qty"),
    ("unit_price", "单价 Unit price"),
    ("gross", "销售额 Gross"),
    ("refund", "退款 Refund"),
    ("fee", "渠道费 Fee"),
    ("net", "净额 Net"),
    ("cost", "成本 Cost"),
    ("profit", "毛利 Profit"),
    ("currency", "币种 Currency"),
    ("note", "备注 Note"),
)
MONEY_FIELDS = frozenset({"unit_price", "gross", "refund", "fee", "net", "cost", "profit"})
TEXT_FIELDS = frozenset({"channel_name", "external_id", "sku", "title", "note"})
TEXT_COLUMNS = frozenset(i for i, (name, _) in enumerate(DETAIL_HEADERS) if name in TEXT_FIELDS)
KIND_LABELS = {"sale": "销售 sale", "refund": "退款 refund", "total": "合计 total"}
SUMMARY_LABELS: tuple[tuple[str, str], ...] = (
    ("order_count", "订单数 Orders"),
    ("line_count", "明细行数 Detail lines"),
    ("refund_count", "退款笔数 Refunds"),
    ("gross", "销售额 Gross"),
    ("refunds", "退款 Refunds"),
    ("fees", "渠道费 Channel fees"),
    ("net", "净额 Net"),
    ("cost_of_goods", "商品成本 Cost of goods"),
    ("gross_profit", "毛利 Gross profit"),
)


@dataclass(frozen=True)
class ExportContext:
    """What every file states besides its lines: tenant, period, channel, currency, zone, when."""

    tenant_name: str
    period_label: str
    channel_label: str
    currency: str
    zone: str
    generated_at: dt.datetime

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self.tzinfo).strftime(DATE_FORMAT)


def file_sha256(path: Path) -> str:
    """Return a file's SHA-256, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- CSV


class CsvExport:
    """Stream detail lines into a CSV file (UTF-8 with BOM), then a totals row."""

    format = "csv"

    def __init__(self, path: Path, context: ExportContext) -> None:
        self.path = path
        self.context = context
        self.rows = 0
        self._file = open_csv(path)
        # Money is written as exact decimal text (cached per amount), so only the text columns are
        # defused: a refund's "-12.34" stays a number.
        self._writer = SafeCsvWriter(self._file, text_columns=TEXT_COLUMNS)
        self._writer.writerow([header for _, header in DETAIL_HEADERS])
        self._writerow = self._writer.writerow
        self._tz = context.tzinfo
        self._currency = context.currency

    def add(self, line: DetailLine) -> None:
        """Write one detail line (the hot path of a million-line export: no per-call lookups)."""
        money, currency = to_text, self._currency
        self._writerow(
            [
                KIND_LABELS[line.kind],
                line.at.astimezone(self._tz).replace(tzinfo=None, microsecond=0).isoformat(" "),
                line.channel_name,
                line.external_id,
                line.order_id,
                "" if line.line_no is None else line.line_no,
                line.sku,
                line.title,
                line.quantity,
                money(line.unit_price, currency),
                money(line.gross, currency),
                money(line.refund, currency),
                money(line.fee, currency),
                money(line.net, currency),
                money(line.cost, currency),
                money(line.profit, currency),
                currency,
                line.note or "",
            ]
        )
        self.rows += 1

    def finish(self, totals: Totals, keys_by_batch: list[dict[str, Any]]) -> None:
        """Write the totals row and close the file."""
        currency = self._currency
        names = ("gross", "refunds", "fees", "net", "cost_of_goods", "gross_profit")
        self._writer.writerow(
            [KIND_LABELS["total"], "", "", "", "", "", "", "", "", ""]
            + [to_text(getattr(totals, name), currency) for name in names]
            + [currency, ""]
        )
        self._file.close()

    def abort(self) -> None:
        self._file.close()


# ---------------------------------------------------------------- XLSX


class XlsxExport:
    """Stream detail lines into an XLSX workbook (write-only): a summary sheet and a detail sheet."""

    format = "xlsx"

    def __init__(self, path: Path, context: ExportContext) -> None:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        self.path = path
        self.context = context
        self.rows = 0
        self._workbook = Workbook(write_only=True)
        self._summary = self._workbook.create_sheet("Summary 汇总")
        self._detail = self._workbook.create_sheet("Detail 明细")
        self._detail.freeze_panes = "A2"
        self._summary.freeze_panes = "A2"
        self._bold = Font(bold=True)
        places = minor_unit(context.currency)  # #,##0.00 for yuan, #,##0 for yen
        self._money_format = "#,##0" + ("." + "0" * places if places else "")
        widths = {"A": 14, "B": 20, "C": 16, "D": 24, "E": 22, "H": 36, "R": 30}
        for letter, width in widths.items():
            self._detail.column_dimensions[letter].width = width
        self._summary.column_dimensions["A"].width = 28
        self._summary.column_dimensions["B"].width = 24
        self._detail.append([self._cell(header, bold=True) for _, header in DETAIL_HEADERS])

    def _decimal(self, minor_units: int) -> Any:
        return to_decimal(minor_units, self.context.currency)

    def _cell(self, value: Any, *, money: bool = False, text: bool = False, bold: bool = False) -> Any:
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self._detail, value=value)
        if text and isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever the text starts with
        if money:
            cell.number_format = self._money_format
        if bold:
            cell.font = self._bold
        return cell

    def add(self, line: DetailLine) -> None:
        """Append one detail line (amounts as Decimal numbers with a money format)."""
        cell = self._cell
        self._detail.append(
            [
                KIND_LABELS[line.kind],
                line.at.astimezone(self.context.tzinfo).replace(tzinfo=None),
                cell(line.channel_name, text=True),
                cell(line.external_id, text=True),
                str(line.order_id),
                line.line_no,
                cell(line.sku, text=True),
                cell(line.title, text=True),
                line.quantity,
                cell(self._decimal(line.unit_price), money=True),
                cell(self._decimal(line.gross), money=True),
                cell(self._decimal(line.refund), money=True),
                cell(self._decimal(line.fee), money=True),
                cell(self._decimal(line.net), money=True),
                cell(self._decimal(line.cost), money=True),
                cell(self._decimal(line.profit), money=True),
                self.context.currency,
                cell(line.note or "", text=True),
            ]
        )
        self.rows += 1

    def finish(self, totals: Totals, keys_by_batch: list[dict[str, Any]]) -> None:
        """Append the totals row, fill the summary sheet and save."""
        cell = self._cell
        self._detail.append(
            [cell(KIND_LABELS["total"], bold=True)]
            + [None] * 9
            + [
                cell(self._decimal(getattr(totals, name)), money=True, bold=True)
                for name in ("gross", "refunds", "fees", "net", "cost_of_goods", "gross_profit")
            ]
            + [self.context.currency]
        )
        summary = self._summary
        context = self.context
        summary.append([cell("项目 Item", bold=True), cell("值 Value", bold=True)])
        for label, value in (
            ("商户 Tenant", context.tenant_name),
            ("期间 Period", context.period_label),
            ("渠道 Channel", context.channel_label),
            ("时区 Time zone", context.zone),
            ("币种 Currency", context.currency),
            ("生成时间 Generated at", context.local(context.generated_at)),
        ):
            summary.append([label, cell(value, text=True)])
        for name, label in SUMMARY_LABELS:
            value = getattr(totals, name)
            summary.append([label, cell(self._decimal(value), money=True) if name in MONEY_TOTALS else value])
        if keys_by_batch:
            summary.append([])
            summary.append(
                [
                    cell(header, bold=True)
                    for header in ("批次 Batch", "供应商 Supplier", "权益 Right", "卡密数 Keys", "成本 Cost")
                ]
            )
            for batch in keys_by_batch:
                summary.append(
                    [
                        batch["batch_id"] or "",
                        cell(batch["supplier"], text=True),
                        cell(batch["right_name"], text=True),
                        batch["keys"],
                        cell(self._decimal(batch["cost"]), money=True),
                    ]
                )
        self._workbook.save(self.path)

    def abort(self) -> None:
        self._workbook.close()


# ---------------------------------------------------------------- PDF


class PdfExport:
    """Collect detail lines (up to PDF_MAX_LINES) and render them with the summary through WeasyPrint."""

    format = "pdf"

    def __init__(self, path: Path, context: ExportContext) -> None:
        self.path = path
        self.context = context
        self.rows = 0
        self.lines: list[dict[str, Any]] = []

    def add(self, line: DetailLine) -> None:
        """Keep one detail line, formatted for print."""
        if self.rows < PDF_MAX_LINES:
            self.lines.append(
                {
                    "kind": KIND_LABELS[line.kind],
                    "at": self.context.local(line.at),
                    "channel": line.channel_name,
                    "external_id": line.external_id,
                    "line_no": "" if line.line_no is None else line.line_no,
                    "title": line.title,
                    "quantity": line.quantity if line.kind == "sale" else "",
                    **{
                        name: to_text(getattr(line, name), self.context.currency)
                        for name in MONEY_FIELDS
                        if name != "unit_price"
                    },
                    "note": line.note or "",
                }
            )
        self.rows += 1

    @property
    def too_big(self) -> bool:
        return self.rows > PDF_MAX_LINES

    def finish(self, totals: Totals, keys_by_batch: list[dict[str, Any]]) -> None:
        """Render the PDF (tenant, period, generated at, summary, detail, page numbers)."""
        from weasyprint import HTML

        html = render_template(
            "reports/reconciliation/pdf.html",
            context=self.context,
            fonts={weight: path.as_uri() for weight, path in PDF_FONTS.items()},
            generated_at=self.context.local(self.context.generated_at),
            summary=[
                (
                    label,
                    to_text(getattr(totals, name), self.context.currency)
                    if name in MONEY_TOTALS
                    else getattr(totals, name),
                )
                for name, label in SUMMARY_LABELS
            ],
            totals={name: to_text(getattr(totals, name), self.context.currency) for name in MONEY_TOTALS},
            keys_by_batch=[{**b, "cost": to_text(b["cost"], self.context.currency)} for b in keys_by_batch],
            lines=self.lines,
        )
        HTML(string=html).write_pdf(self.path)

    def abort(self) -> None:
        self.lines = []


EXPORTERS: dict[str, type[CsvExport] | type[XlsxExport] | type[PdfExport]] = {
    "csv": CsvExport,
    "xlsx": XlsxExport,
    "pdf": PdfExport,
}

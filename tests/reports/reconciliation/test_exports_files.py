"""Every export (CSV, XLSX, PDF) adds up to its own lines and to the run, is kept with its checksum, and
cannot carry a spreadsheet formula."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from flask import Flask
from fontTools.ttLib import TTFont

from catalog.models import Bundle
from reports.reconciliation import exports, services
from reports.reconciliation.models import ReconciliationFile, ReconciliationRun
from reports.reconciliation.services import RunRequest
from saas import csvfile, money
from saas.extensions import db
from scripts import subset_cjk_font
from tests.factories import Shop
from tests.orders.factories import make_product, make_right
from tests.reports.books import JANUARY, local, make_channel, make_january_books, refund_in_full
from tests.reports.books import _paid_order as paid_order

MONEY_COLUMNS = {"gross": 10, "refund": 11, "fee": 12, "net": 13, "cost": 14, "profit": 15}
RUN_TOTALS = {
    "gross": "gross",
    "refund": "refunds",
    "fee": "fees",
    "net": "net",
    "cost": "cost_of_goods",
    "profit": "gross_profit",
}
INJECTIONS = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1:A9)", "-cmd|' /C calc'!A0"]


def january_run() -> ReconciliationRun:
    return services.create_run(RunRequest(services.parse_month("2026-01", "Asia/Shanghai")))


def file_of(app: Flask, run: ReconciliationRun, fmt: str) -> tuple[ReconciliationFile, Path]:
    found = {f.format: f for f in services.files_of(run.id)}[fmt]
    return found, Path(app.config["FILES_DIR"]) / found.path


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 BOM so Excel reads Chinese"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def minor(text: str) -> int:
    return int(Decimal(text) * 100)


def test_the_csv_lines_add_up_to_its_totals_row_and_to_the_run(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        run = january_run()
        record, path = file_of(app, run, "csv")
        rows = read_csv(path)
        header, lines, total = rows[0], rows[1:-1], rows[-1]
        assert header[3] == "渠道订单号 Channel order id"
        assert total[0] == "合计 total"
        assert len(lines) == JANUARY["line_count"] == record.row_count
        for column, index in MONEY_COLUMNS.items():
            summed = sum(minor(line[index]) for line in lines)
            assert summed == minor(total[index]) == getattr(run, RUN_TOTALS[column]), column
        b2 = [line for line in lines if line[3] == "B-2"]
        assert b2[0][1] == "2026-01-31 23:30:00"  # the tenant's time, not UTC
        assert b2[0][2] == "天猫旗舰店"


def test_the_xlsx_has_a_summary_and_a_frozen_detail_whose_lines_add_up(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        run = january_run()
        _, path = file_of(app, run, "xlsx")
        book = openpyxl.load_workbook(path)
        assert book.sheetnames == ["Summary 汇总", "Detail 明细"]
        detail = book["Detail 明细"]
        assert detail.freeze_panes == "A2"
        rows = list(detail.iter_rows(values_only=True))
        lines, total = rows[1:-1], rows[-1]
        assert total[0] == "合计 total" and len(lines) == JANUARY["line_count"]
        for column, index in MONEY_COLUMNS.items():
            summed = sum(Decimal(str(line[index])) for line in lines)
            assert summed * 100 == Decimal(str(total[index])) * 100 == getattr(run, RUN_TOTALS[column])
        assert detail.cell(row=2, column=11).number_format == "#,##0.00"
        summary = {row[0]: row[1] for row in book["Summary 汇总"].iter_rows(values_only=True) if row}
        assert Decimal(str(summary["净额 Net"])) * 100 == JANUARY["net"]
        assert summary["订单数 Orders"] == JANUARY["order_count"]
        assert summary["期间 Period"].startswith("2026-01")


def _poppler(*command: str) -> str:
    """Run a poppler tool; only outside CI may a machine without poppler-utils skip."""
    tool = command[0]
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} (poppler-utils) is missing in CI")
        pytest.skip(f"{tool} (poppler-utils) is not installed")
    return subprocess.run(list(command), check=True, capture_output=True, text=True).stdout


def _embedded_fonts(pdffonts_output: str) -> dict[str, str]:
    """Map each font of a PDF (subset prefix `ABCDEF+` removed) to its `emb` column (`yes` or `no`)."""
    fonts = {}
    for row in pdffonts_output.splitlines()[2:]:
        columns = row.split()
        name = columns[0].split("+", 1)[-1]
        fonts[name] = columns[-5]  # name type [encoding words] emb sub uni object ID
    return fonts


def test_the_pdf_renders_chinese_the_summary_the_detail_and_page_numbers(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        shop.tenant.name = "权益优选旗舰店"
        db.session.commit()
        run = january_run()
        _, path = file_of(app, run, "pdf")
        assert path.read_bytes().startswith(b"%PDF")
        text = _poppler("pdftotext", "-layout", str(path), "-")
        assert "权益优选旗舰店" in text  # the glyphs map back to the characters: no tofu, no missing font
        assert "对账单 Reconciliation" in text and "2026-01" in text
        assert "生成时间 Generated at" in text
        assert "47.36" in text and "18.36" in text and "69.60" in text  # net, gross profit, gross
        assert "B-2" in text and "D-4" in text and "天猫旗舰店" in text
        assert "page 1 of 1" in text


def test_the_pdf_embeds_the_shipped_cjk_font_and_no_font_of_the_machine(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        shop.tenant.name = "权益优选旗舰店"
        db.session.commit()
        _, path = file_of(app, january_run(), "pdf")
        fonts = _embedded_fonts(_poppler("pdffonts", str(path)))
    # WeasyPrint names an embedded font after its @font-face family: both weights of the shipped font are
    # embedded and no other font is used, so the PDF reads the same whatever fonts the machine has.
    assert fonts == {"Quanyi-Noto-Sans-SC": "yes", "Quanyi-Noto-Sans-SC-Bold": "yes"}, fonts


def test_the_shipped_font_covers_every_gb2312_character_and_carries_its_licence() -> None:
    gb2312 = {chr(c) for c in subset_cjk_font.gb2312_characters()}
    assert len(gb2312) > 7000
    for font in exports.PDF_FONTS.values():
        cmap = TTFont(font).getBestCmap()
        assert not [c for c in gb2312 | set("¥￥，。：（）“”·•") if ord(c) not in cmap]
    assert "SIL Open Font License" in (exports.PDF_FONTS_DIR / "OFL.txt").read_text()


def test_files_are_kept_per_tenant_with_their_sha256(app: Flask, shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        run = january_run()
        files = services.files_of(run.id)
        assert [f.format for f in files] == ["csv", "xlsx", "pdf"]
        for record in files:
            path = Path(app.config["FILES_DIR"]) / record.path
            assert path.parent == Path(app.config["FILES_DIR"]) / str(
                shop.tenant.id
            ) / "reconciliation" / str(run.id)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256
            assert record.size == path.stat().st_size
            assert record.filename == f"reconciliation-acme-2026-01-all.{record.format}"


def test_a_run_too_big_for_a_pdf_gets_csv_and_xlsx_only(
    app: Flask, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PDF_MAX_LINES", 2)
    with shop.bound():
        make_january_books(shop)
        run = january_run()
        assert run.status == "succeeded"
        assert [f.format for f in services.files_of(run.id)] == ["csv", "xlsx"]


def test_text_that_a_spreadsheet_would_run_is_defused_in_csv_and_xlsx(app: Flask, shop: Shop) -> None:
    with shop.bound():
        channel = make_channel(public_id="evil")
        channel.name = INJECTIONS[3]
        product = make_product(make_right("视频月卡"), price=1000)
        bundle = db.session.get(Bundle, (shop.tenant.id, product.bundle.id))
        assert bundle is not None
        bundle.name = INJECTIONS[0]
        db.session.commit()
        for n, payload in enumerate(INJECTIONS[1:3]):
            order = paid_order([(product, 1)], payload + str(n), channel.public_id, local(2026, 1, 5 + n))
        refund_in_full(order.id, local(2026, 1, 20), reason=INJECTIONS[4])
        run = january_run()
        rows = read_csv(file_of(app, run, "csv")[1])
        text_cells = [cell for row in rows[1:] for i, cell in enumerate(row) if i in (2, 3, 6, 7, 17)]
        dangerous = [cell for cell in text_cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert dangerous == []
        assert "'" + INJECTIONS[0] + " · 月卡" in text_cells
        assert "'+1+10" in text_cells and "'-2+31" in text_cells
        assert "'" + INJECTIONS[3] in text_cells, text_cells
        assert "'" + INJECTIONS[4] in text_cells, text_cells
        assert rows[1][12].startswith("0.") and rows[-2][13].startswith("-")  # numbers keep their sign
        book = openpyxl.load_workbook(file_of(app, run, "xlsx")[1])
        cells = [c for row in book["Detail 明细"].iter_rows() for c in row]
        assert not [c.coordinate for c in cells if c.data_type == "f"], "no cell is a formula"
        assert INJECTIONS[0] + " · 月卡" in [c.value for c in cells]


def test_money_is_written_exactly_without_floats() -> None:
    assert money.to_text(-1, "CNY") == "-0.01"
    assert money.to_text(123456789, "CNY") == "1234567.89"
    assert money.to_decimal(1999, "CNY") == Decimal("19.99")
    assert csvfile.defuse("=1+1") == "'=1+1" and csvfile.defuse("a=1") == "a=1"
    assert csvfile.defuse("\tTAB") == "'\tTAB" and csvfile.defuse("\rCR") == "'\rCR"

"""Settlement matching: read a channel's settlement or payout CSV and match it to a run's orders and refunds.

The user maps the file's columns (order id, amount, and optionally fee and date); the encoding is
detected (UTF-8, UTF-8 with BOM, GBK/GB18030) or chosen. A row with an amount ≥ 0 is a payment for an
order; a negative amount is a refund of it. Each row, and each of our records the file never mentions,
ends as one `SettlementMatch`: matched, missing in settlement, missing in ours, amount mismatch or fee
mismatch, with both sides kept. Fees in a file are compared by size (platforms print them as positive or
negative numbers). Finance resolves a difference with a note; the resolution is audited.

The platforms' own bills are recognised from the file itself and need no column choice: the WeChat Pay
trade bill (交易账单: every field prefixed with a backtick, a summary block after the rows, refunds as
REFUND rows) and the Alipay business detail bill (业务明细: GBK, `#` comment lines above and below, refunds
as 退款 rows). Their rows become the same (order id, amount, fee, date) as a mapped file's, refunds
negative, so the differences are typed the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from catalog.fileformats import FileFormatError, detect_encoding
from orders.models import Order
from reports.reconciliation import services
from reports.reconciliation.models import (
    DIFFERENCE_KINDS,
    MATCH_KINDS,
    ReconciliationRun,
    Settlement,
    SettlementMatch,
)
from saas import money
from saas.extensions import db
from saas.timeutil import format_in_zone, utcnow
from tenants import audit
from tenants.jobruns import report_progress, start_job_run
from tenants.scoping import current_tenant_id

ROLES = ("order_id", "amount", "fee", "date")
REQUIRED_ROLES = ("order_id", "amount")
ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "gbk")
SAMPLE_BYTES = 64 * 1024
SAMPLE_ROWS = 8
MAX_UNREADABLE_KEPT = 200
MAX_CELL = 200
HEADER_WORDS: dict[str, set[str]] = {
    "order_id": {
        "订单号",
        "商户订单号",
        "外部订单号",
        "渠道订单号",
        "订单编号",
        "order",
        "order id",
        "order_id",
        "order number",
        "order no",
        "external id",
        "external_id",
    },
    "amount": {
        "金额",
        "结算金额",
        "订单金额",
        "交易金额",
        "实收金额",
        "收入金额",
        "amount",
        "gross",
        "total",
        "settled amount",
    },
    "fee": {"手续费", "服务费", "渠道费", "佣金", "fee", "fees", "commission", "service fee"},
    "date": {"日期", "时间", "交易时间", "结算时间", "入账时间", "date", "time", "created", "settled at"},
}


class SettlementError(ValueError):
    """A user-facing refusal of a settlement action."""


# ---------------------------------------------------------------- reading the file


def read_amount(text: str, currency: str) -> int:
    """Read a settlement amount ("1,234.50", "¥-12.5", "(3.00)", "12元") as minor units; ValueError if not.

    `saas.money.parse`, negative amounts allowed (refunds, chargebacks); a fraction of the minor unit (a
    fee a channel computed by percentage) is rounded half up, as channels round their own fees.
    """
    return money.parse(text or "", currency, negative=True, rounding=ROUND_HALF_UP)


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _open_text(path: Path, encoding: str) -> IO[str]:
    return path.open("r", encoding=encoding, errors="strict", newline="")


def read_rows(path: Path, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, cells) for every non-blank row of the file."""
    with _open_text(path, encoding) as text:
        for line_no, cells in enumerate(csv.reader(text, delimiter=delimiter), start=1):
            cleaned = [c.strip() for c in cells]
            if any(cleaned):
                yield line_no, cleaned


def guess_mapping(header: list[str]) -> dict[str, int]:
    """Guess which column holds each role from the header's words."""
    mapping: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = cell.strip().lower().lstrip("\ufeff")
        for role, words in HEADER_WORDS.items():
            if role not in mapping and name in words:
                mapping[role] = index
    return mapping


# ---------------------------------------------------------------- the platforms' own bills

WECHAT_BILL = "wechatpay_trade_bill"
ALIPAY_BILL = "alipay_business_detail"
BILL_FORMATS = (WECHAT_BILL, ALIPAY_BILL)


@dataclass(frozen=True)
class BillRow:
    """One row of a platform's bill as the matcher reads it: refunds are negative amounts."""

    line_no: int
    external_id: str
    amount: int
    fee: int | None
    date: str | None


def _bill_cell(cell: str) -> str:
    """Return a bill's cell without WeChat's leading backtick or Alipay's trailing tab."""
    return cell.strip().lstrip("\ufeff").lstrip("`").strip()


def detect_bill(text: str) -> str | None:
    """Tell which platform's bill a file's first characters are, if any."""
    lines = [line.strip().lstrip("\ufeff") for line in text.splitlines()[:12] if line.strip()]
    if not lines:
        return None
    first = [_bill_cell(c) for c in lines[0].split(",")]
    if first and first[0] == "交易时间" and "商户订单号" in first and "交易状态" in first:
        return WECHAT_BILL
    if lines[0].startswith("#"):
        for line in lines:
            cells = {_bill_cell(c) for c in line.split(",")}
            if not line.startswith("#") and {"商户订单号", "业务类型"} <= cells:
                return ALIPAY_BILL
    return None


def _column(header: list[str], *names: str) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise ValueError(_("The bill has no column %(name)s.", name=names[0]))


def _optional_column(header: list[str], *names: str) -> int:
    """Return a column older bills may lack, or an index past every row (read as empty)."""
    return next((header.index(name) for name in names if name in header), len(header) + 1000)


def _bill_table(path: Path, encoding: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield (line number, header, cells) for every row under the bill's header, until its totals."""
    header: list[str] | None = None
    for line_no, raw in read_rows(path, encoding, ","):
        cells = [_bill_cell(c) for c in raw]
        first = cells[0].lstrip("\ufeff")
        if first.startswith("#"):
            continue
        if header is None:
            if first == "交易时间" or "商户订单号" in cells:
                header = [c.lstrip("\ufeff") for c in cells]
            continue
        if first in ("总交易单数", "总交易额"):  # WeChat's summary block ends the detail rows
            return
        yield line_no, header, cells


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


def _wechat_columns(header: list[str]) -> dict[str, int]:
    columns = {
        "order": _column(header, "商户订单号"),
        "status": _column(header, "交易状态"),
        "settled": _column(header, "应结订单金额", "总金额"),
        "refund": _column(header, "退款金额", "申请退款金额"),
        "refund_status": _optional_column(header, "退款状态"),
        "fee": _optional_column(header, "手续费"),
        "time": _optional_column(header, "交易时间"),
    }
    columns["total"] = header.index("订单金额") if "订单金额" in header else columns["settled"]
    return columns


def _yuan(text: str) -> int:
    """Read an amount of a Chinese platform's bill (always yuan) as fen."""
    return read_amount(text, "CNY")


def _wechat_row(line_no: int, columns: dict[str, int], cells: list[str]) -> BillRow | str:
    status = _cell(cells, columns["status"])
    fee_text = _cell(cells, columns["fee"])
    fee = _yuan(fee_text) if fee_text else None
    external_id = _cell(cells, columns["order"])
    when = _cell(cells, columns["time"])[:40] or None
    if status == "SUCCESS":
        amount = _yuan(_cell(cells, columns["total"]) or _cell(cells, columns["settled"]))
        return BillRow(line_no, external_id, amount, fee, when)
    if status == "REFUND":
        refund_status = _cell(cells, columns["refund_status"])
        if refund_status not in ("", "SUCCESS"):
            return _("refund %(status)s: not counted until it succeeds", status=refund_status)
        amount = abs(_yuan(_cell(cells, columns["refund"])))
        return BillRow(line_no, external_id, -amount, fee, when)
    return _("trade status %(status)s: not counted", status=status or "?")


def _alipay_columns(header: list[str]) -> dict[str, int]:
    return {
        "order": _column(header, "商户订单号"),
        "kind": _column(header, "业务类型"),
        "total": _column(header, "订单金额（元）", "订单金额(元)", "订单金额"),
        "received": _optional_column(header, "商家实收（元）", "商家实收(元)", "商家实收"),
        "fee": _optional_column(header, "服务费（元）", "服务费(元)", "服务费"),
        "time": _optional_column(header, "完成时间", "创建时间"),
    }


def _alipay_row(line_no: int, columns: dict[str, int], cells: list[str]) -> BillRow | str:
    kind = _cell(cells, columns["kind"])
    fee_text = _cell(cells, columns["fee"])
    fee = _yuan(fee_text) if fee_text else None
    external_id = _cell(cells, columns["order"])
    when = _cell(cells, columns["time"])[:40] or None
    if kind == "交易":
        return BillRow(line_no, external_id, _yuan(_cell(cells, columns["total"])), fee, when)
    if kind == "退款":
        # What the merchant paid back; a refund row's order amount is not always the refund's.
        received = _cell(cells, columns["received"])
        refunded = abs(_yuan(received)) if received else 0
        amount = refunded or abs(_yuan(_cell(cells, columns["total"])))
        return BillRow(line_no, external_id, -amount, fee, when)
    return _("business type %(kind)s: not counted", kind=kind or "?")


def bill_rows(path: Path, encoding: str, bill: str) -> Iterator[tuple[int, BillRow | str]]:
    """Yield (line number, row) for every row of a platform's bill, or (line number, why not counted)."""
    columns_of, row_of = (
        (_wechat_columns, _wechat_row) if bill == WECHAT_BILL else (_alipay_columns, _alipay_row)
    )
    columns: dict[str, int] | None = None
    for line_no, header, cells in _bill_table(path, encoding):
        if columns is None:
            columns = columns_of(header)
        try:
            found = row_of(line_no, columns, cells)
        except ValueError as error:
            found = str(error)
        if isinstance(found, BillRow) and not found.external_id:
            found = _("no order id")
        yield line_no, found


def _tenant_root() -> Path:
    return Path(current_app.config["FILES_DIR"])


def settlement_folder(settlement_id: int) -> Path:
    """Return where an uploaded settlement file is kept."""
    return _tenant_root() / str(current_tenant_id()) / "reconciliation" / "settlements" / str(settlement_id)


# ---------------------------------------------------------------- use cases


def upload_settlement(
    run: ReconciliationRun,
    stream: IO[bytes],
    filename: str,
    *,
    channel: str | None = None,
    encoding: str | None = None,
) -> Settlement:
    """Keep an uploaded settlement file, read its header and first rows, guess the mapping; commit."""
    if not run.status == "succeeded":
        raise SettlementError(_("Wait for the run to finish before matching a settlement."))
    if encoding and encoding not in ENCODINGS:
        raise SettlementError(_("Choose one of the listed encodings."))
    settlement = Settlement(
        run_id=run.id,
        channel=(channel or "").strip()[:64] or None,
        filename=Path(filename or "settlement.csv").name[:255],
        path="",
        sha256="",
        encoding=encoding or "utf-8",
        uploaded_by=audit.current_actor()[1],
    )
    folder = settlement_folder(settlement.id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "source.csv"
    try:
        settlement.sha256, settlement.size = _copy(stream, target)
        _describe(settlement, target, encoding)
    except SettlementError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    settlement.path = str(target.relative_to(_tenant_root()))
    db.session.add(settlement)
    audit.record(
        "reconciliation.settlement_uploaded",
        "settlement",
        settlement.id,
        run_id=str(run.id),
        filename=settlement.filename,
        sha256=settlement.sha256,
        encoding=settlement.encoding,
    )
    db.session.commit()
    if bill_of(settlement) is not None:  # a platform's bill: its columns are known, match it now
        return start_matching(settlement)
    return settlement


def _copy(stream: IO[bytes], target: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size == 0:
        raise SettlementError(_("The file is empty."))
    return digest.hexdigest(), size


def _describe(settlement: Settlement, path: Path, encoding: str | None) -> None:
    with path.open("rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if b"\x00" in sample[:4096]:
        raise SettlementError(_("This is not a CSV file."))
    if not encoding:
        try:
            encoding = detect_encoding(sample)
        except FileFormatError as error:
            raise SettlementError(str(error)) from error
    settlement.encoding = (
        "utf-8-sig" if encoding == "utf-8" and sample.startswith(b"\xef\xbb\xbf") else encoding
    )
    text = sample.decode(settlement.encoding, errors="ignore")
    bill = detect_bill(text)
    if bill is not None:
        _describe_bill(settlement, path, bill)
        return
    delimiter = _sniff_delimiter(text[:8192])
    rows: list[list[str]] = []
    try:
        for _line, cells in read_rows(path, settlement.encoding, delimiter):
            rows.append([c[:MAX_CELL] for c in cells])
            if len(rows) > SAMPLE_ROWS:
                break
    except (UnicodeDecodeError, LookupError) as error:
        raise SettlementError(
            _("The file is not in %(encoding)s; choose its encoding.", encoding=encoding)
        ) from error
    if not rows:
        raise SettlementError(_("The file has no rows."))
    settlement.header, settlement.sample = rows[0], rows[1:]
    guessed = guess_mapping(rows[0])
    settlement.has_header = bool(guessed)
    settlement.mapping = {"delimiter": delimiter, **guessed}


def _describe_bill(settlement: Settlement, path: Path, bill: str) -> None:
    """Keep a platform bill's header and first rows; its columns are known, so nothing is to be chosen."""
    rows: list[list[str]] = []
    try:
        for _line, header, cells in _bill_table(path, settlement.encoding):
            if not rows:
                rows.append([c[:MAX_CELL] for c in header])
            rows.append([c[:MAX_CELL] for c in cells])
            if len(rows) > SAMPLE_ROWS:
                break
    except (UnicodeDecodeError, LookupError) as error:
        raise SettlementError(
            _("The file is not in %(encoding)s; choose its encoding.", encoding=settlement.encoding)
        ) from error
    if not rows:
        raise SettlementError(_("The bill has no rows."))
    settlement.header, settlement.sample = rows[0], rows[1:]
    settlement.has_header = True
    settlement.mapping = {"bill": bill}


def bill_of(settlement: Settlement) -> str | None:
    """Return which platform's bill a settlement is (None for a file whose columns are mapped)."""
    bill = (settlement.mapping or {}).get("bill")
    return bill if bill in BILL_FORMATS else None


def choose_mapping(settlement: Settlement, mapping: dict[str, int | None], has_header: bool) -> Settlement:
    """Save the user's column choice (0-based indexes), then match the file as a job run; commit."""
    if settlement.status == "matching":
        raise SettlementError(_("This file is being matched now."))
    columns = max(len(settlement.header), *(len(r) for r in settlement.sample or [[]]))
    chosen: dict[str, int] = {}
    for role in ROLES:
        index = mapping.get(role)
        if index is None:
            if role in REQUIRED_ROLES:
                raise SettlementError(_("Choose the column of the order id and of the amount."))
            continue
        if not 0 <= index < columns:
            raise SettlementError(_("The file has no column %(n)d.", n=index + 1))
        chosen[role] = index
    if len(set(chosen.values())) != len(chosen):
        raise SettlementError(_("Each column can play one role only."))
    settlement.mapping = {"delimiter": settlement.mapping.get("delimiter", ","), **chosen}
    settlement.has_header = has_header
    return start_matching(settlement)


def start_matching(settlement: Settlement) -> Settlement:
    """Match a settlement whose columns are known as a job run; commit."""
    settlement.status = "matching"
    db.session.commit()
    settlement_id = settlement.id
    job = start_job_run(
        "settlement",
        _("Match %(file)s", file=settlement.filename),
        "reports.reconciliation.settlement.match_settlement_job",
        settlement_id,
        queue="reports",
        timeout=3600,
    )
    found = db.session.get(Settlement, (current_tenant_id(), settlement_id), populate_existing=True)
    assert found is not None
    found.job_run_id = job.id
    db.session.commit()
    return found


# ---------------------------------------------------------------- matching


@dataclass
class _OurOrder:
    order_id: int
    amount: int
    fee: int
    at: Any
    matched: bool = False


@dataclass
class _OurRefund:
    refund_id: int
    order_id: int
    amount: int
    at: Any
    matched: bool = False


@dataclass
class _Ours:
    orders: dict[str, _OurOrder] = field(default_factory=dict)
    refunds: dict[str, list[_OurRefund]] = field(default_factory=dict)


def our_records(run: ReconciliationRun, channel: str | None) -> _Ours:
    """Return the run's orders (gross and fee summed over their lines) and refunds, by channel order id."""
    ours = _Ours()
    for line in services.stream_detail(run, channel=channel):
        if line.kind == "sale":
            order = ours.orders.get(line.external_id)
            if order is None:
                ours.orders[line.external_id] = _OurOrder(line.order_id, line.gross, line.fee, line.at)
            else:
                order.amount += line.gross
                order.fee += line.fee
        else:
            assert line.refund_id is not None
            ours.refunds.setdefault(line.external_id, []).append(
                _OurRefund(line.refund_id, line.order_id, line.refund, line.at)
            )
    return ours


class _Matcher:
    """Match settlement rows to our records one at a time, collecting SettlementMatch rows."""

    def __init__(self, settlement: Settlement, run: ReconciliationRun, ours: _Ours) -> None:
        self.settlement = settlement
        self.run = run
        self.ours = ours
        self.has_fee = "fee" in settlement.mapping or bill_of(settlement) is not None
        self.matches: list[SettlementMatch] = []

    def _add(self, kind: str, record_type: str, external_id: str, **values: Any) -> None:
        self.matches.append(
            SettlementMatch(
                settlement_id=self.settlement.id,
                kind=kind,
                record_type=record_type,
                external_id=external_id[:128],
                **values,
            )
        )

    def row(self, line_no: int, external_id: str, amount: int, fee: int | None, date: str | None) -> None:
        theirs = {"line_no": line_no, "theirs_amount": amount, "theirs_fee": fee, "theirs_date": date}
        if amount >= 0:
            self._payment(external_id, theirs)
        else:
            self._refund(external_id, theirs)

    def _payment(self, external_id: str, theirs: dict[str, Any]) -> None:
        order = self.ours.orders.get(external_id)
        if order is None or order.matched:
            note = _("a second row for this order") if order is not None else self._whereabouts(external_id)
            self._add("missing_in_ours", "order", external_id, note=note, **theirs)
            return
        order.matched = True
        kind = "matched"
        if theirs["theirs_amount"] != order.amount:
            kind = "amount_mismatch"
        elif self.has_fee and theirs["theirs_fee"] is not None and abs(theirs["theirs_fee"]) != order.fee:
            kind = "fee_mismatch"
        self._add(
            kind,
            "order",
            external_id,
            order_id=order.order_id,
            ours_amount=order.amount,
            ours_fee=order.fee,
            ours_at=order.at,
            **theirs,
        )

    def _refund(self, external_id: str, theirs: dict[str, Any]) -> None:
        wanted = -theirs["theirs_amount"]
        candidates = [r for r in self.ours.refunds.get(external_id, []) if not r.matched]
        exact = [r for r in candidates if r.amount == wanted]
        refund = next(iter(exact or candidates), None)
        if refund is None:
            self._add("missing_in_ours", "refund", external_id, note=self._whereabouts(external_id), **theirs)
            return
        refund.matched = True
        self._add(
            "matched" if refund.amount == wanted else "amount_mismatch",
            "refund",
            external_id,
            order_id=refund.order_id,
            refund_id=refund.refund_id,
            ours_amount=-refund.amount,
            ours_fee=0,
            ours_at=refund.at,
            **theirs,
        )

    def _whereabouts(self, external_id: str) -> str:
        """Say where an order the period does not hold is in our books, if anywhere."""
        channel = self.settlement.channel or self.run.channel
        statement = select(Order).where(Order.external_id == external_id)
        if channel:
            statement = statement.where(Order.channel == channel)
        order = db.session.scalars(statement.limit(1)).first()
        if order is None:
            return _("no such order in our books")
        if order.paid_at is None:
            return _("our order is not paid (%(status)s)", status=order.status)
        return _(
            "our order was paid on %(day)s, outside this period",
            day=format_in_zone(order.paid_at, self.run.time_zone, "%Y-%m-%d %H:%M"),
        )

    def unmatched_ours(self) -> None:
        """Add every order and refund of ours the file never mentioned."""
        for external_id, order in self.ours.orders.items():
            if not order.matched:
                self._add(
                    "missing_in_settlement",
                    "order",
                    external_id,
                    order_id=order.order_id,
                    ours_amount=order.amount,
                    ours_fee=order.fee,
                    ours_at=order.at,
                )
        for external_id, refunds in self.ours.refunds.items():
            for refund in refunds:
                if not refund.matched:
                    self._add(
                        "missing_in_settlement",
                        "refund",
                        external_id,
                        order_id=refund.order_id,
                        refund_id=refund.refund_id,
                        ours_amount=-refund.amount,
                        ours_fee=0,
                        ours_at=refund.at,
                    )


def match_settlement(settlement_id: int) -> dict[str, Any]:
    """Match a mapped settlement file against its run; replace earlier results; commit; return counts."""
    settlement = db.session.get(Settlement, (current_tenant_id(), settlement_id))
    if settlement is None:
        return {}
    run = services.get_run(settlement.run_id)
    assert run is not None
    mapping = settlement.mapping
    matcher = _Matcher(settlement, run, our_records(run, settlement.channel))
    unreadable: list[dict[str, Any]] = []
    rows_read = 0
    path = _tenant_root() / settlement.path
    bill = bill_of(settlement)
    for line_no, row in bill_rows(path, settlement.encoding, bill) if bill else ():
        rows_read += 1
        if isinstance(row, str):
            if len(unreadable) < MAX_UNREADABLE_KEPT:
                unreadable.append({"line": line_no, "problem": row[:200]})
            continue
        matcher.row(line_no, row.external_id, row.amount, row.fee, row.date)
    for line_no, cells in () if bill else read_rows(path, settlement.encoding, mapping.get("delimiter", ",")):
        if settlement.has_header and line_no == 1:
            continue
        rows_read += 1
        if rows_read % 20_000 == 0:
            report_progress(min(90, rows_read / 2000), _("%(rows)d rows read", rows=rows_read))
        try:
            external_id, amount, fee, date = _read_cells(cells, mapping, run.currency)
        except ValueError as error:
            if len(unreadable) < MAX_UNREADABLE_KEPT:
                unreadable.append({"line": line_no, "problem": str(error)[:200]})
            continue
        matcher.row(line_no, external_id, amount, fee, date)
    matcher.unmatched_ours()
    db.session.query(SettlementMatch).filter(SettlementMatch.settlement_id == settlement.id).delete(
        synchronize_session=False
    )
    db.session.add_all(matcher.matches)
    counts = dict.fromkeys(MATCH_KINDS, 0)
    for match in matcher.matches:
        counts[match.kind] += 1
    counts["unreadable"] = len(unreadable)
    settlement.rows_read, settlement.counts, settlement.unreadable = rows_read, counts, unreadable
    settlement.status, settlement.matched_at = "matched", utcnow()
    audit.record("reconciliation.settlement_matched", "settlement", settlement.id, counts=counts)
    db.session.commit()
    return {"settlement_id": str(settlement_id), **counts}


def _read_cells(
    cells: list[str], mapping: dict[str, Any], currency: str
) -> tuple[str, int, int | None, str | None]:
    def cell(role: str) -> str | None:
        index = mapping.get(role)
        if index is None:
            return None
        return cells[index] if index < len(cells) else ""

    external_id = (cell("order_id") or "").strip()
    if not external_id:
        raise ValueError(_("no order id"))
    amount = read_amount(cell("amount") or "", currency)
    fee_text = cell("fee")
    fee = read_amount(fee_text, currency) if fee_text else None
    date = cell("date")
    return external_id, amount, fee, (date or None) and date[:40]


def match_settlement_job(settlement_id: int) -> dict[str, Any]:
    """Job: match a settlement; mark it failed (and say why) when the file cannot be read."""
    try:
        return match_settlement(settlement_id)
    except Exception as error:
        db.session.rollback()
        settlement = db.session.get(Settlement, (current_tenant_id(), settlement_id))
        if settlement is not None:
            settlement.status = "failed"
            settlement.unreadable = [{"line": 0, "problem": str(error)[:500]}]
            db.session.commit()
        raise


# ---------------------------------------------------------------- reading results


def settlements_of(run_id: int) -> list[Settlement]:
    """Return a run's uploaded settlement files, newest first."""
    return list(
        db.session.scalars(
            select(Settlement).where(Settlement.run_id == run_id).order_by(Settlement.created_at.desc())
        )
    )


def differences_of(settlement_id: int, kind: str | None = None, limit: int = 500) -> list[SettlementMatch]:
    """Return a settlement's differences (or one kind of them, or its matches), unresolved first."""
    statement = select(SettlementMatch).where(SettlementMatch.settlement_id == settlement_id)
    if kind in MATCH_KINDS:
        statement = statement.where(SettlementMatch.kind == kind)
    else:
        statement = statement.where(SettlementMatch.kind.in_(DIFFERENCE_KINDS))
    statement = statement.order_by(
        SettlementMatch.resolved_at.is_not(None), SettlementMatch.line_no, SettlementMatch.id
    )
    return list(db.session.scalars(statement.limit(limit)))


def open_difference_count(settlement_id: int) -> int:
    """Count a settlement's differences nobody has resolved yet."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(SettlementMatch)
            .where(
                SettlementMatch.settlement_id == settlement_id,
                SettlementMatch.kind.in_(DIFFERENCE_KINDS),
                SettlementMatch.resolved_at.is_(None),
            )
        )
        or 0
    )


def resolve_difference(match: SettlementMatch, note: str) -> SettlementMatch:
    """Mark a difference resolved with finance's note (audited); commit."""
    note = (note or "").strip()
    if not match.is_difference:
        raise SettlementError(_("Only a difference can be resolved."))
    if match.resolved_at is not None:
        raise SettlementError(_("This difference is already resolved."))
    if not note:
        raise SettlementError(_("Say how the difference was resolved."))
    match.resolved_at, match.resolved_by, match.resolution_note = (
        utcnow(),
        audit.current_actor()[1],
        note[:2000],
    )
    audit.record(
        "reconciliation.difference_resolved",
        "settlement_match",
        match.id,
        reason=note[:2000],
        settlement_id=str(match.settlement_id),
        kind=match.kind,
        external_id=match.external_id,
        ours_amount=match.ours_amount,
        theirs_amount=match.theirs_amount,
    )
    db.session.commit()
    return match


def sample_text(settlement: Settlement) -> str:
    """Return the sample rows as CSV text (for display)."""
    out = io.StringIO()
    csv.writer(out).writerows([settlement.header, *settlement.sample])
    return out.getvalue()

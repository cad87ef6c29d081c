"""A channel's settlement file is matched row by row to the run; every kind of difference is listed with
both sides, and finance resolves differences with an audited note."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from reports.reconciliation import services, settlement
from reports.reconciliation.models import ReconciliationRun, Settlement, SettlementMatch
from reports.reconciliation.services import RunRequest
from saas.extensions import db
from tenants.models import AuditEvent
from tests.factories import Shop, login
from tests.reports.books import _paid_order as paid_order
from tests.reports.books import local, make_january_books

SETTLEMENT_ROWS = [
    "商户订单号,结算金额,手续费,入账时间,备注",
    "A-1,18.90,0.80,2026-02-02,少结算一元",  # amount mismatch: ours 19.90
    "B-2,49.70,-1.60,2026-02-02,",  # fee mismatch: ours 1.54 (the sign of a fee does not matter)
    'E-5,"￥19.90",0.80,2026-02-02,',  # matched
    "X-9,10.00,0.30,2026-02-02,",  # missing in ours: no such order
    "C-3,19.90,0,2026-02-02,",  # missing in ours: paid in February
    "Z-1,abc,0,2026-02-02,",  # unreadable amount
    "",
]  # D-4's refund (January) is not in the file: missing in settlement


def settlement_bytes(encoding: str) -> bytes:
    return "\r\n".join(SETTLEMENT_ROWS).encode(encoding)


def january_books_with_e5(shop: Shop) -> ReconciliationRun:
    books = make_january_books(shop)
    paid_order([(books.video, 1)], "E-5", books.channel_public_id, local(2026, 1, 20, 10))
    return services.create_run(RunRequest(services.parse_month("2026-01", "Asia/Shanghai")))


def upload_and_match(
    client: FlaskClient, shop: Shop, run_id: int, data: bytes, encoding: str = ""
) -> Settlement:
    response = client.post(
        f"/t/{shop.slug}/reconciliation/runs/{run_id}/settlements",
        data={"file": (io.BytesIO(data), "支付宝结算单.csv"), "encoding": encoding, "channel": ""},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    settlement_url = response.headers["Location"]
    page = client.get(settlement_url)
    assert "商户订单号" in page.get_data(as_text=True)
    with shop.bound():
        uploaded = db.session.scalars(select(Settlement).where(Settlement.run_id == run_id)).one()
        assert uploaded.mapping["order_id"] == 0 and uploaded.mapping["amount"] == 1
        assert uploaded.mapping["fee"] == 2 and uploaded.mapping["date"] == 3
        uploaded_id = uploaded.id
    response = client.post(
        f"{settlement_url}/mapping",
        data={"has_header": "y", "order_id": "0", "amount": "1", "fee": "2", "date": "3"},
    )
    assert response.status_code == 302
    with shop.bound():
        found = db.session.get(Settlement, (shop.tenant.id, uploaded_id))
        assert found is not None
        return found


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_a_settlement_with_every_kind_of_difference(
    app: Flask, client: FlaskClient, shop: Shop, encoding: str
) -> None:
    with shop.bound():
        run_id = january_books_with_e5(shop).id
    login(client, shop.members["finance"])
    matched = upload_and_match(client, shop, run_id, settlement_bytes(encoding))
    assert matched.status == "matched"
    assert matched.rows_read == 6
    assert matched.counts == {
        "matched": 1,
        "missing_in_settlement": 1,
        "missing_in_ours": 2,
        "amount_mismatch": 1,
        "fee_mismatch": 1,
        "unreadable": 1,
    }
    with shop.bound():
        rows = {
            (m.external_id, m.record_type): m
            for m in db.session.scalars(
                select(SettlementMatch).where(SettlementMatch.settlement_id == matched.id)
            )
        }
    a1 = rows[("A-1", "order")]
    assert (a1.kind, a1.ours_amount, a1.theirs_amount, a1.amount_difference) == (
        "amount_mismatch",
        1990,
        1890,
        -100,
    )
    b2 = rows[("B-2", "order")]
    assert (b2.kind, b2.ours_fee, b2.theirs_fee) == ("fee_mismatch", 154, -160)
    assert rows[("E-5", "order")].kind == "matched"
    assert rows[("X-9", "order")].kind == "missing_in_ours"
    assert rows[("X-9", "order")].note == "no such order in our books"
    c3 = rows[("C-3", "order")]
    assert c3.kind == "missing_in_ours" and "2026-02-01 00:10" in c3.note and "outside this period" in c3.note
    d4 = rows[("D-4", "refund")]
    assert (d4.kind, d4.ours_amount, d4.theirs_amount, d4.line_no) == (
        "missing_in_settlement",
        -1990,
        None,
        None,
    )
    assert matched.unreadable[0]["line"] == 7

    page = client.get(f"/t/{shop.slug}/reconciliation/runs/{run_id}/settlements/{matched.id}").get_data(
        as_text=True
    )
    for external_id in ("A-1", "B-2", "X-9", "C-3", "D-4"):
        assert f'data-external-id="{external_id}"' in page
    assert 'data-external-id="E-5"' not in page  # the differences list shows differences only
    assert "¥19.90" in page and "¥18.90" in page  # both sides of A-1


def test_finance_resolves_a_difference_with_a_note_and_the_audit_log_keeps_it(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        run_id = january_books_with_e5(shop).id
    login(client, shop.members["finance"])
    matched = upload_and_match(client, shop, run_id, settlement_bytes("gbk"))
    with shop.bound():
        a1 = db.session.scalars(
            select(SettlementMatch).where(
                SettlementMatch.settlement_id == matched.id, SettlementMatch.external_id == "A-1"
            )
        ).one()
        a1_id = a1.id
    url = f"/t/{shop.slug}/reconciliation/runs/{run_id}/settlements/{matched.id}/differences/{a1_id}/resolve"
    assert client.post(url, data={"note": ""}).status_code == 302
    with shop.bound():
        assert db.session.get(SettlementMatch, (shop.tenant.id, a1_id)).resolved_at is None  # type: ignore[union-attr]
    assert client.post(url, data={"note": "渠道补结算 1 元，见 2 月账单"}).status_code == 302
    with shop.bound():
        resolved = db.session.get(SettlementMatch, (shop.tenant.id, a1_id))
        assert resolved is not None and resolved.resolved_at is not None
        assert resolved.resolved_by == "finance@acme.test"
        assert resolved.resolution_note == "渠道补结算 1 元，见 2 月账单"
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "reconciliation.difference_resolved")
        ).one()
        assert event.actor == "finance@acme.test" and event.reason == "渠道补结算 1 元，见 2 月账单"
        assert event.details["external_id"] == "A-1" and event.details["kind"] == "amount_mismatch"
        assert settlement.open_difference_count(matched.id) == 4
    page = client.get(f"/t/{shop.slug}/reconciliation/runs/{run_id}/settlements/{matched.id}").get_data(
        as_text=True
    )
    assert "渠道补结算 1 元" in page


def test_amounts_are_read_as_exact_minor_units() -> None:
    assert settlement.read_amount("1,234.50", "CNY") == 123450
    assert settlement.read_amount("¥-12.5", "CNY") == -1250
    assert settlement.read_amount("(3.00)", "CNY") == -300
    assert settlement.read_amount("12元", "CNY") == 1200
    assert settlement.read_amount("0.005", "CNY") == 1  # half up
    assert settlement.read_amount("1,200", "JPY") == 1200  # yen have no minor unit
    for bad in ("", "abc", "NaN", "1.2.3", "12,50", "1e3"):
        with pytest.raises(ValueError):
            settlement.read_amount(bad, "CNY")


def test_the_mapping_is_guessed_from_chinese_and_english_headers() -> None:
    assert settlement.guess_mapping(["交易时间", "订单号", "金额", "服务费"]) == {
        "date": 0,
        "order_id": 1,
        "amount": 2,
        "fee": 3,
    }
    assert settlement.guess_mapping(["Order ID", "Amount", "Fee"]) == {"order_id": 0, "amount": 1, "fee": 2}

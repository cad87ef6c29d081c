"""The platforms' own bills (微信支付交易账单, 支付宝业务明细) are recognised from the file and matched
without a column choice; their differences are typed like any settlement's."""

from __future__ import annotations

import io
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from reports.reconciliation import services, settlement
from reports.reconciliation.models import Settlement, SettlementMatch
from reports.reconciliation.services import RunRequest
from saas.extensions import db
from tests.factories import Shop, login
from tests.reports.books import make_january_books

WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
    "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def wechat_row(order: str, status: str, amount: str, fee: str, refund: str = "0.00", state: str = "") -> str:
    cells = [
        "2026-01-20 12:00:00", "wx8888888888888888", "1900000109", "0", "", "4200000001202601200000000001",
        order, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "JSAPI", status, "OTHERS", "CNY",
        amount if status == "SUCCESS" else "0.00", "0.00",
        "50000000012026012000000000001" if status == "REFUND" else "0",
        "RF-1" if status == "REFUND" else "0", refund, "0.00", "ORIGINAL" if status == "REFUND" else "",
        state, "视频月卡", "", fee, "0.60%", amount if status == "SUCCESS" else "0.00",
        refund, "",
    ]  # fmt: skip
    return ",".join("`" + cell for cell in cells)


def wechat_bill() -> bytes:
    lines = [
        WECHAT_HEADER,
        wechat_row("A-1", "SUCCESS", "19.90", "0.80"),  # matched
        wechat_row("B-2", "SUCCESS", "49.70", "1.60"),  # fee mismatch: ours 1.54
        wechat_row("X-9", "SUCCESS", "10.00", "0.06"),  # missing in ours
        wechat_row("D-4", "REFUND", "19.90", "-0.12", "19.90", "SUCCESS"),  # D-4's January refund
        wechat_row("A-1", "REFUND", "19.90", "0.00", "5.00", "PROCESSING"),  # not counted yet
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`5,`79.60,`19.90,`0.00,`2.34,`79.60,`24.90",
    ]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
    "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)


def alipay_row(order: str, kind: str, amount: str, received: str, fee: str, batch: str = "") -> str:
    cells = [
        "2026012022001400000000000001\t", f"{order}\t", kind, "视频月卡", "2026-01-20 11:59:50",
        "2026-01-20 12:00:00", "", "", "", "", "buy***@example.com", amount, received, "0.00", "0.00",
        "0.00", "0.00", "0.00", "", "0.00", "0.00", f"{batch}\t" if batch else "", fee, "0.00", "",
    ]  # fmt: skip
    return ",".join(cells)


def alipay_bill() -> bytes:
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20880000000000000156]",
        "#起始日期：[2026年01月01日 00:00:00]   终止日期：[2026年02月01日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ALIPAY_HEADER,
        alipay_row("A-1", "交易", "19.90", "19.90", "-0.80"),  # matched
        alipay_row("B-2", "交易", "49.00", "49.00", "-1.54"),  # amount mismatch: ours 49.70
        alipay_row("D-4", "退款", "19.90", "-19.90", "0.12", "REFUND-D4"),  # D-4's refund, its own row
        "#-----------------------------------------业务明细列表结束------------------------------------",
        "#交易合计：2笔，商家实收共计：68.90元，商家优惠共计：0.00元",
        "#退款合计：1笔，商家实收退款共计：-19.90元，商家优惠退款共计：0.00元",
        "#导出时间：[2026年02月01日 09:00:00]",
    ]
    return "\r\n".join(lines).encode("gbk")


def upload(client: FlaskClient, shop: Shop, data: bytes, name: str) -> Settlement:
    with shop.bound():
        make_january_books(shop)
        run_id = services.create_run(RunRequest(services.parse_month("2026-01", "Asia/Shanghai"))).id
    login(client, shop.members["finance"])
    response = client.post(
        f"/t/{shop.slug}/reconciliation/runs/{run_id}/settlements",
        data={"file": (io.BytesIO(data), name), "encoding": "", "channel": ""},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="bill-format"' in page
    with shop.bound():
        found = db.session.scalars(select(Settlement).where(Settlement.run_id == run_id)).one()
        db.session.refresh(found)
        return found


def kinds(shop: Shop, settlement_id: int) -> dict[tuple[str, str], str]:
    with shop.bound():
        rows = db.session.scalars(
            select(SettlementMatch).where(SettlementMatch.settlement_id == settlement_id)
        )
        return {(m.external_id, m.record_type): m.kind for m in rows}


def test_a_wechat_pay_trade_bill_is_recognised_and_matched_without_choosing_columns(
    client: FlaskClient, shop: Shop
) -> None:
    matched = upload(client, shop, wechat_bill(), "All2026-01-20.csv")
    assert matched.mapping == {"bill": settlement.WECHAT_BILL} and matched.status == "matched"
    assert matched.rows_read == 5  # the summary block is not a row
    assert matched.counts == {
        "matched": 2,
        "missing_in_settlement": 0,
        "missing_in_ours": 1,
        "amount_mismatch": 0,
        "fee_mismatch": 1,
        "unreadable": 1,
    }
    assert kinds(shop, matched.id) == {
        ("A-1", "order"): "matched",
        ("B-2", "order"): "fee_mismatch",
        ("X-9", "order"): "missing_in_ours",
        ("D-4", "refund"): "matched",
    }
    assert "PROCESSING" in matched.unreadable[0]["problem"]


def test_an_alipay_business_detail_bill_in_gbk_is_recognised_with_refunds_as_rows(
    client: FlaskClient, shop: Shop
) -> None:
    matched = upload(client, shop, alipay_bill(), "20880000000000000156_20260131_业务明细.csv")
    assert matched.mapping == {"bill": settlement.ALIPAY_BILL} and matched.status == "matched"
    assert matched.encoding in ("gbk", "gb18030") and matched.rows_read == 3
    assert kinds(shop, matched.id) == {
        ("A-1", "order"): "matched",
        ("B-2", "order"): "amount_mismatch",
        ("D-4", "refund"): "matched",
    }
    assert matched.counts["unreadable"] == 0


def test_bills_are_told_apart_from_other_files() -> None:
    assert settlement.detect_bill(wechat_bill().decode("utf-8")) == settlement.WECHAT_BILL
    assert settlement.detect_bill(alipay_bill().decode("gbk")) == settlement.ALIPAY_BILL
    assert settlement.detect_bill("商户订单号,结算金额,手续费\nA-1,19.90,0.80\n") is None
    assert settlement.detect_bill("# a comment\norder,amount\n") is None


def test_an_older_wechat_bill_with_a_backticked_header_and_fewer_columns_is_read(tmp_path: Path) -> None:
    header = (
        "`交易时间,`公众账号ID,`商户号,`子商户号,`设备号,`微信订单号,`商户订单号,`用户标识,`交易类型,`交易状态,"
        "`总金额,`退款金额"
    )
    rows = [
        "\ufeff" + header,
        "`2020-01-04 16:45:31,`wx1,`1314217101,`0,`,`4200000475,`111,`od-im5,`JSAPI,`SUCCESS,`0.13,`0.00",
        "`2020-01-04 17:00:00,`wx1,`1314217101,`0,`,`4200000476,`111,`od-im5,`JSAPI,`REFUND,`0.00,`0.05",
        "总交易单数,总交易额,总退款金额,总企业红包退款金额,手续费总金额",
        "`2,`0.13,`0.05,`0.00,`0.00000",
    ]
    path = tmp_path / "bill.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    assert settlement.detect_bill(path.read_text(encoding="utf-8")) == settlement.WECHAT_BILL
    read = [row for _line, row in settlement.bill_rows(path, "utf-8-sig", settlement.WECHAT_BILL)]
    assert read == [
        settlement.BillRow(2, "111", 13, None, "2020-01-04 16:45:31"),
        settlement.BillRow(3, "111", -5, None, "2020-01-04 17:00:00"),
    ]

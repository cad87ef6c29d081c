"""Channel ROI: a shop whose revenue, fees, costs, spend and ROI are known by construction."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient

from reports import datasets
from reports.filters import Filters, Period
from tests.factories import Shop, login
from tests.reports.dashboard_fixtures import (
    at,
    card_key_product,
    code_product,
    connect_channel,
    refresh,
    refund,
    sell,
    spend,
)

FEBRUARY = Period("custom", dt.date(2026, 2, 1), dt.date(2026, 2, 28), "Asia/Shanghai")
MARCH = Period("custom", dt.date(2026, 3, 1), dt.date(2026, 3, 31), "Asia/Shanghai")


@pytest.fixture
def shop_with_channels(shop: Shop) -> None:
    """February: two video orders on Shopify (2.5 % + ¥0.30 fee; keys cost ¥8), ¥10 of ads on it;
    one coupon order on the own shop at 23:30 on 28 February (a code right costing ¥3), no spend.
    One Shopify order is refunded on 5 March; another coupon sells at 00:30 on 1 March.
    """
    with shop.bound():
        shopify = connect_channel("shp_1", "Shopify 旗舰店", fee_percent_bp=250, fee_fixed=30)
        video = card_key_product("视频月卡", price=1990, unit_cost=800)
        coupon = code_product("外卖券", price=990, unit_cost=300)
        first = sell(video, at(2026, 2, 10), channel="shp_1")
        sell(video, at(2026, 2, 10), channel="shp_1")
        sell(coupon, at(2026, 2, 28, 23, 30), channel="shop")
        sell(coupon, at(2026, 3, 1, 0, 30), channel="shop")
        spend(shopify, dt.date(2026, 2, 1), 1000)
        refund(first, at(2026, 3, 5))
        refresh()


def roi_rows(shop: Shop, period: Period) -> dict[str, dict[str, object]]:
    with shop.bound():
        board = datasets.channel_roi(Filters(period), "CNY")
    return {str(row["channel"]): row for row in board.table("per_channel").rows}  # type: ignore[union-attr]


def test_roi_is_profit_after_spend_over_spend_with_fees_and_the_cost_of_the_keys_delivered(
    shop: Shop, shop_with_channels: None
) -> None:
    shopify = roi_rows(shop, FEBRUARY)["Shopify 旗舰店"]
    # fee per order: round(1990 × 2.5 %) + 30 = 50 + 30; cost: two keys at ¥8.
    assert shopify == {
        "channel": "Shopify 旗舰店",
        "orders": 2,
        "revenue": 3980,
        "refunds": 0,
        "fees": 160,
        "cost": 1600,
        "spend": 1000,
        "gross_profit": 2220,
        "margin": "0.5578",
        "profit": 1220,  # 2220 − the ¥10 of ads
        "roi": "1.2200",
    }


def test_a_channel_without_spend_shows_no_roi_rather_than_a_division_error(
    shop: Shop, shop_with_channels: None
) -> None:
    own_shop = roi_rows(shop, FEBRUARY)["shop"]
    assert (own_shop["orders"], own_shop["revenue"], own_shop["cost"]) == (1, 990, 300), (
        "the order at 23:30 on 28 February (Shanghai) is February's; the right's default cost counts"
    )
    assert own_shop["gross_profit"] == 690 and own_shop["margin"] == "0.6970"
    assert own_shop["roi"] is None


def test_roi_edge_cases_are_decided_once() -> None:
    no_spend = datasets.roi_figures(1, 990, 0, 0, 300, 0)
    assert no_spend["roi"] is None and no_spend["profit"] == 690
    spent_and_sold_nothing = datasets.roi_figures(0, 0, 0, 0, 0, 60000)
    assert spent_and_sold_nothing["roi"] == "-1.0000" and spent_and_sold_nothing["margin"] is None
    refunds_beyond_sales = datasets.roi_figures(1, 1000, 3000, 30, 500, 1000)
    assert refunds_beyond_sales["gross_profit"] == -2530
    assert refunds_beyond_sales["roi"] == "-3.5300"  # (−2530 − 1000) ÷ 1000: worse than losing the spend
    nothing = datasets.roi_figures(0, 0, 0, 0, 0, 0)
    assert nothing["roi"] is None and nothing["margin"] is None


def test_a_channel_that_spent_and_sold_nothing_shows_minus_100_percent_beside_its_definition(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        ads = connect_channel("dy_1", "抖音小店", fee_percent_bp=0, fee_fixed=0)
        spend(ads, dt.date(2026, 2, 3), 60000)
        code_product("外卖券", price=990, unit_cost=300)
        refresh()
    assert roi_rows(shop, FEBRUARY)["抖音小店"]["roi"] == "-1.0000"
    login(client, shop.members["analyst"])
    query = "period=custom&start=2026-02-01&end=2026-02-28"
    page = client.get(f"/t/{shop.slug}/reports/channel-roi?{query}&lang=zh_CN").get_data(as_text=True)
    table = page[page.index('data-testid="table-per_channel"') :]
    row = table[table.index(">抖音小店<") :]
    row = row[: row.index("</tr>")]
    assert "-100.0%" in row and "0.0%" not in row.replace("-100.0%", "")
    assert 'data-testid="definition-roi"' in page and "渠道花费" in page
    english = client.get(f"/t/{shop.slug}/reports/channel-roi?{query}&lang=en").get_data(as_text=True)
    assert "ROI = profit after spend ÷ channel spend" in english


def test_a_refund_in_a_later_month_counts_in_that_month(shop: Shop, shop_with_channels: None) -> None:
    march = roi_rows(shop, MARCH)
    assert march["Shopify 旗舰店"]["refunds"] == 1990
    assert march["Shopify 旗舰店"]["revenue"] == 0
    assert march["Shopify 旗舰店"]["gross_profit"] == -1990
    assert march["Shopify 旗舰店"]["margin"] is None
    assert march["shop"]["orders"] == 1, "00:30 on 1 March (Shanghai) is March's, though UTC says February"


def test_trend_per_channel_per_day(shop: Shop, shop_with_channels: None) -> None:
    with shop.bound():
        board = datasets.channel_roi(Filters(FEBRUARY), "CNY")
    trend = {(row["day"], row["channel"]): row for row in board.table("trend").rows}  # type: ignore[union-attr]
    assert trend[("2026-02-10", "Shopify 旗舰店")]["gross_profit"] == 3980 - 160 - 1600
    assert trend[("2026-02-28", "shop")]["revenue"] == 990


def test_the_channel_filter_leaves_one_channel(shop: Shop, shop_with_channels: None) -> None:
    with shop.bound():
        board = datasets.channel_roi(Filters(FEBRUARY, channel="shp_1"), "CNY")
    assert [row["channel"] for row in board.table("per_channel").rows] == ["Shopify 旗舰店"]  # type: ignore[union-attr]

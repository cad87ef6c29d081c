"""Sales and stock: orders and revenue by the tenant's days, stock with days of cover, low stock."""

from __future__ import annotations

import datetime as dt

from flask.testing import FlaskClient

from reports import datasets
from reports.filters import Filters, Period, preset_period
from saas.timeutil import frozen_time
from tests.factories import Shop, login
from tests.orders.factories import add_keys
from tests.reports.dashboard_fixtures import at, card_key_product, refresh, sell


def test_an_order_at_2330_on_the_last_day_of_the_month_in_shanghai_belongs_to_that_month(
    client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        sell(video, at(2026, 1, 31, 23, 30))  # 15:30 UTC on 31 January
        sell(video, at(2026, 2, 1, 0, 10))  # 16:10 UTC on 31 January, but February in Shanghai
        refresh()
    with frozen_time(at(2026, 2, 15)), shop.bound():
        last_month = preset_period("last_month", "Asia/Shanghai")
        assert (last_month.start, last_month.end) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
        january = datasets.sales(Filters(last_month), "CNY").table("over_time")
        this_month = datasets.sales(Filters(preset_period("this_month", "Asia/Shanghai")), "CNY")
    assert january is not None
    assert [(r["day"], r["orders"], r["revenue"]) for r in january.rows if r["orders"]] == [
        ("2026-01-31", 1, 1990)
    ]
    february = this_month.table("over_time")
    assert february is not None
    assert [(r["day"], r["orders"]) for r in february.rows if r["orders"]] == [("2026-02-01", 1)]
    with frozen_time(at(2026, 2, 15)):
        login(client, shop.members["analyst"])
        page = client.get(f"/t/{shop.slug}/reports/sales?period=last_month").get_data(as_text=True)
    assert "2026-01-01 to 2026-01-31, Asia/Shanghai time" in page and "¥19.90" in page


def test_changing_the_dates_of_a_preset_makes_the_period_custom(shop: Shop) -> None:
    from reports.filters import parse_period

    with frozen_time(at(2026, 4, 10)):
        moved = parse_period(
            {"period": "last_30_days", "start": "2026-03-01", "end": "2026-03-31"}, "Asia/Shanghai"
        )
        kept = parse_period(
            {"period": "last_7_days", "start": "2026-04-04", "end": "2026-04-10"}, "Asia/Shanghai"
        )
    assert (moved.preset, moved.start, moved.end) == ("custom", dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert (kept.preset, kept.start) == ("last_7_days", dt.date(2026, 4, 4))


def test_sales_by_bundle_and_the_bundle_filter(shop: Shop) -> None:
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        music = card_key_product("音乐月卡", price=990)
        sell(video, at(2026, 3, 2), quantity=2)
        sell(music, at(2026, 3, 3))
        refresh()
        march = Period("custom", dt.date(2026, 3, 1), dt.date(2026, 3, 31), "Asia/Shanghai")
        everything = datasets.sales(Filters(march), "CNY")
        music_only = datasets.sales(Filters(march, bundle_id=music.bundle.id), "CNY")
        by_right = datasets.sales(Filters(march, right_id=video.right.id), "CNY")
    assert everything.table("by_bundle").rows == [  # type: ignore[union-attr]
        {"bundle": "视频月卡", "orders": 1, "units": 2, "revenue": 3980},
        {"bundle": "音乐月卡", "orders": 1, "units": 1, "revenue": 990},
    ]
    assert sum(r["revenue"] for r in music_only.table("over_time").rows) == 990  # type: ignore[union-attr]
    assert [r["bundle"] for r in by_right.table("by_bundle").rows] == ["视频月卡"]  # type: ignore[union-attr]


def test_stock_shows_days_of_cover_and_flags_the_rights_running_low(shop: Shop) -> None:
    with shop.bound():
        busy = card_key_product("视频月卡", price=1990, keys=40)  # 30 sold in 30 days: 10 left, 10 days
        busy.right.low_stock_threshold = 15
        quiet = card_key_product("音乐月卡", price=990, keys=100)  # 3 sold: 97 left, 970 days
        for day in range(30):
            sell(busy, at(2026, 3, 1) + dt.timedelta(days=day))
        for _ in range(3):
            sell(quiet, at(2026, 3, 10))
        refresh()
        with frozen_time(at(2026, 3, 30, 18)):
            board = datasets.sales(Filters(preset_period("last_30_days", "Asia/Shanghai")), "CNY")
    stock = {row["right"]: row for row in board.table("stock").rows}  # type: ignore[union-attr]
    assert stock["视频月卡"] == {
        "right": "视频月卡",
        "available": 10,
        "delivered_30d": 30,
        "days_of_cover": "10.0",
        "threshold": 15,
    }
    assert stock["音乐月卡"]["days_of_cover"] == ">365"  # 970 days: "more than a year"
    assert [row["right"] for row in board.table("low_stock").rows] == ["视频月卡"]  # type: ignore[union-attr]


def test_a_barely_selling_right_says_more_than_a_year(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        slow = card_key_product("冷门月卡", price=990, keys=300)
        sell(slow, at(2026, 3, 10))  # one in 30 days: 299 left would be 8970.0 days
        refresh()
    with frozen_time(at(2026, 3, 30, 18)):
        login(client, shop.members["analyst"])
        page = client.get(f"/t/{shop.slug}/reports/sales?lang=zh_CN").get_data(as_text=True)
        english = client.get(f"/t/{shop.slug}/reports/sales?lang=en").get_data(as_text=True)
    assert "超过一年" in page and "8970" not in page
    assert "more than a year" in english


def test_a_right_never_sold_has_no_days_of_cover_rather_than_infinity(shop: Shop) -> None:
    with shop.bound():
        card_key_product("读书月卡", price=990, keys=5)
        refresh()
        board = datasets.sales(Filters(preset_period("last_7_days", "Asia/Shanghai")), "CNY")
    stock = board.table("stock")
    assert stock is not None and stock.rows[0]["days_of_cover"] is None


def test_more_keys_arriving_show_up_in_stock_at_once(shop: Shop) -> None:
    with shop.bound():
        video = card_key_product("视频月卡", price=1990, keys=2)
        add_keys(video.right, 3, prefix="MORE", unit_cost=900)
        board = datasets.sales(Filters(preset_period("last_7_days", "Asia/Shanghai")), "CNY")
    assert board.table("stock").rows[0]["available"] == 5  # type: ignore[union-attr]

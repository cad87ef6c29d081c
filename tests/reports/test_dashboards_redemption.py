"""Redemption dashboard: a small shop whose redemption figures are known by construction."""

from __future__ import annotations

import datetime as dt

import pytest

from reports import datasets
from reports.filters import Filters, Period
from tests.factories import Shop
from tests.reports.dashboard_fixtures import (
    at,
    card_key_product,
    code_product,
    first_grant,
    redeem,
    refresh,
    sell,
)

MARCH = Period("custom", dt.date(2026, 3, 1), dt.date(2026, 3, 31), "Asia/Shanghai")


def rows_by(table: datasets.Table, key: str) -> dict[str, dict[str, object]]:
    return {str(row[key]): row for row in table.rows}


@pytest.fixture
def march(shop: Shop) -> dict[str, int]:
    """Ten grants delivered in March, four redeemed after 30 min, 2 h, 5 h and 2 days.

    Video pack (card keys) on the own shop: 4 sold on Monday 2 March (3 redeemed), 4 on 10 March (1 redeemed).
    Coupon pack (codes) on taobao: 2 sold on 2 March, none redeemed.
    """
    with shop.bound():
        video = card_key_product("视频月卡", price=1990)
        coupon = code_product("外卖券", price=990, unit_cost=300)
        early = [sell(video, at(2026, 3, 2, 10)) for _ in range(4)]
        late = [sell(video, at(2026, 3, 10, 10)) for _ in range(4)]
        for _ in range(2):
            sell(coupon, at(2026, 3, 2, 11), channel="taobao")
        redeem(first_grant(early[0]), at(2026, 3, 2, 10, 30))
        redeem(first_grant(early[1]), at(2026, 3, 2, 12))
        redeem(first_grant(early[2]), at(2026, 3, 4, 10))
        redeem(first_grant(late[0]), at(2026, 3, 10, 15))
        refresh()
        return {"video": video.bundle.id, "coupon": coupon.bundle.id, "video_right": video.right.id}


def test_redemption_rate_is_redeemed_over_delivered_by_bundle_right_and_channel(
    shop: Shop, march: dict[str, int]
) -> None:
    with shop.bound():
        board = datasets.redemption(Filters(MARCH), "CNY")
    by_bundle = rows_by(board.table("by_bundle"), "bundle")  # type: ignore[arg-type]
    assert by_bundle["视频月卡"]["delivered"] == 8 and by_bundle["视频月卡"]["redeemed"] == 4
    assert by_bundle["视频月卡"]["rate"] == "0.5000"
    assert by_bundle["外卖券"]["rate"] == "0.0000"
    by_channel = rows_by(board.table("by_channel"), "channel")  # type: ignore[arg-type]
    assert (by_channel["shop"]["delivered"], by_channel["shop"]["redeemed"]) == (8, 4)
    assert (by_channel["taobao"]["delivered"], by_channel["taobao"]["redeemed"]) == (2, 0)
    by_right = rows_by(board.table("by_right"), "right")  # type: ignore[arg-type]
    assert by_right["视频月卡"]["rate"] == "0.5000"


def test_rate_over_time_and_by_weekly_delivery_cohort(shop: Shop, march: dict[str, int]) -> None:
    with shop.bound():
        board = datasets.redemption(Filters(MARCH), "CNY")
    over_time = rows_by(board.table("over_time"), "day")  # type: ignore[arg-type]
    assert len(over_time) == 31, "every day of the period has a row"
    assert over_time["2026-03-02"]["delivered"] == 6 and over_time["2026-03-02"]["redeemed"] == 3
    assert over_time["2026-03-05"]["rate"] is None, "no deliveries: no rate, not a division error"
    cohorts = rows_by(board.table("cohorts"), "week")  # type: ignore[arg-type]
    assert cohorts["2026-03-02"]["rate"] == "0.5000"
    assert cohorts["2026-03-09"]["rate"] == "0.2500"


def test_time_to_redeem_distribution_median_and_p90(shop: Shop, march: dict[str, int]) -> None:
    with shop.bound():
        board = datasets.redemption(Filters(MARCH), "CNY")
    histogram = {row["bucket"]: row["grants"] for row in board.table("time_to_redeem").rows}  # type: ignore[union-attr]
    assert histogram == {
        "under 1 hour": 1,
        "1–6 hours": 2,
        "6–24 hours": 0,
        "1–3 days": 1,
        "3–7 days": 0,
        "7–14 days": 0,
        "14–30 days": 0,
        "30 days or more": 0,
    }
    # 1800, 7200, 18000 and 172800 seconds: median (7200 + 18000) / 2 = 3.5 h; p90 = 18000 + 0.7 × 154800 s.
    summary = board.table("time_to_redeem_summary").rows[0]  # type: ignore[union-attr]
    assert summary == {"redeemed": 4, "median_hours": "3.5", "p90_hours": "35.1"}


def test_filters_narrow_every_breakdown(shop: Shop, march: dict[str, int]) -> None:
    with shop.bound():
        only_taobao = datasets.redemption(Filters(MARCH, channel="taobao"), "CNY")
        only_video = datasets.redemption(Filters(MARCH, bundle_id=march["video"]), "CNY")
        only_right = datasets.redemption(Filters(MARCH, right_id=march["video_right"]), "CNY")
    assert [r["bundle"] for r in only_taobao.table("by_bundle").rows] == ["外卖券"]  # type: ignore[union-attr]
    assert only_taobao.table("time_to_redeem_summary").is_empty  # type: ignore[union-attr]
    assert [r["bundle"] for r in only_video.table("by_bundle").rows] == ["视频月卡"]  # type: ignore[union-attr]
    assert only_video.table("time_to_redeem_summary").rows[0]["redeemed"] == 4  # type: ignore[union-attr]
    assert [r["right"] for r in only_right.table("by_right").rows] == ["视频月卡"]  # type: ignore[union-attr]
    summary = only_right.table("time_to_redeem_summary").rows[0]  # type: ignore[union-attr]
    assert summary == {"redeemed": 4, "median_hours": "3.5", "p90_hours": "35.1"}


def test_sold_well_redeemed_poorly_lists_the_big_sellers_nobody_uses(shop: Shop) -> None:
    with shop.bound():
        ignored = card_key_product("音乐年卡", price=990)
        loved = card_key_product("视频季卡", price=990)
        niche = card_key_product("读书月卡", price=990)
        ignored_orders = [sell(ignored, at(2026, 3, 3)) for _ in range(12)]
        loved_orders = [sell(loved, at(2026, 3, 3)) for _ in range(12)]
        for _ in range(2):
            sell(niche, at(2026, 3, 3))
        redeem(first_grant(ignored_orders[0]), at(2026, 3, 4))
        for order in loved_orders[:10]:
            redeem(first_grant(order), at(2026, 3, 4))
        refresh()
        board = datasets.redemption(Filters(MARCH), "CNY")
    poor = board.table("sold_well_redeemed_poorly")
    assert poor is not None
    assert [row["right"] for row in poor.rows] == ["音乐年卡"], "12 sold, 1 redeemed; 读书 sold too few"

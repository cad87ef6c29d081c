"""A reconciliation run adds up to books known by construction, with periods cut in the tenant's zone."""

from __future__ import annotations

import datetime as dt

import pytest

from reports.reconciliation import services
from reports.reconciliation.models import ReconciliationRun
from reports.reconciliation.services import ReconciliationError, RunRequest
from tests.factories import Shop
from tests.reports.books import FEBRUARY, JANUARY, SHANGHAI, make_january_books

TOTALS = tuple(JANUARY)


def totals_of(run: ReconciliationRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in TOTALS}


def run_month(month: str, channel: str | None = None) -> ReconciliationRun:
    period = services.parse_month(month, "Asia/Shanghai")
    return services.create_run(RunRequest(period, channel))


def test_a_month_is_the_tenants_month_from_local_midnight_to_local_midnight() -> None:
    january = services.parse_month("2026-01", "Asia/Shanghai")
    assert january.start == dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC)
    assert january.end == dt.datetime(2026, 1, 31, 16, 0, tzinfo=dt.UTC)
    assert (january.starts_on, january.ends_on) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    new_york = services.parse_month("2026-03", "America/New_York")  # DST starts on 8 March
    assert new_york.start == dt.datetime(2026, 3, 1, 5, 0, tzinfo=dt.UTC)
    assert new_york.end == dt.datetime(2026, 4, 1, 4, 0, tzinfo=dt.UTC)
    with pytest.raises(ReconciliationError):
        services.parse_month("2026-13", "Asia/Shanghai")
    with pytest.raises(ReconciliationError):
        services.range_period(dt.date(2026, 2, 1), dt.date(2026, 1, 1), "Asia/Shanghai")


def test_a_january_run_adds_up_to_the_books_built_by_hand(shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        run = run_month("2026-01")
        assert run.status == "succeeded", run.error
        assert totals_of(run) == JANUARY
        assert run.currency == "CNY" and run.time_zone == "Asia/Shanghai"
        batches = {b["right_name"]: (b["keys"], b["cost"], b["supplier"]) for b in run.keys_by_batch}
        assert batches == {"视频月卡": (3, 2400, "test supplier"), "音乐月卡": (1, 500, "test supplier")}


def test_an_order_at_2330_on_the_last_day_in_shanghai_belongs_to_that_month(shop: Shop) -> None:
    with shop.bound():
        books = make_january_books(shop)
        run = run_month("2026-01")
        lines = list(services.stream_detail(run))
        sold = {(line.external_id, line.kind) for line in lines}
        assert ("B-2", "sale") in sold  # paid 2026-01-31 23:30 in Shanghai = 15:30 UTC
        assert ("C-3", "sale") not in sold  # paid 2026-02-01 00:10 in Shanghai = 16:10 UTC on 31 January
        b2 = [line for line in lines if line.external_id == "B-2"]
        assert b2[0].at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") == "2026-01-31 23:30"
        assert books.orders["B-2"] == b2[0].order_id


def test_a_refund_in_a_later_month_is_in_that_months_run_not_the_sales(shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        january, february = run_month("2026-01"), run_month("2026-02")
        january_refunds = [
            line.external_id for line in services.stream_detail(january) if line.kind == "refund"
        ]
        february_refunds = [
            line.external_id for line in services.stream_detail(february) if line.kind == "refund"
        ]
        assert january_refunds == ["D-4"]  # paid in December, refunded in January
        assert february_refunds == ["A-1"]  # paid in January, refunded in February
        assert totals_of(february) == FEBRUARY


def test_an_orders_fee_is_percent_of_gross_plus_fixed_spread_over_its_lines(shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        run = run_month("2026-01")
        lines = [line for line in services.stream_detail(run) if line.kind == "sale"]
        fees = {(line.external_id, line.line_no): line.fee for line in lines}
        # 2.5 % of 19.90 = 0.4975 → 0.50, + 0.30. B-2: 2.5 % of 49.70 = 1.2425 → 1.24, + 0.30 = 1.54,
        # spread 39.80 : 9.90 over its lines → 1.23 and 0.31.
        assert fees == {("A-1", 1): 80, ("B-2", 1): 123, ("B-2", 2): 31}
        for line in lines:
            assert line.net == line.gross - line.fee and line.profit == line.net - line.cost


def test_a_run_for_one_channel_leaves_the_others_out(shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        tmall = run_month("2026-01", channel="tmall")
        assert totals_of(tmall) == JANUARY  # every January order and refund is tmall's
        shop_february = run_month("2026-02", channel="shop")
        assert (shop_february.order_count, shop_february.gross, shop_february.refunds) == (1, 1990, 0)
        nothing = run_month("2026-01", channel="shop")
        assert nothing.status == "succeeded" and nothing.line_count == 0 and nothing.gross == 0


def test_a_custom_range_takes_whole_local_days_both_ends_included(shop: Shop) -> None:
    with shop.bound():
        make_january_books(shop)
        period = services.range_period(dt.date(2026, 1, 31), dt.date(2026, 2, 1), "Asia/Shanghai")
        run = services.create_run(RunRequest(period))
        sales = sorted({line.external_id for line in services.stream_detail(run) if line.kind == "sale"})
        assert sales == ["B-2", "C-3"]
        assert run.period_label == "2026-01-31 – 2026-02-01"

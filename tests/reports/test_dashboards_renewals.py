"""Renewal timing: subscriptions whose renewals, timing and cancellations are known by construction."""

from __future__ import annotations

import datetime as dt

import pytest

from orders.subscriptions import cancellation
from reports import datasets
from reports.filters import Filters, Period
from saas.timeutil import frozen_time
from tests.factories import Shop
from tests.orders.subscriptions.factories import renew, renewable_plan, subscribe
from tests.reports.dashboard_fixtures import at

WINTER = Period("custom", dt.date(2026, 1, 1), dt.date(2026, 2, 28), "Asia/Shanghai")


@pytest.fixture
def renewals(shop: Shop) -> dict[str, int]:
    """Three monthly subscriptions started in January 2026:

    - started 5 January, renewed on 3 February: 2 days before its period end (5 February);
    - started 10 January, renewed on 12 February: 2 days after its period end (10 February);
    - started 20 January, never renewed; its owner cancels on 1 February, "too expensive".
    """
    with shop.bound():
        plan = renewable_plan(price=3990, name="影音月卡")
        early = subscribe(plan, at=at(2026, 1, 5), email="a@example.com")
        late = subscribe(plan, at=at(2026, 1, 10), email="b@example.com")
        never = subscribe(plan, at=at(2026, 1, 20), email="c@example.com")
        renew(early.id, at(2026, 2, 3))
        renew(late.id, at(2026, 2, 12))
        with frozen_time(at(2026, 2, 1)):
            cancellation.cancel_at_period_end(
                never.id, source="support", reason_code="too_expensive", notify=False
            )
        return {"plan": plan.id, "bundle": plan.bundle_id}


def board(shop: Shop, filters: Filters) -> datasets.Dashboard:
    with shop.bound(), frozen_time(at(2026, 2, 15)):
        return datasets.renewals(filters, "CNY")


def test_renewal_rate_per_plan_and_start_month(shop: Shop, renewals: dict[str, int]) -> None:
    rates = board(shop, Filters(WINTER)).table("renewal_rates").rows  # type: ignore[union-attr]
    assert rates == [{"plan": "影音月卡", "cohort": "2026-01", "started": 3, "renewed": 2, "rate": "0.6667"}]


def test_histogram_of_days_from_the_period_end_and_the_day_of_month(
    shop: Shop, renewals: dict[str, int]
) -> None:
    dashboard = board(shop, Filters(WINTER))
    assert dashboard.table("timing").rows == [  # type: ignore[union-attr]
        {"days": -2, "renewals": 1},
        {"days": 2, "renewals": 1},
    ]
    by_day = {r["day_of_month"]: r["renewals"] for r in dashboard.table("day_of_month").rows}  # type: ignore[union-attr]
    assert by_day[3] == 1 and by_day[12] == 1 and sum(by_day.values()) == 2 and len(by_day) == 31


def test_upcoming_expiries_show_their_auto_renew_state(shop: Shop, renewals: dict[str, int]) -> None:
    upcoming = board(shop, Filters(WINTER)).table("upcoming").rows  # type: ignore[union-attr]
    assert [(r["period_end"], r["auto_renew"]) for r in upcoming] == [
        ("2026-02-20", "Off"),
        ("2026-03-05", "On"),
        ("2026-03-10", "On"),
    ]


def test_cancellation_reasons(shop: Shop, renewals: dict[str, int]) -> None:
    reasons = board(shop, Filters(WINTER)).table("cancellation_reasons").rows  # type: ignore[union-attr]
    assert reasons == [{"reason": "Too expensive", "cancellations": 1}]


def test_channel_and_bundle_filters_apply_to_renewals(shop: Shop, renewals: dict[str, int]) -> None:
    other_channel = board(shop, Filters(WINTER, channel="taobao"))
    assert other_channel.table("timing").is_empty  # type: ignore[union-attr]
    same_bundle = board(shop, Filters(WINTER, bundle_id=renewals["bundle"]))
    assert len(same_bundle.table("timing").rows) == 2  # type: ignore[union-attr]

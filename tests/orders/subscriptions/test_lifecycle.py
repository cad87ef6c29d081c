"""The life of a renewable order: it starts a subscription, renewals extend it, an unrenewed one expires."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from orders.models import Order
from orders.subscriptions import services
from orders.subscriptions.models import SubscriptionPeriod, SubscriptionRenewal
from orders.subscriptions.services import AlreadyRenewed, SubscriptionError
from saas.extensions import db
from saas.timeutil import frozen_time
from tenants.models import AuditEvent
from tests.factories import Shop
from tests.orders.factories import grants_of
from tests.orders.subscriptions.factories import (
    buy,
    fresh,
    local,
    renew,
    renewable_plan,
    set_zone,
    subscribe,
)


def shanghai(moment: dt.datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


def test_buying_a_renewable_plan_starts_a_subscription_with_its_first_period(shop: Shop) -> None:
    with shop.bound():
        plan = renewable_plan("month", price=3990)
        sub = subscribe(plan, at=local(2026, 1, 31, 9, 30))
        assert (sub.status, sub.auto_renew, sub.channel, sub.price, sub.currency) == (
            "active",
            True,
            "shop",
            3990,
            "CNY",
        )
        assert shanghai(sub.current_period_start) == "2026-01-31 09:30"
        assert shanghai(sub.current_period_end) == "2026-02-28 09:30"
        periods = services.periods_of(sub.id)
        assert [(p.number, p.kind, p.order_id) for p in periods] == [(1, "initial", sub.order_id)]
        assert {g.right_name for g in services.period_grants(periods[0])} == {"喜马拉雅会员兑换页"}
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "subscription.started")
            )
            == 1
        )


def test_starting_is_idempotent_and_a_plan_that_does_not_renew_starts_nothing(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan())
        again = services.start_subscription_for_order(sub.order_id)
        assert [s.id for s in again] == [sub.id]
        one_off = buy(renewable_plan(renewable=False))
        assert services.start_subscription_for_order(one_off.id) == []


def test_an_unpaid_order_starts_nothing(shop: Shop) -> None:
    from orders import services as order_services

    with shop.bound():
        plan = renewable_plan()
        order = order_services.create_order(
            order_services.OrderRequest(
                channel="shop",
                external_id="UNPAID-1",
                source="api",
                customer=order_services.CustomerInfo(email="x@example.com"),
                lines=[order_services.LineRequest(plan.id)],
            )
        ).order
        assert services.start_subscription_for_order(order.id) == []


def test_a_renewal_paid_early_extends_from_the_period_end_not_from_today(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        outcome = renew(sub.id, local(2026, 2, 25, 18, 0), "in_early")
        renewal = outcome.renewal
        assert outcome.created
        assert (renewal.period_number, renewal.days_from_due, renewal.timing, renewal.channel) == (
            2,
            -3,
            "early",
            "stripe",
        )
        assert renewal.plan_id == sub.plan_id
        sub = fresh(sub.id)
        assert shanghai(sub.current_period_start) == "2026-02-28 09:30"
        assert shanghai(sub.current_period_end) == "2026-03-31 09:30"  # back to the 31st, from the anchor
        third = renew(sub.id, local(2026, 3, 30, 8, 0)).renewal
        assert shanghai(third.period_end) == "2026-04-30 09:30"


def test_a_renewal_delivers_the_bundles_rights_for_the_new_period_through_a_paid_order(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 10))
        renewal = renew(sub.id, local(2026, 2, 9), "in_rights").renewal
        order = db.session.get(Order, (shop.tenant.id, renewal.order_id))
        assert order is not None and order.status == "fulfilled" and order.total == 3990
        assert order.channel == "stripe"
        assert [g.status for g in grants_of(order.id)] == ["delivered"]
        period = services.periods_of(sub.id)[1]
        assert period.order_id == order.id and period.kind == "renewal"
        assert services.start_subscription_for_order(order.id) == []  # a renewal order starts nothing


def test_the_same_payment_twice_renews_once(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan(), at=local(2026, 1, 10))
        first = renew(sub.id, local(2026, 2, 8), "in_same")
        again = renew(sub.id, local(2026, 2, 8), "in_same")
        assert first.created and not again.created
        assert again.renewal.id == first.renewal.id
        assert fresh(sub.id).current_period_number == 2
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2


def test_a_second_payment_for_a_period_already_paid_is_refused(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan(), at=local(2026, 1, 10))
        renew(sub.id, local(2026, 2, 5), "in_one")
        with pytest.raises(AlreadyRenewed):
            renew(sub.id, local(2026, 2, 6), "in_two")
        assert db.session.scalar(select(func.count()).select_from(SubscriptionRenewal)) == 1


def test_the_period_number_is_unique_in_the_database(shop: Shop) -> None:
    from sqlalchemy.exc import IntegrityError

    with shop.bound():
        sub = subscribe(renewable_plan(), at=local(2026, 1, 10))
        db.session.add(
            SubscriptionPeriod(
                subscription_id=sub.id,
                number=1,
                kind="renewal",
                starts_at=sub.current_period_start,
                ends_at=sub.current_period_end,
                amount=1,
                currency="CNY",
            )
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_an_unrenewed_subscription_is_past_due_in_its_grace_days_then_expires(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", card_keys=2), at=local(2026, 3, 1, 10))
        grants = {g.kind: g for g in grants_of(sub.order_id)}
        assert grants["card_key"].status == "delivered" and grants["link"].valid_until is not None
        key_valid_until = grants["card_key"].valid_until
        with frozen_time(local(2026, 4, 1, 11)):
            assert services.advance_lifecycles() == {"past_due": 1}
        assert fresh(sub.id).status == "past_due"
        with frozen_time(local(2026, 4, 4, 9)):  # grace ends 3 days after the period end, at 10:00
            assert services.advance_lifecycles() == {}
        with frozen_time(local(2026, 4, 4, 10, 1)):
            assert services.advance_lifecycles() == {"expired": 1}
            assert services.advance_lifecycles() == {}  # a second run changes nothing
        sub = fresh(sub.id)
        assert sub.status == "expired" and shanghai(sub.ended_at) == "2026-04-04 10:00"  # type: ignore[arg-type]
        grants = {g.kind: g for g in grants_of(sub.order_id)}
        assert shanghai(grants["link"].valid_until) == "2026-04-04 10:00"  # type: ignore[arg-type]
        assert grants["card_key"].status == "delivered"  # delivered card keys stay delivered
        assert grants["card_key"].valid_until == key_valid_until


def test_a_renewal_late_within_grace_extends_from_the_old_period_end(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 3, 1, 10))
        with frozen_time(local(2026, 4, 2, 12)):
            services.advance_lifecycles()
        renewal = renew(sub.id, local(2026, 4, 2, 12)).renewal
        assert (renewal.timing, renewal.days_from_due, renewal.status_before, renewal.reactivated) == (
            "late",
            1,
            "past_due",
            False,
        )
        sub = fresh(sub.id)
        assert sub.status == "active" and sub.past_due_since is None
        assert shanghai(sub.current_period_start) == "2026-04-01 10:00"
        assert shanghai(sub.current_period_end) == "2026-05-01 10:00"


def test_a_renewal_after_expiry_reactivates_the_subscription_from_the_payment(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 10))
        with frozen_time(local(2026, 3, 10)):
            services.advance_lifecycles()
        assert fresh(sub.id).status == "expired"
        renewal = renew(sub.id, local(2026, 3, 15, 16, 0)).renewal
        assert (renewal.timing, renewal.reactivated, renewal.period_number) == ("after_expiry", True, 2)
        assert renewal.days_from_due == 15  # due 28 Feb, paid 15 Mar
        sub = fresh(sub.id)
        assert sub.status == "active" and sub.ended_at is None
        assert shanghai(sub.current_period_start) == "2026-03-15 16:00"
        assert shanghai(sub.current_period_end) == "2026-04-15 16:00"
        assert [p.kind for p in services.periods_of(sub.id)] == ["initial", "reactivation"]
        nxt = renew(sub.id, local(2026, 4, 14)).renewal  # later periods count from the new anchor
        assert shanghai(nxt.period_end) == "2026-05-15 16:00"


def test_periods_follow_a_tenant_outside_shanghai(shop: Shop) -> None:
    la = ZoneInfo("America/Los_Angeles")
    with shop.bound():
        set_zone(shop.tenant, "America/Los_Angeles")
        sub = subscribe(renewable_plan("month"), at=local(2027, 1, 31, 20, 0, zone=la))
        assert sub.time_zone == "America/Los_Angeles"
        end = sub.current_period_end.astimezone(la)
        assert end.strftime("%Y-%m-%d %H:%M") == "2027-02-28 20:00"  # UTC would have said 1 March
        renewal = renew(sub.id, dt.datetime(2027, 2, 28, 18, 0, tzinfo=la)).renewal
        assert renewal.days_from_due == 0 and renewal.timing == "on_time"  # same day in LA, not in UTC
        assert renewal.period_end.astimezone(la).strftime("%Y-%m-%d %H:%M") == "2027-03-31 20:00"


def test_a_leap_year_february_gets_its_29th(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2028, 1, 31, 12))
        assert shanghai(sub.current_period_end) == "2028-02-29 12:00"
        yearly = subscribe(renewable_plan("year"), at=local(2028, 2, 29, 12), email="han@example.com")
        assert shanghai(yearly.current_period_end) == "2029-02-28 12:00"


def test_a_days_plan_renews_by_its_number_of_days(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("days", period_days=10), at=local(2026, 2, 25, 12))
        assert shanghai(sub.current_period_end) == "2026-03-07 12:00"
        assert shanghai(renew(sub.id, local(2026, 3, 6)).renewal.period_end) == "2026-03-17 12:00"


def test_renewals_in_another_currency_or_without_a_key_are_refused(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan(), at=local(2026, 1, 10))
        with pytest.raises(SubscriptionError):
            services.renew(
                sub.id,
                paid_at=local(2026, 2, 9),
                amount=500,
                currency="USD",
                channel="stripe",
                idempotency_key="k1",
            )
        with pytest.raises(SubscriptionError):
            services.renew(
                sub.id,
                paid_at=local(2026, 2, 9),
                amount=500,
                currency="CNY",
                channel="stripe",
                idempotency_key=" ",
            )


def test_a_channel_finds_its_subscription_by_its_own_id(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan(), channel="stripe")
        services.set_external_id(sub.id, "stripe", "sub_1PQR")
        found = services.find_by_external_id("stripe", "sub_1PQR")
        assert found is not None and found.id == sub.id
        assert services.find_by_external_id("shopify", "sub_1PQR") is None


def test_the_payment_starts_the_subscription(shop: Shop) -> None:
    with shop.bound():
        order_id = buy(renewable_plan("month"), at=local(2026, 5, 1, 10)).id
        [sub] = services.subscriptions_of_order(order_id)
        assert sub.status == "active"


def test_the_lifecycle_job_starts_a_subscription_the_payment_path_missed(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orders.subscriptions.tasks import expire_subscriptions_everywhere
    from saas import jobs

    real_enqueue = jobs.enqueue

    def lose_the_start_job(func_path: str, *args: object, **kwargs: object) -> None:
        if func_path != "orders.subscriptions.tasks.start_subscriptions":  # as if Redis dropped it
            real_enqueue(func_path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "enqueue", lose_the_start_job)
    with shop.bound():
        order = buy(renewable_plan("month"), at=local(2026, 5, 1, 10))
        order_id = order.id
        assert services.subscriptions_of_order(order_id) == []
    monkeypatch.setattr(jobs, "enqueue", real_enqueue)
    with frozen_time(local(2026, 5, 1, 10, 15)):
        totals = expire_subscriptions_everywhere()
        assert totals["started"] == 1
        assert expire_subscriptions_everywhere()["started"] == 0
    with shop.bound():
        [sub] = services.subscriptions_of_order(order_id)
        assert shanghai(sub.current_period_start) == "2026-05-01 10:00"  # from the payment, not the sweep


def test_refunding_the_order_of_the_current_period_ends_the_subscription(shop: Shop) -> None:
    from orders import refunds
    from orders.subscriptions.tasks import expire_subscriptions_everywhere

    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 5, 1, 10))
        with frozen_time(local(2026, 5, 2)):
            refunds.refund(refunds.RefundRequest(order_id=sub.order_id, reason="客户误购"))
        sub_id = sub.id
    with frozen_time(local(2026, 5, 2, 0, 15)):
        assert expire_subscriptions_everywhere()["ended_by_refund"] == 1
    with shop.bound():
        sub = fresh(sub_id)
        assert sub.status == "canceled" and not sub.auto_renew
        from orders.subscriptions.cancellation import cancellations_of

        [receipt] = cancellations_of(sub_id)
        assert (receipt.source, receipt.refundable_amount) == ("system", 0)

"""Cancelling: at the period end (undoable until then) or now (with the plan's refund policy); receipts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from orders.subscriptions import cancellation, policy, services
from orders.subscriptions.cancellation import prorated_amount
from orders.subscriptions.services import SubscriptionError
from saas.extensions import db
from saas.timeutil import frozen_time
from tenants.models import AuditEvent
from tests.factories import Outbox, Shop
from tests.orders.factories import grants_of
from tests.orders.subscriptions.factories import fresh, local, renew, renewable_plan, subscribe

EMAIL = "li.lei@example.com"


def prorated_plan(period_unit: str = "month", price: int = 3100):  # type: ignore[no-untyped-def]
    plan = renewable_plan(period_unit, price=price)
    policy.save_policy(plan, grace_days=3, reminder_offsets=[3], cancel_now_refund="prorated", actor="test")
    return plan


def test_cancel_at_period_end_keeps_the_rights_until_then_and_can_be_undone(
    shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 10)):
            receipt = cancellation.cancel_at_period_end(
                sub.id, source="customer", reason_code="too_expensive", reason_text="太贵了"
            )
        ticket = receipt.ticket_number
        assert receipt.kind == "at_period_end" and ticket.startswith("QX260210-")
        assert receipt.effective_at == sub.current_period_end and receipt.refundable_amount == 0
        sub = fresh(sub.id)
        assert sub.status == "active" and not sub.auto_renew and sub.set_to_cancel
        with frozen_time(local(2026, 2, 20)):
            cancellation.undo_cancel(sub.id, source="customer")
        sub = fresh(sub.id)
        assert sub.auto_renew and not sub.set_to_cancel
        assert cancellation.cancellations_of(sub.id)[0].undone_at is not None
        with frozen_time(local(2026, 3, 1)):  # the undone cancellation never takes effect
            assert services.advance_lifecycles() == {"past_due": 1}
    subjects = [str(m["Subject"]) for m in outbox.to(EMAIL)]
    assert any(ticket in s for s in subjects)
    assert any("renews again" in s for s in subjects)


def test_at_the_period_end_a_cancellation_takes_effect_and_cannot_be_undone_any_more(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 10)):
            cancellation.cancel_at_period_end(sub.id, source="customer")
        with frozen_time(local(2026, 2, 28, 9, 31)):
            assert services.advance_lifecycles() == {"canceled": 1}
            with pytest.raises(SubscriptionError):
                cancellation.undo_cancel(sub.id, source="customer")
        sub = fresh(sub.id)
        assert sub.status == "canceled" and sub.ended_at == sub.current_period_end


def test_cancelling_twice_at_the_period_end_is_refused(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 10)):
            cancellation.cancel_at_period_end(sub.id, source="customer")
            with pytest.raises(SubscriptionError):
                cancellation.cancel_at_period_end(sub.id, source="customer")


@pytest.mark.parametrize(
    ("cancel_at", "unused", "refund"),
    [
        (local(2026, 3, 1, 12), 30, 3000),  # day 1 of 31: today counts as used
        (local(2026, 3, 16, 23, 59), 15, 1500),  # mid-period
        (local(2026, 3, 31, 8), 0, 0),  # the last day
        (local(2026, 4, 1, 8), 0, 0),  # the morning the period ends
    ],
    ids=["day-1", "mid-period", "last-day", "end-morning"],
)
def test_cancel_now_refunds_the_unused_whole_days_under_a_prorated_policy(
    shop: Shop, cancel_at: dt.datetime, unused: int, refund: int
) -> None:
    with shop.bound():
        sub = subscribe(prorated_plan("month", price=3100), at=local(2026, 3, 1, 10))  # 31 days
        with frozen_time(cancel_at):
            quote = cancellation.quote_cancel_now(sub)
            receipt = cancellation.cancel_now(sub.id, source="support", reason_code="unsatisfied")
        assert (quote.days_total, quote.days_unused, quote.amount) == (31, unused, refund)
        assert (receipt.refundable_amount, receipt.days_unused, receipt.kind) == (refund, unused, "now")
        assert receipt.refund_status == ("due" if refund else "none")
        assert receipt.refund_order_id == (sub.order_id if refund else None)
        sub = fresh(sub.id)
        assert sub.status == "canceled" and sub.ended_at == receipt.effective_at


def test_prorated_amounts_round_down_to_the_fen() -> None:
    assert prorated_amount(3990, 31, 30) == 3861  # 3861.29
    assert prorated_amount(3990, 28, 14) == 1995
    assert prorated_amount(1, 3, 2) == 0
    assert prorated_amount(3990, 31, 0) == 0


def test_cancel_now_under_the_default_policy_refunds_nothing(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 3, 1, 10))
        with frozen_time(local(2026, 3, 5)):
            receipt = cancellation.cancel_now(sub.id, source="customer")
        assert (receipt.refund_policy, receipt.refundable_amount, receipt.refund_status) == (
            "none",
            0,
            "none",
        )


def test_cancel_now_after_an_early_renewal_refunds_the_period_paid_ahead_in_full(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(prorated_plan("month", price=3100), at=local(2026, 3, 1, 10))
        renew(sub.id, local(2026, 3, 29))  # April: 30 days, 3100 paid
        with frozen_time(local(2026, 3, 30, 12)):
            receipt = cancellation.cancel_now(sub.id, source="customer")
        assert receipt.refundable_amount == 100 + 3100  # 31 March unused, and all of April
        assert all(p.ended_early_at is not None for p in services.periods_of(sub.id))


def test_cancel_now_ends_time_limited_rights_today_and_leaves_card_keys_delivered(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", card_keys=1), at=local(2026, 3, 1, 10))
        moment = local(2026, 3, 12, 15)
        with frozen_time(moment):
            cancellation.cancel_now(sub.id, source="customer")
        grants = {g.kind: g for g in grants_of(sub.order_id)}
        assert grants["link"].valid_until == moment.astimezone(dt.UTC)
        assert grants["card_key"].status == "delivered"
        assert grants["card_key"].valid_until is not None and grants["card_key"].valid_until > moment


def test_whole_days_are_counted_in_the_tenants_zone(shop: Shop) -> None:
    la = ZoneInfo("America/Los_Angeles")
    with shop.bound():
        shop.tenant.time_zone = "America/Los_Angeles"
        db.session.commit()
        plan = renewable_plan("days", price=1000, period_days=10)
        policy.save_policy(
            plan, grace_days=3, reminder_offsets=[], cancel_now_refund="prorated", actor="test"
        )
        sub = subscribe(plan, at=dt.datetime(2026, 6, 1, 22, 0, tzinfo=la))
        # 10-day plan; 4 June 23:00 in LA is 5 June in UTC and in Shanghai, but day 4 here.
        with frozen_time(dt.datetime(2026, 6, 4, 23, 0, tzinfo=la)):
            quote = cancellation.quote_cancel_now(fresh(sub.id))
        assert (quote.days_total, quote.days_unused, quote.amount) == (10, 6, 600)


def test_a_support_cancellation_is_audited_with_the_member_and_the_reason(shop: Shop, client) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import login

    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 3, 1, 10))
        sub_id = sub.id
    login(client, shop.members["support"])
    with frozen_time(local(2026, 3, 3)):
        response = client.post(
            f"/t/{shop.slug}/subscriptions/{sub_id}/cancel",
            data={"when": "at_period_end", "reason_code": "no_longer_needed", "reason_text": "客户电话要求"},
        )
    assert response.status_code == 302
    with shop.bound():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "subscription.cancel_requested")
        )
        assert event is not None
        assert event.actor == "support@acme.test" and event.reason == "no_longer_needed: 客户电话要求"
        assert event.details["source"] == "support"
        assert fresh(sub_id).set_to_cancel


def test_an_ended_subscription_cannot_be_cancelled_again(shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 3, 1, 10))
        with frozen_time(local(2026, 3, 2)):
            cancellation.cancel_now(sub.id, source="customer")
            with pytest.raises(SubscriptionError):
                cancellation.cancel_now(sub.id, source="customer")
            with pytest.raises(SubscriptionError):
                cancellation.cancel_at_period_end(sub.id, source="customer")

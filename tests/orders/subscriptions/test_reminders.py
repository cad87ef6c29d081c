"""Renewal reminders: one mail per offset per period, never to a cancelled, renewed or ended subscription."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from orders.subscriptions import cancellation, policy, reminders
from orders.subscriptions.models import SubscriptionReminder
from orders.subscriptions.tasks import send_reminders_everywhere
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.factories import Outbox, Shop, make_shop
from tests.orders.portal_helpers import sms_files
from tests.orders.subscriptions.factories import local, renew, renewable_plan, subscribe

EMAIL = "li.lei@example.com"


def reminder_mails(outbox: Outbox) -> list[str]:
    return [Outbox.body(m) for m in outbox.to(EMAIL) if "renews on" in str(m["Subject"])]


def test_the_reminder_job_run_twice_in_the_same_hour_sends_one_mail(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))
    with frozen_time(local(2026, 2, 25, 10, 0)):  # 3 days before 28 Feb 09:30
        assert send_reminders_everywhere()["reminders"] == 1
    with frozen_time(local(2026, 2, 25, 10, 40)):
        assert send_reminders_everywhere()["reminders"] == 0
    mails = reminder_mails(outbox)
    assert len(mails) == 1
    body = mails[0]
    assert "2026-02-28 09:30" in body and "¥39.90" in body  # the date and the amount
    assert "/my/subscriptions/" in body  # how to turn auto-renew off


def test_no_reminder_before_its_day(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 25, 9, 0)):  # 3 days before is 25 Feb 09:30
            assert reminders.send_due_reminders() == 0
    assert reminder_mails(outbox) == []


def test_a_reminder_never_reaches_a_subscription_set_to_cancel(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 20)):
            cancellation.cancel_at_period_end(sub.id, source="customer", reason_code="too_expensive")
        with frozen_time(local(2026, 2, 26)):
            assert reminders.send_due_reminders() == 0
    assert reminder_mails(outbox) == []
    assert any("cancellation receipt" in str(m["Subject"]) for m in outbox.to(EMAIL))


def test_no_reminder_for_a_period_already_renewed_or_an_ended_subscription(
    shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        renewed = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        renew(renewed.id, local(2026, 2, 20))
        ended = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30), email="han@example.com")
        with frozen_time(local(2026, 2, 21)):
            cancellation.cancel_now(ended.id, source="support", notify=False)
        with frozen_time(local(2026, 2, 26)):
            assert reminders.send_due_reminders() == 0
        with frozen_time(local(2026, 3, 28, 10)):  # the renewed period's own reminder comes in its time
            assert reminders.send_due_reminders() == 1
    assert len(reminder_mails(outbox)) == 1


def test_yearly_plans_are_reminded_seven_days_before_by_default(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        subscribe(renewable_plan("year", price=39900), at=local(2026, 3, 10, 12))
        with frozen_time(local(2027, 3, 2, 12)):
            assert reminders.send_due_reminders() == 0
        with frozen_time(local(2027, 3, 3, 12, 5)):
            assert reminders.send_due_reminders() == 1
    assert "¥399.00" in reminder_mails(outbox)[0]


def test_several_offsets_send_one_mail_each(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        plan = renewable_plan("month")
        policy.save_policy(
            plan, grace_days=3, reminder_offsets=[7, 1], cancel_now_refund="none", actor="test"
        )
        sub = subscribe(plan, at=local(2026, 1, 31, 9, 30))
        for moment in (
            local(2026, 2, 21, 10),
            local(2026, 2, 21, 11),
            local(2026, 2, 27, 10),
            local(2026, 2, 27, 12),
        ):
            with frozen_time(moment):
                reminders.send_due_reminders()
        rows = reminders.reminders_of(sub.id)
        assert [(r.offset_days, r.status) for r in rows] == [(7, "sent"), (1, "sent")]
    assert len(reminder_mails(outbox)) == 2


def test_a_job_that_ran_late_sends_the_nearest_reminder_only(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        plan = renewable_plan("month")
        policy.save_policy(
            plan, grace_days=3, reminder_offsets=[7, 3], cancel_now_refund="none", actor="test"
        )
        sub = subscribe(plan, at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 26, 8)):  # the workers were down for days
            assert reminders.send_due_reminders() == 1
            assert reminders.send_due_reminders() == 0
        rows = {r.offset_days: r for r in reminders.reminders_of(sub.id)}
        assert rows[3].status == "sent" and rows[7].status == "skipped"
    assert len(reminder_mails(outbox)) == 1


def test_a_phone_only_customer_gets_the_reminder_by_sms_with_a_short_link(
    app: Flask, shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30), email=None)
        with frozen_time(local(2026, 2, 26)):  # 3 days before 28 Feb
            assert reminders.send_due_reminders() == 1
            assert reminders.send_due_reminders() == 0
        rows = db.session.scalars(select(SubscriptionReminder)).all()
        assert [(r.subscription_id, r.status, r.recipient) for r in rows] == [
            (sub.id, "sent", "+8613800000000")
        ]
    (text,) = [m for m in sms_files(app) if m["kind"] == "renewal_reminder"]
    assert text["to"] == "+8613800000000" and text["params"]["date"] == "2026-02-28"
    assert text["params"]["plan"] == "影音月卡" and "/m/" in text["params"]["link"]
    assert reminder_mails(outbox) == []


def test_a_yearly_plan_is_reminded_by_sms_seven_days_before(app: Flask, shop: Shop) -> None:
    with shop.bound():
        subscribe(renewable_plan("year"), at=local(2026, 1, 31, 9, 30), email=None)
        with frozen_time(local(2027, 1, 23)):
            assert reminders.send_due_reminders() == 0
        with frozen_time(local(2027, 1, 24, 10)):
            assert reminders.send_due_reminders() == 1
    (text,) = [m for m in sms_files(app) if m["kind"] == "renewal_reminder"]
    assert text["params"]["date"] == "2027-01-31"


def test_the_job_fans_out_over_every_tenant(shop: Shop, outbox: Outbox) -> None:
    rival = make_shop("rival2")
    for each in (shop, rival):
        with each.bound():
            subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
    with frozen_time(local(2026, 2, 26)):
        totals = send_reminders_everywhere()
    assert totals["reminders"] == 2 and totals["tenants"] >= 2
    assert len(reminder_mails(outbox)) == 2

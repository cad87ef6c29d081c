"""Exactly once under real concurrency: renewals and reminders from several threads at the same moment.

Runs on SQLite (BEGIN IMMEDIATE serialises writers) and, with TEST_DATABASE_URL, on PostgreSQL (the
subscription row is locked FOR UPDATE; unique constraints are the last word).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from orders.models import Order
from orders.subscriptions import reminders, services
from orders.subscriptions.models import SubscriptionReminder, SubscriptionRenewal
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.factories import Outbox, Shop
from tests.orders.subscriptions.factories import fresh, local, renewable_plan, subscribe
from tests.orders.test_concurrency import run_together


def renew_call(subscription_id: int, key: str) -> Callable[[], Any]:
    def call() -> Any:
        try:
            outcome = services.renew(
                subscription_id,
                paid_at=local(2026, 2, 25),
                amount=3990,
                currency="CNY",
                channel="stripe",
                idempotency_key=key,
            )
        except services.AlreadyRenewed:
            return "refused"
        return ("created" if outcome.created else "repeated", outcome.renewal.id)

    return call


def test_five_payments_for_the_same_period_renew_it_once(app: Flask, shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))
        sub_id = sub.id
    with frozen_time(local(2026, 2, 25)):
        results = run_together(app, shop.tenant.id, [renew_call(sub_id, f"in_{n}") for n in range(5)])
    assert sorted(r if r == "refused" else r[0] for r in results) == ["created"] + ["refused"] * 4
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(SubscriptionRenewal)) == 1
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2
        assert fresh(sub_id).current_period_number == 2


def test_the_same_payment_notified_five_times_at_once_renews_once(app: Flask, shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))
        sub_id = sub.id
    with frozen_time(local(2026, 2, 25)):
        results = run_together(app, shop.tenant.id, [renew_call(sub_id, "in_same") for _ in range(5)])
    assert len({r[1] for r in results}) == 1
    assert sorted(r[0] for r in results) == ["created"] + ["repeated"] * 4
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2


def test_two_reminder_jobs_at_the_same_moment_send_one_mail(app: Flask, shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
    with frozen_time(local(2026, 2, 26)):
        sent = run_together(app, shop.tenant.id, [reminders.send_due_reminders for _ in range(3)])
    assert sum(sent) == 1
    with shop.bound():
        assert db.session.scalar(select(func.count()).select_from(SubscriptionReminder)) == 1
    assert len([m for m in outbox.messages() if "renews on" in str(m["Subject"])]) == 1

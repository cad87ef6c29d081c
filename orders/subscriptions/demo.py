"""Demo subscriptions: a few customers on renewable plans, renewed early and late, one set to cancel at the
period end, one cancelled now with a prorated refund, one left to lapse."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from catalog.models import Bundle, Plan
from orders import services as order_services
from orders.subscriptions import cancellation, policy, services
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import Tenant

DEMO_SUBSCRIBERS = (
    ("周杰", "zhoujie@example.com", "13600000011"),
    ("林小雨", "linxy@example.com", None),
    ("Grace Wong", "grace.wong@example.com", None),
    ("孙浩", "sunhao@example.com", "13600000014"),
    ("何欣", "hexin@example.com", None),
)


def _renewable_plans() -> dict[str, Plan]:
    plans = db.session.scalars(
        select(Plan)
        .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
        .where(Bundle.status == "active", Plan.renewable.is_(True))
        .order_by(Plan.id)
    )
    by_unit: dict[str, Plan] = {}
    for plan in plans:
        by_unit.setdefault(plan.period_unit, plan)
    return by_unit


def _subscribe(number: int, plan: Plan, started: dt.datetime) -> int:
    name, email, phone = DEMO_SUBSCRIBERS[number]
    with frozen_time(started):
        outcome = order_services.create_order(
            order_services.OrderRequest(
                channel="shop",
                external_id=f"DEMO-SUB-{100 + number}",
                source="demo",
                customer=order_services.CustomerInfo(email, phone, name),
                lines=[order_services.LineRequest(plan.id)],
                paid=True,
                payment_reference=f"DEMO-SUB-PAY-{number}",
                actor="demo data",
            )
        )
        return services.start_subscription_for_order(outcome.order.id)[0].id


def _renew(subscription_id: int, paid_at: dt.datetime, key: str) -> None:
    found = services.get_subscription(subscription_id)
    assert found is not None
    with frozen_time(paid_at):
        services.renew(
            subscription_id,
            paid_at=paid_at,
            amount=found.renewal_amount,
            currency=found.currency,
            channel="shop",
            idempotency_key=f"demo:{key}",
            actor="demo data",
        )


def add_demo_subscriptions(tenant: Tenant) -> None:
    """Demo step: subscriptions with renewals and cancellations (needs the catalog's renewable plans)."""
    plans = _renewable_plans()
    month, year = plans.get("month"), plans.get("year")
    if month is None:
        return
    now = utcnow()
    policy.save_policy(
        month, grace_days=3, reminder_offsets=[7, 3], cancel_now_refund="prorated", actor="demo data"
    )
    loyal = _subscribe(0, month, now - dt.timedelta(days=70))
    first_end = services.get_subscription(loyal).current_period_end  # type: ignore[union-attr]
    _renew(loyal, first_end - dt.timedelta(days=2), "loyal-2")
    second_end = services.get_subscription(loyal).current_period_end  # type: ignore[union-attr]
    _renew(loyal, second_end + dt.timedelta(days=1), "loyal-3")

    leaving = _subscribe(1, month, now - dt.timedelta(days=12))
    with frozen_time(now - dt.timedelta(days=2)):
        cancellation.cancel_at_period_end(
            leaving,
            source="customer",
            reason_code="too_expensive",
            reason_text="学生党，先停一个月",
            actor="customer (demo)",
            notify=False,
        )
    unhappy = _subscribe(2, month, now - dt.timedelta(days=9))
    with frozen_time(now - dt.timedelta(days=1)):
        cancellation.cancel_now(
            unhappy,
            source="support",
            reason_code="unsatisfied",
            reason_text="会员无法登录，客服协助取消",
            actor="support (demo)",
            notify=False,
        )
    _subscribe(3, month, now - dt.timedelta(days=45))  # never renewed: past due, then expired
    if year is not None:
        _subscribe(4, year, now - dt.timedelta(days=20))
    services.advance_lifecycles(now)

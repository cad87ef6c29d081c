"""Factories for subscription tests: renewable plans, purchases through the orders services, plain rows.

Call them with the tenant bound (`with shop.bound():`).
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import select

from catalog.models import Bundle, BundleItem, Plan, Right
from orders import services as order_services
from orders.models import Customer, Order, OrderLine
from orders.subscriptions import services
from orders.subscriptions.models import Subscription, SubscriptionPeriod
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import Tenant
from tests.orders.factories import add_keys

_serial = itertools.count(1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def local(
    year: int, month: int, day: int, hour: int = 12, minute: int = 0, zone: dt.tzinfo = SHANGHAI
) -> dt.datetime:
    """An aware moment given as a wall-clock time somewhere (Shanghai by default)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone)


def renewable_plan(
    period_unit: str = "month",
    *,
    price: int = 3990,
    period_days: int | None = None,
    card_keys: int = 0,
    renewable: bool = True,
    name: str = "影音月卡",
) -> Plan:
    """A bundle with a time-limited link right (40 days), and a card-key right when `card_keys` > 0."""
    rights = [
        Right(
            name="喜马拉雅会员兑换页",
            kind="link",
            currency="CNY",
            validity_days=40,
            link_url="https://example.com/redeem",
        )
    ]
    if card_keys:
        rights.append(Right(name="腾讯视频VIP月卡", kind="card_key", currency="CNY", validity_days=31))
    db.session.add_all(rights)
    bundle = Bundle(name=f"影音畅享包 {next(_serial)}", status="active")
    db.session.add(bundle)
    db.session.flush()
    for position, right in enumerate(rights):
        db.session.add(BundleItem(bundle_id=bundle.id, right_id=right.id, quantity=1, position=position))
    plan = Plan(
        bundle_id=bundle.id,
        name=name,
        period_unit=period_unit,
        period_days=period_days,
        price=price,
        currency="CNY",
        renewable=renewable,
    )
    db.session.add(plan)
    db.session.commit()
    if card_keys:
        add_keys(rights[1], card_keys)
    return plan


def buy(
    plan: Plan,
    *,
    at: dt.datetime | None = None,
    email: str | None = "li.lei@example.com",
    channel: str = "shop",
) -> Order:
    """Create and pay an order for the plan through the orders services (at `at`, frozen)."""
    with frozen_time(at or utcnow()):
        return order_services.create_order(
            order_services.OrderRequest(
                channel=channel,
                external_id=f"T-{next(_serial)}",
                source="api",
                customer=order_services.CustomerInfo(
                    email=email, phone=None if email else "13800000000", name="李雷"
                ),
                lines=[order_services.LineRequest(plan.id)],
                paid=True,
            )
        ).order


def subscribe(
    plan: Plan,
    *,
    at: dt.datetime | None = None,
    email: str | None = "li.lei@example.com",
    channel: str = "shop",
) -> Subscription:
    """Buy a renewable plan and start its subscription (as the payment path will)."""
    order = buy(plan, at=at, email=email, channel=channel)
    with frozen_time(at or utcnow()):
        started = services.start_subscription_for_order(order.id)
    assert len(started) == 1
    return started[0]


def fresh(subscription_id: int) -> Subscription:
    """Re-read a subscription from the database."""
    found = db.session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .execution_options(populate_existing=True)
    )
    assert found is not None
    return found


def renew(
    subscription_id: int,
    paid_at: dt.datetime,
    key: str | None = None,
    *,
    amount: int | None = None,
    channel: str = "stripe",
) -> services.RenewalOutcome:
    """Record a renewal payment at `paid_at` (time frozen there)."""
    found = fresh(subscription_id)
    with frozen_time(paid_at):
        return services.renew(
            subscription_id,
            paid_at=paid_at,
            amount=found.renewal_amount if amount is None else amount,
            currency=found.currency,
            channel=channel,
            idempotency_key=key or f"in_{next(_serial)}",
        )


def set_zone(tenant: Tenant, zone: str) -> None:
    tenant.time_zone = zone
    db.session.commit()


def subscription_row() -> Subscription:
    """A subscription made of plain rows (no audit trail), for the route-wide tests."""
    customer = Customer(email=f"route-{next(_serial)}@example.test", name="Route")
    db.session.add(customer)
    db.session.flush()
    now = utcnow()
    order = Order(
        channel="shop",
        external_id=f"ROUTE-{next(_serial)}",
        source="manual",
        customer_id=customer.id,
        status="fulfilled",
        currency="CNY",
        total=990,
        paid_at=now,
    )
    db.session.add(order)
    db.session.flush()
    line = OrderLine(
        order_id=order.id,
        plan_id=1,
        title="路由测试 · 月卡",
        quantity=1,
        unit_price=990,
        currency="CNY",
        total=990,
        snapshot={},
    )
    db.session.add(line)
    db.session.flush()
    end = now + dt.timedelta(days=30)
    subscription = Subscription(
        customer_id=customer.id,
        order_id=order.id,
        order_line_id=line.id,
        plan_id=1,
        plan_name="月卡",
        bundle_name="路由测试",
        period_unit="month",
        price=990,
        currency="CNY",
        channel="shop",
        time_zone="Asia/Shanghai",
        anchor_at=now,
        current_period_start=now,
        current_period_end=end,
    )
    db.session.add(subscription)
    db.session.add(
        SubscriptionPeriod(
            subscription_id=subscription.id,
            number=1,
            kind="initial",
            starts_at=now,
            ends_at=end,
            amount=990,
            currency="CNY",
            order_id=order.id,
            order_line_id=line.id,
        )
    )
    db.session.commit()
    return subscription

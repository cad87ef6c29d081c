"""Read models for the back-office pages: everything one order or one customer page shows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from orders.delivery import deliveries_of
from orders.fulfilment import order_grants, order_lines
from orders.models import Customer, CustomerExternalId, Grant, Order, OrderEvent
from orders.redemption import redemptions_of
from orders.refunds import refunds_of
from saas.extensions import db


def order_events(order_id: int) -> list[OrderEvent]:
    """Return an order's status transitions, oldest first."""
    return list(
        db.session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.at, OrderEvent.id)
        )
    )


def order_page_data(order: Order) -> dict[str, Any]:
    """Return what the order page shows: lines, grants, transitions, deliveries, refunds, redemptions."""
    grants = order_grants(order.id)
    customer = db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
    return {
        "order": order,
        "customer": customer,
        "lines": order_lines(order.id),
        "grants": grants,
        "events": order_events(order.id),
        "deliveries": deliveries_of(order.id),
        "refunds": refunds_of(order.id),
        "redemptions": redemptions_of([g.id for g in grants]),
    }


def customer_page_data(customer: Customer) -> dict[str, Any]:
    """Return what the customer page shows: orders, grants, channel ids and merged records."""
    return {
        "customer": customer,
        "orders": list(
            db.session.scalars(
                select(Order)
                .where(Order.customer_id == customer.id)
                .order_by(Order.created_at.desc())
                .limit(200)
            )
        ),
        "grants": list(
            db.session.scalars(
                select(Grant)
                .where(Grant.customer_id == customer.id)
                .order_by(Grant.created_at.desc())
                .limit(500)
            )
        ),
        "external_ids": list(
            db.session.scalars(
                select(CustomerExternalId).where(CustomerExternalId.customer_id == customer.id)
            )
        ),
        "merged": list(db.session.scalars(select(Customer).where(Customer.merged_into_id == customer.id))),
    }

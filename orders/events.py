"""Order status transitions: conditional updates, each recorded in `order_events` with actor and reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from orders.models import Order, OrderEvent
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.audit import current_actor


class OrderError(ValueError):
    """A user-facing refusal of an order action (validation failed, wrong state)."""


def actor_label(actor: str | None = None) -> str:
    """Return who acts: the given label, else the signed-in user, API key or "system"."""
    return actor or current_actor()[1]


def record_event(
    order_id: int, from_status: str | None, to_status: str, *, actor: str, reason: str = ""
) -> None:
    """Add one transition row to the session (committed with the change it describes)."""
    db.session.add(
        OrderEvent(
            order_id=order_id,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason[:2000],
            at=utcnow(),
        )
    )


def transition(
    order_id: int, from_status: str, to_status: str, *, actor: str, reason: str = "", **values: Any
) -> bool:
    """Move an order from one status to another only if it is still in `from_status`; record it.

    This is a single conditional UPDATE: of two processes trying the same transition at the same moment,
    exactly one sees a row change (PostgreSQL re-checks the condition after the row lock is released;
    SQLite runs writers one at a time).
    """
    result = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == from_status)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    if to_status != "fulfilling":
        record_event(order_id, from_status, to_status, actor=actor, reason=reason)
    return True


def set_status(order: Order, to_status: str, *, actor: str, reason: str = "") -> None:
    """Change a locked (or freshly claimed) order's status and record the transition if it changed."""
    before = order.status
    if before == to_status:
        return
    order.status = to_status
    record_event(
        order.id, "paid" if before == "fulfilling" else before, to_status, actor=actor, reason=reason
    )

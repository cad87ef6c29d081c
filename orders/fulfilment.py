"""Fulfilment: a paid order's lines become grants, exactly once, allocated from inventory or generated.

Exactly-once has two locks. The order is claimed with a conditional UPDATE (`paid → fulfilling`) in the
same transaction that allocates, so two payers of the same order cannot both allocate; and the grants
table is unique on (order line, unit index, item index), so even a second pass creates nothing new.
Keys come from `orders.allocation`, which cannot hand one key to two grants.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.orm.attributes import set_committed_value

from catalog.models import Right
from catalog.stock import check_low_stock
from orders.allocation import AllocatedKey, allocate_card_keys, confirm_reserved_keys, generate_code
from orders.bulk import insert_objects
from orders.delivery import delivery_record, queue_delivery, send_deliveries
from orders.events import actor_label, set_status
from orders.models import Customer, Delivery, Grant, Order, OrderEvent, OrderLine
from saas import jobs
from saas.events import publish
from saas.extensions import db, immediate_transaction, is_postgres
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)

BACKORDER_BATCH = 200
DELIVERED = ("delivered", "redeemed")


@dataclass
class FulfilmentResult:
    """What one fulfilment pass did, and the side effects to run after its commit."""

    order_id: int
    acted: bool
    status: str = ""
    delivered: list[int] = field(default_factory=list)
    backordered: int = 0
    topups: list[int] = field(default_factory=list)
    delivery_id: int | None = None
    rights: set[int] = field(default_factory=set)
    renewable: bool = False  # a line's plan renews: the order may start a subscription
    announcement: dict[str, Any] | None = None  # the `order.fulfilled` event, once fulfilled


# ---------------------------------------------------------------- building grants


def order_lines(order_id: int) -> list[OrderLine]:
    """Return an order's lines in order."""
    return list(
        db.session.scalars(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.position, OrderLine.id)
        )
    )


def order_grants(order_id: int, *, lock: bool = False) -> list[Grant]:
    """Return an order's grants (locked for update on PostgreSQL when asked)."""
    statement = (
        select(Grant)
        .where(Grant.order_id == order_id)
        .order_by(Grant.order_line_id, Grant.unit_index, Grant.item_index)
    )
    if lock and is_postgres():
        statement = statement.with_for_update()
    return list(db.session.scalars(statement.execution_options(populate_existing=True)))


def missing_grants(order: Order, lines: list[OrderLine], existing: list[Grant]) -> list[Grant]:
    """Return new pending grants for every (line, unit, right item) that has none yet (not yet added)."""
    have = {(g.order_line_id, g.unit_index, g.item_index) for g in existing}
    created = []
    for line in lines:
        rights = line.rights_per_unit()
        for unit in range(line.quantity):
            for index, right in enumerate(rights):
                if (line.id, unit, index) in have:
                    continue
                created.append(
                    Grant(
                        order_id=order.id,
                        order_line_id=line.id,
                        customer_id=order.customer_id,
                        unit_index=unit,
                        item_index=index,
                        right_id=int(right["id"]),
                        right_name=str(right["name"])[:120],
                        kind=str(right["kind"]),
                        status="pending",
                        queued_at=order.paid_at,
                        unit_cost=0 if right["kind"] == "card_key" else int(right.get("unit_cost") or 0),
                    )
                )
    return created


def right_snapshots(lines: list[OrderLine]) -> dict[tuple[int, int], dict[str, Any]]:
    """Map (line id, item index) to the right snapshot that grant position delivers."""
    return {(line.id, index): right for line in lines for index, right in enumerate(line.rights_per_unit())}


# ---------------------------------------------------------------- delivering one grant


def deliver(
    grant: Grant, now: dt.datetime, validity_days: int | None, key_expiry: dt.datetime | None = None
) -> None:
    """Mark a grant delivered now; it is valid for the right's days, and never past its key's expiry."""
    grant.status = "delivered"
    grant.delivered_at = now
    ends = [moment for moment in (key_expiry,) if moment is not None]
    if validity_days:
        ends.append(now + dt.timedelta(days=int(validity_days)))
    grant.valid_until = min(ends) if ends else None


def assign_key(
    grant: Grant, key: AllocatedKey, now: dt.datetime, right: dict[str, Any], *, reserve: bool
) -> None:
    """Give an allocated key to a grant: reserved for an unpaid order, else delivered."""
    grant.card_key_id = key.id
    grant.unit_cost = key.unit_cost
    grant.mask = key.mask
    if reserve:
        grant.status = "reserved"
        grant.reserved_at = now
        grant.valid_until = key.expires_at
    else:
        deliver(grant, now, right.get("validity_days"), key.expires_at)


def _topup_account(customer: Customer | None) -> str | None:
    if customer is None:
        return None
    return customer.phone or customer.email


def allocate_pending(
    grants: list[Grant],
    snapshots: dict[tuple[int, int], dict[str, Any]],
    now: dt.datetime,
    customers: dict[int, Customer],
) -> list[Grant]:
    """Deliver or queue every pending grant by its right's kind, in the given order; return the backorders.

    Card keys are allocated per right with one statement for all the grants that need that right.
    """
    by_right: dict[int, list[Grant]] = defaultdict(list)
    backordered: list[Grant] = []
    for grant in grants:
        right = snapshots[(grant.order_line_id, grant.item_index)]
        if grant.kind == "card_key":
            by_right[grant.right_id].append(grant)
        elif grant.kind == "code":
            code = generate_code(
                grant.right_id, str(right.get("code_prefix") or ""), int(right.get("code_length") or 12)
            )
            grant.code_hash, grant.code_ciphertext, grant.mask = code.code_hash, code.ciphertext, code.mask
            deliver(grant, now, right.get("validity_days"))
        elif grant.kind == "link":
            grant.link_url = str(right.get("link_url") or "")
            deliver(grant, now, right.get("validity_days"))
        else:  # topup: delivered when the supplier confirms
            grant.status, grant.topup_state = "processing", "queued"
            grant.topup_account = _topup_account(customers.get(grant.customer_id or 0))
    for right_id, waiting in by_right.items():
        keys = allocate_card_keys(right_id, len(waiting))
        for grant, key in zip(waiting, keys, strict=False):
            assign_key(grant, key, now, snapshots[(grant.order_line_id, grant.item_index)], reserve=False)
        for grant in waiting[len(keys) :]:
            grant.status = "backordered"
            backordered.append(grant)
    return backordered


# ---------------------------------------------------------------- order status


def settled_status(order: Order, grants: list[Grant]) -> str:
    """Return the fulfilment status the grants imply (refund and cancel states are kept as they are)."""
    if order.status in ("pending", "refunded", "partially_refunded", "cancelled"):
        return order.status
    live = [g for g in grants if g.status not in ("cancelled", "revoked")]
    done = sum(1 for g in live if g.status in DELIVERED)
    if not live or done == len(live):
        return "fulfilled"
    if done:
        return "partially_fulfilled"
    if any(g.status == "backordered" for g in live):
        return "backordered"
    return "paid"


def settle(order: Order, grants: list[Grant], now: dt.datetime, *, actor: str, reason: str = "") -> None:
    """Write the order status its grants imply, recording the transition."""
    status = settled_status(order, grants)
    set_status(order, status, actor=actor, reason=reason)
    if status == "fulfilled" and order.fulfilled_at is None:
        order.fulfilled_at = now


# ---------------------------------------------------------------- use cases


def _by_order(rows: list[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.order_id].append(row)
    return grouped


def fulfil_claimed(order_ids: list[int], *, actor: str, reason: str = "") -> list[FulfilmentResult]:
    """Inside a transaction that has claimed the orders (status `fulfilling`): create and allocate grants.

    Works on many orders at once, so a worker draining paid orders spends a few statements per batch:
    grants are allocated per right in payment order across the batch.
    """
    orders = list(
        db.session.scalars(
            select(Order)
            .where(Order.id.in_(order_ids))
            .order_by(Order.paid_at, Order.id)
            .execution_options(populate_existing=True)
        )
    )
    customer_ids = {o.customer_id for o in orders if o.customer_id is not None}
    customers = (
        {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))}
        if customer_ids
        else {}
    )
    lines = _by_order(
        list(
            db.session.scalars(
                select(OrderLine)
                .where(OrderLine.order_id.in_(order_ids))
                .order_by(OrderLine.position, OrderLine.id)
            )
        )
    )
    existing = _by_order(
        list(
            db.session.scalars(
                select(Grant)
                .where(Grant.order_id.in_(order_ids))
                .order_by(Grant.order_line_id, Grant.unit_index, Grant.item_index)
                .execution_options(populate_existing=True)
            )
        )
    )
    return fulfil_loaded(orders, customers, lines, existing, actor=actor, reason=reason)


def fulfil_loaded(
    orders: list[Order],
    customers: dict[int, Customer],
    lines: dict[int, list[OrderLine]],
    existing: dict[int, list[Grant]],
    *,
    actor: str,
    reason: str = "",
) -> list[FulfilmentResult]:
    """Fulfil claimed orders whose customers, lines (in order) and grants the caller has read already.

    An order new in this transaction (not yet inserted) is written by the flush here with its final
    status; orders read from the database get theirs with one UPDATE per status.
    """
    now = utcnow()
    snapshots = right_snapshots([line for order in orders for line in lines[order.id]])
    plans: dict[int, tuple[list[Grant], list[Grant], list[Grant]]] = {}
    pending_all: list[Grant] = []
    for order in orders:
        have = existing.get(order.id, [])
        new = missing_grants(order, lines[order.id], have)
        reserved = [g for g in have if g.status == "reserved"]
        pending = [g for g in have if g.status == "pending"] + new
        for grant in pending:
            grant.queued_at = grant.queued_at or order.paid_at or now
        plans[order.id] = (new, reserved, pending)
        pending_all.extend(pending)
    reserved_all = [g for _new, reserved, _pending in plans.values() for g in reserved]
    confirm_reserved_keys(g.card_key_id for g in reserved_all if g.card_key_id is not None)
    for grant in reserved_all:
        right = snapshots[(grant.order_line_id, grant.item_index)]
        deliver(grant, now, right.get("validity_days"), grant.valid_until)
    allocate_pending(pending_all, snapshots, now, customers)
    events: list[OrderEvent] = []
    deliveries: list[Delivery] = []
    # Held here: the session's identity map keeps only referenced objects, so each delivery record would
    # read the tenant again.
    tenant = db.session.get(Tenant, current_tenant_id())
    results = [
        _settle_fulfilled(
            order,
            lines[order.id],
            existing.get(order.id, []),
            plans[order.id],
            customers,
            now,
            actor,
            reason,
            events,
            deliveries,
            tenant,
        )
        for order in orders
    ]
    for order, result in zip(orders, results, strict=True):
        result.renewable = any(line.snapshot.get("plan", {}).get("renewable") for line in lines[order.id])
    _write_statuses([order for order in orders if not inspect(order).pending], now)
    db.session.flush()  # new orders and lines before their grants and deliveries
    insert_objects([g for new, _r, _p in plans.values() for g in new])
    insert_objects(deliveries)
    insert_objects(events)
    return results


def _write_statuses(orders: list[Order], now: dt.datetime) -> None:
    """Write the orders' new statuses with one UPDATE per status (they were set without a flush)."""
    by_status: dict[str, list[int]] = defaultdict(list)
    for order in orders:
        by_status[order.status].append(order.id)
    for status, ids in by_status.items():
        values: dict[str, Any] = {"status": status}
        if status == "fulfilled":
            values["fulfilled_at"] = now
        db.session.execute(
            update(Order)
            .where(Order.id.in_(ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _settle_fulfilled(
    order: Order,
    lines: list[OrderLine],
    existing: list[Grant],
    plan: tuple[list[Grant], list[Grant], list[Grant]],
    customers: dict[int, Customer],
    now: dt.datetime,
    actor: str,
    reason: str,
    events: list[OrderEvent],
    deliveries: list[Delivery],
    tenant: Tenant | None,
) -> FulfilmentResult:
    """Decide one order's status, add its audit row, and collect its event and delivery record."""
    new, reserved, pending = plan
    before = "paid" if order.status == "fulfilling" else order.status
    status = settled_status(order, existing + new)
    set_committed_value(order, "status", status)
    if status == "fulfilled" and order.fulfilled_at is None:
        set_committed_value(order, "fulfilled_at", now)
    if status != before:
        events.append(
            OrderEvent(
                order_id=order.id,
                from_status=before,
                to_status=status,
                actor=actor,
                reason=reason[:2000],
                at=now,
            )
        )
    touched = reserved + pending
    delivered = [g.id for g in touched if g.status == "delivered"]
    result = FulfilmentResult(
        order.id,
        True,
        order.status,
        delivered,
        sum(1 for g in pending if g.status == "backordered"),
        [g.id for g in pending if g.status == "processing"],
        None,
        {g.right_id for g in touched if g.kind == "card_key"},
    )
    if status == "fulfilled":
        result.announcement = _fulfilled_payload(order, delivered)
    audit.record(
        "order.fulfilled",
        "order",
        order.id,
        actor=actor,
        reason=reason or None,
        status=order.status,
        delivered=len(delivered),
        backordered=result.backordered,
        topups=len(result.topups),
        keys=[str(g.card_key_id) for g in touched if g.card_key_id is not None][:50],
        recipient=(customers[order.customer_id].email if order.customer_id in customers else None) or "",
    )
    if delivered:  # audited in the "order.fulfilled" row above
        delivery = delivery_record(
            order,
            customers.get(order.customer_id or 0),
            len(delivered),
            kind="delivery",
            actor=actor,
            tenant=tenant,
        )
        deliveries.append(delivery)
        if delivery.recipient:
            result.delivery_id = delivery.id
    return result


def claim_paid_orders(order_ids: list[int]) -> list[int]:
    """Claim paid orders for fulfilment with one conditional UPDATE; return the ids this caller won."""
    if not order_ids:
        return []
    rows = db.session.execute(
        update(Order)
        .where(Order.id.in_(order_ids), Order.status == "paid")
        .values(status="fulfilling")
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    )
    return [int(order_id) for order_id in rows.scalars()]


def fulfil_orders(
    order_ids: list[int], *, actor: str | None = None, reason: str = ""
) -> list[FulfilmentResult]:
    """Fulfil paid orders exactly once, in one transaction: claim them, allocate every grant, commit, deliver.

    Calling it again, or from five processes at once, allocates nothing more: only the caller whose
    conditional UPDATE moved an order from `paid` to `fulfilling` fulfils it. Returns one result per order
    this call fulfilled.
    """
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        claimed = claim_paid_orders(order_ids)
        if not claimed:
            db.session.commit()
            return []
        try:
            results = fulfil_claimed(claimed, actor=label, reason=reason)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    after_fulfilment(results)
    return results


def fulfil_order(order_id: int, *, actor: str | None = None, reason: str = "") -> FulfilmentResult:
    """Fulfil one paid order exactly once (see `fulfil_orders`); `acted` is False if nothing was to do."""
    results = fulfil_orders([order_id], actor=actor, reason=reason)
    return results[0] if results else FulfilmentResult(order_id, False)


def after_fulfilment(results: list[FulfilmentResult]) -> None:
    """Side effects after the commit: the delivery mails, top-up jobs, the low-stock check."""
    rights: set[int] = set()
    _announce_fulfilled(results)
    send_deliveries([r.delivery_id for r in results if r.acted and r.delivery_id is not None])
    # A renewable plan starts a subscription (idempotent; the lifecycle job is the safety net, so a queue
    # that is down must not fail an order that is already committed and delivered). One job per batch.
    renewable = [r.order_id for r in results if r.acted and r.renewable]
    if renewable:
        try:
            jobs.enqueue(
                "orders.subscriptions.tasks.start_subscriptions",
                current_tenant_id(),
                renewable,
                queue="fulfilment",
                retries=3,
            )
        except Exception:
            log.warning("could not queue starting the subscriptions of orders %s", renewable)
    for result in results:
        if not result.acted:
            continue
        for grant_id in result.topups:
            jobs.enqueue(
                "orders.tasks.run_topup",
                current_tenant_id(),
                grant_id,
                queue="fulfilment",
                retries=3,
                timeout=120,
            )
        rights |= result.rights
    check_stock_alerts(rights)


def _fulfilled_payload(order: Order, delivered: list[int]) -> dict[str, Any]:
    """Describe a fulfilled order for outer packages (taken before the commit, sent after it)."""
    return {
        "order_id": str(order.id),
        "channel": order.channel,
        "external_id": order.external_id,
        "status": order.status,
        "total": order.total,
        "currency": order.currency,
        "grants": [str(g) for g in delivered],
    }


def _announce_fulfilled(results: list[FulfilmentResult]) -> None:
    """Tell outer packages (outbound webhooks) which orders were fulfilled; the key makes each once."""
    for result in results:
        if result.announcement is not None:
            publish(
                "order.fulfilled",
                current_tenant_id(),
                result.announcement,
                key=f"order.fulfilled:{result.order_id}",
            )


def check_stock_alerts(right_ids: set[int]) -> None:
    """Let the catalog fire or clear low-stock alerts for rights whose stock just changed."""
    for right_id in right_ids:
        right = db.session.get(Right, (current_tenant_id(), right_id))
        if right is not None and (right.low_stock_threshold is not None or right.low_stock_since is not None):
            check_low_stock(right_id)


# ---------------------------------------------------------------- backorders


def _lock_backorder_candidates(right_id: int) -> list[Grant]:
    """Return the oldest backordered grants of a right whose orders this transaction could lock."""
    candidates = db.session.execute(
        select(Grant.id, Grant.order_id)
        .where(Grant.right_id == right_id, Grant.status == "backordered")
        .order_by(Grant.queued_at, Grant.id)
        .limit(BACKORDER_BATCH)
    ).all()
    if not candidates:
        return []
    order_ids = sorted({row.order_id for row in candidates})
    if is_postgres():  # lock orders before grants, as refunds do, so the two never deadlock
        locked = set(
            db.session.scalars(
                select(Order.id).where(Order.id.in_(order_ids)).with_for_update(skip_locked=True)
            )
        )
    else:
        locked = set(order_ids)
    grant_ids = [row.id for row in candidates if row.order_id in locked]
    if not grant_ids:
        return []
    statement = (
        select(Grant)
        .where(Grant.id.in_(grant_ids), Grant.status == "backordered")
        .order_by(Grant.queued_at, Grant.id)
        .execution_options(populate_existing=True)
    )
    if is_postgres():
        statement = statement.with_for_update()
    return list(db.session.scalars(statement))


def _fill_once(right_id: int, actor: str) -> tuple[int, list[int], bool, list[FulfilmentResult]]:
    """Fill one batch of backorders in one transaction.

    Return (filled, delivery ids, more to do, the orders this fill completed, to announce after the commit).
    """
    now = utcnow()
    with immediate_transaction(db.session()):
        grants = _lock_backorder_candidates(right_id)
        if not grants:
            db.session.commit()
            return 0, [], False, []
        keys = allocate_card_keys(right_id, len(grants))
        filled = grants[: len(keys)]
        right_cache: dict[int, Any] = {}
        for grant, key in zip(filled, keys, strict=False):
            line = right_cache.get(grant.order_line_id) or db.session.get(
                OrderLine, (grant.tenant_id, grant.order_line_id)
            )
            right_cache[grant.order_line_id] = line
            assert line is not None
            assign_key(grant, key, now, line.rights_per_unit()[grant.item_index], reserve=False)
        deliveries = []
        completed: list[FulfilmentResult] = []
        per_order: dict[int, int] = defaultdict(int)
        for grant in filled:
            per_order[grant.order_id] += 1
        for order_id, count in per_order.items():
            order = db.session.get(Order, (current_tenant_id(), order_id), populate_existing=True)
            assert order is not None
            grants_now = order_grants(order_id)
            settle(order, grants_now, now, actor=actor, reason="backorder filled")
            if order.status == "fulfilled":
                done = [g.id for g in grants_now if g.status in DELIVERED]
                completed.append(
                    FulfilmentResult(
                        order_id, True, order.status, announcement=_fulfilled_payload(order, done)
                    )
                )
            audit.record("order.backorder_filled", "order", order_id, delivered=count, right_id=str(right_id))
            customer = (
                db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
            )
            deliveries.append(queue_delivery(order, customer, count, kind="backorder", actor=actor))
        db.session.commit()
    return len(filled), [d for d in deliveries if d is not None], len(keys) == len(grants), completed


def fill_backorders(right_id: int, *, actor: str = "system: stock arrived") -> int:
    """Fill a right's backorders from stock, oldest payment first, batch by batch; return how many."""
    total = 0
    while has_backorders(right_id):
        filled, deliveries, more, completed = _fill_once(right_id, actor)
        total += filled
        _announce_fulfilled(completed)  # an order backordered at payment is announced when it is complete
        send_deliveries(deliveries)
        if not filled or not more:
            break
    if total:
        check_stock_alerts({right_id})
    return total


def has_backorders(right_id: int) -> bool:
    """Tell whether any grant of the right waits for stock (a read: no write lock is taken)."""
    found = db.session.scalar(
        select(Grant.id).where(Grant.right_id == right_id, Grant.status == "backordered").limit(1)
    )
    return found is not None


def backordered_rights() -> list[int]:
    """Return the rights that have backordered grants (for a manual "fill now")."""
    return list(db.session.scalars(select(Grant.right_id).where(Grant.status == "backordered").distinct()))

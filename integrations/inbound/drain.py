"""Drain the channel inbox in batches: claim hundreds of deliveries with one statement, apply them in one
transaction with set-based statements, and send their side effects with one job per batch.

A batch is claimed with one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)` (PostgreSQL: several
worker processes each take a different batch; SQLite: one writer at a time). Its deliveries are then
sorted in two:

- **batched**: a payment of a new order (one `OrderPaid`, no subscription, nothing else in the batch or
  waiting about the same order, no order of that id yet): parsed and mapped with the channel's SKU mapping
  read once per drain, then created, assessed and fulfilled together by `orders.services.PaidOrderBatch`
  (customers per batch, orders/lines/grants/events/audit rows per table, keys per right with one
  `SKIP LOCKED` statement), their inbox rows settled in the same transaction. A delivery held while
  mapping (unknown SKU, a price beyond the tolerance, a refused plan) or invalid is settled in it too;
- **alone**: everything else (refunds, cancellations, repeats, subscriptions, payments of orders created
  first through the API), in the order received, through `inbox.process_claimed`, one transaction each.

If the batch's transaction fails (an order or channel customer created meanwhile by another worker, a
database error), it is rolled back whole and each of its deliveries is processed alone, where it ends as it
would have (processed, held, retried, dead): one bad order never blocks the others, and a worker killed
mid-batch leaves nothing half done (the claim's lease lapses and the next drain takes the rows again).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from catalog.models import Plan
from integrations.adapters import adapter_for
from integrations.adapters.base import InvalidDelivery, OrderPaid
from integrations.channels import plan_for_ref
from integrations.inbound import inbox
from integrations.models import Channel, InboxDelivery
from orders import services as order_services
from orders.events import OrderError
from orders.models import Order
from saas.extensions import db, immediate_transaction
from saas.timeutil import utcnow
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # deliveries per batch: one transaction, a few dozen statements


@dataclass
class Claimed:
    """A delivery this drain claimed (status `processing`, leased), with what applying it needs."""

    id: int
    channel_id: int
    topic: str
    headers: dict[str, Any]
    body: bytes
    external_order_id: str
    attempts: int
    received_at: dt.datetime


@dataclass
class Sorted:
    """A batch sorted into what is applied together, settled at once, or processed alone."""

    batched: list[tuple[Claimed, order_services.OrderRequest]] = field(default_factory=list)
    settled: list[tuple[Claimed, inbox.Outcome]] = field(default_factory=list)
    alone: list[Claimed] = field(default_factory=list)


class DrainCache:
    """What does not change during a drain: channels and their SKU mapping, read once."""

    def __init__(self) -> None:
        self.channels: dict[int, Channel] = {}
        self.plans: dict[tuple[int, str, str], Plan | None] = {}

    def channel(self, channel_id: int) -> Channel | None:
        if channel_id not in self.channels:
            found = db.session.get(Channel, (current_tenant_id(), channel_id))
            if found is None:
                return None
            self.channels[channel_id] = found
        return self.channels[channel_id]

    def plan_for_ref(self, channel_id: int, kind: str, value: str) -> Plan | None:
        key = (channel_id, kind, value)
        if key not in self.plans:
            self.plans[key] = plan_for_ref(channel_id, kind, value)
        return self.plans[key]


# ---------------------------------------------------------------- claiming


def claim_batch(limit: int, now: dt.datetime) -> list[Claimed]:
    """Claim up to `limit` due deliveries of the bound tenant, oldest first, with one statement; commits.

    Due: pending, failed and due for a retry, or processing with a lapsed lease (a worker died). On
    PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so concurrent drains take different rows.
    """
    due = or_(
        InboxDelivery.status == "pending",
        (InboxDelivery.status == "failed") & (InboxDelivery.next_attempt_at <= now),
        (InboxDelivery.status == "processing") & (InboxDelivery.lease_until < now),
    )
    pick = (
        select(InboxDelivery.tenant_id, InboxDelivery.id)
        .where(due)
        .order_by(InboxDelivery.received_at, InboxDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("pick")
    )
    with immediate_transaction(db.session()):
        rows = db.session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.tenant_id == pick.c.tenant_id, InboxDelivery.id == pick.c.id)
            .values(status="processing", lease_until=now + inbox.LEASE, attempts=InboxDelivery.attempts + 1)
            .returning(
                InboxDelivery.id,
                InboxDelivery.channel_id,
                InboxDelivery.topic,
                InboxDelivery.headers,
                InboxDelivery.body,
                InboxDelivery.external_order_id,
                InboxDelivery.attempts,
                InboxDelivery.received_at,
            )
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
    claimed = [
        Claimed(r[0], r[1], r[2] or "", r[3] or {}, bytes(r[4]), r[5] or "", int(r[6]), r[7]) for r in rows
    ]
    return sorted(claimed, key=lambda c: (c.received_at, c.id))


# ---------------------------------------------------------------- sorting


def _paid_event(cache: DrainCache, row: Claimed) -> tuple[Channel, OrderPaid] | None:
    """Return the channel and the payment of a delivery that is one payment of a new order, else None.

    InvalidDelivery propagates (the delivery is settled invalid).
    """
    channel = cache.channel(row.channel_id)
    if channel is None:
        return None
    adapter = adapter_for(channel.kind)
    if adapter.credential_fields:  # a payment platform pays orders created first through the API
        return None
    events = adapter.parse(row.topic, row.headers, adapter.contents(row.body, []))
    if len(events) != 1 or not isinstance(events[0], OrderPaid) or events[0].subscription_id:
        return None
    return channel, events[0]


def map_lines(cache: DrainCache, channel: Channel, event: OrderPaid) -> list[inbox.MappedLine]:
    """Map a payment's lines to plans with the drain's SKU mapping (as `inbox.map_lines`); Hold if not."""
    mapped = []
    for line in event.lines:
        found = next(
            (
                (plan, value)
                for kind, value in line.refs
                if (plan := cache.plan_for_ref(channel.id, kind, value))
            ),
            None,
        )
        if found is None:
            return inbox.map_lines(channel, event)  # raises the Hold that names the unknown SKU
        plan, ref = found
        inbox.check_price(channel, event.currency, line, plan)
        mapped.append(inbox.MappedLine(line, plan, ref))
    return mapped


def sort_batch(cache: DrainCache, batch: order_services.PaidOrderBatch, rows: list[Claimed]) -> Sorted:
    """Sort claimed deliveries into batched payments, deliveries settled now, and those to process alone."""
    result = Sorted()
    payments: list[tuple[Claimed, Channel, OrderPaid]] = []
    for row in rows:
        try:
            found = _paid_event(cache, row)
        except InvalidDelivery as error:
            result.settled.append((row, inbox.Outcome("invalid", [str(error)])))
            continue
        except Exception:  # anything odd is the per-delivery path's to report
            log.exception("sorting inbox delivery %s failed; it is processed alone", row.id)
            found = None
        if found is None:
            result.alone.append(row)
        else:
            payments.append((row, *found))
    paid_ids = {row.id: event.external_id for row, _c, event in payments}
    mentions = Counter(
        (row.channel_id, paid_ids.get(row.id, row.external_order_id))
        for row in rows
        if paid_ids.get(row.id, row.external_order_id)
    )
    taken = _orders_known(payments) | _waiting(payments)
    for row, channel, event in payments:
        key = (channel.id, event.external_id)
        if mentions[key] > 1 or key in taken:
            result.alone.append(row)  # its order has other deliveries, an order, or waiting ones
            continue
        try:
            lines = map_lines(cache, channel, event)
            request = inbox.order_request(channel, event, lines, paid=True)
            batch.add(request, batch.price(request))
        except inbox.Hold as hold:
            result.settled.append((row, inbox.Outcome("held", [str(hold)])))
            continue
        except OrderError as error:
            result.settled.append((row, inbox.Outcome("held", [str(error)])))
            continue
        result.batched.append((row, request))
    result.alone.sort(key=lambda c: (c.received_at, c.id))
    return result


def _orders_known(payments: list[tuple[Claimed, Channel, OrderPaid]]) -> set[tuple[int, str]]:
    """Return (channel id, external id) of the payments whose order exists already: one query."""
    if not payments:
        return set()
    by_public = {channel.public_id: channel.id for _row, channel, _event in payments}
    found = db.session.execute(
        select(Order.channel, Order.external_id).where(
            Order.external_id.in_(sorted({event.external_id for _r, _c, event in payments})),
            Order.channel.in_(sorted(by_public)),
        )
    )
    return {(by_public[channel], external_id) for channel, external_id in found}


def _waiting(payments: list[tuple[Claimed, Channel, OrderPaid]]) -> set[tuple[int, str]]:
    """Return (channel id, external id) of the payments whose order has waiting deliveries: one query."""
    if not payments:
        return set()
    found = db.session.execute(
        select(InboxDelivery.channel_id, InboxDelivery.external_order_id).where(
            InboxDelivery.status == "waiting",
            InboxDelivery.external_order_id.in_(sorted({event.external_id for _r, _c, event in payments})),
        )
    )
    return {(channel_id, external_id or "") for channel_id, external_id in found}


# ---------------------------------------------------------------- applying


def drain_batch(cache: DrainCache | None = None, *, limit: int = BATCH_SIZE) -> int:
    """Claim and apply one batch of the bound tenant's due deliveries; return how many were claimed."""
    rows = claim_batch(limit, utcnow())
    if not rows:
        return 0
    cache = cache or DrainCache()
    batch = order_services.PaidOrderBatch()
    try:
        plan = sort_batch(cache, batch, rows)
        db.session.commit()  # end the reads (and any tenant key created for code rights) before writing
    except Exception:
        db.session.rollback()
        log.exception("sorting a batch of %d inbox deliveries failed; each is processed alone", len(rows))
        plan = Sorted(alone=rows)
    alone = plan.alone
    if plan.batched or plan.settled:
        try:
            _write(batch, plan)
        except Exception:
            db.session.rollback()
            cache.channels.clear()
            log.exception("a batch of %d inbox deliveries failed; each is processed alone", len(rows))
            alone = rows
        else:
            batch.after_commit()
    for row in alone:
        try:
            inbox.process_claimed(row.id)
        except Exception:  # process_claimed settles its own failures; this is a database outage
            db.session.rollback()
            log.exception("processing inbox delivery %s alone failed", row.id)
    return len(rows)


def _write(batch: order_services.PaidOrderBatch, plan: Sorted) -> None:
    """Create the batch's orders and settle its rows in one transaction; commits."""
    with immediate_transaction(db.session()):
        outcomes = batch.write() if plan.batched else []
        settled = list(plan.settled)
        for (row, _request), outcome in zip(plan.batched, outcomes, strict=True):
            order = outcome.order
            settled.append(
                (
                    row,
                    inbox.Outcome(
                        "processed",
                        [_("order %(id)s is %(status)s", id=order.external_id, status=order.status)],
                        order.id,
                    ),
                )
            )
        _settle_rows(settled)
        db.session.commit()


def _settle_rows(settled: list[tuple[Claimed, inbox.Outcome]]) -> None:
    """Write the rows' outcomes with one executemany UPDATE by primary key (two: with and without order)."""
    tenant_id = current_tenant_id()
    with_order = [
        {"tenant_id": tenant_id, "id": row.id, **inbox.finished_values(outcome)}
        for row, outcome in settled
        if outcome.order_id is not None
    ]
    without = [
        {"tenant_id": tenant_id, "id": row.id, **inbox.finished_values(outcome)}
        for row, outcome in settled
        if outcome.order_id is None
    ]
    for values in (with_order, without):
        if values:
            db.session.execute(update(InboxDelivery), values)

"""Process inbox deliveries exactly once: parse with the channel's adapter, apply through the orders layer.

A job claims a row (a conditional UPDATE with a lease), so two workers never process it at once; the
orders layer is idempotent per (channel, external order id) and per refund id, so a crash between two
steps is repaired by running again. Outcomes:

- processed / ignored: done;
- waiting: a cancellation or refund for an order not seen yet, applied when the order arrives;
- held: needs a person (unknown SKU, a price beyond the tolerance, a blocked customer) — fix, then replay;
- failed → retried with backoff (30 s, 2 min, 10 min, 1 h, 6 h) → dead: the dead-letter list, with replay;
- skipped: an event this build cannot act on yet (subscriptions), kept for replay.
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from catalog.models import Plan
from integrations.adapters import adapter_for
from integrations.adapters.base import (
    Event,
    ExternalLine,
    Ignored,
    InvalidDelivery,
    OrderCancelled,
    OrderPaid,
    RefundReported,
    SubscriptionChanged,
)
from integrations.channels import plan_for_ref
from integrations.inbound.store import enqueue_processing
from integrations.inbound.targets import stored_secrets
from integrations.models import REPLAYABLE_STATUSES, Channel, InboxDelivery
from orders import refunds as order_refunds
from orders import services as order_services
from orders.events import OrderError
from orders.models import Order
from orders.subscriptions import cancellation
from orders.subscriptions import services as subscription_services
from saas import money
from saas.extensions import db
from saas.labels import label
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id, tenant_bound

log = logging.getLogger(__name__)

RETRY_SCHEDULE = (30, 120, 600, 3600, 6 * 3600)  # seconds after each failed attempt; then dead
LEASE = dt.timedelta(minutes=5)
SWEEP_BATCH = 500
# A pending row younger than this is left to the job enqueued when it arrived.
PENDING_GRACE = dt.timedelta(seconds=30)


class Hold(Exception):
    """Processing stops until a person fixes something and replays the delivery."""


@dataclass
class Outcome:
    """What applying a delivery's events came to."""

    status: str = "processed"
    notes: list[str] = field(default_factory=list)
    order_id: int | None = None
    wake: list[int] = field(default_factory=list)  # waiting deliveries to process now


# ---------------------------------------------------------------- claiming


def claim(delivery_id: int, now: dt.datetime) -> bool:
    """Take a delivery for processing unless another job holds it or it is finished; commits."""
    claimed = db.session.execute(
        update(InboxDelivery)
        .where(
            InboxDelivery.id == delivery_id,
            or_(
                InboxDelivery.status.in_(("pending", "failed")),
                (InboxDelivery.status == "processing") & (InboxDelivery.lease_until < now),
            ),
        )
        .values(status="processing", lease_until=now + LEASE, attempts=InboxDelivery.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    db.session.commit()
    return bool(claimed)


def finished_values(outcome: Outcome) -> dict[str, Any]:
    """Return the columns of a delivery settled with this outcome."""
    values: dict[str, Any] = {
        "status": outcome.status,
        "note": "; ".join(outcome.notes)[:2000],
        "lease_until": None,
        "next_attempt_at": None,
        "last_error": None,
        "processed_at": utcnow(),
    }
    if outcome.order_id is not None:
        values["order_id"] = outcome.order_id
    return values


def _finish(delivery_id: int, outcome: Outcome) -> None:
    db.session.execute(
        update(InboxDelivery)
        .where(InboxDelivery.id == delivery_id)
        .values(**finished_values(outcome))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def fail(delivery_id: int, attempts: int, error: BaseException) -> str:
    """Schedule the next attempt after a failure, or declare the delivery dead; commits."""
    now = utcnow()
    dead = attempts > len(RETRY_SCHEDULE)
    status = "dead" if dead else "failed"
    db.session.execute(
        update(InboxDelivery)
        .where(InboxDelivery.id == delivery_id)
        .values(
            status=status,
            lease_until=None,
            last_error=f"{type(error).__name__}: {error}"[:2000],
            next_attempt_at=None if dead else now + dt.timedelta(seconds=RETRY_SCHEDULE[attempts - 1]),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return status


# ---------------------------------------------------------------- processing


def process_delivery(delivery_id: int) -> str:
    """Process one stored delivery of the bound tenant, if nobody else is; return its status afterwards."""
    now = utcnow()
    if not claim(delivery_id, now):
        status = db.session.scalar(select(InboxDelivery.status).where(InboxDelivery.id == delivery_id))
        return status or "unknown"
    return process_claimed(delivery_id)


def process_claimed(delivery_id: int) -> str:
    """Process one delivery this caller has claimed (status `processing`), alone; return its status."""
    row = db.session.get(InboxDelivery, (current_tenant_id(), delivery_id), populate_existing=True)
    assert row is not None
    channel = db.session.get(Channel, (row.tenant_id, row.channel_id))
    assert channel is not None
    attempts = row.attempts
    try:
        outcome = apply_delivery(channel, row)
    except Hold as hold:
        db.session.rollback()
        outcome = Outcome("held", [str(hold)])
    except InvalidDelivery as error:
        db.session.rollback()
        outcome = Outcome("invalid", [str(error)])
    except Exception as error:
        db.session.rollback()
        log.exception("processing inbox delivery %s failed (attempt %d)", delivery_id, attempts)
        return fail(delivery_id, attempts, error)
    _finish(delivery_id, outcome)
    _after(outcome)
    return outcome.status


def _after(outcome: Outcome) -> None:
    """After the row is settled: process the deliveries that waited for its order.

    Nothing is announced here: the orders layer announces orders and subscriptions (`saas.events`), once
    each, when they happen (an order when it is fulfilled, possibly later from a backorder).
    """
    for waiting_id in outcome.wake:
        db.session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == waiting_id, InboxDelivery.status == "waiting")
            .values(status="pending", attempts=0)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        enqueue_processing(current_tenant_id(), waiting_id)


def apply_delivery(channel: Channel, row: InboxDelivery) -> Outcome:
    """Parse a delivery and apply each of its events; Hold, InvalidDelivery or any error stops it."""
    adapter = adapter_for(channel.kind)
    payload = adapter.contents(bytes(row.body), stored_secrets(channel) if adapter.credential_fields else [])
    events = adapter.parse(row.topic, row.headers or {}, payload)
    outcome = Outcome()
    for event in events:
        _apply(channel, row, event, outcome)
    if not outcome.notes:
        outcome.notes.append(_("done"))
    return outcome


def _apply(channel: Channel, row: InboxDelivery, event: Event, outcome: Outcome) -> None:
    if isinstance(event, OrderPaid):
        _order_paid(channel, row, event, outcome)
    elif isinstance(event, OrderCancelled):
        _order_cancelled(channel, event, outcome)
    elif isinstance(event, RefundReported):
        _refund(channel, event, outcome)
    elif isinstance(event, SubscriptionChanged):
        _subscription(channel, event, outcome)
    elif isinstance(event, Ignored):
        if outcome.status == "processed" and not outcome.order_id:
            outcome.status = "ignored"
        outcome.notes.append(event.reason)


def _escalate(outcome: Outcome, status: str) -> None:
    """Keep the most telling status of several events (waiting/skipped over processed/ignored)."""
    rank = {"ignored": 0, "processed": 1, "waiting": 2, "skipped": 3}
    if rank.get(status, 0) >= rank.get(outcome.status, 0):
        outcome.status = status


# ---------------------------------------------------------------- orders


@dataclass
class MappedLine:
    """An external line resolved to a plan."""

    line: ExternalLine
    plan: Plan
    ref: str


def map_lines(channel: Channel, event: OrderPaid) -> list[MappedLine]:
    """Resolve each line to a plan through the channel's SKU mapping; Hold on an unknown SKU or price."""
    mapped = []
    for line in event.lines:
        plan = ref = None
        for kind, value in line.refs:
            plan = plan_for_ref(channel.id, kind, value)
            if plan is not None:
                ref = value
                break
        if plan is None:
            described = ", ".join(f"{label('ref_kind', kind)} {value}" for kind, value in line.refs) or _(
                "no SKU, variant or price"
            )
            raise Hold(
                _("Unknown SKU: no plan is mapped to %(refs)s (%(title)s).", refs=described, title=line.title)
                if line.title
                else _("Unknown SKU: no plan is mapped to %(refs)s.", refs=described)
            )
        check_price(channel, event.currency, line, plan)
        mapped.append(MappedLine(line, plan, ref or ""))
    return mapped


def price_tolerance(channel: Channel, price: int) -> int:
    """Return how far (minor units) a channel's price may be from the plan's: the percentage, at least 1."""
    return max(1, price * channel.price_tolerance_bp // 10_000)


def check_price(channel: Channel, currency: str, line: ExternalLine, plan: Plan) -> None:
    """Hold a line sold in another currency, or at a price beyond the channel's tolerance of the plan's."""
    if currency != plan.currency:
        raise Hold(
            _(
                "Currency mismatch: the channel sold in %(got)s, plan %(plan)s is priced in %(want)s.",
                got=currency,
                plan=plan.name,
                want=plan.currency,
            )
        )
    if line.unit_price is not None and abs(line.unit_price - plan.price) > price_tolerance(
        channel, plan.price
    ):
        raise Hold(
            _(
                "Amount mismatch: %(title)s sold at %(got)s, plan %(plan)s costs %(want)s.",
                title=line.title or plan.name,
                got=money.format_money(line.unit_price, currency),
                plan=plan.name,
                want=money.format_money(plan.price, plan.currency),
            )
        )


def _waiting_for_subscription(channel: Channel, subscription_id: str) -> list[int]:
    """Return the deliveries that waited for this subscription to be known (a renewal before the checkout)."""
    rows = db.session.execute(
        select(InboxDelivery.id, InboxDelivery.body).where(
            InboxDelivery.channel_id == channel.id, InboxDelivery.status == "waiting"
        )
    )
    return [row_id for row_id, body in rows if subscription_id.encode() in bytes(body)]


def _waiting(channel: Channel, external_id: str) -> list[tuple[InboxDelivery, list[Event]]]:
    # Sorted here, not in SQL: an ORDER BY received_at led PostgreSQL (on statistics-less tables) to walk the
    # channel's whole inbox by ix_webhook_inbox_channel, 36 ms per processed delivery at 20,000 rows.
    rows = db.session.scalars(
        select(InboxDelivery).where(
            InboxDelivery.channel_id == channel.id,
            InboxDelivery.external_order_id == external_id,
            InboxDelivery.status == "waiting",
        )
    ).all()
    adapter = adapter_for(channel.kind)
    secrets = stored_secrets(channel) if adapter.credential_fields and rows else []
    found = []
    for row in sorted(rows, key=lambda row: (row.received_at, row.id)):
        try:
            events = adapter.parse(row.topic, row.headers or {}, adapter.contents(bytes(row.body), secrets))
        except InvalidDelivery:
            continue
        found.append((row, events))
    return found


def order_request(channel: Channel, event: OrderPaid, lines: list[MappedLine], paid: bool) -> Any:
    customer = event.customer
    return order_services.OrderRequest(
        channel=channel.public_id,
        external_id=event.external_id,
        source="channel",
        customer=order_services.CustomerInfo(
            customer.email, customer.phone, customer.name, customer.external_id
        ),
        lines=[
            order_services.LineRequest(m.plan.id, m.line.quantity, m.line.unit_price, m.ref[:120])
            for m in lines
        ],
        placed_at=event.placed_at,
        paid=paid,
        payment_reference=event.payment_reference,
        actor=f"channel {channel.name}",
        client_ip=event.client_ip,
        device_id=event.device_id,
    )


def find_channel_order(channel: Channel, external_id: str) -> Order | None:
    """Return the order a channel's delivery is about.

    A payment platform (微信支付, 支付宝) pays orders the merchant's checkout created first through the API:
    under this channel's public id (what the setup page says), or its API id, its kind, or the API's
    default channel `api`, whichever the checkout used.
    """
    order = order_services.find_order(channel.public_id, external_id)
    if order is None and adapter_for(channel.kind).credential_fields:
        for alias in (str(channel.id), channel.kind, "api"):
            order = order_services.find_order(alias, external_id)
            if order is not None:
                break
    return order


def check_payment(channel: Channel, order: Order, event: OrderPaid) -> None:
    """Hold a payment of a pending order in another currency, or beyond the tolerance of its total."""
    if event.total is None:
        return
    if event.currency != order.currency or abs(event.total - order.total) > price_tolerance(
        channel, order.total
    ):
        raise Hold(
            _(
                "Amount mismatch: order %(id)s costs %(want)s %(currency)s, the payment is %(got)s "
                "%(paid_currency)s (minor units).",
                id=order.external_id,
                want=order.total,
                currency=order.currency,
                got=event.total,
                paid_currency=event.currency,
            )
        )


def _no_plan_named(event: OrderPaid) -> bool:
    return bool(event.lines) and all(not line.refs for line in event.lines)


def _order_paid(channel: Channel, row: InboxDelivery, event: OrderPaid, outcome: Outcome) -> None:
    actor = f"channel {channel.name}"  # the orders layer's commits expire the channel
    existing = find_channel_order(channel, event.external_id)
    # A pending order's refunds that overtook its payment wait too (a cancellation applied at once).
    early = existing is None or existing.status == "pending"
    waiting = _waiting(channel, event.external_id) if early else []
    cancelled_first = any(isinstance(e, OrderCancelled) for _row, events in waiting for e in events)
    if existing is not None and existing.status == "pending" and not cancelled_first:
        check_payment(channel, existing, event)
    if existing is None:
        if _no_plan_named(event) and adapter_for(channel.kind).credential_fields:
            raise Hold(
                _(
                    "No order %(id)s was created first (unpaid, through the API), and the payment names "
                    "no SKU: create the order or map the SKU, then replay.",
                    id=event.external_id,
                )
            )
        lines = map_lines(channel, event)
        request = order_request(channel, event, lines, paid=not cancelled_first)
    else:
        request = None
    try:
        if request is not None:
            result = order_services.create_order(request)
        else:
            assert existing is not None
            result = order_services.OrderOutcome(existing, False)
            if existing.status == "pending" and not cancelled_first:
                result.fulfilment = order_services.mark_paid(
                    existing.id, reference=event.payment_reference, actor=actor
                )
        if cancelled_first and result.order.status == "pending":
            order_services.cancel_order(
                result.order.id, reason=_("cancelled on the channel before the payment arrived"), actor=actor
            )
    except OrderError as error:
        raise Hold(str(error)) from error
    order = result.order  # as committed: the orders layer reloads it, or its commit expired it
    outcome.order_id = order.id
    _escalate(outcome, "processed")
    outcome.notes.append(_("order %(id)s is %(status)s", id=order.external_id, status=order.status))
    if event.subscription_id and order.status not in ("pending", "held", "cancelled"):
        _start_subscriptions(channel, order.id, event.subscription_id)
        outcome.wake.extend(_waiting_for_subscription(channel, event.subscription_id))
    outcome.wake.extend(r.id for r, _events in waiting)


def _order_cancelled(channel: Channel, event: OrderCancelled, outcome: Outcome) -> None:
    order = find_channel_order(channel, event.external_id)
    if order is None:
        _escalate(outcome, "waiting")
        outcome.notes.append(
            _(
                "cancellation of order %(id)s, not seen yet: its payment will not be fulfilled",
                id=event.external_id,
            )
        )
        return
    outcome.order_id = order.id
    _escalate(outcome, "processed")
    if order.status == "pending":
        order_services.cancel_order(
            order.id, reason=event.reason or _("cancelled on the channel"), actor=f"channel {channel.name}"
        )
        outcome.notes.append(_("order %(id)s cancelled", id=event.external_id))
    elif order.status == "cancelled":
        outcome.notes.append(_("order %(id)s was cancelled already", id=event.external_id))
    else:
        outcome.notes.append(
            _(
                "order %(id)s is %(status)s: a paid order is undone by its refund",
                id=event.external_id,
                status=order.status,
            )
        )


def _refund(channel: Channel, event: RefundReported, outcome: Outcome) -> None:
    order = find_channel_order(channel, event.external_id)
    if order is None:
        _escalate(outcome, "waiting")
        outcome.notes.append(
            _(
                "refund %(refund)s for order %(id)s, which this channel never sent: kept until it does",
                refund=event.refund_id,
                id=event.external_id,
            )
        )
        return
    if order.status == "pending":
        _escalate(outcome, "waiting")
        outcome.notes.append(
            _(
                "refund %(refund)s for order %(id)s, not paid yet: kept until its payment arrives",
                refund=event.refund_id,
                id=event.external_id,
            )
        )
        return
    outcome.order_id = order.id
    _escalate(outcome, "processed")
    amount = event.amount
    if event.cumulative and amount is not None:
        amount -= order.refunded_amount
        if amount <= 0:
            outcome.notes.append(_("refund of order %(id)s recorded already", id=event.external_id))
            return
    if amount is not None:
        amount = min(amount, order.refundable_amount)
    try:
        order_refunds.refund_from_channel(
            order.id,
            amount=amount,
            reason=event.reason or _("refunded on the channel"),
            external_id=event.refund_id,
            channel=channel.public_id,
            # A partial refund gives money back and leaves the rights; the one that completes it revokes.
            revoke=amount is None or amount >= order.refundable_amount,
        )
    except OrderError as error:
        outcome.notes.append(
            _("refund %(refund)s not applied: %(why)s", refund=event.refund_id, why=str(error))
        )
        return
    outcome.notes.append(
        _("refund %(refund)s applied to order %(id)s", refund=event.refund_id, id=event.external_id)
    )


# ---------------------------------------------------------------- subscriptions


def _subscription(channel: Channel, event: SubscriptionChanged, outcome: Outcome) -> None:
    """Apply a subscription change (Stripe) through orders.subscriptions."""
    subscription = subscription_services.find_by_external_id(channel.public_id, event.subscription_id)
    if subscription is None:
        _escalate(outcome, "waiting")
        outcome.notes.append(_("subscription %(id)s is not known yet", id=event.subscription_id))
        return
    actor = f"channel {channel.name}"
    _escalate(outcome, "processed")
    try:
        if event.action == "renewed":
            # Announced by the orders layer, once per period: nothing to announce here.
            subscription_services.renew(
                subscription.id,
                paid_at=utcnow(),
                amount=int(event.amount or 0),
                currency=event.currency or subscription.currency,
                channel=channel.public_id,
                idempotency_key=f"{channel.public_id}:{event.reference or event.subscription_id}",
                order_external_id=event.reference,
                actor=actor,
            )
        elif event.action == "cancel_at_period_end":
            cancellation.cancel_at_period_end(subscription.id, source="channel", actor=actor)
        elif event.action == "resumed":
            cancellation.undo_cancel(subscription.id, source="channel", actor=actor)
        elif event.action == "cancel_now":
            cancellation.cancel_now(subscription.id, source="channel", actor=actor, apply_refund_policy=False)
    except subscription_services.SubscriptionError as error:
        outcome.notes.append(_("subscription %(id)s: %(why)s", id=event.subscription_id, why=str(error)))
        return
    outcome.notes.append(_("subscription %(id)s: %(action)s", id=event.subscription_id, action=event.action))


def _start_subscriptions(channel: Channel, order_id: int, external_subscription_id: str) -> None:
    """Start the subscription of a paid subscription checkout and remember the channel's id for it."""
    started = subscription_services.start_subscription_for_order(order_id)
    for subscription in started[:1]:
        if subscription.external_id != external_subscription_id:
            subscription_services.set_external_id(
                subscription.id, channel.public_id, external_subscription_id
            )


# ---------------------------------------------------------------- replay and the sweep


def replay(row: InboxDelivery, *, reason: str = "") -> bool:
    """Process a held, failed, dead, skipped, waiting or invalid delivery again (audited); commits."""
    if row.status not in REPLAYABLE_STATUSES:
        return False
    delivery_id, channel_id, before = row.id, row.channel_id, row.status
    if before == "invalid":
        channel = db.session.get(Channel, (row.tenant_id, channel_id))
        assert channel is not None
        adapter = adapter_for(channel.kind)
        try:
            envelope = adapter.describe_with(row.headers or {}, bytes(row.body), stored_secrets(channel))
        except InvalidDelivery as error:
            row.note = str(error)[:2000]
            db.session.commit()
            return False
        row.topic, row.external_order_id = envelope.topic, envelope.external_order_id
    row.status, row.attempts, row.next_attempt_at, row.lease_until = "pending", 0, None, None
    audit.record(
        "webhook.replayed",
        "inbox_delivery",
        delivery_id,
        reason=reason or None,
        was=before,
        channel_id=str(channel_id),
    )
    db.session.commit()
    enqueue_processing(current_tenant_id(), delivery_id)
    return True


def replay_held(channel: Channel) -> int:
    """Replay every held delivery of a channel (after fixing its mapping); return how many."""
    rows = list(
        db.session.scalars(
            select(InboxDelivery)
            .where(InboxDelivery.channel_id == channel.id, InboxDelivery.status == "held")
            .order_by(InboxDelivery.received_at)
        )
    )
    return sum(1 for row in rows if replay(row, reason="replay all held"))


def due_deliveries(
    now: dt.datetime, limit: int = SWEEP_BATCH, *, fresh: bool = False
) -> list[tuple[int, str]]:
    """Return (id, external order id) of the bound tenant's deliveries to process now, oldest first.

    Pending rows younger than PENDING_GRACE are left to the drain their arrival started, unless `fresh`.
    """
    received_by = now if fresh else now - PENDING_GRACE
    rows = db.session.execute(
        select(InboxDelivery.id, InboxDelivery.external_order_id)
        .where(
            or_(
                (InboxDelivery.status == "pending") & (InboxDelivery.received_at <= received_by),
                (InboxDelivery.status == "failed") & (InboxDelivery.next_attempt_at <= now),
                (InboxDelivery.status == "processing") & (InboxDelivery.lease_until < now),
            )
        )
        .order_by(InboxDelivery.received_at)
        .limit(limit)
    )
    return [(row.id, row.external_order_id or "") for row in rows]


def process_due(now: dt.datetime | None = None, *, include_fresh: bool = False, lanes: int = 1) -> int:
    """Process the bound tenant's pending, stale and due-for-retry deliveries; return how many.

    With `lanes` > 1 they are processed by that many threads, each delivery of one order in the same lane,
    in the order received (a refund never overtakes its order's payment).
    """
    due = due_deliveries(now or utcnow(), fresh=include_fresh)
    db.session.commit()
    if lanes <= 1 or len(due) <= 1:
        for delivery_id, _order in due:
            process_delivery(delivery_id)
    else:
        _process_in_lanes(due, lanes)
    return len(due)


def _process_in_lanes(due: list[tuple[int, str]], lanes: int) -> None:
    """Process deliveries in `lanes` threads, partitioned by external order id; re-raise the first error."""
    by_lane: list[list[int]] = [[] for _ in range(lanes)]
    for delivery_id, external_order_id in due:
        by_lane[zlib.crc32(external_order_id.encode()) % lanes].append(delivery_id)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    tenant_id = current_tenant_id()

    def run_lane(ids: list[int]) -> None:
        with app.app_context(), tenant_bound(tenant_id):
            for delivery_id in ids:
                process_delivery(delivery_id)

    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="quanyi-inbox") as pool:
        for done in [pool.submit(run_lane, ids) for ids in by_lane if ids]:
            done.result()

"""Subscription use cases: start one from a paid order, renew it, let it lapse, find it, list it.

The entry points other packages call (integrations, the orders payment path, the API) are here and in
`orders.subscriptions.cancellation`:

- `start_subscription_for_order(order_id)`: after an order's payment is recorded; idempotent.
- `renew(subscription_id, *, paid_at, amount, currency, channel, idempotency_key, order_id=None, ...)`.
- `find_by_external_id(channel, external_subscription_id)` and `set_external_id(...)`.
- `advance_lifecycles(now)`: the periodic job's body (past due, expired, cancellations taking effect).

Every function works inside the bound tenant and commits its own transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import Select, and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from catalog.models import Plan
from orders.customers import surviving
from orders.events import OrderError, actor_label
from orders.models import Customer, CustomerExternalId, Grant, Order, OrderLine
from orders.services import CustomerInfo, LineRequest, OrderRequest, create_order
from orders.subscriptions.models import (
    LIVE_STATUSES,
    Subscription,
    SubscriptionCancellation,
    SubscriptionPeriod,
    SubscriptionRenewal,
)
from orders.subscriptions.periods import Cadence, days_between, period_bounds, shift_days
from orders.subscriptions.policy import policy_for
from saas.events import publish
from saas.extensions import db, immediate_transaction, is_postgres
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)

PAID_ORDER_STATUSES = ("paid", "fulfilling", "fulfilled", "partially_fulfilled", "backordered")
ORDER_SOURCE_OF_CHANNEL = {"manual": "manual", "api": "api", "demo": "demo", "csv": "csv"}


class SubscriptionError(ValueError):
    """A user-facing refusal of a subscription action (validation failed, wrong state)."""


class AlreadyRenewed(SubscriptionError):
    """The next period is already paid for: a second renewal for it is refused."""


@dataclass
class RenewalOutcome:
    """The renewal, and whether this call recorded it (False: a repeated payment notification)."""

    renewal: SubscriptionRenewal
    created: bool


# ---------------------------------------------------------------- reading


def get_subscription(subscription_id: int) -> Subscription | None:
    """Return one of the bound tenant's subscriptions."""
    return db.session.get(Subscription, (current_tenant_id(), subscription_id))


def find_by_external_id(channel: str, external_subscription_id: str) -> Subscription | None:
    """Return the subscription a channel knows by its own id (e.g. Stripe `sub_…`)."""
    return db.session.scalar(
        select(Subscription).where(
            Subscription.channel == channel, Subscription.external_id == external_subscription_id
        )
    )


def subscriptions_of_order(order_id: int) -> list[Subscription]:
    """Return the subscriptions an order started."""
    return list(
        db.session.scalars(
            select(Subscription).where(Subscription.order_id == order_id).order_by(Subscription.id)
        )
    )


def subscriptions_query(
    *,
    status: str = "",
    plan_id: int | None = None,
    channel: str = "",
    renewing_within_days: int | None = None,
    customer_id: int | None = None,
    now: dt.datetime | None = None,
) -> Select[tuple[Subscription]]:
    """Return the select of subscriptions matching the list filters (not ordered)."""
    statement = select(Subscription)
    if status:
        statement = statement.where(Subscription.status == status)
    if plan_id is not None:
        statement = statement.where(Subscription.plan_id == plan_id)
    if channel:
        statement = statement.where(Subscription.channel == channel)
    if customer_id is not None:
        statement = statement.where(Subscription.customer_id == customer_id)
    if renewing_within_days is not None:
        moment = now or utcnow()
        statement = statement.where(
            Subscription.status == "active",
            Subscription.auto_renew.is_(True),
            Subscription.current_period_end > moment,
            Subscription.current_period_end <= moment + dt.timedelta(days=renewing_within_days),
        )
    return statement


def channels_in_use() -> list[str]:
    """Return the channels the tenant's subscriptions came from (for the list filter)."""
    return list(db.session.scalars(select(Subscription.channel).distinct().order_by(Subscription.channel)))


def periods_of(subscription_id: int) -> list[SubscriptionPeriod]:
    """Return a subscription's periods, first first."""
    return list(
        db.session.scalars(
            select(SubscriptionPeriod)
            .where(SubscriptionPeriod.subscription_id == subscription_id)
            .order_by(SubscriptionPeriod.number)
        )
    )


def renewals_of(subscription_id: int) -> list[SubscriptionRenewal]:
    """Return a subscription's renewals, oldest first."""
    return list(
        db.session.scalars(
            select(SubscriptionRenewal)
            .where(SubscriptionRenewal.subscription_id == subscription_id)
            .order_by(SubscriptionRenewal.period_number)
        )
    )


def period_grants(period: SubscriptionPeriod) -> list[Grant]:
    """Return the grants that are a period's rights (its order line's grants)."""
    if period.order_id is None:
        return []
    statement = select(Grant).where(Grant.order_id == period.order_id)
    if period.order_line_id is not None:
        statement = statement.where(Grant.order_line_id == period.order_line_id)
    return list(db.session.scalars(statement.order_by(Grant.unit_index, Grant.item_index)))


def customer_of(subscription: Subscription) -> Customer | None:
    """Return the subscription's customer (following merges)."""
    if subscription.customer_id is None:
        return None
    customer = db.session.get(Customer, (subscription.tenant_id, subscription.customer_id))
    return surviving(customer) if customer is not None else None


def cadence_of(subscription: Subscription) -> Cadence:
    """Return how long one of the subscription's periods is."""
    return Cadence.of(subscription.period_unit, subscription.period_days)


def grace_end(subscription: Subscription) -> dt.datetime:
    """Return when an unrenewed subscription expires: the period end plus the plan's grace days."""
    grace = policy_for(subscription.plan_id, subscription.period_unit).grace_days
    return shift_days(subscription.current_period_end, subscription.time_zone, grace)


def locked_subscription(subscription_id: int) -> Subscription:
    """Return the subscription re-read and, on PostgreSQL, locked for this transaction."""
    statement = (
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .execution_options(populate_existing=True)
    )
    if is_postgres():
        statement = statement.with_for_update()
    subscription = db.session.scalar(statement)
    if subscription is None:
        raise SubscriptionError(_("Unknown subscription."))
    return subscription


# ---------------------------------------------------------------- starting


def _is_renewal_order(order: Order) -> bool:
    """Tell whether an order pays a renewal (those never start a subscription of their own)."""
    by_period = exists().where(
        SubscriptionPeriod.tenant_id == order.tenant_id, SubscriptionPeriod.order_id == order.id
    )
    by_renewal = exists().where(
        SubscriptionRenewal.tenant_id == order.tenant_id,
        or_(
            SubscriptionRenewal.order_id == order.id,
            and_(
                SubscriptionRenewal.order_channel == order.channel,
                SubscriptionRenewal.order_external_id == order.external_id,
            ),
        ),
    )
    return bool(db.session.scalar(select(or_(by_period, by_renewal))))


def _renewable_lines(order: Order) -> list[OrderLine]:
    lines = db.session.scalars(
        select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position, OrderLine.id)
    )
    return [
        line
        for line in lines
        if (line.snapshot or {}).get("plan", {}).get("renewable") and line.plan_id is not None
    ]


def _new_subscription(order: Order, line: OrderLine, zone: str) -> Subscription:
    plan = line.snapshot["plan"]
    unit = str(plan["period_unit"])
    period_days = int(plan.get("period_days") or 0) if unit == "days" else None
    anchor = order.paid_at or utcnow()
    start, end = period_bounds(anchor, zone, Cadence.of(unit, period_days), 0)
    subscription = Subscription(
        customer_id=order.customer_id,
        order_id=order.id,
        order_line_id=line.id,
        plan_id=line.plan_id,
        plan_name=str(plan.get("name", line.title))[:240],
        bundle_name=str(line.snapshot.get("bundle", {}).get("name", ""))[:120],
        period_unit=unit,
        period_days=period_days,
        quantity=line.quantity,
        price=line.total,
        currency=line.currency,
        channel=order.channel,
        status="active",
        auto_renew=True,
        time_zone=zone,
        anchor_at=anchor,
        anchor_period=1,
        current_period_number=1,
        current_period_start=start,
        current_period_end=end,
        started_at=anchor,
    )
    db.session.add(subscription)
    db.session.add(
        SubscriptionPeriod(
            subscription_id=subscription.id,
            number=1,
            kind="initial",
            starts_at=start,
            ends_at=end,
            amount=line.total,
            currency=line.currency,
            order_id=order.id,
            order_line_id=line.id,
        )
    )
    audit.record(
        "subscription.started",
        "subscription",
        subscription.id,
        order_id=str(order.id),
        plan=subscription.plan_name,
        channel=order.channel,
        period_end=end.isoformat(),
    )
    return subscription


def start_subscription_for_order(order_id: int) -> list[Subscription]:
    """Start a subscription for each renewable line of a paid order; return the order's subscriptions.

    Idempotent: a line that has a subscription gets no second one, and an order that pays a renewal starts
    nothing. An unpaid, cancelled or refunded order starts nothing.
    """
    order = db.session.get(Order, (current_tenant_id(), order_id))
    if order is None:
        raise SubscriptionError(_("Unknown order."))
    if order.status not in PAID_ORDER_STATUSES or _is_renewal_order(order):
        return subscriptions_of_order(order_id)
    have = {s.order_line_id for s in subscriptions_of_order(order_id)}
    missing = [line for line in _renewable_lines(order) if line.id not in have]
    if not missing:
        return subscriptions_of_order(order_id)
    tenant = db.session.get(Tenant, order.tenant_id)
    zone = tenant.time_zone if tenant is not None else "Asia/Shanghai"
    with immediate_transaction(db.session()):
        have = {s.order_line_id for s in subscriptions_of_order(order_id)}
        for line in missing:
            if line.id in have:
                continue
            try:
                _new_subscription(order, line, zone)
            except ValueError:  # a plan whose period cannot renew (e.g. "days" without a number)
                log.warning("order %s line %s: renewable plan without a usable period", order.id, line.id)
        try:
            db.session.commit()
        except IntegrityError:  # a concurrent call started them first
            db.session.rollback()
    return subscriptions_of_order(order_id)


MISSING_SWEEP_DAYS = 7
MISSING_SWEEP_LIMIT = 500


def start_missing_subscriptions(now: dt.datetime | None = None) -> int:
    """Start the subscriptions of recently paid renewable orders that have none; return how many started.

    The safety net behind the payment hook (a crash between the payment's commit and the start, or a path
    that forgot to call it): the periodic lifecycle job runs it over the last week's paid orders.
    """
    now = now or utcnow()
    has_subscription = exists().where(
        Subscription.tenant_id == OrderLine.tenant_id, Subscription.order_line_id == OrderLine.id
    )
    rows = db.session.execute(
        select(OrderLine.order_id, OrderLine.snapshot)
        .join(Order, (Order.tenant_id == OrderLine.tenant_id) & (Order.id == OrderLine.order_id))
        .where(
            Order.status.in_(PAID_ORDER_STATUSES),
            Order.paid_at >= now - dt.timedelta(days=MISSING_SWEEP_DAYS),
            OrderLine.plan_id.is_not(None),
            ~has_subscription,
        )
        .order_by(Order.paid_at)
        .limit(MISSING_SWEEP_LIMIT)
    ).all()
    order_ids = sorted(
        {row.order_id for row in rows if (row.snapshot or {}).get("plan", {}).get("renewable")}
    )
    db.session.commit()
    started = 0
    for order_id in order_ids:
        before = len(subscriptions_of_order(order_id))
        started += len(start_subscription_for_order(order_id)) - before
    return started


def set_external_id(subscription_id: int, channel: str, external_subscription_id: str) -> Subscription:
    """Remember the channel's id of a subscription (so `find_by_external_id` finds it); commits."""
    subscription = get_subscription(subscription_id)
    if subscription is None:
        raise SubscriptionError(_("Unknown subscription."))
    if subscription.channel != channel:
        raise SubscriptionError(_("The subscription came from another channel."))
    subscription.external_id = external_subscription_id.strip()[:128] or None
    audit.record(
        "subscription.external_id_set",
        "subscription",
        subscription.id,
        channel=channel,
        external_id=subscription.external_id,
    )
    db.session.commit()
    return subscription


# ---------------------------------------------------------------- renewing


def _timing(days_from_due: int, reactivated: bool) -> str:
    if reactivated:
        return "after_expiry"
    if days_from_due < 0:
        return "early"
    return "on_time" if days_from_due == 0 else "late"


def _check_renewal(
    subscription: Subscription,
    *,
    amount: int,
    currency: str,
    channel: str,
    idempotency_key: str,
    paid_at: dt.datetime,
) -> None:
    if not idempotency_key.strip() or len(idempotency_key) > 200:
        raise SubscriptionError(_("A renewal needs an idempotency key (at most 200 characters)."))
    if not channel.strip() or len(channel) > 64:
        raise SubscriptionError(_("The channel is required (at most 64 characters)."))
    if amount < 0:
        raise SubscriptionError(_("Amounts cannot be negative."))
    if currency != subscription.currency:
        raise SubscriptionError(
            _("This subscription is paid in %(currency)s.", currency=subscription.currency)
        )
    if paid_at.tzinfo is None:
        raise SubscriptionError(_("The payment time needs a time zone."))
    if subscription.quantity > 1 and amount % subscription.quantity:
        raise SubscriptionError(
            _("The amount must divide evenly by the quantity (%(n)s).", n=subscription.quantity)
        )


def _renewal_by_key(idempotency_key: str) -> SubscriptionRenewal | None:
    return db.session.scalar(
        select(SubscriptionRenewal).where(SubscriptionRenewal.idempotency_key == idempotency_key)
    )


def _undo_pending_cancellation(subscription: Subscription, now: dt.datetime, by: str) -> None:
    pending = db.session.scalars(
        select(SubscriptionCancellation).where(
            SubscriptionCancellation.subscription_id == subscription.id,
            SubscriptionCancellation.kind == "at_period_end",
            SubscriptionCancellation.undone_at.is_(None),
            SubscriptionCancellation.effective_at > now,
        )
    )
    for cancellation in pending:
        cancellation.undone_at, cancellation.undone_by = now, by[:200]
    subscription.auto_renew = True
    subscription.cancel_requested_at = None


def _claim_period(
    subscription: Subscription,
    *,
    paid_at: dt.datetime,
    amount: int,
    currency: str,
    channel: str,
    idempotency_key: str,
    order_id: int | None,
    order_external_id: str,
    actor: str,
) -> SubscriptionRenewal:
    """Record the renewal and its period in the session, and move the subscription on."""
    now = utcnow()
    zone, due = subscription.time_zone, subscription.current_period_end
    reactivated = _reactivates(subscription, paid_at)
    if not reactivated and subscription.current_period_start > paid_at:
        raise AlreadyRenewed(
            _(
                "This subscription is already renewed up to %(date)s.",
                date=due.astimezone(dt.UTC).strftime("%Y-%m-%d"),
            )
        )
    number = subscription.current_period_number + 1
    if reactivated:  # a fresh start: the new period begins when paid, and later periods count from it
        subscription.anchor_at, subscription.anchor_period = paid_at, number
    start, end = renewal_bounds(subscription, paid_at)
    renewal = SubscriptionRenewal(
        subscription_id=subscription.id,
        period_number=number,
        idempotency_key=idempotency_key.strip(),
        channel=channel.strip(),
        plan_id=subscription.plan_id,
        plan_name=subscription.plan_name,
        period_unit=subscription.period_unit,
        amount=amount,
        currency=currency,
        paid_at=paid_at,
        due_at=due,
        days_from_due=days_between(due, paid_at, zone),
        seconds_from_due=int((paid_at - due).total_seconds()),
        timing="",
        status_before=subscription.status,
        reactivated=reactivated,
        period_start=start,
        period_end=end,
        order_id=order_id,
        order_channel=channel.strip(),
        order_external_id=order_external_id[:128],
        actor=actor,
        recorded_at=now,
    )
    renewal.timing = _timing(renewal.days_from_due, reactivated)
    db.session.add(renewal)
    db.session.add(
        SubscriptionPeriod(
            subscription_id=subscription.id,
            number=number,
            kind="reactivation" if reactivated else "renewal",
            starts_at=start,
            ends_at=end,
            amount=amount,
            currency=currency,
            order_id=order_id,
            renewal_id=renewal.id,
        )
    )
    if not subscription.auto_renew:
        _undo_pending_cancellation(subscription, now, f"renewal payment ({channel})")
    subscription.current_period_number, subscription.current_period_start = number, start
    subscription.current_period_end, subscription.status = end, "active"
    subscription.past_due_since, subscription.ended_at = None, None
    audit.record(
        "subscription.renewed",
        "subscription",
        subscription.id,
        period=number,
        channel=channel,
        amount=amount,
        currency=currency,
        paid_at=paid_at.isoformat(),
        timing=renewal.timing,
        days_from_due=renewal.days_from_due,
        reactivated=reactivated,
    )
    return renewal


def renew(
    subscription_id: int,
    *,
    paid_at: dt.datetime,
    amount: int,
    currency: str,
    channel: str,
    idempotency_key: str,
    order_id: int | None = None,
    order_external_id: str | None = None,
    actor: str | None = None,
) -> RenewalOutcome:
    """Record a renewal payment: one more period from the current period end, and its rights.

    Paid early or late within the grace days, the new period follows the current one (not today). Paid
    after the subscription expired or was cancelled, it is reactivated: the new period starts at the payment.
    A repeated idempotency key changes nothing and returns the first renewal; a second payment for a period
    already paid is refused (`AlreadyRenewed`).

    The rights come from an order: pass `order_id` of a paid order that is not a first purchase, or let this
    function create and pay one (channel `channel`, external id `order_external_id` — e.g. the channel's
    invoice id — default `RENEWAL-<subscription>-<period>`), fulfilled and delivered by the orders path.
    """
    known = _renewal_by_key(idempotency_key.strip())
    if known is not None:
        _ensure_renewal_order(known)
        return RenewalOutcome(known, False)
    subscription = get_subscription(subscription_id)
    if subscription is None:
        raise SubscriptionError(_("Unknown subscription."))
    _check_renewal(
        subscription,
        amount=amount,
        currency=currency,
        channel=channel,
        idempotency_key=idempotency_key,
        paid_at=paid_at,
    )
    if order_id is not None:
        _check_renewal_order(subscription, order_id)
    elif db.session.get(Plan, (subscription.tenant_id, subscription.plan_id)) is None:
        raise SubscriptionError(
            _("The plan of this subscription no longer exists; pass the renewal's order.")
        )
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        subscription = locked_subscription(subscription_id)
        known = _renewal_by_key(idempotency_key.strip())
        if known is not None:  # the same payment, recorded while this call waited for the lock
            db.session.commit()
            _ensure_renewal_order(known)
            return RenewalOutcome(known, False)
        number = subscription.current_period_number + 1
        external = (order_external_id or f"RENEWAL-{subscription.id}-{number}").strip()
        try:
            renewal = _claim_period(
                subscription,
                paid_at=paid_at,
                amount=amount,
                currency=currency,
                channel=channel,
                idempotency_key=idempotency_key,
                order_id=order_id,
                order_external_id=external,
                actor=label,
            )
            db.session.commit()
        except IntegrityError:  # the same payment, or the same period, recorded concurrently
            db.session.rollback()
            known = _renewal_by_key(idempotency_key.strip())
            if known is None:
                raise AlreadyRenewed(_("This period was renewed by another payment.")) from None
            return RenewalOutcome(known, False)
        except BaseException:
            db.session.rollback()
            raise
    _ensure_renewal_order(renewal)
    publish(
        "subscription.renewed",
        renewal.tenant_id,
        {
            "subscription_id": str(renewal.subscription_id),
            "period_number": renewal.period_number,
            "channel": renewal.channel,
            "amount": renewal.amount,
            "currency": renewal.currency,
        },
        key=f"subscription.renewed:{renewal.subscription_id}:{renewal.period_number}",
    )
    return RenewalOutcome(renewal, True)


def _check_renewal_order(subscription: Subscription, order_id: int) -> None:
    order = db.session.get(Order, (subscription.tenant_id, order_id))
    if order is None:
        raise SubscriptionError(_("Unknown order."))
    if any(s.id != subscription.id for s in subscriptions_of_order(order_id)):
        raise SubscriptionError(_("That order started a subscription of its own; it cannot pay a renewal."))


def _customer_info(subscription: Subscription, channel: str) -> CustomerInfo:
    customer = customer_of(subscription)
    if customer is None:
        raise SubscriptionError(_("The subscription has no customer to deliver to."))
    external = db.session.scalar(
        select(CustomerExternalId.external_id).where(
            CustomerExternalId.customer_id == customer.id, CustomerExternalId.channel == channel
        )
    )
    return CustomerInfo(email=customer.email, phone=customer.phone, name=customer.name, external_id=external)


def _renewal_order_request(renewal: SubscriptionRenewal) -> OrderRequest:
    subscription = get_subscription(renewal.subscription_id)
    assert subscription is not None
    return OrderRequest(
        channel=renewal.order_channel,
        external_id=renewal.order_external_id,
        source=ORDER_SOURCE_OF_CHANNEL.get(renewal.order_channel, "channel"),
        customer=_customer_info(subscription, renewal.order_channel),
        lines=[
            LineRequest(
                subscription.plan_id,
                subscription.quantity,
                unit_price=renewal.amount // max(1, subscription.quantity),
            )
        ],
        note=f"renewal of subscription {subscription.id}, period {renewal.period_number}",
        placed_at=renewal.paid_at,
        paid=True,
        payment_reference=renewal.idempotency_key[:128],
        actor=renewal.actor,
    )


def _ensure_renewal_order(renewal: SubscriptionRenewal) -> None:
    """Give a recorded renewal its paid order (creating it if needed) and link it to the period; commits.

    The order is created (and paid, fulfilled, delivered) by the orders services in their own transactions;
    creating it again for the same renewal returns the same order (its channel and external id are fixed).
    """
    renewal_id, order_id = renewal.id, renewal.order_id
    if order_id is None:
        try:
            order_id = create_order(_renewal_order_request(renewal)).order.id
        except OrderError as error:
            audit.record(
                "subscription.renewal_order_failed",
                "subscription",
                renewal.subscription_id,
                period=renewal.period_number,
                error=str(error),
            )
            db.session.commit()
            raise SubscriptionError(str(error)) from error
    with immediate_transaction(db.session()):
        row = db.session.scalar(
            select(SubscriptionRenewal)
            .where(SubscriptionRenewal.id == renewal_id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        row.order_id = row.order_id or order_id
        period = db.session.scalar(
            select(SubscriptionPeriod).where(
                SubscriptionPeriod.subscription_id == row.subscription_id,
                SubscriptionPeriod.number == row.period_number,
            )
        )
        if period is not None and period.order_id != row.order_id:
            period.order_id = row.order_id
            period.order_line_id = _line_of_plan(row.order_id, row.plan_id)
        db.session.commit()


def _line_of_plan(order_id: int | None, plan_id: int) -> int | None:
    return db.session.scalar(
        select(OrderLine.id)
        .where(OrderLine.order_id == order_id, OrderLine.plan_id == plan_id)
        .order_by(OrderLine.position, OrderLine.id)
        .limit(1)
    )


# ---------------------------------------------------------------- rights at the end


def end_time_limited_rights(subscription: Subscription, moment: dt.datetime) -> int:
    """End the subscription's time-limited rights at `moment`; delivered card keys stay delivered.

    A time-limited right is a grant other than a card key that has a validity end: its end is brought
    forward to `moment` (never pushed back). Returns how many grants changed; the caller commits.
    """
    order_ids = [p.order_id for p in periods_of(subscription.id) if p.order_id is not None]
    if not order_ids:
        return 0
    result = db.session.execute(
        update(Grant)
        .where(
            Grant.order_id.in_(order_ids),
            Grant.kind != "card_key",
            Grant.valid_until.is_not(None),
            Grant.valid_until > moment,
            Grant.status.in_(("delivered", "redeemed", "processing")),
        )
        .values(valid_until=moment)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the lifecycle job


def _lapse(subscription: Subscription, now: dt.datetime) -> str | None:
    """Move one subscription whose period has ended; return its new status (None if nothing changed)."""
    end = subscription.current_period_end
    if end > now or subscription.status not in LIVE_STATUSES:
        return None
    if not subscription.auto_renew:  # 到期不续费: the cancellation takes effect at the period end
        subscription.status, subscription.ended_at = "canceled", end
        end_time_limited_rights(subscription, end)
        audit.record(
            "subscription.canceled",
            "subscription",
            subscription.id,
            actor="system: period ended",
            effective_at=end.isoformat(),
            kind="at_period_end",
        )
        return "canceled"
    expires_at = grace_end(subscription)
    if now >= expires_at:
        subscription.status, subscription.ended_at = "expired", expires_at
        subscription.past_due_since = subscription.past_due_since or end
        changed = end_time_limited_rights(subscription, expires_at)
        audit.record(
            "subscription.expired",
            "subscription",
            subscription.id,
            actor="system: not renewed",
            period_end=end.isoformat(),
            expired_at=expires_at.isoformat(),
            rights_ended=changed,
        )
        return "expired"
    if subscription.status == "active":
        subscription.status, subscription.past_due_since = "past_due", end
        audit.record(
            "subscription.past_due",
            "subscription",
            subscription.id,
            actor="system: not renewed",
            period_end=end.isoformat(),
            expires_at=expires_at.isoformat(),
        )
        return "past_due"
    return None


def advance_lifecycles(now: dt.datetime | None = None) -> dict[str, int]:
    """Move every subscription of the bound tenant whose period has ended: past due, expired or canceled.

    Each subscription moves in its own short transaction, locked, so a second run (or a renewal paid at the
    same moment) sees the state the first one left.
    """
    now = now or utcnow()
    due = list(
        db.session.scalars(
            select(Subscription.id)
            .where(Subscription.status.in_(LIVE_STATUSES), Subscription.current_period_end <= now)
            .order_by(Subscription.current_period_end)
        )
    )
    counts: dict[str, int] = {}
    for subscription_id in due:
        with immediate_transaction(db.session()):
            moved = _lapse(locked_subscription(subscription_id), now)
            db.session.commit()
        if moved:
            counts[moved] = counts.get(moved, 0) + 1
    return counts


def _reactivates(subscription: Subscription, paid_at: dt.datetime) -> bool:
    """Tell whether a renewal paid at `paid_at` starts afresh (the subscription lapsed) or extends it."""
    due = subscription.current_period_end
    lapsed = subscription.status in ("canceled", "expired") and paid_at >= (subscription.ended_at or due)
    return lapsed or paid_at >= grace_end(subscription)


def renewal_bounds(subscription: Subscription, paid_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Return (start, end) of the period a renewal paid at `paid_at` buys: the one after the current,
    or, when the subscription lapsed, a fresh period from the payment."""
    number = subscription.current_period_number + 1
    anchor, anchor_period = subscription.anchor_at, subscription.anchor_period
    if _reactivates(subscription, paid_at) and anchor_period != number:
        anchor, anchor_period = paid_at, number
    return period_bounds(anchor, subscription.time_zone, cadence_of(subscription), number - anchor_period)


def next_period_preview(subscription: Subscription) -> tuple[dt.datetime, dt.datetime]:
    """Return (start, end) of the period a renewal paid now would buy (for display)."""
    return renewal_bounds(subscription, utcnow())

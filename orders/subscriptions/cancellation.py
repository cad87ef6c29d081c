"""Cancelling a subscription: at the period end (到期不续费, undoable until then) or now (立即取消).

Both ask for an optional reason (a fixed list plus free text), write a cancellation row that is the receipt
(ticket number, effective date, what happens to the money), audit who did it, and mail the receipt to the
customer. The customer (self-service page), support (back office), the API and a channel (Stripe
`cancel_at_period_end`, a deleted subscription) all come through these functions.

Cancel-now money: under a plan's `prorated` policy the unused whole days of the paid period(s), counted in the
subscription's time zone with today counted as used, give the refundable amount (Decimal, rounded down to
the minor unit). The amount is recorded for finance (`refund_status = due`, `refund_order_id`); the orders
refund service would also revoke the order's grants, so the money is returned through it by a person.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from orders.events import actor_label
from orders.models import Order
from orders.subscriptions.models import (
    CANCELLATION_SOURCES,
    LIVE_STATUSES,
    REASON_CODES,
    Subscription,
    SubscriptionCancellation,
    SubscriptionPeriod,
)
from orders.subscriptions.periods import days_between, local_date
from orders.subscriptions.policy import policy_for
from orders.subscriptions.services import (
    SubscriptionError,
    customer_of,
    end_time_limited_rights,
    get_subscription,
    locked_subscription,
    periods_of,
)
from saas import outbox, sms
from saas.events import publish
from saas.extensions import db, immediate_transaction
from saas.labels import LABELS, label
from saas.timeutil import format_in_zone, utcnow
from tenants import audit
from tenants.audit import current_actor
from tenants.models import Tenant
from tenants.outbox import queue_mail, queue_sms

REASON_LABELS = LABELS["cancellation_reason"]
TICKET_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MAX_REASON_TEXT = 2000


@dataclass(frozen=True)
class RefundQuote:
    """What cancelling now would give back: policy, amount (minor units), the days behind it, which order."""

    policy: str
    amount: int
    currency: str
    days_total: int
    days_unused: int
    order_id: int | None


def reason_label(code: str | None) -> str:
    """Return the customer-facing label of a reason code (empty for none)."""
    return label("cancellation_reason", code) if code in REASON_LABELS else ""


def cancellations_of(subscription_id: int) -> list[SubscriptionCancellation]:
    """Return a subscription's cancellation history, newest first."""
    return list(
        db.session.scalars(
            select(SubscriptionCancellation)
            .where(SubscriptionCancellation.subscription_id == subscription_id)
            .order_by(SubscriptionCancellation.requested_at.desc(), SubscriptionCancellation.id.desc())
        )
    )


def pending_cancellation(subscription_id: int) -> SubscriptionCancellation | None:
    """Return the cancel-at-period-end still waiting for its date, if any."""
    now = utcnow()
    return db.session.scalar(
        select(SubscriptionCancellation)
        .where(
            SubscriptionCancellation.subscription_id == subscription_id,
            SubscriptionCancellation.kind == "at_period_end",
            SubscriptionCancellation.undone_at.is_(None),
            SubscriptionCancellation.effective_at > now,
        )
        .order_by(SubscriptionCancellation.id.desc())
        .limit(1)
    )


# ---------------------------------------------------------------- the refund quote


def prorated_amount(amount: int, days_total: int, days_unused: int) -> int:
    """Return `amount × unused / total` in minor units, rounded down (Decimal, never float)."""
    if days_total <= 0 or days_unused <= 0:
        return 0
    share = Decimal(amount) * Decimal(min(days_unused, days_total)) / Decimal(days_total)
    return int(share.quantize(Decimal(1), rounding=ROUND_DOWN))


def quote_cancel_now(subscription: Subscription, now: dt.datetime | None = None) -> RefundQuote:
    """Return what cancelling now would refund under the plan's policy.

    Each paid period not over yet counts: one that has started refunds its unused whole days (today counts
    as used, so the last day refunds nothing); one paid ahead that has not started refunds in full.
    """
    now = now or utcnow()
    policy = policy_for(subscription.plan_id, subscription.period_unit).cancel_now_refund
    zone, total_days, unused_days, amount, order_id = subscription.time_zone, 0, 0, 0, None
    for period in periods_of(subscription.id):
        if period.ends_at <= now or period.ended_early_at is not None:
            continue
        days = max(1, days_between(period.starts_at, period.ends_at, zone))
        if period.starts_at > now:
            unused = days
        else:
            used = (local_date(now, zone) - local_date(period.starts_at, zone)).days + 1
            unused = max(0, days - used)
            order_id = period.order_id
        total_days += days
        unused_days += unused
        amount += prorated_amount(period.amount, days, unused)
        order_id = order_id or period.order_id
    if policy != "prorated":
        amount = 0
    return RefundQuote(policy, amount, subscription.currency, total_days, unused_days, order_id)


# ---------------------------------------------------------------- cancelling


def _check_reason(source: str, reason_code: str | None, reason_text: str) -> tuple[str | None, str]:
    if source not in CANCELLATION_SOURCES:
        raise SubscriptionError(_("Unknown cancellation source."))
    code = reason_code or None
    if code is not None and code not in REASON_CODES:
        raise SubscriptionError(_("Choose a reason from the list."))
    text = (reason_text or "").strip()
    if len(text) > MAX_REASON_TEXT:
        raise SubscriptionError(_("Keep the reason under %(n)s characters.", n=MAX_REASON_TEXT))
    return code, text


def _ticket_number(subscription: Subscription, now: dt.datetime) -> str:
    day = local_date(now, subscription.time_zone)
    return f"QX{day:%y%m%d}-" + "".join(secrets.choice(TICKET_ALPHABET) for _ in range(6))


def _audit_reason(code: str | None, text: str) -> str | None:
    parts = [p for p in (code, text) if p]
    return ": ".join(parts) or None


def _live(subscription_id: int) -> Subscription:
    subscription = locked_subscription(subscription_id)
    if subscription.status not in LIVE_STATUSES:
        raise SubscriptionError(_("This subscription has already ended."))
    return subscription


def _announce(cancellation: SubscriptionCancellation) -> None:
    """Tell outer packages (outbound webhooks) that a subscription was cancelled."""
    publish(
        "subscription.canceled",
        cancellation.tenant_id,
        {
            "subscription_id": str(cancellation.subscription_id),
            "kind": cancellation.kind,
            "effective_at": cancellation.effective_at.isoformat(),
            "source": cancellation.source,
        },
        key=f"subscription.canceled:{cancellation.subscription_id}",
    )


def cancel_at_period_end(
    subscription_id: int,
    *,
    source: str,
    reason_code: str | None = None,
    reason_text: str = "",
    actor: str | None = None,
    notify: bool = True,
) -> SubscriptionCancellation:
    """Turn auto-renew off: the rights stay until the period ends; undoable until then (到期不续费).

    A subscription already past its period end (in its grace days) ends at once, with nothing to refund.
    """
    code, text = _check_reason(source, reason_code, reason_text)
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        try:
            subscription = _live(subscription_id)
            if not subscription.auto_renew:
                raise SubscriptionError(_("This subscription is already set to end at its period end."))
            now = utcnow()
            effective = max(subscription.current_period_end, now)
            subscription.auto_renew, subscription.cancel_requested_at = False, now
            if effective <= now:  # past due: the period is over already
                subscription.status, subscription.ended_at = "canceled", now
                end_time_limited_rights(subscription, now)
            cancellation = _record(
                subscription,
                "at_period_end",
                source,
                code,
                text,
                now,
                effective,
                label,
                RefundQuote("none", 0, subscription.currency, 0, 0, None),
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    _announce(cancellation)
    if notify:
        send_receipt(cancellation.id)
    return cancellation


def cancel_now(
    subscription_id: int,
    *,
    source: str,
    reason_code: str | None = None,
    reason_text: str = "",
    actor: str | None = None,
    apply_refund_policy: bool = True,
    notify: bool = True,
) -> SubscriptionCancellation:
    """End the subscription today (立即取消): time-limited rights end now, card keys stay delivered.

    The plan's policy says what is refundable (prorated on unused whole days, or nothing); the amount is
    recorded on the receipt for finance. `apply_refund_policy=False` for channels that refund themselves.
    """
    code, text = _check_reason(source, reason_code, reason_text)
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        try:
            subscription = _live(subscription_id)
            now = utcnow()
            quote = quote_cancel_now(subscription, now)
            if not apply_refund_policy:
                quote = RefundQuote("none", 0, quote.currency, quote.days_total, quote.days_unused, None)
            for period in periods_of(subscription.id):
                if period.ends_at > now and period.ended_early_at is None:
                    period.ended_early_at = now
            for pending in _pending_rows(subscription.id, now):
                pending.undone_at, pending.undone_by = now, "replaced by cancel now"
            subscription.status, subscription.ended_at, subscription.auto_renew = "canceled", now, False
            subscription.cancel_requested_at = now
            end_time_limited_rights(subscription, now)
            cancellation = _record(subscription, "now", source, code, text, now, now, label, quote)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    _announce(cancellation)
    if notify:
        send_receipt(cancellation.id)
    return cancellation


def _pending_rows(subscription_id: int, now: dt.datetime) -> list[SubscriptionCancellation]:
    return list(
        db.session.scalars(
            select(SubscriptionCancellation).where(
                SubscriptionCancellation.subscription_id == subscription_id,
                SubscriptionCancellation.kind == "at_period_end",
                SubscriptionCancellation.undone_at.is_(None),
                SubscriptionCancellation.effective_at > now,
            )
        )
    )


def _record(
    subscription: Subscription,
    kind: str,
    source: str,
    code: str | None,
    text: str,
    now: dt.datetime,
    effective: dt.datetime,
    label: str,
    quote: RefundQuote,
) -> SubscriptionCancellation:
    cancellation = SubscriptionCancellation(
        subscription_id=subscription.id,
        ticket_number=_ticket_number(subscription, now),
        kind=kind,
        source=source,
        reason_code=code,
        reason_text=text,
        requested_at=now,
        effective_at=effective,
        refund_policy=quote.policy,
        refundable_amount=quote.amount,
        currency=subscription.currency,
        days_total=quote.days_total,
        days_unused=quote.days_unused,
        refund_status="due" if quote.amount > 0 else "none",
        refund_order_id=quote.order_id if quote.amount > 0 else None,
        actor=label[:200],
        actor_user_id=current_actor()[0],
    )
    db.session.add(cancellation)
    audit.record(
        "subscription.cancel_requested" if kind == "at_period_end" else "subscription.canceled",
        "subscription",
        subscription.id,
        reason=_audit_reason(code, text),
        kind=kind,
        source=source,
        ticket=cancellation.ticket_number,
        effective_at=effective.isoformat(),
        refundable_amount=quote.amount,
        currency=subscription.currency,
    )
    return cancellation


def undo_cancel(
    subscription_id: int, *, source: str, actor: str | None = None, notify: bool = True
) -> SubscriptionCancellation:
    """Turn auto-renew back on before the period ends (undo a cancel-at-period-end)."""
    if source not in CANCELLATION_SOURCES:
        raise SubscriptionError(_("Unknown cancellation source."))
    label = actor_label(actor)
    with immediate_transaction(db.session()):
        try:
            subscription = _live(subscription_id)
            now = utcnow()
            rows = _pending_rows(subscription.id, now)
            if subscription.auto_renew or not rows:
                raise SubscriptionError(_("There is no cancellation to undo."))
            for row in rows:
                row.undone_at, row.undone_by = now, label[:200]
            subscription.auto_renew, subscription.cancel_requested_at = True, None
            audit.record(
                "subscription.cancel_undone",
                "subscription",
                subscription.id,
                source=source,
                ticket=rows[0].ticket_number,
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    if notify:
        send_undo_notice(rows[0].id)
    return rows[0]


def end_refunded_subscriptions() -> int:
    """End, without a refund of their own, live subscriptions whose current period's order was refunded.

    The money went back through the orders refund path already; the subscription must not renew nor keep
    its rights. Returns how many ended.
    """
    current_period = (
        (SubscriptionPeriod.tenant_id == Subscription.tenant_id)
        & (SubscriptionPeriod.subscription_id == Subscription.id)
        & (SubscriptionPeriod.number == Subscription.current_period_number)
    )
    refunded = list(
        db.session.scalars(
            select(Subscription.id)
            .join(SubscriptionPeriod, current_period)
            .join(
                Order,
                (Order.tenant_id == SubscriptionPeriod.tenant_id) & (Order.id == SubscriptionPeriod.order_id),
            )
            .where(Subscription.status.in_(LIVE_STATUSES), Order.status == "refunded")
        )
    )
    db.session.commit()
    for subscription_id in refunded:
        cancel_now(
            subscription_id,
            source="system",
            reason_text="the order that paid the current period was refunded",
            actor="system: order refunded",
            apply_refund_policy=False,
            notify=False,
        )
    return len(refunded)


# ---------------------------------------------------------------- mails


@dataclass(frozen=True)
class MailContext:
    """Who and what a subscription mail is about."""

    subscription: Subscription
    tenant: Tenant
    email: str
    link: str  # `saas.outbox.LINK`: the signed link is built when the mail is sent

    @property
    def link_spec(self) -> tuple[str, list[Any]]:
        """The signed link's kind and arguments, for the outbox."""
        return "my_subscription", [self.subscription.tenant_id, self.subscription.id]

    def queue(self, subject: str, text: str, kind: str) -> int:
        """Record the mail in the outbox, commit, and send it."""
        return queue_mail(
            self.email,
            subject,
            text,
            kind=kind,
            link=self.link_spec,
            about=("subscription", self.subscription.id),
        )


def mail_context(subscription_id: int) -> MailContext | None:
    """Return what a mail about the subscription needs; None when the customer has no email address."""
    subscription = get_subscription(subscription_id)
    if subscription is None:
        return None
    customer = customer_of(subscription)
    tenant = db.session.get(Tenant, subscription.tenant_id)
    if customer is None or not customer.email or tenant is None:
        return None
    return MailContext(subscription, tenant, customer.email, outbox.LINK)


def sms_recipient(subscription_id: int, kind: str) -> str | None:
    """Return the phone a subscription message of this kind goes to by SMS, or None (mail, or nowhere).

    The house rule (`saas.sms.channel_for`): a phone only → SMS, an email only → mail, both → the tenant's
    choice.
    """
    subscription = get_subscription(subscription_id)
    customer = customer_of(subscription) if subscription is not None else None
    tenant = db.session.get(Tenant, subscription.tenant_id) if subscription is not None else None
    if customer is None or tenant is None:
        return None
    channel = sms.channel_for(tenant.settings, kind, customer.email, customer.phone)
    return channel[1] if channel is not None and channel[0] == "sms" else None


def text_customer(subscription_id: int, kind: str, params: dict[str, str], *, with_link: bool) -> int | None:
    """Send a subscription message by SMS when the customer is reached that way; return the record id.

    `with_link` adds the short link to the customer's subscription page (the template's `link`).
    """
    phone = sms_recipient(subscription_id, kind)
    subscription = get_subscription(subscription_id)
    tenant = db.session.get(Tenant, subscription.tenant_id) if subscription is not None else None
    if phone is None or subscription is None or tenant is None:
        return None
    return queue_sms(
        phone,
        kind,
        {"shop": tenant.name, **params},
        link=("my_subscription", [subscription.tenant_id, subscription.id]) if with_link else None,
        about=("subscription", subscription.id),
    )


def _cancellation(cancellation_id: int) -> SubscriptionCancellation | None:
    return db.session.scalar(
        select(SubscriptionCancellation).where(SubscriptionCancellation.id == cancellation_id)
    )


def send_receipt(cancellation_id: int) -> bool:
    """Send the cancellation receipt (取消确认) by SMS or mail (after the commit); False with neither."""
    cancellation = _cancellation(cancellation_id)
    if cancellation is None:
        return False
    subscription = get_subscription(cancellation.subscription_id)
    if subscription is not None:
        texted = text_customer(
            subscription.id,
            "cancellation_receipt",
            {
                "plan": subscription.plan_name,
                "date": format_in_zone(cancellation.effective_at, subscription.time_zone, "%Y-%m-%d"),
            },
            with_link=False,
        )
        if texted is not None:
            return True
    context = mail_context(cancellation.subscription_id)
    if context is None:
        return False
    with force_locale(context.tenant.locale or "zh_CN"):
        subject = _(
            "%(shop)s: cancellation receipt %(ticket)s",
            shop=context.tenant.name,
            ticket=cancellation.ticket_number,
        )
        text = render_template(
            "subscriptions/mail/receipt.txt",
            tenant=context.tenant,
            subscription=context.subscription,
            cancellation=cancellation,
            link=context.link,
            reason=reason_label(cancellation.reason_code),
            format_in_zone=format_in_zone,
        )
    context.queue(subject, text, "cancellation_receipt")
    return True


def send_undo_notice(cancellation_id: int) -> bool:
    """Mail the customer that the subscription renews again (after the commit)."""
    cancellation = _cancellation(cancellation_id)
    context = mail_context(cancellation.subscription_id) if cancellation is not None else None
    if cancellation is None or context is None:
        return False
    with force_locale(context.tenant.locale or "zh_CN"):
        subject = _("%(shop)s: your subscription renews again", shop=context.tenant.name)
        text = render_template(
            "subscriptions/mail/undo.txt",
            tenant=context.tenant,
            subscription=context.subscription,
            cancellation=cancellation,
            link=context.link,
            format_in_zone=format_in_zone,
        )
    context.queue(subject, text, "cancellation_undone")
    return True

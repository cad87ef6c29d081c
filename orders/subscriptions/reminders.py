"""Renewal reminders: before each period end, one mail per configured offset, exactly once.

A reminder row, unique per (subscription, period, offset), is inserted and committed before the mail is
queued: a second run of the job in the same hour (or two workers at once) finds the row and sends nothing.
Only active subscriptions that renew get one: none once set to cancel, already renewed (the period moved on),
past due or ended. When the job ran late and several offsets are due at once, the customer gets the one
nearest the period end; the others are recorded as skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orders.subscriptions.cancellation import mail_context, sms_recipient, text_customer
from orders.subscriptions.models import Subscription, SubscriptionReminder
from orders.subscriptions.periods import shift_days
from orders.subscriptions.policy import policy_for
from orders.subscriptions.selfservice import when_text
from orders.subscriptions.services import get_subscription, locked_subscription
from saas.extensions import db, immediate_transaction
from saas.timeutil import format_in_zone, utcnow

LOOKAHEAD_DAYS = 100  # the largest allowed offset, with room


@dataclass(frozen=True)
class DueReminder:
    """The offset to send now for one subscription's period, and those it supersedes."""

    subscription_id: int
    period_number: int
    offset_days: int
    due_at: dt.datetime
    superseded: tuple[tuple[int, dt.datetime], ...]


def reminder_due_at(subscription: Subscription, offset_days: int) -> dt.datetime:
    """Return when the reminder `offset_days` before the current period end is due (local calendar days)."""
    return shift_days(subscription.current_period_end, subscription.time_zone, -offset_days)


def _already_sent(subscription: Subscription) -> set[int]:
    return set(
        db.session.scalars(
            select(SubscriptionReminder.offset_days).where(
                SubscriptionReminder.subscription_id == subscription.id,
                SubscriptionReminder.period_number == subscription.current_period_number,
            )
        )
    )


def due_reminder(subscription: Subscription, now: dt.datetime) -> DueReminder | None:
    """Return the reminder a subscription should get now, if any."""
    if (
        subscription.status != "active"
        or not subscription.auto_renew
        or subscription.current_period_end <= now
    ):
        return None
    offsets = policy_for(subscription.plan_id, subscription.period_unit).reminder_offsets
    due = sorted(
        ((offset, reminder_due_at(subscription, offset)) for offset in offsets),
        key=lambda pair: pair[0],
    )
    due = [(o, at) for o, at in due if subscription.current_period_start < at <= now]
    if not due:
        return None
    sent = _already_sent(subscription)
    nearest_offset, nearest_at = due[0]
    if nearest_offset in sent:
        return None
    superseded = tuple((o, at) for o, at in due[1:] if o not in sent)
    return DueReminder(
        subscription.id, subscription.current_period_number, nearest_offset, nearest_at, superseded
    )


def _reminder_rows(
    subscription: Subscription, due: DueReminder, recipient: str
) -> list[SubscriptionReminder]:
    now = utcnow()
    rows = [
        SubscriptionReminder(
            subscription_id=subscription.id,
            period_number=due.period_number,
            offset_days=due.offset_days,
            period_end=subscription.current_period_end,
            due_at=due.due_at,
            status="sent" if recipient else "skipped",
            note="" if recipient else "no email address or phone number",
            recipient=recipient,
            amount=subscription.renewal_amount,
            currency=subscription.currency,
            created_at=now,
        )
    ]
    rows += [
        SubscriptionReminder(
            subscription_id=subscription.id,
            period_number=due.period_number,
            offset_days=offset,
            period_end=subscription.current_period_end,
            due_at=at,
            status="skipped",
            note=f"superseded by the {due.offset_days}-day reminder",
            recipient="",
            amount=subscription.renewal_amount,
            currency=subscription.currency,
            created_at=now,
        )
        for offset, at in due.superseded
    ]
    return rows


def _claim(subscription_id: int, now: dt.datetime) -> DueReminder | None:
    """Lock the subscription, check again that a reminder is due, insert its rows and commit.

    Returns the reminder to send, or None (not due any more, or another run inserted it first).
    """
    with immediate_transaction(db.session()):
        try:
            subscription = locked_subscription(subscription_id)
            due = due_reminder(subscription, now)
            if due is None:
                db.session.commit()
                return None
            context = mail_context(subscription.id)
            phone = sms_recipient(subscription.id, "renewal_reminder")
            recipient = phone or (context.email if context else "")
            db.session.add_all(_reminder_rows(subscription, due, recipient))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return None
        except BaseException:
            db.session.rollback()
            raise
    return due if recipient else None


def _send(subscription_id: int, offset_days: int) -> None:
    # The mail's outbox record is written in this transaction: on SQLite it must start as the writer (a
    # deferred read that later writes fails with "database is locked" while other reminder runs write).
    with immediate_transaction(db.session()):
        _queue_reminder(subscription_id, offset_days)


def _queue_reminder(subscription_id: int, offset_days: int) -> None:
    subscription = get_subscription(subscription_id)
    if subscription is not None and sms_recipient(subscription_id, "renewal_reminder"):
        text_customer(
            subscription_id,
            "renewal_reminder",
            {
                "plan": subscription.plan_name,
                "date": format_in_zone(subscription.current_period_end, subscription.time_zone, "%Y-%m-%d"),
            },
            with_link=True,
        )
        return
    context = mail_context(subscription_id)
    if context is None:
        return
    subscription, tenant = context.subscription, context.tenant
    with force_locale(tenant.locale or "zh_CN"):
        subject = _(
            "%(shop)s: your subscription renews on %(date)s",
            shop=tenant.name,
            date=when_text(subscription, subscription.current_period_end, "%Y-%m-%d"),
        )
        text = render_template(
            "subscriptions/mail/reminder.txt",
            tenant=tenant,
            subscription=subscription,
            link=context.link,
            offset_days=offset_days,
            period_end=when_text(subscription, subscription.current_period_end),
        )
    context.queue(subject, text, "renewal_reminder")


def send_due_reminders(now: dt.datetime | None = None) -> int:
    """Send the bound tenant's due renewal reminders; return how many mails were queued."""
    now = now or utcnow()
    candidates = list(
        db.session.scalars(
            select(Subscription.id)
            .where(
                Subscription.status == "active",
                Subscription.auto_renew.is_(True),
                Subscription.current_period_end > now,
                Subscription.current_period_end <= now + dt.timedelta(days=LOOKAHEAD_DAYS),
            )
            .order_by(Subscription.current_period_end)
        )
    )
    db.session.commit()
    sent = 0
    for subscription_id in candidates:
        due = _claim(subscription_id, now)
        if due is not None:
            _send(subscription_id, due.offset_days)
            sent += 1
    return sent


def reminders_of(subscription_id: int) -> list[SubscriptionReminder]:
    """Return the reminders recorded for a subscription, newest first."""
    return list(
        db.session.scalars(
            select(SubscriptionReminder)
            .where(SubscriptionReminder.subscription_id == subscription_id)
            .order_by(SubscriptionReminder.period_number.desc(), SubscriptionReminder.offset_days.desc())
        )
    )

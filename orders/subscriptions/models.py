"""Subscriptions: the life of a renewable order — periods, renewals, reminders, cancellations, policies.

Foreign keys between tenant tables are composite and include `tenant_id` (DESIGN law 1); relationships are
avoided on purpose, reads are explicit queries. Money is integer minor units plus a currency code; times are
aware UTC; period arithmetic happens in the subscription's time zone (the tenant's when it started).

The renewal-timing dashboard reads `subscription_renewals` (one row per paid renewal: when it was due, when it
was paid, the difference in the tenant's calendar days, the channel and the plan) and `subscriptions` (status,
plan, channel, period ends).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

STATUSES = ("active", "past_due", "canceled", "expired")
LIVE_STATUSES = ("active", "past_due")
CANCELLATION_KINDS = ("at_period_end", "now")
CANCELLATION_SOURCES = ("customer", "support", "api", "channel", "system")
REASON_CODES = ("no_longer_needed", "too_expensive", "unsatisfied", "other")
REFUND_POLICIES = ("none", "prorated")
RENEWAL_TIMINGS = ("early", "on_time", "late", "after_expiry")
DEFAULT_GRACE_DAYS = 3


def _subscription_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "subscription_id"], ["subscriptions.tenant_id", "subscriptions.id"], ondelete="CASCADE"
    )


def _order_fk(column: str = "order_id") -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", column], ["orders.tenant_id", "orders.id"])


class Subscription(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A renewable order line's subscription: who, what plan, which channel, status and the paid period.

    `current_period_*` is the latest paid period: after an early renewal it is the next period, which starts
    in the future (the periods table shows every period). Periods are computed from `anchor_at`, the start of
    period number `anchor_period`, in `time_zone`.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        _order_fk(),
        ForeignKeyConstraint(["tenant_id", "order_line_id"], ["order_lines.tenant_id", "order_lines.id"]),
        UniqueConstraint("tenant_id", "order_line_id"),
        UniqueConstraint("tenant_id", "channel", "external_id"),
        Index("ix_subscriptions_tenant_status_end", "tenant_id", "status", "current_period_end"),
        Index("ix_subscriptions_tenant_customer", "tenant_id", "customer_id"),
    )

    customer_id: Mapped[int | None] = mapped_column()
    order_id: Mapped[int] = mapped_column()  # the order that started it
    order_line_id: Mapped[int] = mapped_column()
    plan_id: Mapped[int] = mapped_column()  # plain column: history survives catalog edits
    plan_name: Mapped[str] = mapped_column(String(240))
    bundle_name: Mapped[str] = mapped_column(String(120), default="")
    period_unit: Mapped[str] = mapped_column(String(12))  # month, quarter, year, days
    period_days: Mapped[int | None] = mapped_column(Integer)  # N, for "days" plans only
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    price: Mapped[int] = mapped_column()  # the renewal amount of one period, minor units
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))  # the channel's subscription id
    status: Mapped[str] = mapped_column(String(12), default="active")  # one of STATUSES
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    anchor_at: Mapped[dt.datetime] = mapped_column()
    anchor_period: Mapped[int] = mapped_column(Integer, default=1)
    current_period_number: Mapped[int] = mapped_column(Integer, default=1)
    current_period_start: Mapped[dt.datetime] = mapped_column()
    current_period_end: Mapped[dt.datetime] = mapped_column()
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    past_due_since: Mapped[dt.datetime | None]
    cancel_requested_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]  # when access ended (canceled or expired)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_live(self) -> bool:
        """Tell whether the customer still has the subscription (active or in its grace days)."""
        return self.status in LIVE_STATUSES

    @property
    def set_to_cancel(self) -> bool:
        """Tell whether it ends at the period end (到期不续费) rather than renewing."""
        return self.is_live and not self.auto_renew

    @property
    def renewal_amount(self) -> int:
        """Return what one more period costs, minor units."""
        return self.price


class SubscriptionPeriod(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One paid period of a subscription, with the order whose grants are that period's rights."""

    __tablename__ = "subscription_periods"
    __table_args__ = (
        _subscription_fk(),
        _order_fk(),
        UniqueConstraint("tenant_id", "subscription_id", "number"),
        Index("ix_subscription_periods_tenant_order", "tenant_id", "order_id"),
    )

    subscription_id: Mapped[int] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # initial, renewal, reactivation
    starts_at: Mapped[dt.datetime] = mapped_column()
    ends_at: Mapped[dt.datetime] = mapped_column()
    amount: Mapped[int] = mapped_column()  # paid for this period, minor units
    currency: Mapped[str] = mapped_column(String(3))
    order_id: Mapped[int | None] = mapped_column()
    order_line_id: Mapped[int | None] = mapped_column()
    renewal_id: Mapped[int | None] = mapped_column()
    ended_early_at: Mapped[dt.datetime | None]  # cancelled now, before its end
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubscriptionRenewal(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One renewal payment: the period it bought, when it was due and paid, its channel and plan.

    Unique per (subscription, period number) and per idempotency key: a period is never renewed twice and a
    repeated payment notification changes nothing. `days_from_due` is the payment's calendar date minus the
    due date (the old period end) in the subscription's zone: negative when paid early.
    """

    __tablename__ = "subscription_renewals"
    __table_args__ = (
        _subscription_fk(),
        _order_fk(),
        UniqueConstraint("tenant_id", "subscription_id", "period_number"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_subscription_renewals_tenant_paid", "tenant_id", "paid_at"),
        Index("ix_subscription_renewals_tenant_due", "tenant_id", "due_at"),
    )

    subscription_id: Mapped[int] = mapped_column()
    period_number: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[int] = mapped_column()
    plan_name: Mapped[str] = mapped_column(String(240))
    period_unit: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[dt.datetime] = mapped_column()
    due_at: Mapped[dt.datetime] = mapped_column()  # the period end this renewal follows
    days_from_due: Mapped[int] = mapped_column(Integer)  # negative: early; positive: late
    seconds_from_due: Mapped[int] = mapped_column()  # the same, exact
    timing: Mapped[str] = mapped_column(String(16))  # one of RENEWAL_TIMINGS
    status_before: Mapped[str] = mapped_column(String(12))
    reactivated: Mapped[bool] = mapped_column(Boolean, default=False)
    period_start: Mapped[dt.datetime] = mapped_column()
    period_end: Mapped[dt.datetime] = mapped_column()
    order_id: Mapped[int | None] = mapped_column()
    order_channel: Mapped[str] = mapped_column(String(64))
    order_external_id: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubscriptionReminder(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A renewal reminder: one row per (subscription, period, offset), inserted before the mail is sent."""

    __tablename__ = "subscription_reminders"
    __table_args__ = (
        _subscription_fk(),
        UniqueConstraint("tenant_id", "subscription_id", "period_number", "offset_days"),
    )

    subscription_id: Mapped[int] = mapped_column()
    period_number: Mapped[int] = mapped_column(Integer)
    offset_days: Mapped[int] = mapped_column(Integer)
    period_end: Mapped[dt.datetime] = mapped_column()
    due_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(12))  # sent, skipped
    note: Mapped[str] = mapped_column(String(200), default="")
    recipient: Mapped[str] = mapped_column(String(254), default="")
    amount: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubscriptionCancellation(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A cancellation and its receipt: ticket, kind, reason, when it takes effect, what of the money."""

    __tablename__ = "subscription_cancellations"
    __table_args__ = (
        _subscription_fk(),
        _order_fk("refund_order_id"),
        UniqueConstraint("tenant_id", "ticket_number"),
        Index("ix_subscription_cancellations_tenant_sub", "tenant_id", "subscription_id"),
    )

    subscription_id: Mapped[int] = mapped_column()
    ticket_number: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(16))  # one of CANCELLATION_KINDS
    source: Mapped[str] = mapped_column(String(12))  # one of CANCELLATION_SOURCES
    reason_code: Mapped[str | None] = mapped_column(String(24))  # one of REASON_CODES
    reason_text: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    effective_at: Mapped[dt.datetime] = mapped_column()
    refund_policy: Mapped[str] = mapped_column(String(12), default="none")
    refundable_amount: Mapped[int] = mapped_column(default=0)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    days_total: Mapped[int] = mapped_column(Integer, default=0)
    days_unused: Mapped[int] = mapped_column(Integer, default=0)
    refund_status: Mapped[str] = mapped_column(String(12), default="none")  # none, due
    refund_order_id: Mapped[int | None] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[int | None] = mapped_column()
    undone_at: Mapped[dt.datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(200))

    @property
    def is_pending(self) -> bool:
        """Tell whether this is a cancel-at-period-end still waiting for its date (and not undone)."""
        return self.kind == "at_period_end" and self.undone_at is None and self.effective_at > utcnow()


class SubscriptionPlanSettings(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A renewable plan's subscription policy: grace days, reminder offsets, cancel-now refund policy."""

    __tablename__ = "subscription_plan_settings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["plans.tenant_id", "plans.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "plan_id"),
    )

    plan_id: Mapped[int] = mapped_column()
    grace_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_GRACE_DAYS)
    reminder_offsets: Mapped[list[int]] = mapped_column(db.JSON, default=list)
    cancel_now_refund: Mapped[str] = mapped_column(String(12), default="none")  # one of REFUND_POLICIES
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class SubscriptionAccessCode(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A one-time code mailed to the customer before they may change a subscription themselves.

    Six digits, stored as a keyed hash, valid for ten minutes and five attempts, used once.
    """

    __tablename__ = "subscription_access_codes"
    __table_args__ = (
        _subscription_fk(),
        Index("ix_subscription_access_codes_tenant_sub", "tenant_id", "subscription_id", "created_at"),
    )

    subscription_id: Mapped[int] = mapped_column()
    code_hash: Mapped[str] = mapped_column(String(64))
    sent_to: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None]

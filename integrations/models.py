"""Channels, SKU mappings, the webhook inbox, channel spend and outbound webhook endpoints and deliveries.

Foreign keys between these tables are composite and include `tenant_id` (DESIGN law 1); relationships are
avoided on purpose, reads are explicit queries. Secrets are stored encrypted under the tenant's data key
(`integrations.secretbox`); only a short hint of each is kept in clear for the back office.

Orders created from a channel carry `orders.channel = Channel.public_id` (immutable), so reports join
orders and `channel_spend` through the channel's public id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

CHANNEL_STATUSES = ("active", "paused")
REF_KINDS = ("sku", "variant", "price", "product")
# pending: waits for a job; processing: a job holds its lease; processed: done; ignored: nothing to do
# (a ping, an unpaid checkout); waiting: about an order not seen yet (applied when it arrives); skipped:
# a kind of event this build does not handle yet; held: needs a person (mapping, amount, blocklist);
# failed: retrying with backoff; dead: retries exhausted; invalid: signed but unusable (kept to inspect).
INBOX_STATUSES = (
    "pending",
    "processing",
    "processed",
    "ignored",
    "waiting",
    "skipped",
    "held",
    "failed",
    "dead",
    "invalid",
)
REPLAYABLE_STATUSES = ("held", "failed", "dead", "skipped", "waiting", "invalid")
SPEND_CATEGORIES = ("ad_spend", "commission", "platform_fee", "other")
ENDPOINT_STATUSES = ("active", "disabled")
OUTBOUND_STATUSES = ("pending", "succeeded", "retrying", "failed")


def _channel_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "channel_id"], ["channels.tenant_id", "channels.id"], ondelete="CASCADE"
    )


def _endpoint_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "endpoint_id"],
        ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
        ondelete="CASCADE",
    )


class Channel(TenantOwned, db.Model):  # type: ignore[name-defined]
    """渠道: one connected sales channel (a Shopify store, a WooCommerce shop, a Stripe account, …)."""

    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "public_id"),
        # The webhook route finds a channel by its public id before it knows the tenant. Public ids are
        # 96 random bits, so this index is not unique across tenants by law 1, and need not be.
        Index("ix_channels_public_id", "public_id"),
    )

    kind: Mapped[str] = mapped_column(String(20))  # an adapter slug: shopify, woocommerce, stripe, …
    name: Mapped[str] = mapped_column(String(120))
    public_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="active")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_hint: Mapped[str] = mapped_column(String(16), default="")
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[dt.datetime | None]
    secret_rotated_at: Mapped[dt.datetime | None]
    fee_percent_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points: 250 = 2.50 %
    fee_fixed: Mapped[int] = mapped_column(default=0)  # minor units per order
    price_tolerance_bp: Mapped[int] = mapped_column(Integer, default=100)  # 1 % either way
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_delivery_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class SkuMapping(TenantOwned, db.Model):  # type: ignore[name-defined]
    """What a channel's external SKU, variant id or price id sells: one of the tenant's plans."""

    __tablename__ = "channel_sku_mappings"
    __table_args__ = (
        _channel_fk(),
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["plans.tenant_id", "plans.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "channel_id", "ref_kind", "external_ref"),
        Index("ix_channel_sku_mappings_plan", "tenant_id", "plan_id"),
    )

    channel_id: Mapped[int] = mapped_column()
    ref_kind: Mapped[str] = mapped_column(String(12))  # one of REF_KINDS
    external_ref: Mapped[str] = mapped_column(String(200))
    plan_id: Mapped[int] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InboxDelivery(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One inbound webhook delivery, stored raw (headers and body) before it is acknowledged.

    Unique per (tenant, channel, dedupe key): the same delivery sent five times is one row.

    The only tenant-owned table without foreign keys: a key to `channels` (or `tenants`) makes every insert
    lock the channel's row (FOR KEY SHARE), and during a flash sale every delivery of a channel locks that
    same row at once, which PostgreSQL answers with a MultiXact per lock; both keys cost 0.06–0.1 ms of
    PostgreSQL CPU per delivery (bench/webhooks.py). The endpoint stores deliveries only for a channel it
    has just found, and channels and tenants are never deleted by the app (a channel is paused); whoever
    deletes one by hand deletes its inbox rows too.
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel_id", "dedupe_key"),
        Index("ix_webhook_inbox_status", "tenant_id", "status", "next_attempt_at"),
        Index("ix_webhook_inbox_channel", "tenant_id", "channel_id", "received_at"),
        Index("ix_webhook_inbox_external_order", "tenant_id", "channel_id", "external_order_id"),
    )

    tenant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # no foreign key, see above
    channel_id: Mapped[int] = mapped_column()
    dedupe_key: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(120), default="")
    api_version: Mapped[str | None] = mapped_column(String(40))
    external_order_id: Mapped[str | None] = mapped_column(String(128))
    order_id: Mapped[int | None] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")  # why held / ignored / invalid, or what was done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)  # repeats acknowledged and dropped
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    processed_at: Mapped[dt.datetime | None]


class ChannelSpend(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Money spent on a channel outside its orders (ads, commissions, platform fees), per tenant-local day."""

    __tablename__ = "channel_spend"
    __table_args__ = (_channel_fk(), Index("ix_channel_spend_channel_day", "tenant_id", "channel_id", "day"))

    channel_id: Mapped[int] = mapped_column()
    day: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column()  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(20))  # one of SPEND_CATEGORIES
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A tenant's URL that receives signed events (order.fulfilled, grant.delivered, …)."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(db.JSON, default=list)  # ["*"] for every event
    status: Mapped[str] = mapped_column(String(12), default="active")
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    secret_hint: Mapped[str] = mapped_column(String(16), default="")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[dt.datetime | None]
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class OutboundDelivery(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One event to send to one endpoint, with its retry schedule."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        _endpoint_fk(),
        Index("ix_webhook_deliveries_due", "tenant_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "created_at"),
        # An event about the same thing (order 42 fulfilled) goes to an endpoint once, whoever emits it.
        UniqueConstraint("tenant_id", "endpoint_id", "event_key"),
    )

    endpoint_id: Mapped[int] = mapped_column()
    event_id: Mapped[str] = mapped_column(String(40))
    event_key: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OutboundAttempt(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One HTTP attempt of an outbound delivery: when, the response code and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
        Index("ix_webhook_attempts_delivery", "tenant_id", "delivery_id", "at"),
    )

    delivery_id: Mapped[int] = mapped_column()
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    manual: Mapped[bool] = mapped_column(default=False)

"""Customers, orders and their lines, grants (发放), status events, deliveries, redemptions and refunds.

Foreign keys between these tables are composite and include `tenant_id` (DESIGN law 1). Relationships are
avoided on purpose (they would copy `tenant_id` twice); reads are explicit queries. Money is integer minor
units plus a currency code; times are aware UTC.

Orders keep what was sold in `OrderLine.snapshot` (catalog `Plan.snapshot()`): the plan, price and bundle
contents at the time of sale. `plan_id`, `bundle_id` and `right_id` are plain columns, not foreign keys, so
that a later catalog edit or deletion never touches history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.outbox import OutboxColumns
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

ORDER_STATUSES = (
    "pending",
    "held",  # risk control stopped it before allocation: a person approves or rejects it
    "paid",
    "fulfilling",  # held only inside the transaction that allocates
    "fulfilled",
    "partially_fulfilled",
    "backordered",
    "partially_refunded",
    "refunded",
    "cancelled",
)
PAYABLE_STATUSES = ("pending",)
REFUNDABLE_STATUSES = (
    "paid",
    "held",
    "fulfilled",
    "partially_fulfilled",
    "backordered",
    "partially_refunded",
)
GRANT_STATUSES = (
    "pending",  # created, nothing allocated yet
    "reserved",  # a key is held for an unpaid order
    "backordered",  # paid, no stock: waits for keys
    "processing",  # a top-up is in flight
    "delivered",
    "redeemed",
    "failed",  # a top-up failed for good (visible in the failures list)
    "cancelled",  # never delivered: refunded or the order cancelled
    "revoked",  # delivered, then refunded: the key is void
)
OPEN_GRANT_STATUSES = ("pending", "reserved", "backordered", "processing", "failed")
ORDER_SOURCES = ("manual", "api", "csv", "channel", "demo", "campaign")
REDEMPTION_SOURCES = ("customer", "api", "supplier_report", "channel", "back_office")
REFUND_SOURCES = ("back_office", "api", "channel")


def _order_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"
    )


def _customer_fk(column: str = "customer_id") -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", column], ["customers.tenant_id", "customers.id"])


class Customer(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A buyer of one tenant: email and/or phone; merged records point at the one they were merged into."""

    __tablename__ = "customers"
    __table_args__ = (
        _customer_fk("merged_into_id"),
        Index("ix_customers_tenant_email", "tenant_id", "email"),
        Index("ix_customers_tenant_phone", "tenant_id", "phone"),
    )

    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    merged_into_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def label(self) -> str:
        """Return how the back office names this customer."""
        return self.name or self.email or self.phone or f"#{self.id}"


class CustomerExternalId(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A customer's id on one channel (a Shopify customer id, a WeChat openid)."""

    __tablename__ = "customer_external_ids"
    __table_args__ = (
        _customer_fk(),
        UniqueConstraint("tenant_id", "channel", "external_id"),
        Index("ix_customer_external_ids_customer", "tenant_id", "customer_id"),
    )

    customer_id: Mapped[int] = mapped_column()
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Order(TenantOwned, db.Model):  # type: ignore[name-defined]
    """An order: unique per (tenant, channel, external id); moves pending → paid → fulfilled / … ."""

    __tablename__ = "orders"
    __table_args__ = (
        _customer_fk(),
        UniqueConstraint("tenant_id", "channel", "external_id"),
        Index("ix_orders_tenant_status", "tenant_id", "status", "paid_at"),
        Index("ix_orders_tenant_created", "tenant_id", "created_at"),
        Index("ix_orders_tenant_customer", "tenant_id", "customer_id"),
        Index("ix_orders_tenant_client_ip", "tenant_id", "client_ip", "created_at"),
        Index("ix_orders_tenant_device", "tenant_id", "device_id", "created_at"),
    )

    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))  # one of ORDER_SOURCES
    customer_id: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="pending")
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column()  # minor units
    refunded_amount: Mapped[int] = mapped_column(default=0)  # minor units
    payment_reference: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    reserved_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    placed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # when the customer ordered
    paid_at: Mapped[dt.datetime | None]
    fulfilled_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    refunded_at: Mapped[dt.datetime | None]
    # risk control (风控): the request facts rules need, and why the order is held
    client_ip: Mapped[str | None] = mapped_column(String(45))
    device_id: Mapped[str | None] = mapped_column(String(128))
    hold_reason: Mapped[str | None] = mapped_column(Text)
    risk_reviewed_at: Mapped[dt.datetime | None]  # approved in review: not held again for the same facts

    @property
    def refundable_amount(self) -> int:
        """Return how much can still be refunded, in minor units."""
        return max(0, self.total - self.refunded_amount)


class OrderLine(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One line: a plan × quantity at a price, with the plan and bundle contents as sold."""

    __tablename__ = "order_lines"
    __table_args__ = (_order_fk(), Index("ix_order_lines_tenant_order", "tenant_id", "order_id"))

    order_id: Mapped[int] = mapped_column()
    position: Mapped[int] = mapped_column(Integer, default=0)
    plan_id: Mapped[int | None] = mapped_column()
    bundle_id: Mapped[int | None] = mapped_column()
    sku: Mapped[str] = mapped_column(String(120), default="")
    title: Mapped[str] = mapped_column(String(240))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column()  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column()  # minor units
    refunded_amount: Mapped[int] = mapped_column(default=0)
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)

    def rights_per_unit(self) -> list[dict[str, Any]]:
        """Return the right snapshots one unit of this line delivers (an item repeated by its quantity)."""
        rights: list[dict[str, Any]] = []
        for item in self.snapshot.get("bundle", {}).get("items", []):
            rights.extend([item["right"]] * int(item.get("quantity", 1)))
        return rights


class Grant(TenantOwned, db.Model):  # type: ignore[name-defined]
    """发放: one right delivered to one customer for one unit of one order line.

    (order line, unit index, item index) is unique: paying an order twice can never create a second grant
    for the same thing. A card-key grant points at its key; a generated code is stored like a card key
    (encrypted, with a keyed hash that is unique per right); a link is kept as is; a top-up carries its
    own state machine (the request id sent to the supplier is the grant id).
    """

    __tablename__ = "grants"
    __table_args__ = (
        _order_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "order_line_id"], ["order_lines.tenant_id", "order_lines.id"], ondelete="CASCADE"
        ),
        _customer_fk(),
        ForeignKeyConstraint(["tenant_id", "card_key_id"], ["card_keys.tenant_id", "card_keys.id"]),
        UniqueConstraint("tenant_id", "order_line_id", "unit_index", "item_index"),
        UniqueConstraint("tenant_id", "right_id", "code_hash"),
        Index("ix_grants_tenant_order", "tenant_id", "order_id"),
        Index("ix_grants_tenant_customer", "tenant_id", "customer_id"),
        # Partial: only grants waiting for stock are in it (few, briefly), so delivering a grant writes no
        # entry here, and the generated-code check cannot pick it over the unique key on tables without
        # statistics (it did: 11 ms per code at 16,000 grants, the slowest step of a drain).
        Index(
            "ix_grants_backorders",
            "tenant_id",
            "right_id",
            "queued_at",
            "id",
            postgresql_where=text("status = 'backordered'"),
            sqlite_where=text("status = 'backordered'"),
        ),
        Index("ix_grants_tenant_card_key", "tenant_id", "card_key_id"),
    )

    order_id: Mapped[int] = mapped_column()
    order_line_id: Mapped[int] = mapped_column()
    customer_id: Mapped[int | None] = mapped_column()
    unit_index: Mapped[int] = mapped_column(Integer)
    item_index: Mapped[int] = mapped_column(Integer)
    right_id: Mapped[int] = mapped_column()
    right_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # catalog FULFILMENT_KINDS
    status: Mapped[str] = mapped_column(String(12), default="pending")
    queued_at: Mapped[dt.datetime | None]  # payment time: backorders are filled in this order
    card_key_id: Mapped[int | None] = mapped_column()
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    code_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    mask: Mapped[str] = mapped_column(String(40), default="")
    link_url: Mapped[str] = mapped_column(String(2000), default="")
    unit_cost: Mapped[int] = mapped_column(default=0)  # minor units, for margin reports
    valid_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reserved_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    first_revealed_at: Mapped[dt.datetime | None]
    redeemed_at: Mapped[dt.datetime | None]
    redemption_source: Mapped[str | None] = mapped_column(String(20))
    seconds_to_redeem: Mapped[int | None] = mapped_column()  # delivery → redemption, for the dashboards
    cancelled_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    refunded_amount: Mapped[int] = mapped_column(default=0)
    flag: Mapped[str | None] = mapped_column(String(40))  # e.g. redeemed_after_refund
    # top-up (直充): queued → requesting → succeeded | retrying | waiting | failed
    topup_state: Mapped[str | None] = mapped_column(String(16))
    topup_attempts: Mapped[int] = mapped_column(Integer, default=0)
    topup_reference: Mapped[str | None] = mapped_column(String(128))
    topup_error: Mapped[str | None] = mapped_column(Text)
    topup_account: Mapped[str | None] = mapped_column(String(128))

    @property
    def is_open(self) -> bool:
        """Tell whether the grant still waits for something (stock, a top-up, payment)."""
        return self.status in OPEN_GRANT_STATUSES


class OrderEvent(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One status transition of an order: from, to, who or what, when and why."""

    __tablename__ = "order_events"
    __table_args__ = (_order_fk(), Index("ix_order_events_tenant_order", "tenant_id", "order_id", "at"))

    order_id: Mapped[int] = mapped_column()
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delivery(TenantOwned, OutboxColumns, db.Model):  # type: ignore[name-defined]
    """One delivery message about an order (first delivery, backorder fill, resend): to whom, how, by whom.

    It is the order's outbox record (`saas.outbox`): `queued → sent / failed`, or `skipped` with no address.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        _order_fk(),
        Index("ix_deliveries_tenant_order", "tenant_id", "order_id"),
        Index("ix_deliveries_tenant_status", "tenant_id", "status", "created_at"),
    )

    order_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(12))  # delivery, backorder (a fill), resend
    method: Mapped[str] = mapped_column(String(12), default="email")
    recipient: Mapped[str] = mapped_column(String(254), default="")
    grant_count: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")


class Redemption(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One redemption report (核销) and what came of it: accepted, repeated, or rejected and why."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_tenant_at", "tenant_id", "at"),
        Index("ix_redemptions_tenant_grant", "tenant_id", "grant_id"),
    )

    grant_id: Mapped[int | None] = mapped_column()  # None when the code was unknown
    source: Mapped[str] = mapped_column(String(20))  # one of REDEMPTION_SOURCES
    outcome: Mapped[str] = mapped_column(String(24))  # redeemed, already_redeemed, unknown, rejected_*
    code_mask: Mapped[str] = mapped_column(String(40), default="")
    reference: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(200))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    # 亲情共享: the family member who used a shared right (None: the buyer, or not from the portal).
    member_customer_id: Mapped[int | None] = mapped_column()
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Refund(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Money given back, for reconciliation: amount, currency, reason, actor, time and source."""

    __tablename__ = "refunds"
    __table_args__ = (
        _order_fk(),
        ForeignKeyConstraint(["tenant_id", "order_line_id"], ["order_lines.tenant_id", "order_lines.id"]),
        UniqueConstraint("tenant_id", "source", "external_id"),
        Index("ix_refunds_tenant_order", "tenant_id", "order_id"),
        Index("ix_refunds_tenant_created", "tenant_id", "created_at"),
    )

    order_id: Mapped[int] = mapped_column()
    order_line_id: Mapped[int | None] = mapped_column()
    grant_ids: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    scope: Mapped[str] = mapped_column(String(8))  # order, line, grants
    amount: Mapped[int] = mapped_column()  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # one of REFUND_SOURCES
    external_id: Mapped[str | None] = mapped_column(String(128))  # a channel's refund id (idempotency)
    actor: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

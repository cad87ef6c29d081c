"""Rights, bundles and plans, card-key batches and card keys, and the tenants' wrapped data keys.

Foreign keys between these tables are composite and include `tenant_id` (DESIGN law 1); relationships
are avoided on purpose (they would copy `tenant_id` twice) — reads are explicit queries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

FULFILMENT_KINDS = ("card_key", "code", "topup", "link")
DEFAULT_FAMILY_MEMBERS = 3  # 亲情共享: a family of up to 3 by default
BUNDLE_STATUSES = ("draft", "active", "archived")
PERIOD_UNITS = ("month", "quarter", "year", "days")
PERIOD_DAYS = {"month": 30, "quarter": 91, "year": 365}
KEY_STATUSES = ("available", "reserved", "delivered", "redeemed", "void", "expired")
# Look-alike characters (0/O, 1/I/L) are left out of generated codes.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _right_fk(*, ondelete: str | None = None) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "right_id"], ["rights.tenant_id", "rights.id"], ondelete=ondelete
    )


def _bundle_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "bundle_id"], ["bundles.tenant_id", "bundles.id"], ondelete="CASCADE"
    )


class TenantDataKey(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A tenant's data key for one purpose (`encrypt` or `hash`), wrapped by the master key."""

    __tablename__ = "tenant_data_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "purpose"),)

    purpose: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))  # fingerprint of the master key that wraps it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    rewrapped_at: Mapped[dt.datetime | None]


class Right(TenantOwned, db.Model):  # type: ignore[name-defined]
    """权益: one deliverable entitlement and how it is fulfilled."""

    __tablename__ = "rights"
    __table_args__ = (Index("ix_rights_tenant_name", "tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(120), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))  # one of FULFILMENT_KINDS
    face_value: Mapped[int] = mapped_column(default=0)  # minor units
    unit_cost: Mapped[int] = mapped_column(default=0)  # default unit cost, minor units
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    validity_days: Mapped[int | None] = mapped_column(Integer)
    # card_key: a reusable (shared-account) key may be delivered up to max_deliveries times.
    reusable: Mapped[bool] = mapped_column(Boolean, default=False)
    max_deliveries: Mapped[int] = mapped_column(Integer, default=1)
    # code: generated redemption codes.
    code_prefix: Mapped[str] = mapped_column(String(16), default="")
    code_length: Mapped[int] = mapped_column(Integer, default=12)
    # topup: the supplier adapter and its product settings (the adapter comes with orders).
    topup_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # link: delivered as is.
    link_url: Mapped[str] = mapped_column(String(2000), default="")
    # Low-stock alert: fires once when available stock falls below the threshold, clears on restock.
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)
    low_stock_since: Mapped[dt.datetime | None]
    archived_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def uses_inventory(self) -> bool:
        """Tell whether this right is delivered from imported card keys."""
        return self.kind == "card_key"

    @property
    def low_stock(self) -> bool:
        """Tell whether the low-stock alert is on (available stock fell below the threshold)."""
        return self.low_stock_since is not None

    def snapshot(self) -> dict[str, Any]:
        """Return what an order must remember of this right, JSON-able."""
        return {
            "id": str(self.id),
            "name": self.name,
            "provider": self.provider,
            "kind": self.kind,
            "face_value": self.face_value,
            "unit_cost": self.unit_cost,
            "currency": self.currency,
            "validity_days": self.validity_days,
            "reusable": self.reusable,
            "max_deliveries": self.max_deliveries,
            "code_prefix": self.code_prefix,
            "code_length": self.code_length,
            "topup_settings": dict(self.topup_settings or {}),
            "link_url": self.link_url,
        }


class Bundle(TenantOwned, db.Model):  # type: ignore[name-defined]
    """权益包: a sellable package of rights with plans; draft → active → archived."""

    __tablename__ = "bundles"
    __table_args__ = (Index("ix_bundles_tenant_status", "tenant_id", "status"),)

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    cover_text: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12), default="draft")
    cloned_from_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    activated_at: Mapped[dt.datetime | None]
    archived_at: Mapped[dt.datetime | None]

    def items(self) -> list[tuple[BundleItem, Right]]:
        """Return the bundle's rights with their quantities, in order."""
        rows = db.session.execute(
            select(BundleItem, Right)
            .join(Right, (Right.tenant_id == BundleItem.tenant_id) & (Right.id == BundleItem.right_id))
            .where(BundleItem.bundle_id == self.id)
            .order_by(BundleItem.position, BundleItem.id)
        )
        return [(item, right) for item, right in rows]

    def plans(self) -> list[Plan]:
        """Return the bundle's plans, in order."""
        return list(
            db.session.scalars(select(Plan).where(Plan.bundle_id == self.id).order_by(Plan.position, Plan.id))
        )

    def snapshot(self, items: list[tuple[BundleItem, Right]] | None = None) -> dict[str, Any]:
        """Return the bundle and its contents (`items`, read now if not given) as sold now (JSON-able)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "cover_text": self.cover_text,
            "status": self.status,
            "items": [
                {"quantity": item.quantity, "right": right.snapshot()}
                for item, right in (self.items() if items is None else items)
            ],
        }

    @classmethod
    def with_items(cls, bundle_id: int) -> tuple[Bundle, list[tuple[BundleItem, Right]]] | None:
        """Return a bundle of the bound tenant and its rights in order, read with one query."""
        rows = db.session.execute(
            select(cls, BundleItem, Right)
            .outerjoin(BundleItem, (BundleItem.tenant_id == cls.tenant_id) & (BundleItem.bundle_id == cls.id))
            .outerjoin(Right, (Right.tenant_id == BundleItem.tenant_id) & (Right.id == BundleItem.right_id))
            .where(cls.id == bundle_id)
            .order_by(BundleItem.position, BundleItem.id)
        ).all()
        if not rows:
            return None
        return rows[0][0], [(item, right) for _bundle, item, right in rows if item is not None]


class BundleItem(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One right in a bundle, with how many of it a buyer gets."""

    __tablename__ = "bundle_items"
    __table_args__ = (
        _bundle_fk(),
        _right_fk(),
        UniqueConstraint("tenant_id", "bundle_id", "right_id"),
        Index("ix_bundle_items_tenant_right", "tenant_id", "right_id"),
    )

    bundle_id: Mapped[int] = mapped_column()
    right_id: Mapped[int] = mapped_column()
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Plan(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A tier of a bundle: period, price, list price, renewal and purchase limit."""

    __tablename__ = "plans"
    __table_args__ = (_bundle_fk(), Index("ix_plans_tenant_bundle", "tenant_id", "bundle_id"))

    bundle_id: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    period_unit: Mapped[str] = mapped_column(String(12))  # one of PERIOD_UNITS
    period_days: Mapped[int | None] = mapped_column(Integer)  # only for "days"
    price: Mapped[int] = mapped_column()  # minor units
    list_price: Mapped[int | None] = mapped_column()  # 划线价, minor units
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    renewable: Mapped[bool] = mapped_column(Boolean, default=True)
    purchase_limit: Mapped[int | None] = mapped_column(Integer)  # per customer per period
    # 亲情共享: the buyer may share the plan's shareable rights with up to this many family members.
    family_sharing: Mapped[bool] = mapped_column(Boolean, default=False)
    family_max_members: Mapped[int] = mapped_column(Integer, default=DEFAULT_FAMILY_MEMBERS)
    position: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)  # grows with every edit
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def duration_days(self) -> int:
        """Return the period in days (a month counts 30, a quarter 91, a year 365)."""
        if self.period_unit == "days":
            return int(self.period_days or 0)
        return PERIOD_DAYS[self.period_unit]

    @property
    def discount_percent(self) -> int | None:
        """Return how much below the list price the price is, in whole percent (None without one)."""
        if not self.list_price or self.list_price <= self.price:
            return None
        return round((self.list_price - self.price) * 100 / self.list_price)

    def snapshot(self) -> dict[str, Any]:
        """Return plan + bundle contents + rights as sold now, JSON-able, for an order to keep.

        Later edits of the plan, bundle or rights never change a snapshot already taken.
        """
        found = Bundle.with_items(self.bundle_id)
        assert found is not None
        bundle, items = found
        return {
            "plan": {
                "id": str(self.id),
                "name": self.name,
                "version": self.version,
                "period_unit": self.period_unit,
                "period_days": self.duration_days,
                "price": self.price,
                "list_price": self.list_price,
                "currency": self.currency,
                "renewable": self.renewable,
                "purchase_limit": self.purchase_limit,
                "family_max_members": self.family_max_members if self.family_sharing else 0,
            },
            "bundle": bundle.snapshot(items),
            "taken_at": utcnow().isoformat(),
        }


class CardKeyBatch(TenantOwned, db.Model):  # type: ignore[name-defined]
    """批次: one supplier import of card keys, written in the same transaction as its keys."""

    __tablename__ = "card_key_batches"
    __table_args__ = (_right_fk(), Index("ix_card_key_batches_tenant_right", "tenant_id", "right_id"))

    right_id: Mapped[int] = mapped_column()
    supplier: Mapped[str] = mapped_column(String(120))
    unit_cost: Mapped[int] = mapped_column()  # minor units per key
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    expires_at: Mapped[dt.datetime | None]  # default expiry of the batch's keys
    source_filename: Mapped[str] = mapped_column(String(255), default="")
    source_checksum: Mapped[str] = mapped_column(String(64), default="")  # SHA-256 of the file
    upload_token: Mapped[str | None] = mapped_column(String(64))  # where the rejection report lives
    file_format: Mapped[dict[str, Any]] = mapped_column(default=dict)  # format, encoding, mapping
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    imported_by: Mapped[str] = mapped_column(String(200), default="")
    rows_read: Mapped[int] = mapped_column(default=0)
    imported: Mapped[int] = mapped_column(default=0)
    duplicates_in_file: Mapped[int] = mapped_column(default=0)
    duplicates_in_stock: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    voided_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CardKey(TenantOwned, db.Model):  # type: ignore[name-defined]
    """卡密: one supplier card key, encrypted; moves available → reserved → delivered → redeemed.

    `void` and `expired` keys are never delivered. A reusable key stays `available` until its
    `delivery_count` reaches `max_deliveries`.
    """

    __tablename__ = "card_keys"
    __table_args__ = (
        _right_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "batch_id"], ["card_key_batches.tenant_id", "card_key_batches.id"]
        ),
        UniqueConstraint("tenant_id", "right_id", "code_hash"),
        # The allocation path: oldest expiry first, then the oldest batch (FIFO).
        Index("ix_card_keys_allocation", "tenant_id", "right_id", "status", "expires_at", "batch_id", "id"),
        Index("ix_card_keys_batch", "tenant_id", "batch_id", "status"),
    )

    right_id: Mapped[int] = mapped_column()
    batch_id: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="available")
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)  # nonce + AES-256-GCM ciphertext
    mask: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[dt.datetime | None]
    max_deliveries: Mapped[int] = mapped_column(Integer, default=1)
    delivery_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reserved_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]  # the latest delivery
    redeemed_at: Mapped[dt.datetime | None]
    voided_at: Mapped[dt.datetime | None]
    void_reason: Mapped[str | None] = mapped_column(Text)
    expired_at: Mapped[dt.datetime | None]


# The same autovacuum settings as migration 0002, for databases made with create_all (tests, benchmarks).
event.listen(
    CardKey.__table__,
    "after_create",
    DDL(
        "ALTER TABLE card_keys SET"
        " (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000)"
    ).execute_if(dialect="postgresql"),
)

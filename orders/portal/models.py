"""The portal's tables: one-time sign-in codes, and family shares (亲情共享)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned


def _customer_fk(column: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", column], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
    )


class PortalCode(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A six-digit sign-in code sent to a phone or an email address; only its keyed hash is stored.

    The rows also count the codes asked for per address and per IP address (the send limits).
    """

    __tablename__ = "portal_codes"
    __table_args__ = (
        Index("ix_portal_codes_tenant_address", "tenant_id", "address", "created_at"),
        Index("ix_portal_codes_tenant_ip", "tenant_id", "ip", "created_at"),
    )

    address: Mapped[str] = mapped_column(String(254))  # E.164 phone or lower-cased email
    transport: Mapped[str] = mapped_column(String(8))  # sms or mail
    code_hash: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None]


class FamilyShare(TenantOwned, db.Model):  # type: ignore[name-defined]
    """亲情共享: a buyer shares one purchase (an order line, and its subscription's renewals) with a member.

    Access is live: the member sees the shareable rights while the share is not removed and the purchase is
    neither refunded nor cancelled (see `orders.portal.family.shared_rights`).
    """

    __tablename__ = "family_shares"
    __table_args__ = (
        _customer_fk("owner_customer_id"),
        _customer_fk("member_customer_id"),
        Index("ix_family_shares_tenant_owner", "tenant_id", "owner_customer_id"),
        Index("ix_family_shares_tenant_member", "tenant_id", "member_customer_id"),
    )

    owner_customer_id: Mapped[int] = mapped_column()
    member_customer_id: Mapped[int] = mapped_column()
    member_phone: Mapped[str] = mapped_column(String(32))
    order_line_id: Mapped[int] = mapped_column()  # the purchase shared (plain column, like history)
    subscription_id: Mapped[int | None] = mapped_column()  # its renewals are shared too
    plan_name: Mapped[str] = mapped_column(String(240), default="")
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(200))

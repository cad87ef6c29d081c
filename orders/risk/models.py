"""Risk-control (风控) tables: velocity rules, blocklist entries, flags and the request facts rules count.

A held order is not a row here: it is an order in status `held` with its `hold_reason` (orders.models).
Flags are events a person should look at (a redemption after a refund, a key revealed from many
addresses, a burst of orders for one plan, a redemption over the per-IP velocity).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

BLOCK_KINDS = ("email", "email_domain", "phone", "ip", "device", "channel_customer")
RULE_KINDS = (
    "orders_per_customer",  # paid/held orders of one customer in the window
    "orders_per_ip",
    "orders_per_device",
    "redemptions_per_ip",  # redemptions from one address in the window: flagged, not refused
    "reveal_ips_per_grant",  # distinct addresses that revealed one key in the window: flagged
    "orders_per_plan",  # a burst of orders for one plan in the window: flagged
)
HOLDING_RULES = ("orders_per_customer", "orders_per_ip", "orders_per_device")
FLAG_KINDS = (
    "redemption_after_refund",
    "redemption_velocity",
    "reveal_many_ips",
    "plan_burst",
    "code_guessing",  # many unknown campaign codes from one address or phone
)
FLAG_STATUSES = ("open", "dismissed", "confirmed")
TRACE_KINDS = ("redemption", "reveal")


class RiskRule(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A velocity threshold: at most `threshold` events of `kind` within `window_minutes`."""

    __tablename__ = "risk_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)

    kind: Mapped[str] = mapped_column(String(32))  # one of RULE_KINDS
    threshold: Mapped[int] = mapped_column(Integer)
    window_minutes: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BlocklistEntry(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A value whose orders are held: an email, a domain, a phone, an IP or CIDR, a device, a channel id."""

    __tablename__ = "risk_blocklist"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value"),)

    kind: Mapped[str] = mapped_column(String(20))  # one of BLOCK_KINDS
    value: Mapped[str] = mapped_column(String(254))  # normalised (lower case, CIDR in network form)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(200))
    added_by_user_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RiskFlag(TenantOwned, db.Model):  # type: ignore[name-defined]
    """An event a person should review: what, about which order or grant, why; then dismissed or confirmed."""

    __tablename__ = "risk_flags"
    __table_args__ = (
        Index("ix_risk_flags_tenant_status", "tenant_id", "status", "created_at"),
        UniqueConstraint("tenant_id", "dedupe_key"),
    )

    kind: Mapped[str] = mapped_column(String(32))  # one of FLAG_KINDS
    status: Mapped[str] = mapped_column(String(12), default="open")
    order_id: Mapped[int | None] = mapped_column()
    grant_id: Mapped[int | None] = mapped_column()
    plan_id: Mapped[int | None] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(45))
    reason: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(160))  # one open flag per thing per window
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[dt.datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class RiskTrace(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One customer action the velocity and anomaly rules count: a redemption or a reveal, from an address."""

    __tablename__ = "risk_traces"
    __table_args__ = (
        Index("ix_risk_traces_ip", "tenant_id", "kind", "ip", "at"),
        Index("ix_risk_traces_grant", "tenant_id", "kind", "grant_id", "at"),
    )

    kind: Mapped[str] = mapped_column(String(12))  # one of TRACE_KINDS
    grant_id: Mapped[int | None] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(45))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

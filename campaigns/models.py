"""Partner campaigns (企业福利, 银行积分兑换, 运营商合约): partners, campaigns, codes (兑换码), claims.

A campaign sells `units` of one plan to a partner at the partner price; the partner hands codes to its own
people, who claim them on the shop's public page or through the partner API. A claim is an order of the
campaign's channel at the partner price, fulfilled like any other order, exactly once per code.
Codes are stored like card keys: AES-256-GCM under the tenant's data key (the campaign bound in as
associated data) and a keyed hash for lookup, unique per tenant.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

PARTNER_KINDS = ("enterprise", "bank", "carrier", "other")
BILLING_BASES = ("issued", "claimed")  # the partner pays for codes issued, or only for codes claimed
ISSUE_MODES = ("export", "api")  # codes exported once as a file, or issued one at a time by the partner API
CAMPAIGN_STATUSES = ("active", "void")
CODE_STATUSES = ("issued", "claimed", "void")  # an unclaimed code past the campaign's end is expired
CLAIM_OUTCOMES = (
    "claimed",
    "unknown_code",  # no such code: a guess, or a typo
    "already_claimed",
    "void",
    "expired",
    "not_started",
    "limit_reached",  # the claimant already holds `claims_per_customer` codes of this campaign
    "rate_limited",
)


class Partner(TenantOwned, db.Model):  # type: ignore[name-defined]
    """An enterprise, bank or carrier that buys codes: its name, kind and whom to talk to."""

    __tablename__ = "campaign_partners"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # one of PARTNER_KINDS
    contact_name: Mapped[str] = mapped_column(String(120), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Campaign(TenantOwned, db.Model):  # type: ignore[name-defined]
    """`units` codes of one plan for one partner, claimable in a window, billed issued or claimed."""

    __tablename__ = "campaigns"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "partner_id"], ["campaign_partners.tenant_id", "campaign_partners.id"]
        ),
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["plans.tenant_id", "plans.id"]),
        Index("ix_campaigns_tenant_partner", "tenant_id", "partner_id"),
    )

    partner_id: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    plan_id: Mapped[int] = mapped_column()
    bundle_id: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(240))  # "bundle · plan" when the campaign was created
    units: Mapped[int] = mapped_column(Integer)
    partner_price: Mapped[int] = mapped_column()  # minor units per code
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    claims_per_customer: Mapped[int] = mapped_column(Integer, default=1)
    billing_basis: Mapped[str] = mapped_column(String(12))  # one of BILLING_BASES
    issue_mode: Mapped[str] = mapped_column(String(12))  # one of ISSUE_MODES
    channel: Mapped[str] = mapped_column(String(64))  # the claims' orders' channel: "partner:<name>"
    status: Mapped[str] = mapped_column(String(12), default="active")
    issued_count: Mapped[int] = mapped_column(Integer, default=0)  # raised by one conditional UPDATE
    exported_at: Mapped[dt.datetime | None]
    exported_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[dt.datetime | None]
    void_reason: Mapped[str] = mapped_column(Text, default="")


class CampaignCode(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One 兑换码: encrypted, found by its keyed hash, claimed once (a conditional UPDATE) into one order."""

    __tablename__ = "campaign_codes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"]),
        UniqueConstraint("tenant_id", "code_hash"),
        UniqueConstraint("tenant_id", "campaign_id", "idempotency_key"),
        Index("ix_campaign_codes_campaign", "tenant_id", "campaign_id", "status"),
        Index("ix_campaign_codes_claimant", "tenant_id", "campaign_id", "claimant"),
    )

    campaign_id: Mapped[int] = mapped_column()
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    code_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    mask: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="issued")
    issued_via: Mapped[str] = mapped_column(String(12))  # one of ISSUE_MODES
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimant: Mapped[str | None] = mapped_column(String(254))  # E.164 phone or lower-case email
    claimed_at: Mapped[dt.datetime | None]
    claim_ip: Mapped[str | None] = mapped_column(String(45))
    order_id: Mapped[int | None] = mapped_column()
    refused_claims: Mapped[int] = mapped_column(Integer, default=0)  # later attempts on a used code
    voided_at: Mapped[dt.datetime | None]


class ClaimAttempt(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Every claim attempt and its outcome: refused ones are counted per campaign and feed the guess rule."""

    __tablename__ = "campaign_claim_attempts"
    __table_args__ = (
        Index("ix_campaign_attempts_campaign", "tenant_id", "campaign_id", "at"),
        Index("ix_campaign_attempts_ip", "tenant_id", "outcome", "ip", "at"),
    )

    campaign_id: Mapped[int | None] = mapped_column()  # unknown for a guessed code
    code_id: Mapped[int | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))  # one of CLAIM_OUTCOMES
    claimant: Mapped[str] = mapped_column(String(254), default="")
    ip: Mapped[str | None] = mapped_column(String(45))
    via: Mapped[str] = mapped_column(String(8))  # "page" or "api"
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ClaimVerification(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A one-time code sent to a claimant's phone (SMS) or email: keyed hash, ten minutes, five tries."""

    __tablename__ = "campaign_claim_verifications"
    __table_args__ = (Index("ix_campaign_verifications_claimant", "tenant_id", "claimant", "created_at"),)

    claimant: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None]

"""Demo campaigns: a bank's points exchange (codes exported once, a few claimed over the last days, one
redeemed, a guess refused) and a carrier's contract plan (codes issued one by one by the partner API)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from campaigns import claims, services
from catalog.models import Bundle, Plan
from orders import redemption
from orders.models import Grant
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import Tenant

DEMO_CLAIMANTS = ("+8613700000021", "+8613700000022", "wuting@example.com")


def _demo_plan() -> Plan | None:
    return db.session.scalar(
        select(Plan)
        .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
        .where(Bundle.status == "active")
        .order_by(Plan.price, Plan.id)
        .limit(1)
    )


def add_demo_campaigns(tenant: Tenant) -> None:
    """Add two partners and their campaigns, with claims on different days."""
    plan = _demo_plan()
    if plan is None:
        return
    now = utcnow()
    bank = services.create_partner(
        "招商银行积分商城", "bank", "王经理", "wang@bank.example.com", "13800000031"
    )
    carrier = services.create_partner("中国移动合约计划", "carrier", "赵女士", "zhao@cmcc.example.com")
    points = services.create_campaign(
        services.CampaignRequest(
            partner_id=bank.id,
            name="积分兑换会员月卡",
            plan_id=plan.id,
            units=20,
            partner_price=plan.price * 6 // 10,
            starts_at=now - dt.timedelta(days=10),
            ends_at=now + dt.timedelta(days=80),
            billing_basis="claimed",
            issue_mode="export",
        )
    )
    contract = services.create_campaign(
        services.CampaignRequest(
            partner_id=carrier.id,
            name="合约机送会员",
            plan_id=plan.id,
            units=100,
            partner_price=plan.price // 2,
            starts_at=now - dt.timedelta(days=10),
            ends_at=now + dt.timedelta(days=170),
            billing_basis="issued",
            issue_mode="api",
        )
    )
    with frozen_time(now - dt.timedelta(days=9)):
        codes = services.export_codes(points.id)
    for days_ago, code, claimant in zip((6, 3, 1), codes, DEMO_CLAIMANTS, strict=False):
        with frozen_time(now - dt.timedelta(days=days_ago)):
            result = claims.claim(code, claimant, ip="203.0.113.21")
    if result.order is not None:
        grant = db.session.scalar(
            select(Grant).where(Grant.order_id == result.order.id, Grant.status == "delivered")
        )
        if grant is not None:
            redemption.redeem_grant(grant.id, source="customer")
    claims.claim("DEMO-GUESS-0000", DEMO_CLAIMANTS[0], ip="198.51.100.200")
    for number in range(3):
        with frozen_time(now - dt.timedelta(days=2 - number)):
            services.issue_code(contract.id, f"CMCC-DEMO-{number}")

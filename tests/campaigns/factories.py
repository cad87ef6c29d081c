"""Campaign factories: a sellable product, a partner and a campaign made through the real services.

Call them with a tenant bound (`with shop.bound():`). The `*_row` ones add plain rows (no audit trail) for
the route-wide tests, which count audit rows around requests.
"""

from __future__ import annotations

import datetime as dt
import itertools

from campaigns import services
from campaigns.models import Campaign, CampaignCode, Partner
from saas.extensions import db
from saas.timeutil import utcnow
from tests.orders.factories import Product, make_product, make_right

_serial = itertools.count(1)


def code_product() -> Product:
    """A bundle of one generated-code right (no stock needed) with a monthly plan at ¥19.90."""
    return make_product(make_right("视频会员兑换", kind="code", code_length=12))


def make_partner(name: str = "招商银行积分商城", kind: str = "bank") -> Partner:
    return services.create_partner(f"{name} {next(_serial)}", kind, "王经理", "wang@bank.test", "13800138000")


def make_campaign(
    product: Product | None = None,
    *,
    partner: Partner | None = None,
    units: int = 10,
    partner_price: int = 1200,
    issue_mode: str = "export",
    billing_basis: str = "claimed",
    claims_per_customer: int = 1,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
) -> Campaign:
    product = product or code_product()
    partner = partner or make_partner()
    now = utcnow()
    return services.create_campaign(
        services.CampaignRequest(
            partner_id=partner.id,
            name=f"积分兑换视频月卡 {next(_serial)}",
            plan_id=product.plan.id,
            units=units,
            partner_price=partner_price,
            starts_at=starts_at or now - dt.timedelta(days=1),
            ends_at=ends_at or now + dt.timedelta(days=30),
            claims_per_customer=claims_per_customer,
            billing_basis=billing_basis,
            issue_mode=issue_mode,
        )
    )


def partner_row() -> Partner:
    partner = Partner(name=f"路由测试伙伴 {next(_serial)}", kind="enterprise")
    db.session.add(partner)
    db.session.commit()
    return partner


def campaign_row() -> Campaign:
    """The shop's newest campaign, or a new API campaign of a draft plan (nested ids point at one chain)."""
    from sqlalchemy import select

    from tests.catalog.factories import plan_row

    newest = db.session.scalar(select(Campaign).order_by(Campaign.id.desc()).limit(1))
    if newest is not None:
        return newest
    plan = plan_row()
    now = utcnow()
    campaign = Campaign(
        partner_id=partner_row().id,
        name="路由测试活动",
        plan_id=plan.id,
        bundle_id=plan.bundle_id,
        title="路由测试",
        units=5,
        partner_price=100,
        currency="CNY",
        starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=1),
        claims_per_customer=1,
        billing_basis="claimed",
        issue_mode="api",
        status="active",
        issued_count=0,
    )
    campaign.channel = "partner:路由测试伙伴"
    db.session.add(campaign)
    db.session.commit()
    return campaign


def code_row() -> CampaignCode:
    """A code row of the newest campaign (route tests nest <campaign_code_id> under <campaign_id>)."""
    campaign = campaign_row()
    code = CampaignCode(
        campaign_id=campaign.id,
        code_hash=next(_serial).to_bytes(32, "big"),
        code_ciphertext=b"fixture",
        mask="ROUT••••••TE",
        status="issued",
        issued_via="api",
    )
    db.session.add(code)
    db.session.commit()
    return code

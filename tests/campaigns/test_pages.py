"""The pages of partner campaigns: the claimant's page on the shop (code + phone + SMS code, or email +
mailed code), the back office (create, figures per partner and per day, void) and the partner's statement,
which adds up to the campaign's claims and downloads as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns import claims, figures, services
from campaigns.models import Campaign, Partner
from orders import redemption
from orders.models import Grant, Order
from saas.extensions import db
from saas.timeutil import utcnow
from tests.campaigns.factories import code_product, make_campaign, make_partner
from tests.factories import Outbox, Shop, login


def sms_codes(app: Flask) -> list[str]:
    folder = Path(app.config["SMS_DIR"])
    messages = (
        [json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    )
    return [str(m["params"]["code"]) for m in messages if m["kind"] == "verification_code"]


def test_a_claimant_proves_the_phone_by_sms_and_gets_the_rights_once(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        code, other = services.export_codes(make_campaign(units=2, claims_per_customer=2).id)
    page = client.get(f"/claim/{shop.slug}/")
    assert page.status_code == 200 and "Claim a code" in page.get_data(as_text=True)
    sent = client.post(f"/claim/{shop.slug}/code", data={"contact": "138 0013 8000"}, follow_redirects=True)
    assert "We sent a six-digit code" in sent.get_data(as_text=True)
    (otp,) = sms_codes(app)
    wrong = client.post(
        f"/claim/{shop.slug}/",
        data={
            "code": code,
            "contact": "13800138000",
            "verification": "000000" if otp != "000000" else "111111",
        },
        follow_redirects=True,
    )
    assert "The code is not right." in wrong.get_data(as_text=True)
    claimed = client.post(
        f"/claim/{shop.slug}/", data={"code": code, "contact": "13800138000", "verification": otp}
    )
    assert claimed.status_code == 302 and "/my/" in claimed.headers["Location"]
    rights = client.get(claimed.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "视频会员兑换" in rights
    # Verified for a while: a second code needs no new SMS; the first one again is refused.
    again = client.post(
        f"/claim/{shop.slug}/",
        data={"code": code, "contact": "13800138000", "verification": "-"},
        follow_redirects=True,
    )
    assert "This code has been claimed already." in again.get_data(as_text=True)
    second = client.post(
        f"/claim/{shop.slug}/", data={"code": other, "contact": "+86 138 0013 8000", "verification": "-"}
    )
    assert second.status_code == 302 and "/my/" in second.headers["Location"]
    with shop.bound():
        orders = list(db.session.scalars(select(Order).where(Order.source == "campaign")))
        assert len(orders) == 2 and all(o.status == "fulfilled" for o in orders)


def test_a_claimant_with_an_email_gets_the_code_by_mail(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        (code,) = services.export_codes(make_campaign(units=1).id)
    client.post(f"/claim/{shop.slug}/code", data={"contact": "Li.Na@Example.test"})
    (mail,) = outbox.to("li.na@example.test")
    otp = re.search(r"\b(\d{6})\b", Outbox.body(mail))
    assert otp is not None
    response = client.post(
        f"/claim/{shop.slug}/",
        data={"code": code, "contact": "li.na@example.test", "verification": otp.group(1)},
    )
    assert response.status_code == 302 and "/my/" in response.headers["Location"]


def test_an_unknown_shop_has_no_claim_page(client: FlaskClient) -> None:
    assert client.get("/claim/no-such-shop/").status_code == 404


def test_an_operator_creates_a_campaign_and_reads_its_figures(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = code_product()
        plan_id = product.plan.id
    login(client, shop.members["operator"])
    response = client.post(
        f"/t/{shop.slug}/campaigns/partners",
        data={"name": "中国移动", "kind": "carrier", "contact_name": "赵", "contact_email": "zhao@cmcc.test"},
        follow_redirects=True,
    )
    assert "Partner added." in response.get_data(as_text=True)
    with shop.bound():
        partner_id = db.session.scalar(select(Partner.id).where(Partner.name == "中国移动"))
    today = utcnow().date()
    created = client.post(
        f"/t/{shop.slug}/campaigns/new",
        data={
            "name": "合约机送会员",
            "partner_id": partner_id,
            "plan_id": plan_id,
            "units": 3,
            "partner_price": "9.90",
            "starts_on": (today - dt.timedelta(days=1)).isoformat(),
            "ends_on": (today + dt.timedelta(days=30)).isoformat(),
            "claims_per_customer": 1,
            "billing_basis": "issued",
            "issue_mode": "export",
        },
    )
    assert created.status_code == 302, created.get_data(as_text=True)
    with shop.bound():
        campaign = db.session.scalar(select(Campaign).where(Campaign.name == "合约机送会员"))
        assert campaign is not None and campaign.partner_price == 990 and campaign.units == 3
        campaign_id = campaign.id
        one, two, _three = services.export_codes(campaign_id)
        claims.claim(one, "+8613800138000")
        claims.claim(two, "+8613800138000")  # over the limit of one: refused and counted
        claims.claim("WRONGCODE", "+8613800138000")
    page = client.get(f"/t/{shop.slug}/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'data-testid="issued">3<' in page and 'data-testid="claimed">1<' in page
    assert 'data-testid="refused">1<' in page and "Over the per-customer limit" in page
    listing = client.get(f"/t/{shop.slug}/campaigns/").get_data(as_text=True)
    assert "中国移动" in listing and "Invalid codes tried (guesses): 1" in listing
    voided = client.post(
        f"/t/{shop.slug}/campaigns/{campaign_id}/void", data={"reason": "合同终止"}, follow_redirects=True
    )
    assert "Campaign voided: 2 unclaimed codes can no longer be claimed." in voided.get_data(as_text=True)


def test_the_back_office_pages_speak_chinese(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        campaign_id = make_campaign().id
        partner_id = db.session.scalar(select(Campaign.partner_id).where(Campaign.id == campaign_id))
    login(client, shop.owner)
    for url in ("/", "/new", f"/{campaign_id}", f"/partners/{partner_id}/statement"):
        page = client.get(f"/t/{shop.slug}/campaigns{url}?lang=zh_CN", headers={"Accept-Language": "zh-CN"})
        assert page.status_code == 200, url
    assert "合作伙伴" in client.get(f"/t/{shop.slug}/campaigns/?lang=zh_CN").get_data(as_text=True)


@pytest.mark.parametrize("basis", ["claimed", "issued"])
def test_the_partner_statement_adds_up_to_the_campaign_by_its_billing_basis(
    client: FlaskClient, shop: Shop, basis: str
) -> None:
    with shop.bound():
        partner = make_partner("平安银行")
        partner_id = partner.id
        first = make_campaign(partner=partner, units=4, partner_price=1500, billing_basis=basis)
        second = make_campaign(partner=partner, units=2, partner_price=800, billing_basis=basis)
        a = services.export_codes(first.id)
        b = services.export_codes(second.id)
        for n, code in enumerate(a[:3]):
            assert claims.claim(code, f"+861380000000{n}").claimed
        assert claims.claim(b[0], "+8613900000000").claimed
        assert services.void_code(_code_id(b[1]))
        zone = shop.tenant.time_zone
        today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        statement = figures.statement(partner, today, today, zone)
        billable = {line.campaign.id: line.billable for line in statement.lines}
        if basis == "claimed":
            assert billable == {first.id: 3, second.id: 1}
            assert statement.totals() == {"CNY": 3 * 1500 + 800}
        else:
            assert billable == {first.id: 4, second.id: 1}  # the voided code is not billed
            assert statement.totals() == {"CNY": 4 * 1500 + 800}
        claimed_total = sum(
            o.total for o in db.session.scalars(select(Order).where(Order.source == "campaign"))
        )
        if basis == "claimed":
            assert sum(statement.totals().values()) == claimed_total  # the statement is the claims
        yesterday = today - dt.timedelta(days=1)
        assert figures.statement(partner, yesterday, yesterday, zone).totals() == {"CNY": 0}
    login(client, shop.members["finance"])
    response = client.get(
        f"/t/{shop.slug}/campaigns/partners/{partner_id}/statement.csv?start={today}&end={today}"
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    total = rows[-1]
    assert total[1] == "Total" and total[5] == ("53.00" if basis == "claimed" else "68.00")


def _code_id(code: str) -> int:
    from campaigns.models import CampaignCode

    found = db.session.scalar(
        select(CampaignCode.id).where(CampaignCode.code_hash == services.code_hash(code))
    )
    assert found is not None
    return found


def test_a_redeemed_right_counts_as_redeemed_on_its_day(shop: Shop) -> None:
    with shop.bound():
        campaign_id = make_campaign(units=2).id
        one, _two = services.export_codes(campaign_id)
        order = claims.claim(one, "+8613800138000").order
        assert order is not None
        grant = db.session.scalar(select(Grant).where(Grant.order_id == order.id))
        assert grant is not None
        redemption.redeem_grant(grant.id, source="api")
        counts = figures.counts_by_campaign([campaign_id])[campaign_id]
        assert (counts.issued, counts.claimed, counts.redeemed) == (2, 1, 1)
        (day,) = figures.per_day(campaign_id, shop.tenant.time_zone)
        assert (day.issued, day.claimed, day.redeemed) == (2, 1, 1)

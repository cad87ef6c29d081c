"""Claiming a partner campaign's code: delivered once through the orders' fulfilment, refused and counted
otherwise (claimed already, void, expired, over the per-customer limit, guessed), guesses rate limited and
flagged for the back office."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaigns import claims, services
from campaigns.models import CampaignCode, ClaimAttempt
from orders.models import Grant, Order
from orders.risk.models import RiskFlag
from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants.models import AuditEvent
from tests.campaigns.factories import make_campaign, make_partner
from tests.factories import Shop
from tests.orders.test_concurrency import run_together

PHONE = "+8613800138000"


def delivered_grants(order_id: int) -> list[Grant]:
    return list(
        db.session.scalars(select(Grant).where(Grant.order_id == order_id, Grant.status == "delivered"))
    )


def attempts(outcome: str) -> int:
    return db.session.scalar(select(func.count()).where(ClaimAttempt.outcome == outcome)) or 0


def test_a_claimed_code_is_an_order_of_the_campaign_at_the_partner_price_delivered_once(shop: Shop) -> None:
    with shop.bound():
        partner = make_partner("工商银行")
        campaign = make_campaign(partner=partner, partner_price=1200)
        code, *_rest = services.export_codes(campaign.id)
        result = claims.claim(code.lower().replace("-", " "), PHONE, ip="203.0.113.9")  # as typed on a phone
        assert result.claimed and result.order is not None
        order = db.session.get(Order, (shop.tenant.id, result.order.id))
        assert order is not None and order.status == "fulfilled"
        assert order.channel == f"partner:{partner.name}" and order.source == "campaign"
        assert order.total == 1200 and order.currency == "CNY"
        assert len(delivered_grants(order.id)) == 1
        row = db.session.scalar(select(CampaignCode).where(CampaignCode.order_id == order.id))
        assert row is not None and row.status == "claimed" and row.claimant == PHONE
        assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "campaign.code_claimed"))


def test_the_same_code_claimed_five_times_at_once_gives_one_delivery(app: Flask, shop: Shop) -> None:
    five_claimants_race_for_one_code(app, shop)


def test_the_same_code_claimed_five_times_at_once_on_postgres(
    app: Flask, shop: Shop, on_postgres: None
) -> None:
    five_claimants_race_for_one_code(app, shop)


def test_one_claimant_racing_with_three_codes_gets_no_more_than_the_limit(app: Flask, shop: Shop) -> None:
    with shop.bound():
        codes = services.export_codes(make_campaign(units=3, claims_per_customer=2).id)
    outcomes = run_together(app, shop.tenant.id, [lambda c=c: claims.claim(c, PHONE).outcome for c in codes])
    assert sorted(outcomes) == ["claimed", "claimed", "limit_reached"]


def five_claimants_race_for_one_code(app: Flask, shop: Shop) -> None:
    with shop.bound():
        (code,) = services.export_codes(make_campaign(units=1).id)
    phones = [f"+86139000000{n:02d}" for n in range(5)]
    outcomes = run_together(
        app, shop.tenant.id, [lambda p=p: claims.claim(code, p, ip="198.51.100.7").outcome for p in phones]
    )
    assert sorted(outcomes) == ["already_claimed"] * 4 + ["claimed"]
    with shop.bound():
        orders = list(db.session.scalars(select(Order).where(Order.source == "campaign")))
        assert len(orders) == 1
        assert len(delivered_grants(orders[0].id)) == 1
        assert attempts("already_claimed") == 4
        row = db.session.scalar(select(CampaignCode).where(CampaignCode.order_id == orders[0].id))
        assert row is not None and row.refused_claims == 4


def test_a_code_claimed_twice_is_refused_and_counted(shop: Shop) -> None:
    with shop.bound():
        code, *_rest = services.export_codes(make_campaign().id)
        assert claims.claim(code, PHONE).claimed
        again = claims.claim(code, "+8613911112222")
        assert again.outcome == "already_claimed"
        assert claims.refusal_message(again) == "This code has been claimed already."
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        row = db.session.scalar(select(CampaignCode).where(CampaignCode.claimant == PHONE))
        assert row is not None and row.refused_claims == 1


def test_one_customer_claims_no_more_codes_than_the_campaign_allows(shop: Shop) -> None:
    with shop.bound():
        first, second, third = services.export_codes(make_campaign(units=3, claims_per_customer=2).id)
        assert claims.claim(first, "Buyer@Example.test".lower()).claimed
        assert claims.claim(second, "buyer@example.test").claimed
        assert claims.claim(third, "buyer@example.test").outcome == "limit_reached"
        assert claims.claim(third, PHONE).claimed


def test_a_void_code_or_a_void_campaign_refuses_claims(shop: Shop) -> None:
    with shop.bound():
        campaign = make_campaign(units=3)
        one, two, three = services.export_codes(campaign.id)
        voided = db.session.scalar(
            select(CampaignCode.id).where(CampaignCode.code_hash == services.code_hash(one))
        )
        assert voided is not None and services.void_code(voided, "lost by the partner")
        assert claims.claim(one, PHONE).outcome == "void"
        assert claims.claim(two, PHONE).claimed
        assert services.void_campaign(campaign.id, "contract ended") == 1  # only `three` was still open
        assert claims.claim(three, "+8613911112222").outcome == "void"
        assert not services.void_code(voided)  # void already
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        actions = set(db.session.scalars(select(AuditEvent.action)))
        assert {"campaign.code_voided", "campaign.voided", "campaign.exported", "campaign.created"} <= actions


def test_a_code_is_refused_before_its_campaign_starts_and_after_it_ends(shop: Shop) -> None:
    start = utcnow()
    with shop.bound():
        campaign = make_campaign(
            units=2, starts_at=start + dt.timedelta(days=1), ends_at=start + dt.timedelta(days=8)
        )
        early, late = services.export_codes(campaign.id)
        assert claims.claim(early, PHONE).outcome == "not_started"
        with frozen_time(start + dt.timedelta(days=2)):
            assert claims.claim(early, PHONE).claimed
        with frozen_time(start + dt.timedelta(days=8)):
            result = claims.claim(late, "+8613911112222")
            assert result.outcome == "expired" and claims.refusal_message(result) == "This code has expired."
        assert attempts("expired") == 1 and attempts("not_started") == 1


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "CAMPAIGN_GUESS_LIMIT": "3 per hour"}


def test_guessed_codes_are_refused_counted_rate_limited_and_flagged(shop: Shop) -> None:
    with shop.bound():
        real, *_rest = services.export_codes(make_campaign().id)
        guesses = [services.new_code() for _n in range(3)]
        assert [claims.claim(g, PHONE, ip="192.0.2.66").outcome for g in guesses] == ["unknown_code"] * 3
        # The caller is now refused outright, even with a real code, until the window ends.
        blocked = claims.claim(real, PHONE, ip="192.0.2.66")
        assert blocked.outcome == "rate_limited" and blocked.retry_after and blocked.retry_after > 0
        # The same phone from another address is refused too: guessing is limited per phone as well.
        assert claims.claim(real, PHONE, ip="192.0.2.99").outcome == "rate_limited"
        # Another customer elsewhere claims the real code.
        assert claims.claim(real, "+8613911112222", ip="198.51.100.1").claimed
        assert attempts("unknown_code") == 3 and attempts("rate_limited") == 2
        flags = list(db.session.scalars(select(RiskFlag).where(RiskFlag.kind == "code_guessing")))
        assert {f.ip for f in flags} == {"192.0.2.66"} and len(flags) == 2  # the address and the phone
        assert "3 invalid campaign codes" in flags[0].reason


def test_a_code_of_another_shop_is_unknown_here(shop: Shop, other_shop: Shop) -> None:
    with shop.bound():
        code, *_rest = services.export_codes(make_campaign().id)
    with other_shop.bound():
        assert claims.claim(code, PHONE).outcome == "unknown_code"
    with shop.bound():
        assert claims.claim(code, PHONE).claimed


def test_a_claim_that_died_before_its_order_is_completed_by_the_same_claimant(shop: Shop) -> None:
    with shop.bound():
        code, *_rest = services.export_codes(make_campaign().id)
        row = db.session.scalar(
            select(CampaignCode).where(CampaignCode.code_hash == services.code_hash(code))
        )
        assert row is not None
        row.status, row.claimant, row.claimed_at = "claimed", PHONE, utcnow()  # the process died here
        db.session.commit()
        assert claims.claim(code, "+8613911112222").outcome == "already_claimed"
        result = claims.claim(code, PHONE)
        assert result.claimed and result.order is not None
        assert len(delivered_grants(result.order.id)) == 1

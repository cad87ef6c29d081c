"""Subscriptions in the 我的权益 portal: cancel at the period end or now, and undo, after a code; and a
family member's access ends with the subscription."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders.portal.models import FamilyShare
from saas.extensions import db
from tests.factories import Shop
from tests.orders.portal_helpers import open_link, page_text, portal, sign_in_by_sms, sms_to
from tests.orders.subscriptions.factories import fresh, renewable_plan, subscribe

PHONE = "+8613800000000"
MEMBER = "+8613900000001"


def phone_subscription(shop: Shop, *, family: bool = False) -> tuple[int, int, int]:
    """A phone-only customer's live monthly subscription; return (subscription, customer, line) ids."""
    with shop.bound():
        plan = renewable_plan("month")
        plan.family_sharing = family
        db.session.commit()
        sub = subscribe(plan, email=None)
        return sub.id, int(sub.customer_id or 0), sub.order_line_id


def test_a_link_shows_the_subscription_but_changing_it_needs_a_code(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    sub_id, customer_id, _line = phone_subscription(shop)
    page = open_link(client, shop, customer_id).get_data(as_text=True)
    assert 'data-testid="subscription"' in page and "影音月卡" in page and "Renews automatically" in page
    refused = client.post(f"{portal(shop)}/subscriptions/{sub_id}/cancel", data={"when": "now"})
    assert "confirm it is you with a code" in client.get(refused.headers["Location"]).get_data(as_text=True)
    with shop.bound():
        assert fresh(sub_id).status == "active"


def test_a_customer_signed_in_by_code_cancels_undoes_and_cancels_now(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    sub_id, _customer, _line = phone_subscription(shop)
    sign_in_by_sms(app, client, shop, PHONE)
    client.post(f"{portal(shop)}/subscriptions/{sub_id}/cancel", data={"when": "at_period_end"})
    with shop.bound():
        assert fresh(sub_id).auto_renew is False
    assert sms_to(app, PHONE, "cancellation_receipt")  # 取消确认 by SMS
    assert "Renew again" in page_text(client, shop)
    client.post(f"{portal(shop)}/subscriptions/{sub_id}/undo")
    with shop.bound():
        assert fresh(sub_id).auto_renew is True
    client.post(f"{portal(shop)}/subscriptions/{sub_id}/cancel", data={"when": "now"})
    with shop.bound():
        assert fresh(sub_id).status == "canceled"
    text = page_text(client, shop)
    assert "Ended on" in text and 'data-testid="receipts"' in text


def test_cancelling_the_subscription_ends_the_family_members_access(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    sub_id, _customer, line_id = phone_subscription(shop, family=True)
    sign_in_by_sms(app, client, shop, PHONE)
    client.post(f"{portal(shop)}/family/{line_id}/members", data={"phone": MEMBER})
    with shop.bound():
        share = db.session.scalars(select(FamilyShare)).one()
        assert share.subscription_id == sub_id
        member_id = share.member_customer_id
    member = app.test_client()
    open_link(member, shop, member_id)
    assert "喜马拉雅会员兑换页" in page_text(member, shop)
    client.post(f"{portal(shop)}/subscriptions/{sub_id}/cancel", data={"when": "now"})
    assert "喜马拉雅会员兑换页" not in page_text(member, shop)


def test_signed_in_by_link_the_customer_confirms_with_a_code_in_the_portal(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    sub_id, customer_id, _line = phone_subscription(shop)
    page = open_link(client, shop, customer_id).get_data(as_text=True)
    assert 'data-testid="confirm-code"' in page
    client.post(f"{portal(shop)}/code", data={"address": PHONE})
    code = sms_to(app, PHONE, "verification_code")[-1]["params"]["code"]
    client.post(f"{portal(shop)}/verify", data={"address": PHONE, "code": code})
    open_link(client, shop, customer_id)  # a link opened again keeps the code sign-in
    client.post(f"{portal(shop)}/subscriptions/{sub_id}/cancel", data={"when": "at_period_end"})
    with shop.bound():
        assert fresh(sub_id).auto_renew is False

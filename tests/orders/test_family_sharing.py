"""亲情共享: the buyer shares a plan with family members by phone, in the portal.

The member gets an SMS, signs in to their own portal and sees the shared rights, marked as shared by whom.
Links, top-ups and reusable (shared-account) card keys can be shared; a single-use card key cannot. Removing
a member, or refunding the order, ends their access at once. Changes are audited and limited.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders import refunds
from orders.models import Grant, OrderLine, Redemption
from orders.portal import family
from orders.portal.models import FamilyShare
from saas.extensions import db
from tenants.models import AuditEvent
from tests.factories import Shop, login
from tests.orders.factories import Product, add_keys, grants_of, make_product, make_right, place_order
from tests.orders.portal_helpers import open_link, page_text, portal, sign_in_by_sms, sms_to

BUYER = "+8613800000000"
MEMBER = "+8613900000001"


def family_product(*, reusable_key: bool = False) -> Product:
    """A plan allowing family members: a link (shareable) and a card key (shareable only if reusable)."""
    link = make_right("喜马拉雅会员", kind="link", link_url="https://example.com/ximalaya")
    key = make_right("腾讯视频月卡", reusable=reusable_key, max_deliveries=5 if reusable_key else 1)
    product = make_product(link, key)
    product.plan.family_sharing = True
    db.session.commit()
    add_keys(key, 1, max_deliveries=5 if reusable_key else 1)
    return product


def bought(shop: Shop, *, reusable_key: bool = False, external_id: str = "FAM-1") -> tuple[int, int, int]:
    """Buy the family plan as a phone-only customer; return (order id, line id, buyer id)."""
    with shop.bound():
        order = place_order(family_product(reusable_key=reusable_key), external_id, paid=True, email=None)
        line = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).one()
        return order.id, line.id, int(order.customer_id or 0)


def add_member(client: FlaskClient, shop: Shop, line_id: int, phone: str) -> str:
    response = client.post(f"{portal(shop)}/family/{line_id}/members", data={"phone": phone})
    assert response.status_code == 302
    return str(client.get(response.headers["Location"]).get_data(as_text=True))


def test_a_member_added_by_phone_gets_an_sms_signs_in_and_sees_the_shared_right(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    _order_id, line_id, buyer_id = bought(shop)
    page = open_link(client, shop, buyer_id).get_data(as_text=True)
    assert "Family sharing" in page and "Up to 3 family members" in page
    assert "Shared with +8613900000001" in add_member(client, shop, line_id, "139 0000 0001")
    (invite,) = sms_to(app, MEMBER, "family_shared")
    assert re.search(r"/m/[A-Za-z0-9]{12}$", str(invite["text"])) and shop.tenant.name in str(invite["text"])
    with shop.bound():
        (added,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "family.member_added"))
        assert added.object_id == str(buyer_id)

    member = app.test_client()  # the member's own phone
    sign_in_by_sms(app, member, shop, MEMBER)
    text = page_text(member, shop)
    assert "Shared with me" in text and "喜马拉雅会员" in text and "shared by Buyer" in text
    assert "腾讯视频月卡" not in text  # a single-use card key is not shareable


def test_a_card_key_is_shared_only_when_it_is_a_reusable_shared_account(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    with shop.bound():
        single = family_product()
        shared = family_product(reusable_key=True)
        for product, external_id in ((single, "K-1"), (shared, "K-2")):
            order = place_order(product, external_id, paid=True, email=None)
            line = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).one()
            keys = [g for g in grants_of(order.id) if g.kind == "card_key"]
            assert [family.is_shareable(g, line) for g in keys] == [product is shared]


def test_removing_a_member_ends_their_access_at_once(app: Flask, client: FlaskClient, shop: Shop) -> None:
    order_id, line_id, buyer_id = bought(shop)
    open_link(client, shop, buyer_id)
    add_member(client, shop, line_id, MEMBER)
    with shop.bound():
        share = db.session.scalars(select(FamilyShare)).one()
        share_id, member_id = share.id, share.member_customer_id
        link_grant = next(g.id for g in grants_of(order_id) if g.kind == "link")
    member = client.application.test_client()
    open_link(member, shop, member_id)
    assert member.post(f"{portal(shop)}/grants/{link_grant}/reveal").status_code == 200
    client.post(f"{portal(shop)}/family/members/{share_id}/remove")
    assert "喜马拉雅会员" not in page_text(member, shop)
    assert member.post(f"{portal(shop)}/grants/{link_grant}/reveal").status_code == 404
    with shop.bound():
        assert db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("family.%"))
        ).all() == [
            "family.member_added",
            "family.member_removed",
        ]


def test_a_refund_ends_the_members_access(app: Flask, client: FlaskClient, shop: Shop) -> None:
    order_id, line_id, buyer_id = bought(shop)
    open_link(client, shop, buyer_id)
    add_member(client, shop, line_id, MEMBER)
    with shop.bound():
        member_id = db.session.scalars(select(FamilyShare.member_customer_id)).one()
    member = client.application.test_client()
    open_link(member, shop, member_id)
    assert "喜马拉雅会员" in page_text(member, shop)
    with shop.bound():
        refunds.refund(refunds.RefundRequest(order_id=order_id, reason="customer asked"))
    assert "喜马拉雅会员" not in page_text(member, shop)
    assert "no longer be shared" in page_text(client, shop)


def test_a_member_marks_a_shared_right_used_for_themself(app: Flask, client: FlaskClient, shop: Shop) -> None:
    order_id, line_id, buyer_id = bought(shop)
    open_link(client, shop, buyer_id)
    add_member(client, shop, line_id, MEMBER)
    with shop.bound():
        member_id = db.session.scalars(select(FamilyShare.member_customer_id)).one()
        link_grant = next(g.id for g in grants_of(order_id) if g.kind == "link")
    member = client.application.test_client()
    open_link(member, shop, member_id)
    member.post(f"{portal(shop)}/grants/{link_grant}/redeem")
    member.post(f"{portal(shop)}/grants/{link_grant}/redeem")  # twice: recorded once
    with shop.bound():
        (used,) = db.session.scalars(select(Redemption).where(Redemption.grant_id == link_grant))
        assert used.member_customer_id == member_id and used.outcome == "redeemed"
        grant = db.session.get(Grant, (shop.tenant.id, link_grant))
        assert grant is not None and grant.status == "delivered"  # the buyer's own right is unchanged


def test_the_family_is_limited_and_changes_are_limited_per_period(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    _order_id, line_id, buyer_id = bought(shop)
    open_link(client, shop, buyer_id)
    for n in range(1, 4):
        add_member(client, shop, line_id, f"+861390000000{n}")
    assert "Up to 3" in add_member(client, shop, line_id, "+8613900000009")  # the form is gone: full
    refused = client.post(f"{portal(shop)}/family/{line_id}/members", data={"phone": "+8613900000009"})
    assert "at most" in client.get(refused.headers["Location"]).get_data(as_text=True)
    with shop.bound():
        shares = db.session.scalars(select(FamilyShare.id)).all()
    for share_id in shares:  # 3 added + 3 removed = 6 changes in 30 days
        client.post(f"{portal(shop)}/family/members/{share_id}/remove")
    page = add_member(client, shop, line_id, "+8613900000009")
    assert "try again later" in page
    with shop.bound():
        assert len(db.session.scalars(select(FamilyShare)).all()) == 3


def test_a_purchase_of_another_customer_cannot_be_shared(app: Flask, client: FlaskClient, shop: Shop) -> None:
    _order_id, line_id, _buyer = bought(shop)
    with shop.bound():
        other = place_order(family_product(), "FAM-2", paid=True, email="other@example.test")
        other_id = int(other.customer_id or 0)
    open_link(client, shop, other_id)
    response = client.post(f"{portal(shop)}/family/{line_id}/members", data={"phone": MEMBER})
    assert response.status_code == 404


def test_the_redemption_dashboard_splits_shared_from_single_use(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    order_id, line_id, buyer_id = bought(shop)
    open_link(client, shop, buyer_id)
    add_member(client, shop, line_id, MEMBER)
    with shop.bound():
        member_id = db.session.scalars(select(FamilyShare.member_customer_id)).one()
        link_grant = next(g.id for g in grants_of(order_id) if g.kind == "link")
    client.post(f"{portal(shop)}/grants/{link_grant}/redeem")  # the buyer
    member = app.test_client()
    open_link(member, shop, member_id)
    member.post(f"{portal(shop)}/grants/{link_grant}/redeem")  # and the family member
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/reports/redemption?period=last_30_days")
    assert page.status_code == 200
    table = page.get_data(as_text=True).split("Shared vs single use", 1)[1].split("</table>", 1)[0]
    assert re.search(r"the buyer</td>\s*<td[^>]*>1<", table), table
    assert re.search(r"a family member \(shared\)</td>\s*<td[^>]*>1<", table), table

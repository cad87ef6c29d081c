"""An order for a bundle that would deliver nothing (a draft, or no rights) is refused on every path."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from catalog.models import Bundle, BundleItem, Plan
from integrations.models import Channel, InboxDelivery
from orders import services
from orders.events import OrderError
from orders.models import Order
from saas.extensions import db
from tests.catalog.test_api_cli_and_keys import api_key
from tests.factories import Shop, login
from tests.integrations import factories as f
from tests.orders.factories import make_product


def _draft(shop: Shop) -> int:
    with shop.bound():
        product = make_product()
        product.bundle.status = "draft"
        db.session.commit()
        return product.plan.id


def _empty(shop: Shop) -> int:
    with shop.bound():
        product = make_product()
        db.session.execute(delete(BundleItem).where(BundleItem.bundle_id == product.bundle.id))
        db.session.commit()
        return product.plan.id


UNSELLABLE = {"draft": (_draft, "draft"), "no rights": (_empty, "no rights")}


def _orders(shop: Shop) -> list[Order]:
    with shop.bound():
        return list(db.session.scalars(select(Order)))


@pytest.mark.parametrize("kind", UNSELLABLE)
def test_the_service_refuses_it(shop: Shop, kind: str) -> None:
    make, why = UNSELLABLE[kind]
    plan_id = make(shop)
    with shop.bound(), pytest.raises(OrderError, match=why):
        services.create_order(
            services.OrderRequest(
                channel="manual",
                external_id="X1",
                source="manual",
                customer=services.CustomerInfo("a@b.test"),
                lines=[services.LineRequest(plan_id)],
            )
        )
    assert _orders(shop) == []


@pytest.mark.parametrize("kind", UNSELLABLE)
def test_the_api_answers_422_naming_why(client: FlaskClient, shop: Shop, kind: str) -> None:
    make, why = UNSELLABLE[kind]
    plan_id = make(shop)
    response = client.post(
        "/api/v1/orders",
        json={
            "external_id": "API-1",
            "lines": [{"plan_id": str(plan_id)}],
            "customer": {"email": "a@b.test"},
        },
        headers=api_key(shop),
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert why in response.json["message"]
    assert _orders(shop) == []


@pytest.mark.parametrize("kind", UNSELLABLE)
def test_the_back_office_form_says_why(client: FlaskClient, shop: Shop, kind: str) -> None:
    make, why = UNSELLABLE[kind]
    plan_id = make(shop)
    with shop.bound():  # the form offers drafts' plans too (a merchant may test them): the refusal is clear
        assert db.session.get(Plan, (shop.tenant.id, plan_id)) is not None
    login(client, shop.owner)
    response = client.post(
        f"/t/{shop.slug}/orders/new",
        data={
            "plan_id": str(plan_id),
            "quantity": "1",
            "channel": "manual",
            "customer_email": "a@b.test",
            "note": "补单",
            "paid": "y",
        },
        follow_redirects=True,
    )
    assert why in response.get_data(as_text=True)
    assert _orders(shop) == []


@pytest.mark.parametrize("kind", UNSELLABLE)
def test_a_channel_order_is_held_with_the_reason(client: FlaskClient, shop: Shop, kind: str) -> None:
    with shop.bound():
        plan = f.card_plan(3990)
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        bundle = db.session.get(Bundle, (shop.tenant.id, plan.bundle_id))
        assert bundle is not None
        bundle.status = "draft" if kind == "draft" else "active"
        if kind != "draft":
            db.session.execute(delete(BundleItem).where(BundleItem.bundle_id == bundle.id))
        db.session.commit()
        public_id, channel_id = channel.public_id, channel.id
    response = f.shopify(f.shopify_order(2001)).post(client, f"/hooks/{public_id}")
    assert response.status_code == 200
    with shop.bound():
        found = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert found is not None
        (row,) = f.inbox_of(found)
        assert isinstance(row, InboxDelivery)
        assert row.status == "held" and UNSELLABLE[kind][1] in row.note
    assert _orders(shop) == []

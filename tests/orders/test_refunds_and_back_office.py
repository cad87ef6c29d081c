"""Refunds (order, line, grant; keys back to stock or void), the back-office pages, customers and merging."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from orders import customers, redemption, refunds, services
from orders.events import OrderError
from orders.models import Customer, Order, Refund
from saas.extensions import db
from tests.factories import Shop, login
from tests.orders.factories import (
    add_keys,
    grants_of,
    key_status_counts,
    make_product,
    make_right,
    order_request,
    place_order,
)


def _order(shop: Shop, order_id: int) -> Order:
    order = db.session.get(Order, (shop.tenant.id, order_id), populate_existing=True)
    assert order is not None
    return order


def test_a_full_refund_voids_delivered_keys_and_cancels_backorders(shop: Shop) -> None:
    with shop.bound():
        product = make_product(price=3000)
        add_keys(product.right, 1)
        order = place_order(product, "RF-1", quantity=2, paid=True)
        row = refunds.refund(refunds.RefundRequest(order_id=order.id, reason="customer asked"))
        assert row.amount == 6000 and row.currency == "CNY" and row.scope == "order"
        assert _order(shop, order.id).status == "refunded"
        assert sorted(g.status for g in grants_of(order.id)) == ["cancelled", "revoked"]
        assert key_status_counts(product.right.id) == {"void": 1}
        with pytest.raises(OrderError):
            refunds.refund(refunds.RefundRequest(order_id=order.id, reason="again"))


def test_refunding_one_line_or_grant_is_partial_and_recorded(shop: Shop) -> None:
    with shop.bound():
        video, music = make_right("视频"), make_right("音乐")
        product = make_product(video, music, price=3001)
        add_keys(video, 2)
        add_keys(music, 2)
        order = place_order(product, "RF-2", quantity=2, paid=True)
        first = grants_of(order.id)[0]
        row = refunds.refund(
            refunds.RefundRequest(order_id=order.id, reason="one broken", grant_ids=[first.id])
        )
        assert row.amount == 1501 and row.scope == "grants"  # the first item takes the odd cent
        assert _order(shop, order.id).status == "partially_refunded"
        assert _order(shop, order.id).refunded_amount == 1501
        rest = refunds.refund(refunds.RefundRequest(order_id=order.id, reason="the rest", amount=4501))
        assert rest.amount == 4501 and _order(shop, order.id).status == "refunded"
        with pytest.raises(OrderError):
            refunds.refund(refunds.RefundRequest(order_id=order.id, reason="too much", amount=1))


def test_a_channel_refund_is_applied_once(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "RF-3", paid=True)
        first = refunds.refund_from_channel(
            order.id, amount=None, reason="shopify refund", external_id="r1", channel="shopify"
        )
        again = refunds.refund_from_channel(
            order.id, amount=None, reason="shopify refund", external_id="r1", channel="shopify"
        )
        assert first.id == again.id
        assert db.session.query(Refund).count() == 1


def test_a_redemption_after_a_refund_is_rejected_and_flagged(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "RF-4", paid=True)
        grant = grants_of(order.id)[0]
        refunds.refund(refunds.RefundRequest(order_id=order.id, reason="fraud"))
        outcome = redemption.redeem_grant(grant.id, source="supplier_report")
        assert outcome.outcome == "rejected_refunded"
        assert grants_of(order.id)[0].flag == "redeemed_after_refund"


def test_reserved_stock_is_released_when_the_hold_expires_or_the_order_is_cancelled(shop: Shop) -> None:
    import datetime as dt

    from saas.timeutil import frozen_time, utcnow

    with shop.bound():
        product = make_product()
        add_keys(product.right, 2)
        held = place_order(product, "RES-1", reserve_minutes=15)
        assert key_status_counts(product.right.id) == {"available": 1, "reserved": 1}
        with frozen_time(utcnow() + dt.timedelta(minutes=16)):
            assert services.release_expired_reservations() == 1
        assert key_status_counts(product.right.id) == {"available": 2}
        services.mark_paid(held.id)
        assert _order(shop, held.id).status == "fulfilled"
        other = place_order(product, "RES-2", reserve_minutes=15)
        assert key_status_counts(product.right.id) == {"delivered": 1, "reserved": 1}
        services.cancel_order(other.id, reason="abandoned cart")
        assert key_status_counts(product.right.id) == {"delivered": 1, "available": 1}


def test_a_reserved_order_paid_in_time_gets_the_reserved_key(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "RES-3", reserve_minutes=15)
        reserved_key = grants_of(order.id)[0].card_key_id
        services.mark_paid(order.id)
        (grant,) = grants_of(order.id)
        assert grant.status == "delivered" and grant.card_key_id == reserved_key
        assert key_status_counts(product.right.id) == {"delivered": 1}


def test_the_periodic_job_releases_holds_in_every_tenant(app: object, shop: Shop, other_shop: Shop) -> None:
    import datetime as dt

    from orders.tasks import release_expired_reservations_everywhere
    from saas.timeutil import frozen_time, utcnow

    for each in (shop, other_shop):
        with each.bound():
            product = make_product()
            add_keys(product.right, 1)
            place_order(product, "HOLD-1", reserve_minutes=5)
    with frozen_time(utcnow() + dt.timedelta(minutes=6)):
        totals = release_expired_reservations_everywhere()
    assert totals["released"] == 2 and totals["tenants"] >= 2


# ---------------------------------------------------------------- back office


def test_support_enters_a_backfill_order_by_hand(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product(price=1990)
        add_keys(product.right, 1)
        plan_id = product.plan.id
    login(client, shop.members["support"])
    assert client.get(f"/t/{shop.slug}/orders/new").status_code == 200
    response = client.post(
        f"/t/{shop.slug}/orders/new",
        data={
            "customer_email": "walkin@example.test",
            "plan_id": str(plan_id),
            "quantity": "1",
            "unit_price": "9.90",
            "channel": "manual",
            "external_id": "补单-1",
            "paid": "y",
            "note": "渠道回调丢失，补单",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with shop.bound():
        order = db.session.scalar(select(Order).where(Order.external_id == "补单-1"))
        assert order is not None and order.status == "fulfilled" and order.total == 990
        assert order.source == "manual" and order.created_by == "support@acme.test"
        order_id = order.id
    listing = client.get(f"/t/{shop.slug}/orders/?q=walkin").get_data(as_text=True)
    assert "补单-1" in listing
    assert "补单-1" not in client.get(f"/t/{shop.slug}/orders/?status=refunded").get_data(as_text=True)
    page = client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)
    assert "渠道回调丢失" in page and "fulfilled" in page


def test_finance_refunds_a_grant_from_the_order_page(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order_id = place_order(product, "BO-RF", paid=True).id
        grant_id = grants_of(order_id)[0].id
    login(client, shop.members["finance"])
    response = client.post(
        f"/t/{shop.slug}/orders/{order_id}/refund",
        data={"grant_id": str(grant_id), "reason": "duplicate charge"},
    )
    assert response.status_code == 302
    with shop.bound():
        assert grants_of(order_id)[0].status == "revoked"
    assert "duplicate charge" in client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)


def test_customers_are_found_by_email_and_merged(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 2)
        by_mail = place_order(product, "CU-1", paid=True)
        by_phone = services.create_order(order_request(product, "CU-2", paid=True, email=None)).order
        keep_id, dup_id, phone_order_id = by_mail.customer_id, by_phone.customer_id, by_phone.id
        assert keep_id != dup_id
        again = place_order(product, "CU-3", email="BUYER@example.test ")
        assert again.customer_id == keep_id
    login(client, shop.owner)
    assert "buyer@example.test" in client.get(f"/t/{shop.slug}/orders/customers?q=buyer").get_data(
        as_text=True
    )
    response = client.post(
        f"/t/{shop.slug}/orders/customers/{keep_id}/merge",
        data={"other_id": str(dup_id), "reason": "same person"},
    )
    assert response.status_code == 302
    with shop.bound():
        dup = db.session.get(Customer, (shop.tenant.id, dup_id), populate_existing=True)
        assert dup is not None and dup.merged_into_id == keep_id
        assert all(g.customer_id == keep_id for g in grants_of(phone_order_id))
        assert customers.find_customer(phone="138-0000-0000") is not None
    page = client.get(f"/t/{shop.slug}/orders/customers/{keep_id}").get_data(as_text=True)
    assert "CU-1" in page and "CU-2" in page


def test_an_analyst_reads_orders_but_cannot_refund(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order_id = place_order(product, "AN-1", paid=True).id
    login(client, shop.members["analyst"])
    assert client.get(f"/t/{shop.slug}/orders/{order_id}").status_code == 200
    assert client.post(f"/t/{shop.slug}/orders/{order_id}/refund", data={"reason": "x"}).status_code == 403

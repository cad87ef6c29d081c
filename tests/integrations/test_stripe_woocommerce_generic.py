"""Stripe, WooCommerce, our own signed webhook and CSV uploads, end to end through the inbox."""

from __future__ import annotations

import io
import time

from flask import Flask
from flask.testing import FlaskClient

from saas.extensions import db
from tests.factories import Shop, login
from tests.integrations import factories as f


def state(shop: Shop, channel_id: int) -> tuple[list[tuple[str, str]], list[str]]:
    from integrations.models import Channel

    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        return [(o.external_id, o.status) for o in f.orders_of(channel)], [
            r.status for r in f.inbox_of(channel)
        ]


def stripe_channel(shop: Shop) -> tuple[int, str, object]:
    with shop.bound():
        plan = f.card_plan(3990)
        channel = f.make_channel("stripe", name="Stripe")
        return channel.id, channel.public_id, plan


# ---------------------------------------------------------------- Stripe


def test_a_paid_checkout_session_is_fulfilled_and_its_api_version_recorded(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        session = f.checkout_session(plan)  # type: ignore[arg-type]
    event = f.stripe_event("checkout.session.completed", session)
    assert f.stripe(event).post(client, f"/hooks/{public_id}").status_code == 200
    assert f.stripe(event).post(client, f"/hooks/{public_id}").json["duplicate"] is True
    assert state(shop, channel_id) == ([(session["payment_intent"], "fulfilled")], ["processed"])
    with shop.bound():
        from integrations.models import Channel

        (row,) = f.inbox_of(db.session.get(Channel, (shop.tenant.id, channel_id)))  # type: ignore[arg-type]
        assert row.api_version == "2025-03-31.basil" and row.dedupe_key == f"stripe:{event['id']}"


def test_an_unpaid_checkout_is_not_fulfilled_until_its_payment_succeeds(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        session = f.checkout_session(plan, payment_status="unpaid")  # type: ignore[arg-type]
    f.stripe(f.stripe_event("checkout.session.completed", session)).post(client, f"/hooks/{public_id}")
    assert state(shop, channel_id) == ([], ["ignored"])
    paid = dict(session, payment_status="paid")
    f.stripe(f.stripe_event("checkout.session.async_payment_succeeded", paid)).post(
        client, f"/hooks/{public_id}"
    )
    assert state(shop, channel_id)[0] == [(session["payment_intent"], "fulfilled")]


def test_a_stripe_price_id_maps_to_a_plan(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        from integrations.models import Channel

        f.map_sku(db.session.get(Channel, (shop.tenant.id, channel_id)), "price_1Abc", plan, kind="price")  # type: ignore[arg-type]
        session = f.checkout_session(plan)  # type: ignore[arg-type]
    session["metadata"] = {}
    session["line_items"] = {"data": [{"quantity": 1, "price": {"id": "price_1Abc", "unit_amount": 3990}}]}
    f.stripe(f.stripe_event("checkout.session.completed", session)).post(client, f"/hooks/{public_id}")
    assert state(shop, channel_id)[0] == [(session["payment_intent"], "fulfilled")]


def test_an_old_stripe_timestamp_is_refused(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        session = f.checkout_session(plan)  # type: ignore[arg-type]
    stale = f.stripe(f.stripe_event("checkout.session.completed", session), timestamp=int(time.time()) - 301)
    assert stale.post(client, f"/hooks/{public_id}").status_code == 401
    assert state(shop, channel_id) == ([], [])


def test_charge_refunded_refunds_the_order_by_its_payment_intent(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        session = f.checkout_session(plan)  # type: ignore[arg-type]
    f.stripe(f.stripe_event("checkout.session.completed", session)).post(client, f"/hooks/{public_id}")
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": session["payment_intent"],
        "amount": 3990,
        "amount_refunded": 3990,
        "refunded": True,
    }
    f.stripe(f.stripe_event("charge.refunded", charge)).post(client, f"/hooks/{public_id}")
    assert state(shop, channel_id) == ([(session["payment_intent"], "refunded")], ["processed", "processed"])


def test_a_stripe_subscription_starts_renews_and_cancels(app: Flask, client: FlaskClient, shop: Shop) -> None:
    from orders.subscriptions.services import find_by_external_id, renewals_of

    if "subscriptions" not in app.blueprints:  # until the app factory registers orders.subscriptions
        import orders.subscriptions

        orders.subscriptions.init_app(app)

    channel_id, public_id, plan = stripe_channel(shop)
    with shop.bound():
        session = dict(
            f.checkout_session(plan), mode="subscription", subscription="sub_42", payment_intent=None
        )  # type: ignore[arg-type]
    f.stripe(f.stripe_event("checkout.session.completed", session)).post(client, f"/hooks/{public_id}")
    invoice = {
        "id": "in_2",
        "object": "invoice",
        "billing_reason": "subscription_cycle",
        "amount_paid": 3990,
        "currency": "cny",
        "parent": {"subscription_details": {"subscription": "sub_42"}},
        "lines": {"data": [{"period": {"start": 1, "end": int(time.time()) + 40 * 86400}}]},
    }
    f.stripe(f.stripe_event("invoice.paid", invoice)).post(client, f"/hooks/{public_id}")
    f.stripe(f.stripe_event("invoice.paid", invoice)).post(
        client, f"/hooks/{public_id}"
    )  # a retry, new event id
    updated = {
        "id": "sub_42",
        "object": "subscription",
        "cancel_at_period_end": True,
        "items": {"data": [{"current_period_end": int(time.time()) + 30 * 86400}]},
    }
    f.stripe(f.stripe_event("customer.subscription.updated", updated)).post(client, f"/hooks/{public_id}")
    with shop.bound():
        subscription = find_by_external_id(public_id, "sub_42")
        assert subscription is not None
        assert len(renewals_of(subscription.id)) == 1 and subscription.auto_renew is False
        subscription_id = subscription.id
    f.stripe(f.stripe_event("customer.subscription.deleted", dict(updated, status="canceled"))).post(
        client, f"/hooks/{public_id}"
    )
    with shop.bound():
        from orders.subscriptions.services import get_subscription

        found = get_subscription(subscription_id)
        assert found is not None and found.status == "canceled"
    assert "failed" not in state(shop, channel_id)[1]


def test_the_old_and_new_invoice_shapes_name_the_subscription() -> None:
    from integrations.adapters.stripe import invoice_subscription, subscription_period_end

    assert invoice_subscription({"subscription": "sub_old"}) == "sub_old"
    assert (
        invoice_subscription({"parent": {"subscription_details": {"subscription": "sub_new"}}}) == "sub_new"
    )
    assert subscription_period_end({"current_period_end": 10}) == 10
    assert (
        subscription_period_end({"items": {"data": [{"current_period_end": 20}, {"current_period_end": 30}]}})
        == 30
    )


# ---------------------------------------------------------------- WooCommerce


def woo_channel(shop: Shop) -> tuple[int, str]:
    with shop.bound():
        plan = f.card_plan(3990)
        channel = f.make_channel("woocommerce", name="WooCommerce")
        f.map_sku(channel, "VIP-MONTH", plan)
        return channel.id, channel.public_id


def test_the_unsigned_creation_ping_gets_200_and_is_not_stored(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id = woo_channel(shop)
    response = client.post(
        f"/hooks/{public_id}",
        data=b"webhook_id=17",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert state(shop, channel_id) == ([], [])


def test_a_processing_order_is_fulfilled_and_a_repeat_of_the_same_state_is_dropped(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id = woo_channel(shop)
    order = f.woo_order(812, "processing")
    for _ in range(3):
        assert f.woocommerce(order).post(client, f"/hooks/{public_id}").status_code == 200
    completed = f.woo_order(812, "completed", modified="2026-03-01T03:00:00")
    f.woocommerce(completed).post(client, f"/hooks/{public_id}")
    assert state(shop, channel_id) == ([("812", "fulfilled")], ["processed", "processed"])


def test_a_pending_woocommerce_order_waits_and_a_cancelled_one_is_cancelled(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id = woo_channel(shop)
    f.woocommerce(f.woo_order(900, "pending"), topic="order.created").post(client, f"/hooks/{public_id}")
    f.woocommerce(f.woo_order(900, "cancelled", modified="2026-03-01T04:00:00")).post(
        client, f"/hooks/{public_id}"
    )
    f.woocommerce(f.woo_order(900, "processing", modified="2026-03-01T05:00:00")).post(
        client, f"/hooks/{public_id}"
    )
    orders, _statuses = state(shop, channel_id)
    assert orders == [("900", "cancelled")]


def test_a_woocommerce_body_is_verified_as_received_bytes(client: FlaskClient, shop: Shop) -> None:
    _channel_id, public_id = woo_channel(shop)
    delivery = f.woocommerce(f.woo_order(813))
    assert b"\\/" in delivery.body
    delivery.body = delivery.body.replace(b"\\/", b"/")
    assert delivery.post(client, f"/hooks/{public_id}").status_code == 401


# ---------------------------------------------------------------- our signed webhook and CSV


def test_our_own_signed_webhook_creates_refunds_and_cancels_orders(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        plan = f.card_plan(3990)
        channel = f.make_channel("generic", name="自营小程序")
        f.map_sku(channel, "MINI-01", plan)
        channel_id, public_id = channel.id, channel.public_id
    assert f.generic(f.generic_order("A1")).post(client, f"/hooks/{public_id}").status_code == 200
    refund = {
        "id": "evt-r1",
        "type": "order.refunded",
        "order": {"id": "A1"},
        "refund": {"id": "R1", "amount": 1000, "reason": "partial"},
    }
    f.generic(refund).post(client, f"/hooks/{public_id}")
    wrong = f.generic(f.generic_order("A2"), secret="another-secret-entirely")
    assert wrong.post(client, f"/hooks/{public_id}").status_code == 401
    assert [status for _id, status in state(shop, channel_id)[0]] in (["refunded"], ["partially_refunded"])
    with shop.bound():
        from orders.refunds import refunds_of
        from orders.services import find_order

        order = find_order(public_id, "A1")
        assert order is not None and [(r.amount, r.reason) for r in refunds_of(order.id)] == [
            (1000, "partial")
        ]


def test_a_csv_upload_creates_each_order_once_and_holds_unknown_skus(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        plan = f.card_plan(3990, keys=10)
        channel = f.make_channel("csv", name="淘宝 (CSV)")
        f.map_sku(channel, "VIP-MONTH", plan)
        channel_id = channel.id
    csv_text = (
        "external_id,sku,quantity,unit_price,email,name\n"
        "TB-1,VIP-MONTH,1,39.90,a@example.com,甲\n"
        "TB-2,VIP-MONTH,2,39.90,b@example.com,乙\n"
        "TB-3,NO-SUCH-SKU,1,39.90,c@example.com,丙\n"
        ",VIP-MONTH,1,39.90,,\n"
    )
    login(client, shop.members["finance"])
    url = f"/t/{shop.slug}/channels/{channel_id}/orders-upload"
    for _ in range(2):
        response = client.post(
            url,
            data={"file": (io.BytesIO(csv_text.encode()), "orders.csv")},
            content_type="multipart/form-data",
            follow_redirects=True,
        )
        assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "0 orders received, 3 seen before, 1 rows refused" in page
    orders, statuses = state(shop, channel_id)
    assert orders == [("TB-1", "fulfilled"), ("TB-2", "fulfilled")] and sorted(statuses) == [
        "held",
        "processed",
        "processed",
    ]

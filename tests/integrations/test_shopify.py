"""Shopify deliveries end to end: signed, stored, acknowledged, processed once into a fulfilled order."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.factories import Shop
from tests.integrations import factories as f


def connected(shop: Shop, *, sku: str = "VIP-MONTH", price: int = 3990) -> tuple[int, str, int]:
    """A Shopify channel with one SKU mapped to a card-key plan; returns (channel id, public id, plan id)."""
    with shop.bound():
        plan = f.card_plan(price)
        channel = f.make_channel("shopify")
        f.map_sku(channel, sku, plan)
        return channel.id, channel.public_id, plan.id


def channel_state(shop: Shop, channel_id: int) -> tuple[list[tuple[str, str]], list[str], int]:
    """Return the channel's orders (external id, status), inbox statuses, and the grants delivered."""
    from integrations.models import Channel
    from saas.extensions import db

    with shop.bound():
        channel = db.session.get(Channel, (shop.tenant.id, channel_id))
        assert channel is not None
        orders = f.orders_of(channel)
        grants = [g for o in orders for g in f.grants_of(o.id) if g.status == "delivered"]
        return (
            [(o.external_id, o.status) for o in orders],
            [r.status for r in f.inbox_of(channel)],
            len(grants),
        )


def test_a_paid_order_is_acknowledged_stored_and_fulfilled_once(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop)
    delivery = f.shopify(f.shopify_order(1001))
    response = delivery.post(client, f"/hooks/{public_id}")
    assert response.status_code == 200 and response.json["duplicate"] is False
    assert channel_state(shop, channel_id) == ([("1001", "fulfilled")], ["processed"], 1)


def test_the_same_delivery_five_times_makes_one_order_and_one_fulfilment(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, _plan = connected(shop)
    delivery = f.shopify(f.shopify_order(1002), webhook_id="same-webhook-id")
    answers = [delivery.post(client, f"/hooks/{public_id}") for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json["duplicate"] for a in answers] == [False, True, True, True, True]
    assert channel_state(shop, channel_id) == ([("1002", "fulfilled")], ["processed"], 1)
    with shop.bound():
        from integrations.models import Channel
        from saas.extensions import db

        (row,) = f.inbox_of(db.session.get(Channel, (shop.tenant.id, channel_id)))  # type: ignore[arg-type]
        assert row.duplicates == 4


def test_two_deliveries_of_one_order_with_different_webhook_ids_still_fulfil_once(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, _plan = connected(shop)
    order = f.shopify_order(1003)
    f.shopify(order, webhook_id="a").post(client, f"/hooks/{public_id}")
    f.shopify(order, webhook_id="b").post(client, f"/hooks/{public_id}")
    assert channel_state(shop, channel_id) == ([("1003", "fulfilled")], ["processed", "processed"], 1)


def test_headers_without_the_x_prefix_are_accepted(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop)
    response = f.shopify(f.shopify_order(1004), prefixed=False).post(client, f"/hooks/{public_id}")
    assert response.status_code == 200
    assert channel_state(shop, channel_id)[0] == [("1004", "fulfilled")]


def test_a_bad_signature_is_refused_with_401_and_changes_nothing(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop)
    forged = f.shopify(f.shopify_order(1005), secret="not-the-app-secret")
    response = forged.post(client, f"/hooks/{public_id}")
    assert response.status_code == 401 and response.json["code"] == "bad_signature"
    tampered = f.shopify(f.shopify_order(1006))
    tampered.body = tampered.body.replace(b'"39.90"', b'"0.01"', 1)
    assert tampered.post(client, f"/hooks/{public_id}").status_code == 401
    assert channel_state(shop, channel_id) == ([], [], 0)


def test_an_unknown_webhook_url_is_404(client: FlaskClient, shop: Shop) -> None:
    response = f.shopify(f.shopify_order(1007)).post(client, "/hooks/shopify_doesnotexist00")
    assert response.status_code == 404 and response.json["code"] == "not_found"


def test_a_line_without_sku_is_mapped_by_its_variant_id(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        plan = f.card_plan()
        channel = f.make_channel("shopify")
        f.map_sku(channel, "4401", plan, kind="variant")
        public_id, channel_id = channel.public_id, channel.id
    f.shopify(f.shopify_order(1008, sku="", variant_id=4401)).post(client, f"/hooks/{public_id}")
    assert channel_state(shop, channel_id)[0] == [("1008", "fulfilled")]


def test_an_unknown_sku_is_held_with_the_reason_then_mapping_and_replay_fulfil_it(
    client: FlaskClient, shop: Shop
) -> None:
    from tests.factories import login

    channel_id, public_id, plan_id = connected(shop)
    f.shopify(f.shopify_order(1009, sku="GIFT-CARD-NEW")).post(client, f"/hooks/{public_id}")
    assert channel_state(shop, channel_id) == ([], ["held"], 0)
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/channels/{channel_id}").get_data(as_text=True)
    assert "Unknown SKU" in page and "GIFT-CARD-NEW" in page
    client.post(
        f"/t/{shop.slug}/channels/{channel_id}/mappings",
        data={"ref_kind": "sku", "external_ref": "GIFT-CARD-NEW", "plan_id": plan_id},
    )
    client.post(f"/t/{shop.slug}/channels/{channel_id}/replay-held")
    assert channel_state(shop, channel_id) == ([("1009", "fulfilled")], ["processed"], 1)


def test_a_price_beyond_the_tolerance_is_held(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop, price=3990)
    f.shopify(f.shopify_order(1010, price="3.99")).post(client, f"/hooks/{public_id}")
    f.shopify(f.shopify_order(1011, price="39.70")).post(client, f"/hooks/{public_id}")  # within 1 %
    orders, statuses, _grants = channel_state(shop, channel_id)
    assert orders == [("1011", "fulfilled")] and sorted(statuses) == ["held", "processed"]


def test_cancelled_before_paid_means_nothing_is_delivered(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop)
    order = f.shopify_order(1013)
    cancelled = dict(order, cancelled_at="2026-03-01T10:05:00+08:00", financial_status="voided")
    f.shopify(cancelled, topic="orders/cancelled").post(client, f"/hooks/{public_id}")
    assert channel_state(shop, channel_id) == ([], ["waiting"], 0)
    f.shopify(order).post(client, f"/hooks/{public_id}")
    orders, statuses, grants = channel_state(shop, channel_id)
    assert orders == [("1013", "cancelled")] and grants == 0
    assert "waiting" not in statuses


def test_a_paid_order_refunded_on_shopify_is_refunded_and_its_key_revoked(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, _plan = connected(shop)
    f.shopify(f.shopify_order(1014)).post(client, f"/hooks/{public_id}")
    refund = {
        "id": 8801,
        "order_id": 1014,
        "note": "customer changed mind",
        "transactions": [{"kind": "refund", "status": "success", "amount": "39.90", "currency": "CNY"}],
    }
    f.shopify(refund, topic="refunds/create").post(client, f"/hooks/{public_id}")
    f.shopify(refund, topic="refunds/create").post(
        client, f"/hooks/{public_id}"
    )  # another webhook id, same refund
    orders, _statuses, delivered = channel_state(shop, channel_id)
    assert orders == [("1014", "refunded")] and delivered == 0
    with shop.bound():
        from orders.refunds import refunds_of
        from orders.services import find_order

        found = find_order(public_id, "1014")
        assert found is not None and [r.amount for r in refunds_of(found.id)] == [3990]


def test_a_refund_for_an_order_we_never_saw_is_kept_and_changes_nothing(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, _plan = connected(shop)
    refund = {
        "id": 8802,
        "order_id": 424242,
        "transactions": [{"kind": "refund", "status": "success", "amount": "10.00", "currency": "CNY"}],
    }
    response = f.shopify(refund, topic="refunds/create").post(client, f"/hooks/{public_id}")
    assert response.status_code == 200
    assert channel_state(shop, channel_id) == ([], ["waiting"], 0)


def test_a_body_that_disagrees_with_its_topic_is_ignored(client: FlaskClient, shop: Shop) -> None:
    channel_id, public_id, _plan = connected(shop)
    f.shopify(f.shopify_order(1015, financial_status="pending")).post(client, f"/hooks/{public_id}")
    f.shopify(f.shopify_order(1016), topic="orders/cancelled").post(client, f"/hooks/{public_id}")
    assert channel_state(shop, channel_id) == ([], ["ignored", "ignored"], 0)


def test_signed_but_malformed_deliveries_get_a_clear_4xx_and_are_kept(
    client: FlaskClient, shop: Shop
) -> None:
    channel_id, public_id, _plan = connected(shop)
    bad_json = f.Delivery(b"{not json", {})
    bad_json.headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Hmac-Sha256": f.shopify_hmac(f.SHOPIFY_SECRET, b"{not json"),
    }
    assert bad_json.post(client, f"/hooks/{public_id}").status_code == 400
    form = f.shopify(f.shopify_order(1017))
    form.headers["Content-Type"] = "text/plain"
    assert form.post(client, f"/hooks/{public_id}").status_code == 415
    big = f.shopify(dict(f.shopify_order(1018), note="x" * 1_100_000))
    assert big.post(client, f"/hooks/{public_id}").status_code == 413
    assert channel_state(shop, channel_id) == ([], ["invalid", "invalid", "invalid"], 0)

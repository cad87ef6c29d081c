"""Rate limits on the customer pages (per address) and on the inbound webhooks (per channel)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from orders import delivery
from orders.subscriptions import selfservice
from tests.factories import Outbox, Shop
from tests.integrations import factories as f
from tests.orders.factories import add_keys, grants_of, make_product, place_order
from tests.orders.subscriptions.factories import local, renewable_plan, subscribe

ANOTHER_ADDRESS = {"REMOTE_ADDR": "198.51.100.7"}


def my_rights_link(shop: Shop) -> tuple[str, int, str]:
    """Sell one card key; return the customer's "my rights" path, the grant id and the key."""
    with shop.bound():
        product = make_product()
        (card,) = add_keys(product.right, 1)
        order = place_order(product, "RL-1", paid=True)
        grant_id = grants_of(order.id)[0].id
        token = delivery.my_rights_token(shop.tenant.id, order.customer_id or 0)
    return f"/my/{token}", grant_id, card


def test_my_rights_page_views_are_limited_per_address_with_retry_after(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["CUSTOMER_PAGE_RATE_LIMIT"] = "3 per minute"
    path, _grant, _card = my_rights_link(shop)
    assert [client.get(path).status_code for _ in range(3)] == [302, 302, 302]  # signed in, into the portal
    limited = client.get(path)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert client.get(path, environ_base=ANOTHER_ADDRESS).status_code == 302


def test_reveals_are_limited_and_a_refused_reveal_shows_no_key(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["CUSTOMER_ACTION_RATE_LIMIT"] = "2 per minute"
    path, grant_id, card = my_rights_link(shop)
    answers = [client.post(f"{path}/grants/{grant_id}/reveal") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert card not in answers[2].get_data(as_text=True)
    assert int(answers[2].headers["Retry-After"]) > 0


def test_redeeming_is_limited_per_address(app: Flask, client: FlaskClient, shop: Shop) -> None:
    app.config["CUSTOMER_ACTION_RATE_LIMIT"] = "1 per minute"
    path, grant_id, _card = my_rights_link(shop)
    assert client.post(f"{path}/grants/{grant_id}/redeem").status_code == 302
    assert client.post(f"{path}/grants/{grant_id}/redeem").status_code == 429


def test_asking_for_cancellation_codes_is_limited_and_no_mail_goes_out_when_refused(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    app.config["CUSTOMER_ACTION_RATE_LIMIT"] = "2 per minute"
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))  # type: ignore[arg-type]
        url = "/my/subscriptions/" + selfservice.self_service_token(shop.tenant.id, sub.id)
    assert [client.post(f"{url}/code").status_code for _ in range(2)] == [302, 302]
    mailed = len(outbox.messages())
    assert client.post(f"{url}/code").status_code == 429
    assert len(outbox.messages()) == mailed
    assert client.get(url).status_code == 200  # viewing has its own, wider limit


def test_the_subscription_page_views_are_limited(app: Flask, client: FlaskClient, shop: Shop) -> None:
    app.config["CUSTOMER_PAGE_RATE_LIMIT"] = "2 per minute"
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))  # type: ignore[arg-type]
        url = "/my/subscriptions/" + selfservice.self_service_token(shop.tenant.id, sub.id)
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 429]


def test_forged_webhooks_are_limited_per_channel_with_a_json_429_and_retry_after(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["WEBHOOK_REJECTION_LIMIT"] = "3 per minute"
    with shop.bound():
        plan = f.card_plan(3990, keys=10)
        busy = f.make_channel("shopify")
        f.map_sku(busy, "VIP-MONTH", plan)
        quiet = f.make_channel("shopify", name="Shopify 第二店")
        f.map_sku(quiet, "VIP-MONTH", plan)
        busy_url, quiet_url = f"/hooks/{busy.public_id}", f"/hooks/{quiet.public_id}"
    forged = [f.shopify(f.shopify_order(8100 + n), secret="not-the-secret") for n in range(4)]
    answers = [delivery.post(client, busy_url) for delivery in forged]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    refused = answers[3]
    assert refused.json is not None and refused.json["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    # Another channel of the same shop, from the same address, is not held up.
    assert f.shopify(f.shopify_order(8200)).post(client, quiet_url).status_code == 200


def test_genuine_webhooks_are_never_refused_for_rate(app: Flask, client: FlaskClient, shop: Shop) -> None:
    """A flash sale is not an attack: WooCommerce never retries, so a refused delivery is a lost order."""
    app.config["WEBHOOK_REJECTION_LIMIT"] = "3 per minute"
    with shop.bound():
        plan = f.card_plan(3990, keys=10)
        channel = f.make_channel("shopify")
        f.map_sku(channel, "VIP-MONTH", plan)
        url = f"/hooks/{channel.public_id}"
    answers = [f.shopify(f.shopify_order(8300 + n)).post(client, url) for n in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    from integrations.models import Channel
    from saas.extensions import db

    with shop.bound():
        assert len(f.inbox_of(db.session.get(Channel, (shop.tenant.id, channel.id)))) == 6  # type: ignore[arg-type]

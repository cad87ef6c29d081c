"""The channels back office and REST API: setup pages, mappings, spend, inbox status and replay."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from saas.extensions import db
from tenants import services as tenant_services
from tenants.roles import PERMISSIONS, Role
from tests.factories import Shop, login
from tests.integrations import factories as f


def api_key(shop: Shop) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "integrations", list(PERMISSIONS))
    return {"Authorization": f"Bearer {secret}"}


def test_connecting_a_channel_shows_its_url_and_the_platform_steps(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.members["operator"])
    response = client.post(
        f"/t/{shop.slug}/channels/new",
        data={"kind": "stripe", "name": "Stripe", "currency": "CNY"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "/hooks/stripe_" in page
    assert "Stripe-Signature" in page and "whsec_" in page and "checkout.session.completed" in page
    login(client, shop.members["analyst"])
    assert client.get(f"/t/{shop.slug}/channels").status_code == 403


def test_spend_is_entered_per_day_and_imported_from_csv_all_or_nothing(
    client: FlaskClient, shop: Shop
) -> None:
    from integrations.channels import spend_rows

    with shop.bound():
        channel = f.make_channel("shopify")
        channel_id, public_id = channel.id, channel.public_id
    login(client, shop.owner)
    client.post(
        f"/t/{shop.slug}/channels/spend",
        data={
            "channel_id": channel_id,
            "day": "2026-03-01",
            "amount": "150.00",
            "currency": "CNY",
            "category": "ad_spend",
            "note": "Google Ads",
        },
    )
    bad = f"day,amount,category,channel\n2026-03-02,20.00,commission,{public_id}\n2026-03-03,abc,ad_spend,\n"
    client.post(
        f"/t/{shop.slug}/channels/spend/upload",
        data={"channel_id": channel_id, "file": (io.BytesIO(bad.encode()), "spend.csv")},
        content_type="multipart/form-data",
    )
    good = (
        f"day,amount,category,channel\n2026-03-02,20.00,commission,{public_id}\n"
        "2026-03-03,8.5,platform_fee,\n"
    )
    response = client.post(
        f"/t/{shop.slug}/channels/spend/upload",
        data={"channel_id": channel_id, "file": (io.BytesIO(good.encode()), "spend.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "2 spend rows imported" in response.get_data(as_text=True)
    with shop.bound():
        rows = [(r.day.isoformat(), r.amount, r.category) for r in spend_rows(channel_id)]
    assert rows == [
        ("2026-03-03", 850, "platform_fee"),
        ("2026-03-02", 2000, "commission"),
        ("2026-03-01", 15000, "ad_spend"),
    ]


def test_the_api_manages_channels_mappings_and_reads_inbox_status(client: FlaskClient, shop: Shop) -> None:
    headers = api_key(shop)
    with shop.bound():
        plan_id = f.card_plan().id
    created = client.post(
        "/api/v1/channels",
        json={"kind": "shopify", "name": "API Shopify", "secret": f.SHOPIFY_SECRET},
        headers=headers,
    )
    assert created.status_code == 201 and created.json["secret"] is None
    channel_id, url = created.json["id"], created.json["webhook_url"]
    mapped = client.post(
        f"/api/v1/channels/{channel_id}/mappings",
        json={"external_ref": "VIP-MONTH", "plan_id": str(plan_id)},
        headers=headers,
    )
    assert mapped.status_code == 201
    assert client.post(f"/api/v1/channels/{channel_id}/mappings", json={}, headers=headers).status_code == 422
    f.shopify(f.shopify_order(5151)).post(client, url.split("quanyi.test", 1)[-1])
    f.shopify(f.shopify_order(5152, sku="UNKNOWN")).post(client, url.split("quanyi.test", 1)[-1])
    channel = client.get(f"/api/v1/channels/{channel_id}", headers=headers).json
    assert channel["inbox"]["processed"] == 1 and channel["inbox"]["held"] == 1
    held = client.get(f"/api/v1/channels/{channel_id}/inbox?status=held", headers=headers).json["items"]
    assert len(held) == 1 and "Unknown SKU" in held[0]["note"]
    client.post(
        f"/api/v1/channels/{channel_id}/mappings",
        json={"external_ref": "UNKNOWN", "plan_id": str(plan_id)},
        headers=headers,
    )
    replayed = client.post(f"/api/v1/inbox/{held[0]['id']}/replay", headers=headers)
    assert replayed.status_code == 200 and replayed.json["status"] == "processed"
    again = client.post(f"/api/v1/inbox/{held[0]['id']}/replay", headers=headers)
    assert again.status_code == 409
    rotated = client.post(
        f"/api/v1/channels/{channel_id}/secret", json={"overlap_hours": 2}, headers=headers
    ).json
    assert rotated["secret"] and rotated["previous_secret_valid_until"]
    patched = client.patch(
        f"/api/v1/channels/{channel_id}", json={"fee_percent_bp": 290, "fee_fixed": 200}, headers=headers
    ).json
    assert (patched["fee_percent_bp"], patched["fee_fixed"]) == (290, 200)
    with shop.bound():
        from integrations.channels import get_channel, order_fee

        found = get_channel(int(channel_id))
        assert found is not None and order_fee(found, 3990) == 116 + 200


def test_the_demo_creates_channels_with_mappings_inbox_rows_and_spend(shop: Shop) -> None:
    from catalog.demo import create_demo_catalog
    from integrations import channels
    from integrations.demo import create_demo_channels

    with shop.bound():
        create_demo_catalog(shop.tenant)
        create_demo_channels(shop.tenant)
        kinds = sorted(c.kind for c in channels.list_channels())
        counts = [channels.inbox_counts(c.id) for c in channels.list_channels()]
        spend = channels.spend_rows()
        db.session.rollback()
    assert kinds == ["generic", "shopify"]
    assert sum(c["processed"] for c in counts) == 2 and sum(c["held"] for c in counts) == 1
    assert len(spend) >= 14

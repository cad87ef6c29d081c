"""Integration factories: channels with mappings, and signed deliveries as each platform sends them.

Signatures are computed here from the platforms' published algorithms (not with the code under test).
Call the channel factories with a tenant bound (`with shop.bound():`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

import orders.models
import orders.subscriptions.models  # noqa: F401
from catalog import keyring
from catalog import services as catalog_services
from catalog.models import Plan
from integrations import channels, secretbox
from integrations.channels import ChannelSettings
from integrations.models import (
    Channel,
    ChannelSpend,
    InboxDelivery,
    OutboundDelivery,
    SkuMapping,
    WebhookEndpoint,
)
from orders.models import Order
from saas.extensions import db
from tests.catalog import factories as catalog_factories
from tests.orders.factories import grants_of as grants_of  # one reader of an order's grants, re-exported

_serial = itertools.count(1)
SHOPIFY_SECRET = "shpss_test_app_secret_0123456789abcdef"
WOO_SECRET = "woo-secret-0123456789"
STRIPE_SECRET = "whsec_test_0123456789abcdefghijklmnop"
GENERIC_SECRET = "qsec_own_shop_secret_0123456789"
SECRETS = {
    "shopify": SHOPIFY_SECRET,
    "woocommerce": WOO_SECRET,
    "stripe": STRIPE_SECRET,
    "generic": GENERIC_SECRET,
}


def card_plan(price: int = 3990, *, keys: int = 5) -> Plan:
    """Return a monthly plan of a bundle with one card-key right that has `keys` keys in stock."""
    right = catalog_factories.make_right("腾讯视频VIP月卡", kind="card_key")
    catalog_factories.import_keys(right, count=keys)
    bundle = catalog_factories.make_bundle("影音畅享包", [(right, 1)])
    plan = catalog_factories.make_plan(bundle, price=price)
    catalog_services.change_bundle_status(bundle, "active")  # a draft's orders are refused
    return plan


def orders_of(channel: Channel) -> list[Any]:
    return list(
        db.session.scalars(select(Order).where(Order.channel == channel.public_id).order_by(Order.id))
    )


def inbox_of(channel: Channel) -> list[InboxDelivery]:
    return list(
        db.session.scalars(
            select(InboxDelivery)
            .where(InboxDelivery.channel_id == channel.id)
            .order_by(InboxDelivery.received_at)
        )
    )


def make_channel(kind: str = "shopify", name: str = "Shopify 海外店", **settings: Any) -> Channel:
    """Connect a channel with the test secret of its platform (none for CSV)."""
    channel, _generated = channels.create_channel(
        kind, ChannelSettings(name=name, **settings), secret=SECRETS.get(kind)
    )
    return channel


def map_sku(channel: Channel, ref: str, plan: Plan, kind: str = "sku") -> SkuMapping:
    return channels.add_mapping(channel, kind, ref, plan.id)


# ---------------------------------------------------------------- plain rows for the route tests


def channel_row(kind: str = "shopify") -> Channel:
    """A channel added directly (no audit row), for the route-wide tests."""
    channel = Channel(kind=kind, name="路由测试渠道", public_id=channels.new_public_id(kind))
    db.session.add(channel)
    db.session.commit()
    return channel


def mapping_row() -> SkuMapping:
    channel = channel_row()
    mapping = SkuMapping(
        channel_id=channel.id,
        ref_kind="sku",
        external_ref="ROUTE-SKU",
        plan_id=catalog_factories.plan_row().id,
    )
    db.session.add(mapping)
    db.session.commit()
    return mapping


def inbox_row(status: str = "held") -> InboxDelivery:
    channel = channel_row()
    row = InboxDelivery(
        channel_id=channel.id,
        dedupe_key=f"route:{next(_serial)}",
        topic="orders/paid",
        status=status,
        body=b"{}",
        headers={},
        content_type="application/json",
        note="fixture",
    )
    db.session.add(row)
    db.session.commit()
    return row


# ---------------------------------------------------------------- deliveries, signed as the platforms sign


@dataclass
class Delivery:
    """A request as a platform would send it."""

    body: bytes
    headers: dict[str, str]

    def post(self, client: Any, channel_or_path: Channel | str) -> Any:
        path = channel_or_path if isinstance(channel_or_path, str) else f"/hooks/{channel_or_path.public_id}"
        return client.post(path, data=self.body, headers=self.headers)


def shopify_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def stripe_header(
    secret: str, body: bytes, timestamp: int | None = None, extra: list[str] | None = None
) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return ",".join([f"t={timestamp}", *(f"v1={s}" for s in extra or []), f"v1={signed}", "v0=ignored"])


def shopify_order(
    order_id: int | None = None,
    *,
    sku: str = "VIP-MONTH",
    price: str = "39.90",
    financial_status: str = "paid",
    cancelled_at: str | None = None,
    variant_id: int = 4401,
    quantity: int = 1,
    email: str = "buyer@example.com",
) -> dict[str, Any]:
    order_id = order_id or 5_000_000 + next(_serial)
    return {
        "id": order_id,
        "name": f"#{order_id % 10000}",
        "email": email,
        "currency": "CNY",
        "financial_status": financial_status,
        "total_price": price,
        "created_at": "2026-03-01T10:00:00+08:00",
        "cancelled_at": cancelled_at,
        "cancel_reason": "customer" if cancelled_at else None,
        "customer": {"id": 99, "first_name": "Li", "last_name": "Lei", "email": email},
        "line_items": [
            {
                "id": 1,
                "sku": sku,
                "variant_id": variant_id,
                "product_id": 3301,
                "quantity": quantity,
                "price": price,
                "title": "影音畅享包 月卡",
            }
        ],
    }


def shopify(
    payload: dict[str, Any],
    topic: str = "orders/paid",
    *,
    secret: str = SHOPIFY_SECRET,
    webhook_id: str | None = None,
    prefixed: bool = True,
    raw: bytes | None = None,
) -> Delivery:
    body = raw if raw is not None else json.dumps(payload).encode()
    prefix = "X-Shopify-" if prefixed else "Shopify-"
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            f"{prefix}Topic": topic,
            f"{prefix}Hmac-Sha256": shopify_hmac(secret, body),
            f"{prefix}Webhook-Id": webhook_id or f"wh-{next(_serial)}",
            f"{prefix}Api-Version": "2025-07",
            f"{prefix}Shop-Domain": "acme.myshopify.com",
        },
    )


def woocommerce(
    payload: dict[str, Any],
    topic: str = "order.updated",
    *,
    secret: str = WOO_SECRET,
    raw: bytes | None = None,
) -> Delivery:
    body = raw if raw is not None else json.dumps(payload).replace("/", "\\/").encode()
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Signature": shopify_hmac(secret, body),
            "X-WC-Webhook-Delivery-ID": "7",
            "X-WC-Webhook-Resource": "order",
        },
    )


def woo_order(
    order_id: int = 812,
    status: str = "processing",
    modified: str = "2026-03-01T02:00:00",
    sku: str = "VIP-MONTH",
    price: float = 39.9,
) -> dict[str, Any]:
    return {
        "id": order_id,
        "status": status,
        "currency": "CNY",
        "total": f"{price:.2f}",
        "permalink": f"https://shop.example/?post_type=shop_order&p={order_id}",
        "date_created_gmt": "2026-03-01T01:59:00",
        "date_modified_gmt": modified,
        "customer_id": 12,
        "billing": {
            "first_name": "韩",
            "last_name": "梅梅",
            "email": "hmm@example.com",
            "phone": "13800000002",
        },
        "transaction_id": "ch_1",
        "refunds": [],
        "line_items": [
            {
                "id": 1,
                "name": "影音畅享包 月卡",
                "sku": sku,
                "product_id": 55,
                "variation_id": 0,
                "quantity": 1,
                "price": price,
                "total": f"{price:.2f}",
            }
        ],
    }


def stripe(event: dict[str, Any], *, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> Delivery:
    body = json.dumps(event).encode()
    return Delivery(
        body,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": stripe_header(secret, body, timestamp),
        },
    )


def stripe_event(
    event_type: str, obj: dict[str, Any], api_version: str = "2025-03-31.basil", **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"evt_{next(_serial)}",
        "object": "event",
        "type": event_type,
        "api_version": api_version,
        "created": int(time.time()),
        "data": {"object": obj, **extra},
    }


def checkout_session(
    plan: Plan, *, payment_status: str = "paid", amount: int | None = None
) -> dict[str, Any]:
    number = next(_serial)
    return {
        "id": f"cs_test_{number}",
        "object": "checkout.session",
        "payment_status": payment_status,
        "payment_intent": f"pi_{number}",
        "amount_total": plan.price if amount is None else amount,
        "currency": "cny",
        "customer": f"cus_{number}",
        "mode": "payment",
        "created": int(time.time()),
        "customer_details": {"email": "stripe.buyer@example.com", "name": "Stripe Buyer"},
        "metadata": {"plan_id": str(plan.id)},
    }


def generic(
    document: dict[str, Any], *, secret: str = GENERIC_SECRET, timestamp: int | None = None
) -> Delivery:
    body = json.dumps(document, ensure_ascii=False).encode()
    return Delivery(
        body, {"Content-Type": "application/json", "Quanyi-Signature": stripe_header(secret, body, timestamp)}
    )


def generic_order(order_id: str = "A1001", sku: str = "MINI-01", unit_price: int = 3990) -> dict[str, Any]:
    return {
        "id": f"evt-{order_id}-{next(_serial)}",
        "type": "order.paid",
        "order": {
            "id": order_id,
            "currency": "CNY",
            "total": unit_price,
            "customer": {"email": "own@example.com", "name": "自营买家"},
            "lines": [{"sku": sku, "quantity": 1, "unit_price": unit_price}],
        },
    }


def spend_row() -> int:
    row = ChannelSpend(
        channel_id=channel_row().id, day=dt.date(2026, 3, 1), amount=1000, currency="CNY", category="ad_spend"
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def endpoint_row(url: str = "http://127.0.0.1:9/unreachable") -> int:
    """An outbound endpoint added directly (no audit row), its secret sealed as the product seals it."""
    keyring.ensure_tenant_keys()
    endpoint = WebhookEndpoint(url=url, event_types=["*"], secret_ciphertext=b"")
    endpoint.secret_ciphertext = secretbox.seal("endpoint", endpoint.id, "qsec_route_fixture_secret")
    db.session.add(endpoint)
    db.session.commit()
    return endpoint.id


def webhook_delivery_row() -> int:
    delivery = OutboundDelivery(
        endpoint_id=endpoint_row(),
        event_id=f"evt_route_{next(_serial)}",
        event_type="order.fulfilled",
        payload={},
        status="failed",
    )
    db.session.add(delivery)
    db.session.commit()
    return delivery.id

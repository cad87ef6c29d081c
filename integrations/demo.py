"""Demo channels: a Shopify store and an own shop (signed webhook) with SKU mappings, a few deliveries in
the inbox (two fulfilled, one held for an unmapped SKU), and two weeks of channel spend."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from catalog.models import Bundle, Plan
from integrations import channels
from integrations.adapters.base import Envelope
from integrations.channels import ChannelSettings, SpendEntry
from integrations.inbound import inbox
from integrations.inbound.store import store
from integrations.models import Channel
from saas import money
from saas.extensions import db
from saas.timeutil import to_zone, utcnow
from tenants.models import Tenant

SPEND_DAYS = 14


def _plans() -> list[Plan]:
    return list(
        db.session.scalars(
            select(Plan)
            .join(Bundle, (Bundle.tenant_id == Plan.tenant_id) & (Bundle.id == Plan.bundle_id))
            .where(Bundle.status == "active")
            .order_by(Plan.id)
        )
    )


def _shopify_order(number: int, sku: str, price: int, email: str) -> dict[str, object]:
    return {
        "id": 5_100_000 + number,
        "name": f"#{1000 + number}",
        "email": email,
        "currency": "CNY",
        "financial_status": "paid",
        "total_price": money.to_text(price, "CNY"),
        "created_at": utcnow().isoformat(),
        "customer": {"id": 7_700_000 + number, "first_name": "Demo", "last_name": f"Buyer {number}"},
        "line_items": [
            {
                "id": 1,
                "sku": sku,
                "variant_id": 4_400_000 + number,
                "product_id": 3_300_000,
                "quantity": 1,
                "price": money.to_text(price, "CNY"),
                "title": "影音畅享包",
            }
        ],
    }


def _deliver(channel: Channel, number: int, document: dict[str, object]) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    envelope = Envelope("orders/paid", f"shopify:demo-{number}", "2025-07", str(document["id"]))
    delivery_id, new = store(channel, envelope, {"x-shopify-topic": "orders/paid"}, body, "application/json")
    if new and delivery_id is not None:
        inbox.process_delivery(delivery_id)


def create_demo_channels(tenant: Tenant) -> None:
    """Demo step: two channels with mappings, inbox rows and spend (needs the catalog's demo plans)."""
    plans = _plans()
    if not plans or channels.channel_count():
        return
    shopify, _secret = channels.create_channel(
        "shopify",
        ChannelSettings(name="Shopify 海外店", fee_percent="2.9", fee_fixed=200, price_tolerance_percent="1"),
    )
    own, _secret = channels.create_channel("generic", ChannelSettings(name="自营小程序", fee_percent="0.6"))
    for index, plan in enumerate(plans[:4]):
        channels.add_mapping(shopify, "sku", f"QY-{plan.id % 10_000:04d}-{index}", plan.id)
        channels.add_mapping(own, "sku", f"MINI-{index + 1:02d}", plan.id)
    first = plans[0]
    _deliver(
        shopify, 1, _shopify_order(1, f"QY-{first.id % 10_000:04d}-0", first.price, "demo.buyer1@example.com")
    )
    _deliver(
        shopify, 2, _shopify_order(2, f"QY-{first.id % 10_000:04d}-0", first.price, "demo.buyer2@example.com")
    )
    _deliver(shopify, 3, _shopify_order(3, "UNMAPPED-GIFT-CARD", first.price, "demo.buyer3@example.com"))
    today = to_zone(utcnow(), tenant.time_zone).date()
    for days_ago in range(SPEND_DAYS):
        day = today - dt.timedelta(days=days_ago)
        channels.add_spend(
            SpendEntry(shopify.id, day, 15_000 + 1_000 * (days_ago % 5), "CNY", "ad_spend", "Google Ads")
        )
        if days_ago % 7 == 0:
            channels.add_spend(SpendEntry(own.id, day, 30_000, "CNY", "commission", "分销佣金"))

"""Shopify: orders/paid, orders/cancelled, refunds/create, signed with X-Shopify-Hmac-Sha256.

The signature is base64 HMAC-SHA256 of the raw body with the app's secret; headers are not signed.
`X-Shopify-Webhook-Id` is stable across the retries of one delivery (the dedupe key); newer deliveries
send every header without the `X-` prefix too, so both spellings are read. Money is in strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from integrations import signing
from integrations.adapters.base import (
    ChannelAdapter,
    Envelope,
    Event,
    ExternalCustomer,
    ExternalLine,
    Ignored,
    InvalidDelivery,
    OrderCancelled,
    OrderPaid,
    RefundReported,
    amount_of,
    body_digest,
    header,
    load_json,
    parse_time,
    quantity,
    text,
)

TOPICS = ("orders/paid", "orders/cancelled", "refunds/create")


def _h(headers: Mapping[str, str], name: str) -> str | None:
    return header(headers, f"x-shopify-{name}", f"shopify-{name}")


class ShopifyAdapter(ChannelAdapter):
    slug = "shopify"
    label = _l("Shopify")
    signature_header = "X-Shopify-Hmac-Sha256"
    ref_kinds = ("sku", "variant", "product")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        return signing.verify_base64_hmac(secrets, body, _h(headers, "hmac-sha256"))

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        topic = _h(headers, "topic") or ""
        payload = load_json(body)
        delivery_id = _h(headers, "webhook-id") or f"{topic}:{body_digest(body)}"
        order_id = payload.get("order_id") if topic == "refunds/create" else payload.get("id")
        return Envelope(
            topic=topic[:80],
            dedupe_key=f"shopify:{delivery_id}"[:200],
            api_version=_h(headers, "api-version"),
            external_order_id=text(order_id, 128) or None,
        )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        if topic == "orders/paid":
            return [self._paid(payload)]
        if topic == "orders/cancelled":
            if not payload.get("cancelled_at"):
                return [
                    Ignored(_("orders/cancelled without cancelled_at: the body disagrees with the topic."))
                ]
            return [OrderCancelled(_order_id(payload), text(payload.get("cancel_reason"), 500))]
        if topic == "refunds/create":
            return [self._refund(payload)]
        return [Ignored(_("Shopify topic %(topic)s is not used.", topic=topic or "?"))]

    def _paid(self, payload: dict[str, Any]) -> Event:
        status = payload.get("financial_status")
        if status != "paid":
            return Ignored(
                _(
                    "orders/paid with financial_status %(status)s: the body disagrees with the topic.",
                    status=status,
                )
            )
        currency = text(payload.get("currency"), 3).upper() or "CNY"
        lines = []
        for item in payload.get("line_items") or []:
            refs = []
            if text(item.get("sku")):
                refs.append(("sku", text(item.get("sku"))))
            if item.get("variant_id"):
                refs.append(("variant", text(item.get("variant_id"))))
            if item.get("product_id"):
                refs.append(("product", text(item.get("product_id"))))
            lines.append(
                ExternalLine(
                    refs,
                    quantity(item.get("quantity")),
                    amount_of(item.get("price"), currency, "line_items.price"),
                    text(item.get("title") or item.get("name")),
                )
            )
        if not lines:
            raise InvalidDelivery(_("The order has no line items."))
        customer = payload.get("customer") or {}
        client = payload.get("client_details") or {}
        name = " ".join(p for p in (text(customer.get("first_name")), text(customer.get("last_name"))) if p)
        return OrderPaid(
            external_id=_order_id(payload),
            currency=currency,
            total=amount_of(payload.get("total_price"), currency, "total_price"),
            lines=lines,
            customer=ExternalCustomer(
                email=text(payload.get("email") or customer.get("email"), 254) or None,
                phone=text(payload.get("phone") or customer.get("phone"), 32) or None,
                name=name[:120],
                external_id=text(customer.get("id"), 128) or None,
            ),
            placed_at=parse_time(payload.get("created_at")),
            payment_reference=text(payload.get("name"), 128) or None,
            client_ip=text(payload.get("browser_ip") or client.get("browser_ip"), 45) or None,
            device_id=text(client.get("session_hash"), 128) or None,
        )

    def _refund(self, payload: dict[str, Any]) -> Event:
        order_id = text(payload.get("order_id"), 128)
        if not order_id or not payload.get("id"):
            raise InvalidDelivery(_("A refund needs its id and order_id."))
        currency = "CNY"
        amount = 0
        for transaction in payload.get("transactions") or []:
            if transaction.get("kind") == "refund" and transaction.get("status") == "success":
                currency = text(transaction.get("currency"), 3).upper() or currency
                amount += amount_of(transaction.get("amount"), currency, "transactions.amount") or 0
        if not amount:
            for item in payload.get("refund_line_items") or []:
                amount += amount_of(item.get("subtotal"), currency, "refund_line_items.subtotal") or 0
        if not amount:
            return Ignored(_("The refund moves no money (a restock only)."))
        return RefundReported(order_id, text(payload.get("id"), 100), amount, text(payload.get("note"), 500))

    def setup_steps(self, url: str) -> list[str]:
        return [
            _("In Shopify admin, open Settings → Notifications → Webhooks (or your app's webhook settings)."),
            _(
                "Create three webhooks in JSON format, each with the URL %(url)s: Order payment "
                "(orders/paid), "
                "Order cancellation (orders/cancelled) and Refund creation (refunds/create).",
                url=url,
            ),
            _(
                "Copy the signing secret Shopify shows under the webhooks list and paste it here as the "
                "secret."
            ),
            _("Map each product's SKU (or, for products without a SKU, its variant id) to a plan below."),
        ]


def _order_id(payload: dict[str, Any]) -> str:
    order_id = text(payload.get("id"), 128)
    if not order_id:
        raise InvalidDelivery(_("The order has no id."))
    return order_id

"""WooCommerce: order.created / order.updated, signed with X-WC-Webhook-Signature.

The signature is base64 HMAC-SHA256 of the raw PHP-encoded body, so the bytes are verified as received,
never re-serialised. Creating a webhook sends an unsigned form post `webhook_id=N`: it gets a 200 and is
not stored. The delivery id header is not unique, so repeats are recognised by the order's state
(id + status + date_modified). WooCommerce does not retry: a lost delivery is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP
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
    header,
    load_json,
    parse_time,
    quantity,
    text,
)

PAID_STATUSES = ("processing", "completed")


class WooCommerceAdapter(ChannelAdapter):
    slug = "woocommerce"
    label = _l("WooCommerce")
    signature_header = "X-WC-Webhook-Signature"
    ref_kinds = ("sku", "variant", "product")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        return signing.verify_base64_hmac(secrets, body, header(headers, "x-wc-webhook-signature"))

    def is_unsigned_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        return (
            header(headers, "x-wc-webhook-signature") is None
            and body.startswith(b"webhook_id=")
            and len(body) < 64
            and body[len(b"webhook_id=") :].strip().isdigit()
        )

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        order_id = text(payload.get("id"), 128)
        if not order_id:
            raise InvalidDelivery(_("The order has no id."))
        status = text(payload.get("status"), 40)
        modified = text(payload.get("date_modified_gmt") or payload.get("date_modified"), 40)
        return Envelope(
            topic=(header(headers, "x-wc-webhook-topic") or "order.updated")[:80],
            dedupe_key=f"woocommerce:{order_id}:{status}:{modified}"[:200],
            api_version=header(headers, "x-wc-webhook-resource") and "wc/v3",
            external_order_id=order_id,
        )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        status = text(payload.get("status"), 40)
        order_id = text(payload.get("id"), 128)
        if status in PAID_STATUSES:
            events: list[Event] = [self._paid(payload)]
            events.extend(self._refunds(payload))
            return events
        if status == "cancelled":
            return [OrderCancelled(order_id, _("cancelled in WooCommerce"))]
        if status == "refunded":
            return self._refunds(payload) or [
                RefundReported(order_id, f"{order_id}:refunded", None, _("refunded in WooCommerce"))
            ]
        return [Ignored(_("WooCommerce status %(status)s: nothing to do yet.", status=status or "?"))]

    def _paid(self, payload: dict[str, Any]) -> OrderPaid:
        currency = text(payload.get("currency"), 3).upper() or "CNY"
        lines = []
        for item in payload.get("line_items") or []:
            refs = []
            if text(item.get("sku")):
                refs.append(("sku", text(item.get("sku"))))
            if item.get("variation_id"):
                refs.append(("variant", text(item.get("variation_id"))))
            if item.get("product_id"):
                refs.append(("product", text(item.get("product_id"))))
            # `price` is a number (after discounts, per unit: subtotal ÷ quantity, so 6.666666666666667
            # for three units at 20.00); rounded half up to the fen. Totals are strings, read strictly.
            lines.append(
                ExternalLine(
                    refs,
                    quantity(item.get("quantity")),
                    amount_of(item.get("price"), currency, "line_items.price", rounding=ROUND_HALF_UP),
                    text(item.get("name")),
                )
            )
        if not lines:
            raise InvalidDelivery(_("The order has no line items."))
        billing = payload.get("billing") or {}
        name = " ".join(p for p in (text(billing.get("first_name")), text(billing.get("last_name"))) if p)
        customer_id = payload.get("customer_id")
        return OrderPaid(
            external_id=text(payload.get("id"), 128),
            currency=currency,
            total=amount_of(payload.get("total"), currency, "total"),
            lines=lines,
            customer=ExternalCustomer(
                email=text(billing.get("email"), 254) or None,
                phone=text(billing.get("phone"), 32) or None,
                name=name[:120],
                external_id=text(customer_id, 128) if customer_id else None,
            ),
            placed_at=parse_time(payload.get("date_created_gmt") or payload.get("date_created")),
            payment_reference=text(payload.get("transaction_id"), 128) or None,
        )

    def _refunds(self, payload: dict[str, Any]) -> list[Event]:
        currency = text(payload.get("currency"), 3).upper() or "CNY"
        order_id = text(payload.get("id"), 128)
        events: list[Event] = []
        for refund in payload.get("refunds") or []:
            amount = amount_of(refund.get("total"), currency, "refunds.total", negative=True)
            if refund.get("id") and amount:
                events.append(
                    RefundReported(
                        order_id, text(refund.get("id"), 100), abs(amount), text(refund.get("reason"), 500)
                    )
                )
        return events

    def setup_steps(self, url: str) -> list[str]:
        return [
            _("In WordPress, open WooCommerce → Settings → Advanced → Webhooks and add a webhook."),
            _(
                "Topic: Order updated (add a second one for Order created if you like); API version: WP REST "
                "API Integration v3; Delivery URL: %(url)s.",
                url=url,
            ),
            _(
                "Paste the secret shown here into the webhook's Secret field and save; the first (unsigned) "
                "ping is answered with 200."
            ),
            _(
                "Paid means status processing or completed. WooCommerce does not retry failed deliveries, so "
                "keep this page's inbox in view after an outage."
            ),
            _("Map each product's SKU (or variation id) to a plan below."),
        ]

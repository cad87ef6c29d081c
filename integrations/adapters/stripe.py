"""Stripe: checkout sessions, invoices (renewals), subscription changes and refunds.

Signature: `Stripe-Signature: t=…,v1=…`, hex HMAC-SHA256 of "<t>." + body with the whole endpoint secret
(the `whsec_` prefix included); any matching v1 is accepted (several appear while Stripe rotates the
secret) and timestamps older than 300 s are refused. Repeats share the event id. From API version
2025-03-31 a subscription's `current_period_end` lives in `items.data[]`, and an invoice's subscription id
moved under `parent.subscription_details`; both shapes are read.
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
    OrderPaid,
    RefundReported,
    SubscriptionChanged,
    header,
    load_json,
    parse_time,
    text,
)

TOLERANCE_SECONDS = 300


def _object(payload: dict[str, Any]) -> dict[str, Any]:
    obj = (payload.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise InvalidDelivery(_("The event has no data.object."))
    return obj


def order_reference(session: dict[str, Any]) -> str:
    """Return the order id of a checkout session: its payment intent when it has one, else its own id.

    Refunds (`charge.refunded`) name the payment intent, so a one-off payment is found by it.
    """
    return text(session.get("payment_intent") or session.get("id"), 128)


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """Return an invoice's subscription id in either API shape."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    found = details or invoice.get("subscription")
    if isinstance(found, dict):
        found = found.get("id")
    return text(found, 128) or None


def subscription_period_end(subscription: dict[str, Any]) -> Any:
    """Return a subscription's current period end in either API shape (items.data[] from 2025-03-31)."""
    if subscription.get("current_period_end"):
        return subscription["current_period_end"]
    ends = [item.get("current_period_end") for item in (subscription.get("items") or {}).get("data") or []]
    ends = [end for end in ends if end]
    return max(ends) if ends else None


class StripeAdapter(ChannelAdapter):
    slug = "stripe"
    label = _l("Stripe")
    secret_prefix = "whsec_"
    signature_header = "Stripe-Signature"
    ref_kinds = ("price", "sku", "product")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        return signing.verify_timestamped(
            secrets, body, header(headers, "stripe-signature"), now, TOLERANCE_SECONDS
        )

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        event_id = text(payload.get("id"), 120)
        if not event_id:
            raise InvalidDelivery(_("The event has no id."))
        event_type = text(payload.get("type"), 80)
        obj = (payload.get("data") or {}).get("object") or {}
        external = None
        if event_type.startswith("checkout.session."):
            external = order_reference(obj) if isinstance(obj, dict) else None
        elif event_type == "charge.refunded" and isinstance(obj, dict):
            external = text(obj.get("payment_intent"), 128) or None
        return Envelope(
            event_type, f"stripe:{event_id}", text(payload.get("api_version"), 40) or None, external
        )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        obj = _object(payload)
        if topic in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            return [self._checkout(obj)]
        if topic == "invoice.paid":
            return [self._invoice(obj)]
        if topic == "customer.subscription.updated":
            return [
                self._subscription_updated(obj, (payload.get("data") or {}).get("previous_attributes") or {})
            ]
        if topic == "customer.subscription.deleted":
            return [
                SubscriptionChanged(
                    "cancel_now",
                    text(obj.get("id"), 128),
                    parse_time(obj.get("ended_at") or obj.get("canceled_at")),
                )
            ]
        if topic == "charge.refunded":
            return self._refunds(obj)
        return [Ignored(_("Stripe event %(type)s is not used.", type=topic or "?"))]

    def _checkout(self, session: dict[str, Any]) -> Event:
        if session.get("payment_status") != "paid":
            return Ignored(
                _(
                    "Checkout completed with payment_status %(s)s: fulfilled when the payment succeeds.",
                    s=session.get("payment_status"),
                )
            )
        currency = text(session.get("currency"), 3).upper() or "CNY"
        metadata = session.get("metadata") or {}
        lines = []
        for item in (session.get("line_items") or {}).get("data") or []:
            price = item.get("price") or {}
            refs = [("price", text(price.get("id")))] if price.get("id") else []
            if price.get("product"):
                refs.append(("product", text(price.get("product"))))
            unit = price.get("unit_amount")
            lines.append(
                ExternalLine(
                    refs,
                    int(item.get("quantity") or 1),
                    int(unit) if unit is not None else None,
                    text(item.get("description")),
                )
            )
        if not lines:
            refs = []
            for key, kind in (
                ("plan_id", "plan"),
                ("quanyi_plan_id", "plan"),
                ("price_id", "price"),
                ("sku", "sku"),
            ):
                if text(metadata.get(key)):
                    refs.append((kind, text(metadata.get(key))))
            if not refs:
                raise InvalidDelivery(
                    _(
                        "The session names no plan: set metadata plan_id, price_id or sku, or "
                        "expand line_items."
                    )
                )
            amount = session.get("amount_total")
            count = (
                int(text(metadata.get("quantity")) or 1) if text(metadata.get("quantity")).isdigit() else 1
            )
            lines.append(ExternalLine(refs, count, int(amount) // count if amount is not None else None))
        details = session.get("customer_details") or {}
        return OrderPaid(
            external_id=order_reference(session),
            currency=currency,
            total=session.get("amount_total"),
            lines=lines,
            customer=ExternalCustomer(
                email=text(details.get("email") or session.get("customer_email"), 254) or None,
                phone=text(details.get("phone"), 32) or None,
                name=text(details.get("name"), 120),
                external_id=text(session.get("customer"), 128) or None,
            ),
            placed_at=parse_time(session.get("created")),
            payment_reference=text(session.get("id"), 128),
            subscription_id=text(session.get("subscription"), 128) or None,
        )

    def _invoice(self, invoice: dict[str, Any]) -> Event:
        subscription_id = invoice_subscription(invoice)
        if not subscription_id:
            return Ignored(_("An invoice without a subscription: nothing to renew."))
        if invoice.get("billing_reason") == "subscription_create":
            return Ignored(_("The first invoice of a subscription: its checkout session fulfils it."))
        lines = (invoice.get("lines") or {}).get("data") or []
        period_ends: list[int] = [
            int(end) for end in ((ln.get("period") or {}).get("end") for ln in lines) if end
        ]
        return SubscriptionChanged(
            "renewed",
            subscription_id,
            parse_time(max(period_ends)) if period_ends else None,
            invoice.get("amount_paid"),
            text(invoice.get("currency"), 3).upper() or None,
            text(invoice.get("id"), 128),
        )

    def _subscription_updated(self, subscription: dict[str, Any], previous: dict[str, Any]) -> Event:
        subscription_id = text(subscription.get("id"), 128)
        period_end = parse_time(subscription_period_end(subscription))
        if subscription.get("cancel_at_period_end"):
            return SubscriptionChanged("cancel_at_period_end", subscription_id, period_end)
        if previous.get("cancel_at_period_end"):
            return SubscriptionChanged("resumed", subscription_id, period_end)
        return Ignored(_("The subscription changed in a way that needs nothing from us."))

    def _refunds(self, charge: dict[str, Any]) -> list[Event]:
        payment_intent = text(charge.get("payment_intent"), 128)
        if not payment_intent:
            return [Ignored(_("A refunded charge without a payment intent: no order to refund."))]
        refunds = (charge.get("refunds") or {}).get("data") or []
        if refunds:
            return [
                RefundReported(
                    payment_intent,
                    text(r.get("id"), 100),
                    int(r.get("amount") or 0),
                    text(r.get("reason"), 500),
                )
                for r in refunds
                if r.get("id") and r.get("status", "succeeded") == "succeeded"
            ]
        refunded = int(charge.get("amount_refunded") or 0)
        return [
            RefundReported(payment_intent, f"{charge.get('id')}@{refunded}", refunded, "", cumulative=True)
        ]

    def setup_steps(self, url: str) -> list[str]:
        return [
            _(
                "In the Stripe Dashboard, open Developers → Webhooks and add an endpoint with the URL "
                "%(url)s.",
                url=url,
            ),
            _(
                "Select the events checkout.session.completed, checkout.session.async_payment_succeeded, "
                "invoice.paid, customer.subscription.updated, customer.subscription.deleted and "
                "charge.refunded."
            ),
            _("Reveal the endpoint's signing secret (it starts with whsec_) and paste it here, whole."),
            _(
                "Put the plan in the Checkout Session's metadata (plan_id, or sku), or map your Stripe "
                "price ids "
                "(price_…) to plans below."
            ),
        ]

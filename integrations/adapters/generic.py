"""Our own signed webhook, for a merchant's own shop or a distributor (documented in docs/webhooks.md).

`Quanyi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the channel's secret,
timestamps within 300 s. The body is JSON: `{"id", "type", "order": {…}, "refund": {…}}`, amounts in
integer minor units. The CSV channel stores each uploaded order in the same format.
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
    header,
    load_json,
    parse_time,
    quantity,
    text,
)

SIGNATURE_HEADER = "Quanyi-Signature"
TOLERANCE_SECONDS = 300
TYPES = ("order.paid", "order.cancelled", "order.refunded")


def _amount(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDelivery(
            _("%(what)s must be a whole number of minor units (3990 for 39.90).", what=what)
        )
    return value


def order_event(payload: dict[str, Any]) -> list[Event]:
    """Turn a document of our format into events (shared by the webhook and the CSV upload)."""
    kind = text(payload.get("type"), 40)
    order = payload.get("order") or {}
    if not isinstance(order, dict):
        raise InvalidDelivery(_("order must be an object."))
    order_id = text(order.get("id"), 128)
    if kind not in TYPES:
        return [Ignored(_("Unknown event type %(type)s.", type=kind or "?"))]
    if not order_id:
        raise InvalidDelivery(_("order.id is required."))
    if kind == "order.cancelled":
        return [OrderCancelled(order_id, text(payload.get("reason"), 500))]
    if kind == "order.refunded":
        refund = payload.get("refund") or {}
        if not isinstance(refund, dict) or not text(refund.get("id")):
            raise InvalidDelivery(_("refund.id is required."))
        return [
            RefundReported(
                order_id,
                text(refund.get("id"), 100),
                _amount(refund.get("amount"), "refund.amount"),
                text(refund.get("reason"), 500),
            )
        ]
    currency = text(order.get("currency"), 3).upper() or "CNY"
    lines = []
    for line in order.get("lines") or []:
        if not isinstance(line, dict):
            raise InvalidDelivery(_("Each line must be an object."))
        refs = [(kind_, text(line.get(kind_))) for kind_ in ("sku", "plan_id") if text(line.get(kind_))]
        refs = [("plan" if k == "plan_id" else k, v) for k, v in refs]
        lines.append(
            ExternalLine(
                refs,
                quantity(line.get("quantity", 1)),
                _amount(line.get("unit_price"), "unit_price"),
                text(line.get("title")),
            )
        )
    if not lines:
        raise InvalidDelivery(_("order.lines must list at least one line."))
    customer = order.get("customer") or {}
    return [
        OrderPaid(
            external_id=order_id,
            currency=currency,
            total=_amount(order.get("total"), "total"),
            lines=lines,
            customer=ExternalCustomer(
                email=text(customer.get("email"), 254) or None,
                phone=text(customer.get("phone"), 32) or None,
                name=text(customer.get("name"), 120),
                external_id=text(customer.get("id"), 128) or None,
            ),
            placed_at=parse_time(order.get("placed_at")),
            payment_reference=text(order.get("payment_reference"), 128) or None,
        )
    ]


class GenericAdapter(ChannelAdapter):
    slug = "generic"
    label = _l("Own shop / distributor (signed webhook)")
    signature_header = SIGNATURE_HEADER
    ref_kinds = ("sku", "plan")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        return signing.verify_timestamped(
            secrets, body, header(headers, SIGNATURE_HEADER), now, TOLERANCE_SECONDS
        )

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        event_id = text(payload.get("id"), 120)
        if not event_id:
            raise InvalidDelivery(_("The event has no id."))
        order = payload.get("order")
        order = order if isinstance(order, dict) else {}
        return Envelope(
            text(payload.get("type"), 80), f"generic:{event_id}", None, text(order.get("id"), 128) or None
        )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        return order_event(payload)

    def setup_steps(self, url: str) -> list[str]:
        return [
            _("Send each paid, cancelled or refunded order as JSON in a POST to %(url)s.", url=url),
            _(
                "Sign every request with the header Quanyi-Signature: t=<unix seconds>,v1=<hex "
                "HMAC-SHA256 of "
                '"<t>." + body> under this channel\'s secret (docs/webhooks.md has a copy-paste example).'
            ),
            _("Give every event a unique id: a repeated id is acknowledged and changes nothing."),
            _("Map your SKUs to plans below, or send our plan_id in each line."),
        ]


class CsvAdapter(ChannelAdapter):
    """Orders uploaded as CSV for channels with no API; each row is stored in the inbox in our format."""

    slug = "csv"
    label = _l("CSV upload (no API)")
    takes_webhooks = False
    ref_kinds = ("sku", "plan")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        return False

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        order = payload.get("order") or {}
        return Envelope(
            "csv.order", f"csv:{text(order.get('id'), 128)}", None, text(order.get("id"), 128) or None
        )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        return order_event(payload)

    def setup_steps(self, url: str) -> list[str]:
        return [
            _(
                "Export the channel's paid orders as CSV with the columns external_id, sku, quantity, "
                "unit_price, "
                "email, phone, name (one row per order line; rows with the same external_id form one order)."
            ),
            _("Upload the file on this page: each order is processed once, however often it is uploaded."),
            _("Map the SKUs in the file to plans below first."),
        ]

"""CSV upload of orders for channels with no API: each order becomes an inbox delivery in our format.

Rows with the same external_id are the lines of one order. Every order is stored once (dedupe key
`csv:<external_id>`), so uploading the same file twice, or an overlapping export, creates nothing new; it is
then processed like a webhook delivery (unknown SKUs and wrong prices are held on the channel's page).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from integrations.adapters.base import Envelope
from integrations.channels import ChannelError, read_amount
from integrations.inbound.store import enqueue_processing, store
from integrations.models import Channel
from saas.extensions import db
from tenants import audit
from tenants.scoping import current_tenant_id

COLUMNS = ("external_id", "sku", "quantity", "unit_price", "currency", "email", "phone", "name", "placed_at")
MAX_ROWS = 10_000


@dataclass
class CsvOrdersResult:
    """What an upload did: orders stored now, orders seen before, rows refused."""

    stored: int = 0
    repeated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _documents(data: bytes, currency: str) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str]]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    header = {(name or "").strip().lower() for name in reader.fieldnames or []}
    if not {"external_id", "sku"} <= header:
        raise ChannelError(_("The file needs a header with at least external_id and sku."))
    orders: dict[str, dict[str, Any]] = {}
    errors: list[tuple[int, str]] = []
    for line_no, raw in enumerate(reader, start=2):
        if line_no > MAX_ROWS + 1:
            raise ChannelError(_("Upload at most %(n)s rows at a time.", n=MAX_ROWS))
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            order = _add_row(orders, row, currency)
        except ChannelError as error:
            errors.append((line_no, str(error)))
            continue
        order["order"]["rows"].append(line_no)
    return orders, errors


def _add_row(orders: dict[str, dict[str, Any]], row: dict[str, str], currency: str) -> dict[str, Any]:
    external_id, sku = row.get("external_id", ""), row.get("sku", "")
    if not external_id or len(external_id) > 128:
        raise ChannelError(_("external_id is required (at most 128 characters)."))
    if not sku:
        raise ChannelError(_("sku is required."))
    quantity = row.get("quantity") or "1"
    if not quantity.isdigit() or int(quantity) < 1:
        raise ChannelError(_("quantity must be a whole number from 1."))
    line_currency = (row.get("currency") or currency).upper()
    price = read_amount(row["unit_price"], line_currency) if row.get("unit_price") else None
    order = orders.setdefault(
        external_id,
        {
            "id": f"csv-{external_id}",
            "type": "order.paid",
            "order": {
                "id": external_id,
                "currency": (row.get("currency") or currency).upper(),
                "placed_at": row.get("placed_at") or None,
                "customer": {
                    "email": row.get("email"),
                    "phone": row.get("phone"),
                    "name": row.get("name", ""),
                },
                "lines": [],
                "rows": [],
            },
        },
    )
    order["order"]["lines"].append({"sku": sku, "quantity": int(quantity), "unit_price": price})
    return order


def upload_orders_csv(channel: Channel, data: bytes) -> CsvOrdersResult:
    """Store each order of a CSV in the channel's inbox and start processing the new ones."""
    orders, errors = _documents(data, channel.currency)
    result = CsvOrdersResult(errors=errors)
    new_ids = []
    channel_id, tenant_id = channel.id, current_tenant_id()
    for external_id, document in orders.items():
        body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
        envelope = Envelope("csv.order", f"csv:{external_id}"[:200], None, external_id)
        delivery_id, new = store(
            channel, envelope, {"x-quanyi-source": "csv upload"}, body, "application/json"
        )
        if new and delivery_id is not None:
            result.stored += 1
            new_ids.append(delivery_id)
        else:
            result.repeated += 1
    audit.record(
        "channel.orders_uploaded",
        "channel",
        channel_id,
        stored=result.stored,
        repeated=result.repeated,
        refused=len(result.errors),
    )
    db.session.commit()
    for delivery_id in new_ids:
        enqueue_processing(tenant_id, delivery_id)
    return result

"""CSV upload of orders (a marketplace export, a distributor's list): one order per row, idempotent.

Rows name a plan by its id and are created here, directly, as back-office orders. Its sibling is
`integrations.csv_orders`, the CSV channel: rows name a SKU, several rows make one order, and each order
goes through the webhook inbox like any channel's delivery (SKU mapping, prices held for review). The two
are separate for now; a change to one should look at the other.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from flask_babel import gettext as _

from catalog.models import Plan
from orders.events import OrderError
from orders.services import CustomerInfo, LineRequest, OrderRequest, create_order
from saas import money
from saas.extensions import db
from tenants.scoping import current_tenant_id

COLUMNS = (
    "external_id",
    "plan_id",
    "quantity",
    "unit_price",
    "email",
    "phone",
    "name",
    "channel",
    "payment_reference",
)
MAX_ROWS = 10_000


@dataclass
class OrderImportResult:
    """What an upload did: orders created, already known, and the rows refused with their reasons."""

    created: int = 0
    existing: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_orders_csv(data: bytes, *, paid: bool = True, actor: str | None = None) -> OrderImportResult:
    """Create an order per row (columns in COLUMNS; header required); a row seen before changes nothing."""
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    header = {name.strip().lower() for name in reader.fieldnames or []}
    if not {"external_id", "plan_id"} <= header:
        raise OrderError(_("The file needs a header with at least external_id and plan_id."))
    result = OrderImportResult()
    for line_no, raw in enumerate(reader, start=2):
        if line_no > MAX_ROWS + 1:
            raise OrderError(_("Upload at most %(n)s orders at a time.", n=MAX_ROWS))
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            outcome = create_order(_request(row, paid, actor))
        except (OrderError, ValueError) as error:
            result.errors.append((line_no, str(error)))
            continue
        if outcome.created:
            result.created += 1
        else:
            result.existing += 1
    return result


def _unit_price(row: dict[str, str]) -> int | None:
    """Read a row's unit price in the currency of its plan (blank: the plan's price)."""
    plan = db.session.get(Plan, (current_tenant_id(), int(row["plan_id"])))
    return money.parse_optional(row.get("unit_price"), plan.currency if plan is not None else "CNY")


def _request(row: dict[str, str], paid: bool, actor: str | None) -> OrderRequest:
    if not row.get("plan_id", "").isdigit():
        raise OrderError(_("plan_id must be a plan's number."))
    quantity = row.get("quantity") or "1"
    if not quantity.isdigit():
        raise OrderError(_("quantity must be a whole number."))
    return OrderRequest(
        channel=row.get("channel") or "csv",
        external_id=row.get("external_id", ""),
        source="csv",
        customer=CustomerInfo(row.get("email") or None, row.get("phone") or None, row.get("name", "")),
        lines=[LineRequest(int(row["plan_id"]), int(quantity), _unit_price(row))],
        paid=paid,
        payment_reference=row.get("payment_reference") or None,
        actor=actor,
    )

"""The words a person reads for every stored code: statuses, kinds, sources, reasons, roles.

Codes (`fulfilled`, `card_key`, `duplicate_in_file`) are for machines: the database, the API, CSV filters.
A page, mail or export shows `label(enum, code)` in Python or `code|label(enum)` in a template, never the
code itself. Each label is translated with its enum as the message context (`pgettext`), so one English
word can be two Chinese ones: an *active* bundle is 上架, an *active* subscription 生效中.

Add a code here when you add it to a model; `tests/saas/test_labels.py` checks that every code of the
models' enum tuples has its label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask_babel import lazy_pgettext

LazyLabel = Any  # flask_babel's LazyString: str() translates it in the reader's language at that moment


# Extraction needs each (context, text) pair written out literally, so every label is a call of its own.
LABELS: dict[str, dict[str, LazyLabel]] = {
    # ---------------------------------------------------------------- catalog
    "fulfilment_kind": {
        "card_key": lazy_pgettext("fulfilment_kind", "Card key"),
        "code": lazy_pgettext("fulfilment_kind", "Generated code"),
        "topup": lazy_pgettext("fulfilment_kind", "Direct top-up"),
        "link": lazy_pgettext("fulfilment_kind", "Link"),
    },
    "bundle_status": {
        "draft": lazy_pgettext("bundle_status", "Draft"),
        "active": lazy_pgettext("bundle_status", "On sale"),
        "archived": lazy_pgettext("bundle_status", "Archived"),
    },
    "period_unit": {
        "month": lazy_pgettext("period_unit", "Month"),
        "quarter": lazy_pgettext("period_unit", "Quarter"),
        "year": lazy_pgettext("period_unit", "Year"),
        "days": lazy_pgettext("period_unit", "Days"),
    },
    "key_status": {
        "available": lazy_pgettext("key_status", "Available"),
        "reserved": lazy_pgettext("key_status", "Reserved"),
        "delivered": lazy_pgettext("key_status", "Delivered"),
        "redeemed": lazy_pgettext("key_status", "Redeemed"),
        "void": lazy_pgettext("key_status", "Void"),
        "expired": lazy_pgettext("key_status", "Expired"),
    },
    "upload_state": {
        "uploaded": lazy_pgettext("upload_state", "Uploaded"),
        "importing": lazy_pgettext("upload_state", "Importing"),
        "imported": lazy_pgettext("upload_state", "Imported"),
        "aborted": lazy_pgettext("upload_state", "Aborted"),
        "failed": lazy_pgettext("upload_state", "Failed"),
    },
    "file_kind": {
        "text": lazy_pgettext("file_kind", "Text"),
        "csv": lazy_pgettext("file_kind", "CSV"),
        "xlsx": lazy_pgettext("file_kind", "XLSX"),
    },
    "import_row_outcome": {
        "ok": lazy_pgettext("import_row_outcome", "Will be imported"),
        "duplicate_in_file": lazy_pgettext("import_row_outcome", "Duplicate in this file"),
        "duplicate_in_stock": lazy_pgettext("import_row_outcome", "Already in stock"),
        "rejected": lazy_pgettext("import_row_outcome", "Rejected"),
    },
    # ---------------------------------------------------------------- orders
    "order_status": {
        "pending": lazy_pgettext("order_status", "Awaiting payment"),
        "held": lazy_pgettext("order_status", "Held for review"),
        "paid": lazy_pgettext("order_status", "Paid"),
        "fulfilling": lazy_pgettext("order_status", "Fulfilling"),
        "fulfilled": lazy_pgettext("order_status", "Fulfilled"),
        "partially_fulfilled": lazy_pgettext("order_status", "Partially fulfilled"),
        "backordered": lazy_pgettext("order_status", "Backordered"),
        "partially_refunded": lazy_pgettext("order_status", "Partially refunded"),
        "refunded": lazy_pgettext("order_status", "Refunded"),
        "cancelled": lazy_pgettext("order_status", "Cancelled"),
    },
    "order_source": {
        "manual": lazy_pgettext("order_source", "Entered by hand"),
        "api": lazy_pgettext("order_source", "API"),
        "csv": lazy_pgettext("order_source", "CSV import"),
        "channel": lazy_pgettext("order_source", "Channel"),
        "demo": lazy_pgettext("order_source", "Demo data"),
        "campaign": lazy_pgettext("order_source", "Partner campaign"),
    },
    "grant_status": {
        "pending": lazy_pgettext("grant_status", "Pending"),
        "reserved": lazy_pgettext("grant_status", "Reserved"),
        "backordered": lazy_pgettext("grant_status", "Waiting for stock"),
        "processing": lazy_pgettext("grant_status", "Processing"),
        "delivered": lazy_pgettext("grant_status", "Delivered"),
        "redeemed": lazy_pgettext("grant_status", "Used"),
        "failed": lazy_pgettext("grant_status", "Failed"),
        "cancelled": lazy_pgettext("grant_status", "Cancelled"),
        "revoked": lazy_pgettext("grant_status", "Revoked"),
    },
    "topup_state": {
        "queued": lazy_pgettext("topup_state", "Queued"),
        "requesting": lazy_pgettext("topup_state", "Requesting"),
        "waiting": lazy_pgettext("topup_state", "Waiting for the supplier"),
        "retrying": lazy_pgettext("topup_state", "Retrying"),
        "succeeded": lazy_pgettext("topup_state", "Topped up"),
        "failed": lazy_pgettext("topup_state", "Failed"),
        "cancelled": lazy_pgettext("topup_state", "Cancelled"),
        "late_succeeded": lazy_pgettext("topup_state", "Topped up after the refund"),
        "late_processing": lazy_pgettext("topup_state", "Still processing after the refund"),
        "late_failed": lazy_pgettext("topup_state", "Failed after the refund"),
    },
    "delivery_kind": {
        "delivery": lazy_pgettext("delivery_kind", "Delivery"),
        "resend": lazy_pgettext("delivery_kind", "Resent"),
        "backorder": lazy_pgettext("delivery_kind", "Backorder filled"),
    },
    "delivery_status": {
        "queued": lazy_pgettext("delivery_status", "Queued"),
        "sent": lazy_pgettext("delivery_status", "Sent"),
        "failed": lazy_pgettext("delivery_status", "Failed"),
        "skipped": lazy_pgettext("delivery_status", "Skipped (no address)"),
    },
    "redemption_source": {
        "customer": lazy_pgettext("redemption_source", "Customer"),
        "api": lazy_pgettext("redemption_source", "API"),
        "supplier_report": lazy_pgettext("redemption_source", "Supplier report"),
        "channel": lazy_pgettext("redemption_source", "Channel"),
        "back_office": lazy_pgettext("redemption_source", "Back office"),
    },
    "redemption_outcome": {
        "redeemed": lazy_pgettext("redemption_outcome", "Redeemed"),
        "already_redeemed": lazy_pgettext("redemption_outcome", "Already redeemed"),
        "unknown": lazy_pgettext("redemption_outcome", "Unknown code"),
        "rejected_refunded": lazy_pgettext("redemption_outcome", "Refused: refunded"),
        "rejected_not_delivered": lazy_pgettext("redemption_outcome", "Refused: not delivered"),
    },
    "refund_scope": {
        "order": lazy_pgettext("refund_scope", "Whole order"),
        "line": lazy_pgettext("refund_scope", "Order line"),
        "grants": lazy_pgettext("refund_scope", "Chosen rights"),
    },
    "refund_source": {
        "back_office": lazy_pgettext("refund_source", "Back office"),
        "api": lazy_pgettext("refund_source", "API"),
        "channel": lazy_pgettext("refund_source", "Channel"),
    },
    # ---------------------------------------------------------------- subscriptions
    "subscription_status": {
        "active": lazy_pgettext("subscription_status", "Active"),
        "past_due": lazy_pgettext("subscription_status", "Payment overdue"),
        "canceled": lazy_pgettext("subscription_status", "Cancelled"),
        "expired": lazy_pgettext("subscription_status", "Expired"),
    },
    "subscription_period_kind": {
        "initial": lazy_pgettext("subscription_period_kind", "First period"),
        "renewal": lazy_pgettext("subscription_period_kind", "Renewal"),
        "reactivation": lazy_pgettext("subscription_period_kind", "Reactivation"),
    },
    "reminder_status": {
        "sent": lazy_pgettext("reminder_status", "Sent"),
        "skipped": lazy_pgettext("reminder_status", "Skipped"),
    },
    "cancellation_kind": {
        "at_period_end": lazy_pgettext("cancellation_kind", "At the period end"),
        "now": lazy_pgettext("cancellation_kind", "Now"),
    },
    "cancellation_source": {
        "customer": lazy_pgettext("cancellation_source", "Customer"),
        "support": lazy_pgettext("cancellation_source", "Support"),
        "api": lazy_pgettext("cancellation_source", "API"),
        "channel": lazy_pgettext("cancellation_source", "Channel"),
        "system": lazy_pgettext("cancellation_source", "System"),
    },
    "cancellation_reason": {
        "no_longer_needed": lazy_pgettext("cancellation_reason", "No longer needed"),
        "too_expensive": lazy_pgettext("cancellation_reason", "Price too high"),
        "unsatisfied": lazy_pgettext("cancellation_reason", "Not satisfied with the service"),
        "other": lazy_pgettext("cancellation_reason", "Other"),
    },
    "refund_policy": {
        "none": lazy_pgettext("refund_policy", "No refund"),
        "prorated": lazy_pgettext("refund_policy", "Prorated"),
    },
    "refund_status": {
        "none": lazy_pgettext("refund_status", "None"),
        "due": lazy_pgettext("refund_status", "Due"),
    },
    # ---------------------------------------------------------------- risk control
    "block_kind": {
        "email": lazy_pgettext("block_kind", "Email"),
        "email_domain": lazy_pgettext("block_kind", "Email domain"),
        "phone": lazy_pgettext("block_kind", "Phone"),
        "ip": lazy_pgettext("block_kind", "IP address or CIDR range"),
        "device": lazy_pgettext("block_kind", "Device id"),
        "channel_customer": lazy_pgettext("block_kind", "Channel customer id"),
    },
    "risk_rule": {
        "orders_per_customer": lazy_pgettext("risk_rule", "Orders per customer (holds)"),
        "orders_per_ip": lazy_pgettext("risk_rule", "Orders per IP address (holds)"),
        "orders_per_device": lazy_pgettext("risk_rule", "Orders per device (holds)"),
        "redemptions_per_ip": lazy_pgettext("risk_rule", "Redemptions per IP address (flags)"),
        "reveal_ips_per_grant": lazy_pgettext("risk_rule", "Addresses revealing one key (flags)"),
        "orders_per_plan": lazy_pgettext("risk_rule", "Orders for one plan (flags a burst)"),
    },
    "flag_kind": {
        "redemption_after_refund": lazy_pgettext("flag_kind", "Redeemed after a refund"),
        "redemption_velocity": lazy_pgettext("flag_kind", "Many redemptions from one address"),
        "reveal_many_ips": lazy_pgettext("flag_kind", "One key revealed from many addresses"),
        "plan_burst": lazy_pgettext("flag_kind", "Burst of orders for one plan"),
        "code_guessing": lazy_pgettext("flag_kind", "Guessed campaign codes"),
    },
    "flag_status": {
        "open": lazy_pgettext("flag_status", "Open"),
        "dismissed": lazy_pgettext("flag_status", "Dismissed"),
        "confirmed": lazy_pgettext("flag_status", "Confirmed"),
    },
    # ---------------------------------------------------------------- partner campaigns
    "partner_kind": {
        "enterprise": lazy_pgettext("partner_kind", "Enterprise"),
        "bank": lazy_pgettext("partner_kind", "Bank"),
        "carrier": lazy_pgettext("partner_kind", "Carrier"),
        "other": lazy_pgettext("partner_kind", "Other"),
    },
    "billing_basis": {
        "issued": lazy_pgettext("billing_basis", "Codes issued"),
        "claimed": lazy_pgettext("billing_basis", "Codes claimed"),
    },
    "issue_mode": {
        "export": lazy_pgettext("issue_mode", "Exported once as a file"),
        "api": lazy_pgettext("issue_mode", "One at a time by the partner API"),
    },
    "campaign_status": {
        "active": lazy_pgettext("campaign_status", "Active"),
        "void": lazy_pgettext("campaign_status", "Void"),
    },
    "campaign_code_status": {
        "issued": lazy_pgettext("campaign_code_status", "Issued"),
        "claimed": lazy_pgettext("campaign_code_status", "Claimed"),
        "void": lazy_pgettext("campaign_code_status", "Void"),
    },
    "claim_outcome": {
        "claimed": lazy_pgettext("claim_outcome", "Claimed"),
        "unknown_code": lazy_pgettext("claim_outcome", "Unknown code (guess)"),
        "already_claimed": lazy_pgettext("claim_outcome", "Claimed already"),
        "void": lazy_pgettext("claim_outcome", "Void code"),
        "expired": lazy_pgettext("claim_outcome", "Expired"),
        "not_started": lazy_pgettext("claim_outcome", "Not started yet"),
        "limit_reached": lazy_pgettext("claim_outcome", "Over the per-customer limit"),
        "rate_limited": lazy_pgettext("claim_outcome", "Rate limited"),
    },
    # ---------------------------------------------------------------- channels
    "channel_status": {
        "active": lazy_pgettext("channel_status", "Active"),
        "paused": lazy_pgettext("channel_status", "Paused"),
    },
    "ref_kind": {
        "sku": lazy_pgettext("ref_kind", "SKU"),
        "variant": lazy_pgettext("ref_kind", "Variant id"),
        "price": lazy_pgettext("ref_kind", "Price id"),
        "product": lazy_pgettext("ref_kind", "Product id"),
    },
    "inbox_status": {
        "pending": lazy_pgettext("inbox_status", "Pending"),
        "processing": lazy_pgettext("inbox_status", "Processing"),
        "processed": lazy_pgettext("inbox_status", "Processed"),
        "ignored": lazy_pgettext("inbox_status", "Ignored"),
        "waiting": lazy_pgettext("inbox_status", "Waiting for its order"),
        "skipped": lazy_pgettext("inbox_status", "Skipped"),
        "held": lazy_pgettext("inbox_status", "Held"),
        "failed": lazy_pgettext("inbox_status", "Failed (retrying)"),
        "dead": lazy_pgettext("inbox_status", "Given up"),
        "invalid": lazy_pgettext("inbox_status", "Invalid"),
    },
    "spend_category": {
        "ad_spend": lazy_pgettext("spend_category", "Ad spend"),
        "commission": lazy_pgettext("spend_category", "Commission"),
        "platform_fee": lazy_pgettext("spend_category", "Platform fee"),
        "other": lazy_pgettext("spend_category", "Other"),
    },
    "endpoint_status": {
        "active": lazy_pgettext("endpoint_status", "Active"),
        "disabled": lazy_pgettext("endpoint_status", "Disabled"),
    },
    "outbound_status": {
        "pending": lazy_pgettext("outbound_status", "Pending"),
        "succeeded": lazy_pgettext("outbound_status", "Delivered"),
        "retrying": lazy_pgettext("outbound_status", "Retrying"),
        "failed": lazy_pgettext("outbound_status", "Failed"),
    },
    # ---------------------------------------------------------------- reports and jobs
    "job_status": {
        "queued": lazy_pgettext("job_status", "Queued"),
        "running": lazy_pgettext("job_status", "Running"),
        "succeeded": lazy_pgettext("job_status", "Done"),
        "failed": lazy_pgettext("job_status", "Failed"),
    },
    "settlement_status": {
        "uploaded": lazy_pgettext("settlement_status", "Uploaded"),
        "matching": lazy_pgettext("settlement_status", "Matching"),
        "matched": lazy_pgettext("settlement_status", "Matched"),
        "failed": lazy_pgettext("settlement_status", "Failed"),
    },
    "match_kind": {
        "matched": lazy_pgettext("match_kind", "Matched"),
        "missing_in_settlement": lazy_pgettext("match_kind", "Missing in the settlement"),
        "missing_in_ours": lazy_pgettext("match_kind", "Missing in our orders"),
        "amount_mismatch": lazy_pgettext("match_kind", "Amount differs"),
        "fee_mismatch": lazy_pgettext("match_kind", "Fee differs"),
    },
    "reconciliation_period_kind": {
        "month": lazy_pgettext("reconciliation_period_kind", "Month"),
        "range": lazy_pgettext("reconciliation_period_kind", "Date range"),
    },
    # ---------------------------------------------------------------- tenants
    # Who did it, as the code wrote it down (a person is their email address and needs no label).
    "actor": {
        "system": lazy_pgettext("actor", "System"),
        "system: fulfilment job": lazy_pgettext("actor", "System: fulfilment job"),
        "system: not renewed": lazy_pgettext("actor", "System: not renewed"),
        "system: order refunded": lazy_pgettext("actor", "System: order refunded"),
        "system: outbound webhooks": lazy_pgettext("actor", "System: outbound webhooks"),
        "system: period ended": lazy_pgettext("actor", "System: period ended"),
        "system: reservation expired": lazy_pgettext("actor", "System: reservation expired"),
        "system: stuck order sweep": lazy_pgettext("actor", "System: stuck order sweep"),
        "system: top-up": lazy_pgettext("actor", "System: top-up"),
        "customer (self-service)": lazy_pgettext("actor", "Customer (self-service)"),
        "customer (demo)": lazy_pgettext("actor", "Customer (demo data)"),
        "support (demo)": lazy_pgettext("actor", "Support (demo data)"),
        "demo data": lazy_pgettext("actor", "Demo data"),
        "demo": lazy_pgettext("actor", "Demo data"),
    },
    "role": {
        "owner": lazy_pgettext("role", "Owner"),
        "admin": lazy_pgettext("role", "Admin"),
        "operator": lazy_pgettext("role", "Operator"),
        "finance": lazy_pgettext("role", "Finance"),
        "analyst": lazy_pgettext("role", "Analyst"),
        "support": lazy_pgettext("role", "Support"),
    },
}


# Codes written as fixed words around a name: "channel Shopify 海外店" reads "渠道 Shopify 海外店".
PATTERNS: dict[str, list[tuple[re.Pattern[str], LazyLabel]]] = {
    "actor": [
        (re.compile(r"channel (?P<name>.+)"), lazy_pgettext("actor", "Channel %(name)s")),
        (re.compile(r"api key (?P<name>.+)"), lazy_pgettext("actor", "API key %(name)s")),
        (
            re.compile(r"customer (?P<name>.+) \(my rights link\)"),
            lazy_pgettext("actor", "Customer %(name)s (my rights link)"),
        ),
    ],
}


def label(enum: str, code: str | None) -> str:
    """Return the reader's word for `code` of `enum` ('' for none; the code itself if it has no label)."""
    if code is None or code == "":
        return ""
    found = LABELS[enum].get(code)
    if found is not None:
        return str(found)
    for pattern, template in PATTERNS.get(enum, []):
        matched = pattern.fullmatch(code)
        if matched is not None:
            return str(template) % matched.groupdict()
    return code


def choices(enum: str, codes: Iterable[str] | None = None) -> list[tuple[str, LazyLabel]]:
    """Return `(code, label)` pairs for a select field, in `codes` order (default: the registry's)."""
    labels = LABELS[enum]
    return [(code, labels.get(code, code)) for code in (labels if codes is None else codes)]


def init_app(app: Flask) -> None:
    """Offer `code|label('enum')` and `label_choices('enum')` to every template."""
    app.jinja_env.filters["label"] = lambda code, enum: label(enum, code)
    app.jinja_env.globals["label_choices"] = choices

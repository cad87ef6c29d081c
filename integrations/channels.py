"""Channel use cases: connect, configure, secrets (set, rotate with overlap, reveal), SKU mappings, spend.

Services validate, act, record the audit row and commit once. Secrets are sealed with the tenant's data
key before they touch the session; the back office and the API only ever see a hint, except through an
audited reveal.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets as random_secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from catalog import keyring
from catalog.models import Plan
from integrations import secretbox
from integrations.adapters import ADAPTERS, adapter_for, platform_keys
from integrations.adapters.base import InvalidCredentials
from integrations.inbound import targets as webhook_targets
from integrations.models import (
    CHANNEL_STATUSES,
    INBOX_STATUSES,
    REF_KINDS,
    SPEND_CATEGORIES,
    Channel,
    ChannelSpend,
    InboxDelivery,
    SkuMapping,
)
from saas import money
from saas.extensions import db
from saas.timeutil import utcnow
from tenants import audit
from tenants.audit import current_actor
from tenants.scoping import current_tenant_id

DEFAULT_OVERLAP_HOURS = 24
MAX_OVERLAP_HOURS = 24 * 14
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_SPEND_ROWS = 10_000


class ChannelError(ValueError):
    """A user-facing refusal of a channel action."""


# ---------------------------------------------------------------- reading


def get_channel(channel_id: int) -> Channel | None:
    """Return one of the bound tenant's channels."""
    return db.session.get(Channel, (current_tenant_id(), channel_id))


def list_channels() -> list[Channel]:
    """Return the bound tenant's channels, oldest first."""
    return list(db.session.scalars(select(Channel).order_by(Channel.id)))


def channel_count() -> int:
    """Return how many channels the bound tenant has connected."""
    return int(db.session.scalar(select(func.count()).select_from(Channel)) or 0)


def inbox_counts(channel_id: int | None = None) -> dict[str, int]:
    """Return how many inbox rows are in each status (for one channel, or all)."""
    statement = select(InboxDelivery.status, func.count()).group_by(InboxDelivery.status)
    if channel_id is not None:
        statement = statement.where(InboxDelivery.channel_id == channel_id)
    counts = dict.fromkeys(INBOX_STATUSES, 0)
    for status, count in db.session.execute(statement):
        counts[status] = int(count)
    return counts


def mappings_of(channel_id: int) -> list[tuple[SkuMapping, Plan | None]]:
    """Return a channel's SKU mappings with their plans."""
    rows = db.session.execute(
        select(SkuMapping, Plan)
        .outerjoin(Plan, (Plan.tenant_id == SkuMapping.tenant_id) & (Plan.id == SkuMapping.plan_id))
        .where(SkuMapping.channel_id == channel_id)
        .order_by(SkuMapping.ref_kind, SkuMapping.external_ref)
    )
    return [(mapping, plan) for mapping, plan in rows]


def hook_path(channel: Channel) -> str:
    """Return the path of the channel's webhook URL."""
    return f"/hooks/{channel.public_id}"


# ---------------------------------------------------------------- secrets


def _check_secret(secret: str) -> str:
    secret = secret.strip()
    if not 8 <= len(secret) <= 200 or any(c.isspace() for c in secret):
        raise ChannelError(_("A secret is 8 to 200 characters without spaces."))
    return secret


def _store_secret(channel: Channel, secret: str) -> None:
    channel.secret_ciphertext = secretbox.seal("channel", channel.id, secret)
    channel.secret_hint = secretbox.hint(secret)


def set_secret(channel: Channel, secret: str, *, overlap_hours: int = 0) -> None:
    """Replace the channel's secret with one the platform gave; the old one verifies for `overlap_hours`."""
    if adapter_for(channel.kind).credential_fields:
        raise ChannelError(_("This channel verifies with the platform's credentials: set new ones."))
    secret = _check_secret(secret)
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise ChannelError(_("The overlap is 0 to %(n)s hours.", n=MAX_OVERLAP_HOURS))
    keyring.ensure_tenant_keys()
    now = utcnow()
    if channel.secret_ciphertext and overlap_hours:
        channel.previous_secret_ciphertext = channel.secret_ciphertext
        channel.previous_secret_expires_at = now + dt.timedelta(hours=overlap_hours)
    else:
        channel.previous_secret_ciphertext = None
        channel.previous_secret_expires_at = None
    _store_secret(channel, secret)
    channel.secret_rotated_at = now
    audit.record(
        "channel.secret_changed", "channel", channel.id, overlap_hours=overlap_hours, hint=channel.secret_hint
    )
    db.session.commit()
    _tell_webhook_endpoint(channel)


def _checked_credentials(kind: str, credentials: Any) -> str:
    """Return a platform's credentials, checked by its adapter, as the text sealed for the channel."""
    if not isinstance(credentials, dict):
        raise ChannelError(_("credentials must be an object."))
    try:
        cleaned = adapter_for(kind).check_credentials(credentials)
    except InvalidCredentials as error:
        raise ChannelError(str(error)) from error
    return platform_keys.seal_form(cleaned)


def _seal_credentials(channel: Channel, sealed_form: str) -> None:
    channel.secret_ciphertext = secretbox.seal("channel", channel.id, sealed_form)
    opened = platform_keys.credentials_of(sealed_form.encode()) or {}
    channel.secret_hint = adapter_for(channel.kind).credentials_hint(opened)[:16]


def set_credentials(
    channel: Channel, credentials: Any, *, overlap_hours: int = DEFAULT_OVERLAP_HOURS
) -> None:
    """Replace a platform channel's credentials (write-only); the old ones verify for `overlap_hours`."""
    if not adapter_for(channel.kind).credential_fields:
        raise ChannelError(_("This kind of channel takes a secret, not credentials."))
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise ChannelError(_("The overlap is 0 to %(n)s hours.", n=MAX_OVERLAP_HOURS))
    sealed_form = _checked_credentials(channel.kind, credentials)
    keyring.ensure_tenant_keys()
    now = utcnow()
    if channel.secret_ciphertext and overlap_hours:
        channel.previous_secret_ciphertext = channel.secret_ciphertext
        channel.previous_secret_expires_at = now + dt.timedelta(hours=overlap_hours)
    else:
        channel.previous_secret_ciphertext = None
        channel.previous_secret_expires_at = None
    _seal_credentials(channel, sealed_form)
    channel.secret_rotated_at = now
    audit.record(
        "channel.credentials_changed",
        "channel",
        channel.id,
        overlap_hours=overlap_hours,
        hint=channel.secret_hint,
    )
    db.session.commit()
    _tell_webhook_endpoint(channel)


def rotate_secret(channel: Channel, *, overlap_hours: int = DEFAULT_OVERLAP_HOURS) -> str:
    """Give the channel a new random secret; the old one still verifies for `overlap_hours`. Returns it."""
    if adapter_for(channel.kind).credential_fields:
        raise ChannelError(_("This channel verifies with the platform's credentials: set new ones."))
    secret = secretbox.new_secret(adapter_for(channel.kind).secret_prefix)
    set_secret(channel, secret, overlap_hours=overlap_hours)
    return secret


def reveal_secret(channel: Channel) -> str:
    """Return the channel's current secret in full (audited)."""
    if not channel.secret_ciphertext:
        raise ChannelError(_("This channel has no secret."))
    if adapter_for(channel.kind).credential_fields:
        raise ChannelError(_("A platform's credentials are write-only: set new ones to change them."))
    secret = secretbox.open_sealed(
        channel.tenant_id, "channel", channel.id, channel.secret_ciphertext
    ).decode()
    audit.record("channel.secret_revealed", "channel", channel.id)
    db.session.commit()
    return secret


# ---------------------------------------------------------------- connecting and configuring


@dataclass
class ChannelSettings:
    """What a merchant sets on a channel; fees as percent text ("2.5") and fixed minor units."""

    name: str
    currency: str = "CNY"
    fee_percent: str = "0"
    fee_fixed: int = 0
    price_tolerance_percent: str = "1"
    status: str = "active"
    settings: dict[str, Any] = field(default_factory=dict)


def percent_to_bp(text: str | None, what: str) -> int:
    """Read a percentage ("2.5", "2.50%") as basis points (250); 0–100 %."""
    raw = (text or "0").strip().rstrip("%").strip() or "0"
    try:
        value = Decimal(raw)
    except InvalidOperation as error:
        raise ChannelError(_("%(what)s is a percentage such as 2.5.", what=what)) from error
    if not value.is_finite() or not 0 <= value <= 100 or value != value.quantize(Decimal("0.01")):
        raise ChannelError(_("%(what)s is a percentage from 0 to 100 with at most two decimals.", what=what))
    return int(value * 100)


def _apply_settings(channel: Channel, values: ChannelSettings) -> None:
    name = values.name.strip()
    if not 1 <= len(name) <= 120:
        raise ChannelError(_("Give the channel a name of 1–120 characters."))
    currency = values.currency.strip().upper()
    if not CURRENCY.match(currency):
        raise ChannelError(_("Currency is a three-letter ISO code such as CNY."))
    if values.status not in CHANNEL_STATUSES:
        raise ChannelError(_("Unknown channel status."))
    if values.fee_fixed < 0:
        raise ChannelError(_("The fixed fee cannot be negative."))
    channel.name, channel.currency, channel.status = name, currency, values.status
    channel.fee_percent_bp = percent_to_bp(values.fee_percent, _("The fee"))
    channel.fee_fixed = values.fee_fixed
    channel.price_tolerance_bp = percent_to_bp(values.price_tolerance_percent, _("The price tolerance"))
    channel.settings = dict(values.settings)


def new_public_id(kind: str) -> str:
    """Return a public id for a webhook URL: the kind and 96 random bits (`shopify_k3J…`)."""
    return f"{kind}_{random_secrets.token_urlsafe(12)}"


def create_channel(
    kind: str, values: ChannelSettings, secret: str | None = None, credentials: Any = None
) -> tuple[Channel, str | None]:
    """Connect a channel of `kind`; return it and its secret when one was generated (shown once).

    A payment platform's channel (微信支付, 支付宝, 有赞) takes its `credentials` instead of a secret; without
    them it refuses every delivery until they are set.
    """
    if kind not in ADAPTERS:
        raise ChannelError(_("Unknown channel kind."))
    adapter = adapter_for(kind)
    channel = Channel(kind=kind, public_id=new_public_id(kind))
    _apply_settings(channel, values)
    generated = None
    if adapter.credential_fields:
        if secret:
            raise ChannelError(_("This kind of channel takes credentials, not a secret."))
        if credentials is not None:
            sealed_form = _checked_credentials(kind, credentials)
            keyring.ensure_tenant_keys()
            _seal_credentials(channel, sealed_form)
    elif credentials is not None:
        raise ChannelError(_("This kind of channel takes a secret, not credentials."))
    elif adapter.takes_webhooks:
        keyring.ensure_tenant_keys()
        if secret:
            _store_secret(channel, _check_secret(secret))
        else:
            generated = secretbox.new_secret(adapter.secret_prefix)
            _store_secret(channel, generated)
    db.session.add(channel)
    audit.record("channel.created", "channel", channel.id, kind=kind, name=channel.name)
    db.session.commit()
    return channel, generated


def update_channel(channel: Channel, values: ChannelSettings) -> None:
    """Change a channel's name, currency, fees, price tolerance, status or settings."""
    _apply_settings(channel, values)
    audit.record(
        "channel.updated",
        "channel",
        channel.id,
        name=channel.name,
        status=channel.status,
        fee_percent_bp=channel.fee_percent_bp,
        fee_fixed=channel.fee_fixed,
        price_tolerance_bp=channel.price_tolerance_bp,
    )
    db.session.commit()
    _tell_webhook_endpoint(channel)


def _tell_webhook_endpoint(channel: Channel) -> None:
    """Make this process's webhook endpoint read the channel again (status or secrets changed)."""
    webhook_targets.forget(channel.public_id)


def order_fee(channel: Channel, total: int) -> int:
    """Return the channel's fee on an order of `total` minor units (percent, rounded half up, + fixed)."""
    percent = (Decimal(total) * channel.fee_percent_bp / Decimal(10_000)).quantize(
        Decimal(1), "ROUND_HALF_UP"
    )
    return int(percent) + channel.fee_fixed


# ---------------------------------------------------------------- SKU mappings


def add_mapping(channel: Channel, ref_kind: str, external_ref: str, plan_id: int) -> SkuMapping:
    """Map an external SKU, variant id, price id or product id to a plan (replacing an older mapping)."""
    external_ref = external_ref.strip()
    if ref_kind not in REF_KINDS:
        raise ChannelError(_("Map a SKU, a variant id, a price id or a product id."))
    if not 1 <= len(external_ref) <= 200:
        raise ChannelError(_("The external reference is 1–200 characters."))
    plan = db.session.get(Plan, (current_tenant_id(), plan_id))
    if plan is None:
        raise ChannelError(_("Unknown plan."))
    mapping = db.session.scalar(
        select(SkuMapping).where(
            SkuMapping.channel_id == channel.id,
            SkuMapping.ref_kind == ref_kind,
            SkuMapping.external_ref == external_ref,
        )
    )
    if mapping is None:
        mapping = SkuMapping(
            channel_id=channel.id, ref_kind=ref_kind, external_ref=external_ref, plan_id=plan.id
        )
        db.session.add(mapping)
    else:
        mapping.plan_id = plan.id
    audit.record(
        "channel.sku_mapped",
        "channel",
        channel.id,
        ref_kind=ref_kind,
        external_ref=external_ref,
        plan_id=str(plan.id),
    )
    db.session.commit()
    return mapping


def remove_mapping(mapping: SkuMapping) -> None:
    """Delete a SKU mapping."""
    audit.record(
        "channel.sku_unmapped",
        "channel",
        mapping.channel_id,
        ref_kind=mapping.ref_kind,
        external_ref=mapping.external_ref,
    )
    db.session.delete(mapping)
    db.session.commit()


def plan_for_ref(channel_id: int, ref_kind: str, value: str) -> Plan | None:
    """Return the plan an external reference sells on a channel (`plan` refs name our plan id directly)."""
    if ref_kind == "plan":
        return db.session.get(Plan, (current_tenant_id(), int(value))) if value.isdigit() else None
    return db.session.scalar(
        select(Plan)
        .join(SkuMapping, (SkuMapping.tenant_id == Plan.tenant_id) & (SkuMapping.plan_id == Plan.id))
        .where(
            SkuMapping.channel_id == channel_id,
            SkuMapping.ref_kind == ref_kind,
            SkuMapping.external_ref == value,
        )
    )


# ---------------------------------------------------------------- channel spend


@dataclass
class SpendEntry:
    """One day's spend on a channel, amount in minor units."""

    channel_id: int
    day: dt.date
    amount: int
    currency: str
    category: str
    note: str = ""


def _spend_row(entry: SpendEntry, actor: str) -> ChannelSpend:
    if entry.category not in SPEND_CATEGORIES:
        raise ChannelError(_("Unknown spend category %(c)s.", c=entry.category))
    if entry.amount < 0:
        raise ChannelError(_("Spend cannot be negative."))
    currency = entry.currency.strip().upper()
    if not CURRENCY.match(currency):
        raise ChannelError(_("Currency is a three-letter ISO code such as CNY."))
    if get_channel(entry.channel_id) is None:
        raise ChannelError(_("Unknown channel."))
    return ChannelSpend(
        channel_id=entry.channel_id,
        day=entry.day,
        amount=entry.amount,
        currency=currency,
        category=entry.category,
        note=entry.note.strip()[:2000],
        created_by=actor,
    )


def add_spend(entry: SpendEntry) -> ChannelSpend:
    """Record one day's spend on a channel."""
    row = _spend_row(entry, current_actor()[1])
    db.session.add(row)
    audit.record(
        "channel.spend_added",
        "channel",
        entry.channel_id,
        day=entry.day.isoformat(),
        amount=entry.amount,
        currency=row.currency,
        category=entry.category,
    )
    db.session.commit()
    return row


def remove_spend(row: ChannelSpend) -> None:
    """Delete a spend entry."""
    audit.record(
        "channel.spend_removed", "channel", row.channel_id, day=row.day.isoformat(), amount=row.amount
    )
    db.session.delete(row)
    db.session.commit()


def spend_rows(channel_id: int | None = None, limit: int = 200) -> list[ChannelSpend]:
    """Return recent spend entries, newest day first."""
    statement = select(ChannelSpend).order_by(ChannelSpend.day.desc(), ChannelSpend.id.desc()).limit(limit)
    if channel_id is not None:
        statement = statement.where(ChannelSpend.channel_id == channel_id)
    return list(db.session.scalars(statement))


@dataclass
class SpendImport:
    """What a spend CSV did: rows added, and the rows refused with their reasons."""

    added: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_amount(text: str | None, currency: str) -> int:
    """Read an amount in major units ("1,234.50") as minor units of `currency`; ChannelError otherwise.

    `saas.money.parse` does the reading; this only turns its refusal into the channels' ChannelError.
    """
    try:
        return money.parse((text or "").strip() or "0", currency or "")
    except money.MoneyError as error:
        raise ChannelError(str(error)) from error


def import_spend_csv(data: bytes, default_channel_id: int | None = None) -> SpendImport:
    """Add spend from CSV: day, amount, currency, category, note, and channel (a public id or name).

    The file is all or nothing: any refused row adds nothing, and every refusal is listed.
    """
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    header = {(name or "").strip().lower() for name in reader.fieldnames or []}
    if not {"day", "amount"} <= header:
        raise ChannelError(_("The file needs a header with at least day and amount."))
    channels = {c.public_id: c.id for c in list_channels()} | {c.name: c.id for c in list_channels()}
    result, rows, actor = SpendImport(), [], current_actor()[1]
    for line_no, raw in enumerate(reader, start=2):
        if line_no > MAX_SPEND_ROWS + 1:
            raise ChannelError(_("Upload at most %(n)s rows at a time.", n=MAX_SPEND_ROWS))
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            channel_id = channels.get(row.get("channel", "")) or default_channel_id
            if channel_id is None:
                raise ChannelError(_("Unknown channel %(c)s.", c=row.get("channel", "")))
            try:
                day = dt.date.fromisoformat(row.get("day", ""))
            except ValueError as error:
                raise ChannelError(_("day must be a date like 2026-03-01.")) from error
            currency = row.get("currency") or "CNY"
            if not row.get("amount"):
                raise ChannelError(_("Enter an amount."))
            entry = SpendEntry(
                channel_id,
                day,
                read_amount(row.get("amount"), currency),
                currency,
                row.get("category") or "ad_spend",
                row.get("note", ""),
            )
            rows.append(_spend_row(entry, actor))
        except ChannelError as error:
            result.errors.append((line_no, str(error)))
    if result.errors:
        db.session.rollback()
        return result
    db.session.add_all(rows)
    result.added = len(rows)
    audit.record("channel.spend_imported", "channel", default_channel_id, rows=len(rows))
    db.session.commit()
    return result

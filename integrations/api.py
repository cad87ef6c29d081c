"""REST resources of integrations under /api/v1: channels, their SKU mappings, inbox status, replay, spend.

Secrets are never listed: creating a channel (without a secret of the platform's) or rotating one returns
the new secret once. Amounts are integers in minor units; fees in basis points (250 = 2.50 %).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, Field
from sqlalchemy import select

from integrations import channels as channel_service
from integrations.adapters import ADAPTERS
from integrations.channels import ChannelError, ChannelSettings, SpendEntry
from integrations.inbound import inbox
from integrations.models import INBOX_STATUSES, Channel, ChannelSpend, InboxDelivery, SkuMapping
from saas.errors import ApiError
from saas.extensions import db
from saas.labels import label
from saas.links import public_url
from tenants import roles
from tenants.api import Id, QueryParam, RequestModel, ResponseModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404
from tenants.scoping import current_tenant_id

bp = api_blueprint("integrations_api")
NO_CHANNEL = _l("No such channel.")
NO_DELIVERY = _l("No such delivery.")
RefKind = Literal["sku", "variant", "price", "product"]
Category = Literal["ad_spend", "commission", "platform_fee", "other"]


class ChannelIn(RequestModel):
    """A channel to connect. `secret`: the platform's signing secret; leave it out to get a generated one.

    微信支付 / 支付宝 / 有赞 (`wechatpay`, `alipay`, `youzan`) take `credentials` instead: write-only, never
    returned (see docs/webhooks.md for each platform's fields).
    """

    kind: Literal["shopify", "woocommerce", "stripe", "wechatpay", "alipay", "youzan", "generic", "csv"]
    name: str
    currency: str = "CNY"
    fee_percent_bp: int | None = Field(
        None, ge=0, le=10_000, description="default: the platform's usual fee (0.6 % for the Chinese ones)"
    )
    fee_fixed: int = Field(0, ge=0)
    price_tolerance_bp: int = Field(100, ge=0, le=10_000)
    secret: str | None = None
    credentials: dict[str, Any] | None = Field(
        None, description="wechatpay, alipay and youzan only; write-only, encrypted at rest"
    )


class ChannelPatch(RequestModel):
    """Changes to a channel; fields left out stay as they are."""

    name: str | None = None
    currency: str | None = None
    status: Literal["active", "paused"] | None = None
    fee_percent_bp: int | None = Field(None, ge=0, le=10_000)
    fee_fixed: int | None = Field(None, ge=0)
    price_tolerance_bp: int | None = Field(None, ge=0, le=10_000)


class ChannelOut(BaseModel):
    id: str
    kind: str
    name: str
    status: str
    currency: str
    webhook_url: str | None
    secret_hint: str
    previous_secret_valid_until: dt.datetime | None
    fee_percent_bp: int
    fee_fixed: int
    price_tolerance_bp: int
    inbox: dict[str, int]
    last_delivery_at: dt.datetime | None
    created_at: dt.datetime


class ChannelCreated(ChannelOut):
    """The new channel, with its generated secret (shown this once; null when you gave one)."""

    secret: str | None


class RotateIn(RequestModel):
    """Rotate the secret: the old one still verifies for `overlap_hours`."""

    overlap_hours: int = Field(24, ge=0, le=336)
    secret: str | None = None


class CredentialsIn(RequestModel):
    """New credentials of a wechatpay, alipay or youzan channel; the old ones verify for `overlap_hours`.

    `credentials` is required (checked after the channel is found).
    """

    credentials: dict[str, Any] = {}
    overlap_hours: int = Field(24, ge=0, le=336)


class SecretOut(BaseModel):
    secret: str
    previous_secret_valid_until: dt.datetime | None


class MappingIn(RequestModel):
    """A mapping; both `external_ref` and `plan_id` are required (checked after the channel is found)."""

    ref_kind: RefKind = "sku"
    external_ref: str = ""
    plan_id: str = ""


class MappingOut(ResponseModel):
    id: Id
    channel_id: Id
    ref_kind: str
    external_ref: str
    plan_id: Id


class InboxOut(ResponseModel):
    id: Id
    channel_id: Id
    topic: str
    status: str
    note: str
    last_error: str | None
    attempts: int
    duplicates: int
    external_order_id: str | None
    order_id: Id | None
    api_version: str | None
    received_at: dt.datetime
    next_attempt_at: dt.datetime | None
    processed_at: dt.datetime | None


class SpendIn(RequestModel):
    """One day's spend (`day` is required; the tenant's local date)."""

    day: dt.date | None = None
    amount: int = Field(0, ge=0)
    currency: str = "CNY"
    category: Category = "ad_spend"
    note: str = ""


class SpendOut(ResponseModel):
    id: Id
    channel_id: Id
    day: dt.date
    amount: int
    currency: str
    category: str
    note: str


# ---------------------------------------------------------------- helpers


def _channel_out(channel: Channel) -> ChannelOut:
    takes_webhooks = ADAPTERS[channel.kind].takes_webhooks
    return ChannelOut(
        id=str(channel.id),
        kind=channel.kind,
        name=channel.name,
        status=channel.status,
        currency=channel.currency,
        webhook_url=public_url("hooks.receive_delivery", public_id=channel.public_id)
        if takes_webhooks
        else None,
        secret_hint=channel.secret_hint,
        previous_secret_valid_until=channel.previous_secret_expires_at,
        fee_percent_bp=channel.fee_percent_bp,
        fee_fixed=channel.fee_fixed,
        price_tolerance_bp=channel.price_tolerance_bp,
        inbox=channel_service.inbox_counts(channel.id),
        last_delivery_at=channel.last_delivery_at,
        created_at=channel.created_at,
    )


def _bp_text(value: int) -> str:
    return f"{value / 100:.2f}"


def _refused(error: ChannelError) -> ApiError:
    return ApiError(422, "invalid", str(error))


# ---------------------------------------------------------------- channels


@api_endpoint(
    bp,
    "/channels",
    "GET",
    summary="List channels",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=ChannelOut,
    paginated=True,
)
def list_channels() -> tuple[list[ChannelOut], str | None]:
    rows, cursor = paginate(select(Channel), Channel.id)
    return [_channel_out(c) for c in rows], cursor


@api_endpoint(
    bp,
    "/channels",
    "POST",
    summary="Connect a channel",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=ChannelIn,
    response_model=ChannelCreated,
    status=201,
)
def create_channel(body: ChannelIn) -> ChannelCreated:
    adapter = ADAPTERS[body.kind]
    if adapter.credential_fields and body.credentials is None:
        fields = ", ".join(adapter.credential_fields)
        raise ApiError(422, "invalid", f"a {body.kind} channel needs credentials ({fields})")
    fee_bp = body.fee_percent_bp if body.fee_percent_bp is not None else adapter.default_fee_bp
    try:
        channel, secret = channel_service.create_channel(
            body.kind,
            ChannelSettings(
                name=body.name,
                currency=body.currency,
                fee_percent=_bp_text(fee_bp),
                fee_fixed=body.fee_fixed,
                price_tolerance_percent=_bp_text(body.price_tolerance_bp),
            ),
            secret=body.secret,
            credentials=body.credentials,
        )
    except ChannelError as error:
        raise _refused(error) from error
    return ChannelCreated(**_channel_out(channel).model_dump(), secret=secret)


@api_endpoint(
    bp,
    "/channels/<int:channel_id>",
    "GET",
    summary="Read a channel and its inbox counts",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=ChannelOut,
    errors=(404,),
)
def get_channel(channel_id: int) -> ChannelOut:
    return _channel_out(api_get_or_404(Channel, channel_id, NO_CHANNEL))


@api_endpoint(
    bp,
    "/channels/<int:channel_id>",
    "PATCH",
    summary="Change a channel",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=ChannelPatch,
    response_model=ChannelOut,
    errors=(404,),
)
def update_channel(channel_id: int, body: ChannelPatch) -> ChannelOut:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    values = ChannelSettings(
        name=body.name if body.name is not None else channel.name,
        currency=body.currency or channel.currency,
        fee_percent=_bp_text(
            body.fee_percent_bp if body.fee_percent_bp is not None else channel.fee_percent_bp
        ),
        fee_fixed=body.fee_fixed if body.fee_fixed is not None else channel.fee_fixed,
        price_tolerance_percent=_bp_text(
            body.price_tolerance_bp if body.price_tolerance_bp is not None else channel.price_tolerance_bp
        ),
        status=body.status or channel.status,
        settings=dict(channel.settings or {}),
    )
    try:
        channel_service.update_channel(channel, values)
    except ChannelError as error:
        raise _refused(error) from error
    return _channel_out(channel)


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/secret",
    "POST",
    summary="Rotate a channel's secret (give the platform's new one, or get a generated one)",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=RotateIn,
    response_model=SecretOut,
    errors=(404,),
)
def rotate_secret(channel_id: int, body: RotateIn) -> SecretOut:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    if not ADAPTERS[channel.kind].takes_webhooks:
        raise ApiError(409, "conflict", _("This channel takes no webhooks and has no secret."))
    if ADAPTERS[channel.kind].credential_fields:
        message = _("This channel verifies with credentials: send them to …/credentials.")
        raise ApiError(409, "conflict", message)
    try:
        if body.secret:
            channel_service.set_secret(channel, body.secret, overlap_hours=body.overlap_hours)
            secret = body.secret.strip()
        else:
            secret = channel_service.rotate_secret(channel, overlap_hours=body.overlap_hours)
    except ChannelError as error:
        raise _refused(error) from error
    return SecretOut(secret=secret, previous_secret_valid_until=channel.previous_secret_expires_at)


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/credentials",
    "POST",
    summary="Replace a WeChat Pay, Alipay or Youzan channel's credentials (the old ones verify for a while)",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=CredentialsIn,
    response_model=ChannelOut,
    errors=(404,),
)
def set_credentials(channel_id: int, body: CredentialsIn) -> ChannelOut:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    if not ADAPTERS[channel.kind].credential_fields:
        raise ApiError(409, "conflict", "this channel verifies with a secret: rotate it at …/secret")
    try:
        channel_service.set_credentials(channel, body.credentials, overlap_hours=body.overlap_hours)
    except ChannelError as error:
        raise _refused(error) from error
    return _channel_out(channel)


# ---------------------------------------------------------------- SKU mappings


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/mappings",
    "GET",
    summary="List a channel's SKU mappings",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=MappingOut,
    paginated=True,
    errors=(404,),
)
def list_mappings(channel_id: int) -> tuple[list[MappingOut], str | None]:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    rows, cursor = paginate(select(SkuMapping).where(SkuMapping.channel_id == channel.id), SkuMapping.id)
    return [MappingOut.model_validate(m) for m in rows], cursor


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/mappings",
    "POST",
    summary="Map an external SKU / id to a plan",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=MappingIn,
    response_model=MappingOut,
    status=201,
    errors=(404,),
)
def create_mapping(channel_id: int, body: MappingIn) -> MappingOut:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    if not body.plan_id.isdigit():
        raise ApiError(422, "invalid", _("plan_id is a plan's id."))
    try:
        return MappingOut.model_validate(
            channel_service.add_mapping(channel, body.ref_kind, body.external_ref, int(body.plan_id))
        )
    except ChannelError as error:
        raise _refused(error) from error


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/mappings/<int:mapping_id>",
    "DELETE",
    summary="Remove a SKU mapping",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    status=204,
    errors=(404,),
)
def delete_mapping(channel_id: int, mapping_id: int) -> None:
    mapping = api_get_or_404(SkuMapping, mapping_id, _("No such mapping."), channel_id=channel_id)
    channel_service.remove_mapping(mapping)


# ---------------------------------------------------------------- the inbox


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/inbox",
    "GET",
    summary="List a channel's webhook deliveries",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=InboxOut,
    paginated=True,
    errors=(404,),
    query=[QueryParam("status", "only deliveries in this status: " + ", ".join(INBOX_STATUSES))],
)
def list_inbox(channel_id: int) -> tuple[list[InboxOut], str | None]:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    statement = select(InboxDelivery).where(InboxDelivery.channel_id == channel.id)
    status = request.args.get("status")
    if status:
        if status not in INBOX_STATUSES:
            raise ApiError(
                400, "invalid_status", _("status is one of %(statuses)s.", statuses=", ".join(INBOX_STATUSES))
            )
        statement = statement.where(InboxDelivery.status == status)
    rows, cursor = paginate(statement, InboxDelivery.id)
    return [InboxOut.model_validate(r) for r in rows], cursor


@api_endpoint(
    bp,
    "/inbox/<int:inbox_delivery_id>",
    "GET",
    summary="Read one webhook delivery's status",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=InboxOut,
    errors=(404,),
)
def get_inbox_delivery(inbox_delivery_id: int) -> InboxOut:
    row = api_get_or_404(InboxDelivery, inbox_delivery_id, NO_DELIVERY)
    return InboxOut.model_validate(row)


@api_endpoint(
    bp,
    "/inbox/<int:inbox_delivery_id>/replay",
    "POST",
    summary="Replay a held, failed, dead, skipped, waiting or invalid delivery",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    response_model=InboxOut,
    errors=(404, 409),
)
def replay_inbox_delivery(inbox_delivery_id: int) -> InboxOut:
    row = api_get_or_404(InboxDelivery, inbox_delivery_id, NO_DELIVERY)
    if not inbox.replay(row, reason="API"):
        raise ApiError(
            409,
            "not_replayable",
            _("A delivery that is %(status)s cannot be replayed.", status=label("inbox_status", row.status)),
        )
    found = db.session.get(InboxDelivery, (current_tenant_id(), inbox_delivery_id), populate_existing=True)
    assert found is not None
    return InboxOut.model_validate(found)


# ---------------------------------------------------------------- spend


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/spend",
    "GET",
    summary="List a channel's spend",
    scope=roles.CHANNELS_VIEW,
    tag="channels",
    response_model=SpendOut,
    paginated=True,
    errors=(404,),
)
def list_spend(channel_id: int) -> tuple[list[SpendOut], str | None]:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    rows, cursor = paginate(
        select(ChannelSpend).where(ChannelSpend.channel_id == channel.id), ChannelSpend.id
    )
    return [SpendOut.model_validate(r) for r in rows], cursor


@api_endpoint(
    bp,
    "/channels/<int:channel_id>/spend",
    "POST",
    summary="Record a day's spend on a channel",
    scope=roles.CHANNELS_MANAGE,
    tag="channels",
    request_model=SpendIn,
    response_model=SpendOut,
    status=201,
    errors=(404,),
)
def create_spend(channel_id: int, body: SpendIn) -> SpendOut:
    channel = api_get_or_404(Channel, channel_id, NO_CHANNEL)
    if body.day is None:
        raise ApiError(422, "invalid", _("day is required."))
    try:
        row = channel_service.add_spend(
            SpendEntry(channel.id, body.day, body.amount, body.currency, body.category, body.note)
        )
    except ChannelError as error:
        raise _refused(error) from error
    return SpendOut.model_validate(row)

"""The public webhook endpoint `/hooks/<public_id>`: no login, no CSRF; the channel names the tenant."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from integrations.adapters import adapter_for
from integrations.models import Channel
from integrations.receiving import HARD_LIMIT_BYTES, receive
from saas.errors import ApiError
from saas.extensions import csrf, db
from tenants.context import bind_request_tenant
from tenants.models import Tenant
from tenants.scoping import tenant_unscoped

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)


def find_channel(public_id: str) -> Channel | None:
    """Find the channel a webhook URL names, in whichever tenant it is (the one cross-tenant lookup here)."""
    if not 8 <= len(public_id) <= 40:
        return None
    with tenant_unscoped():  # the public id is all we know; the row tells us the tenant, bound next
        return db.session.scalar(select(Channel).where(Channel.public_id == public_id).limit(1))


@bp.route("/<public_id>", methods=["POST"])
def receive_delivery(public_id: str) -> ResponseReturnValue:
    channel = find_channel(public_id)
    if channel is None or not adapter_for(channel.kind).takes_webhooks:
        raise ApiError(404, "not_found", "no channel has this webhook URL")
    tenant = db.session.get(Tenant, channel.tenant_id)
    if tenant is None:
        raise ApiError(404, "not_found", "no channel has this webhook URL")
    bind_request_tenant(tenant)
    if not channel.is_active:
        raise ApiError(503, "channel_paused", "this channel is paused; deliver again later")
    if (request.content_length or 0) > HARD_LIMIT_BYTES:
        raise ApiError(413, "payload_too_large", f"bodies are at most {HARD_LIMIT_BYTES} bytes")
    body = request.stream.read(HARD_LIMIT_BYTES + 1)
    receipt = receive(
        channel, dict(request.headers.items()), body, request.content_type or "", request.content_length
    )
    return jsonify(receipt.body), receipt.status

"""The public webhook endpoint `/hooks/<public_id>`: no login, no CSRF; the channel names the tenant."""

from __future__ import annotations

import threading

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from integrations.adapters import adapter_for
from integrations.models import Channel
from integrations.receiving import HARD_LIMIT_BYTES, receive
from saas.errors import ApiError
from saas.extensions import csrf, db
from saas.security import is_rejection, limiter, webhook_rejection_rate
from tenants.context import bind_request_tenant
from tenants.models import Tenant
from tenants.scoping import tenant_unscoped

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)

# public id -> (tenant id, channel id). Public ids never change or move, so the mapping is safe to keep;
# the channel row itself (status, secrets) is read fresh, inside its tenant, on every delivery.
_owners: dict[str, tuple[int, int]] = {}
_owners_lock = threading.Lock()
_OWNERS_LIMIT = 100_000


def channel_owner(public_id: str) -> tuple[int, int] | None:
    """Return (tenant id, channel id) of the channel a webhook URL names, in whichever tenant it is."""
    if not 8 <= len(public_id) <= 40:
        return None
    with _owners_lock:
        known = _owners.get(public_id)
    if known is not None:
        return known
    with tenant_unscoped():  # the public id is all we know; the row tells us the tenant, bound next
        row = db.session.execute(
            select(Channel.tenant_id, Channel.id).where(Channel.public_id == public_id).limit(1)
        ).first()
    if row is None:
        return None
    with _owners_lock:
        if len(_owners) > _OWNERS_LIMIT:
            _owners.clear()
        _owners[public_id] = (row.tenant_id, row.id)
    return row.tenant_id, row.id


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no channel has this webhook URL")


def _channel_in_url() -> str:
    """Key the webhook rate limit by the channel the URL names (deliveries come from few addresses)."""
    return "hooks:" + str((request.view_args or {}).get("public_id", ""))[:40]


@bp.route("/<public_id>", methods=["POST"])
@limiter.limit(webhook_rejection_rate, key_func=_channel_in_url, deduct_when=is_rejection)
def receive_delivery(public_id: str) -> ResponseReturnValue:
    owner = channel_owner(public_id)
    if owner is None:
        raise _not_found()
    tenant = db.session.get(Tenant, owner[0])
    if tenant is None:
        raise _not_found()
    bind_request_tenant(tenant)
    channel = db.session.get(Channel, owner)
    if channel is None or channel.public_id != public_id or not adapter_for(channel.kind).takes_webhooks:
        raise _not_found()
    if not channel.is_active:
        raise ApiError(503, "channel_paused", "this channel is paused; deliver again later")
    if (request.content_length or 0) > HARD_LIMIT_BYTES:
        raise ApiError(413, "payload_too_large", f"bodies are at most {HARD_LIMIT_BYTES} bytes")
    # With a length, read exactly that many bytes (a read past it would wait on a keep-alive connection).
    if request.content_length is not None:
        body = request.get_data(cache=False)
    else:
        body = request.stream.read(HARD_LIMIT_BYTES + 1)
    receipt = receive(
        channel, dict(request.headers.items()), body, request.content_type or "", request.content_length
    )
    return jsonify(receipt.body), receipt.status

"""The public webhook endpoint `/hooks/<public_id>`: no login, no CSRF; the channel names the tenant.

This is the hot path of a flash sale, so it does only what acknowledging needs: find the channel (kept in
memory for a few seconds, see hook_targets), verify, store the raw delivery with one insert and commit, and
make sure a job will drain the tenant's inbox. Rejected deliveries count against the channel's rejection
limit; accepted ones are never refused for rate.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from integrations import hook_targets
from integrations.receiving import HARD_LIMIT_BYTES, Receipt, receive
from saas.extensions import csrf
from saas.security import RejectionLimit, limiter
from tenants.context import bind_request_tenant_id

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)
limiter.exempt(bp)  # rejections have their own limit below; genuine deliveries are never refused for rate

rejections = RejectionLimit("WEBHOOK_REJECTION_LIMIT", scope="hooks")


@bp.route("/<public_id>", methods=["POST"])
def receive_delivery(public_id: str) -> ResponseReturnValue:
    caller = public_id[:40]
    wait = rejections.retry_after(caller)
    if wait is not None:
        return _answer(
            Receipt(429, {"code": "rate_limited", "message": "too many rejected deliveries; slow down"}),
            retry_after=wait,
        )
    receipt = _receive(public_id)
    if receipt.status >= 400:
        rejections.count_rejection(caller)
    return _answer(receipt)


def _receive(public_id: str) -> Receipt:
    target = hook_targets.lookup(public_id)
    if target is None:
        return Receipt(404, {"code": "not_found", "message": "no channel has this webhook URL"})
    if not target.active:
        paused = "this channel is paused; deliver again later"
        return Receipt(503, {"code": "channel_paused", "message": paused})
    if (request.content_length or 0) > HARD_LIMIT_BYTES:
        return Receipt(
            413, {"code": "payload_too_large", "message": f"bodies are at most {HARD_LIMIT_BYTES} bytes"}
        )
    bind_request_tenant_id(target.tenant_id)
    # With a length, read exactly that many bytes (a read past it would wait on a keep-alive connection).
    if request.content_length is not None:
        body = request.get_data(cache=False)
    else:
        body = request.stream.read(HARD_LIMIT_BYTES + 1)
    return receive(
        target, dict(request.headers.items()), body, request.content_type or "", request.content_length
    )


def _answer(receipt: Receipt, retry_after: int | None = None) -> Response:
    response = jsonify(receipt.body)
    response.status_code = receipt.status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response

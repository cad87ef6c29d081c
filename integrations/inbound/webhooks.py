"""The public webhook endpoint `/hooks/<public_id>`: no login, no CSRF; the channel names the tenant.

This is the hot path of a flash sale, so it does only what acknowledging needs: find the channel (kept in
memory for a few seconds, see `targets`), verify, store the raw delivery in the inbox (`store`) and commit,
and make sure a job will drain the tenant's inbox. A bad signature changes nothing and is logged without
the body. Signed deliveries we cannot use (too large, wrong content type, malformed) are answered 4xx and
kept, status `invalid`, for someone to look at. Rejected deliveries count against the channel's rejection
limit; accepted ones are never refused for rate.

It is a small WSGI layer in front of Flask (`WebhookEndpoint`, installed by `init_app`), not a Flask view:
a delivery needs none of a page's machinery (session cookie, login, CSRF, per-route rate limits, HTML
security headers, matching against every route), and that machinery was most of a delivery's CPU
(bench/webhooks.py). Flask only builds the URL (`url_for("hooks.receive_delivery", public_id=…)`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.wsgi import get_input_stream

from integrations.adapters import adapter_for
from integrations.adapters.base import Envelope, InvalidDelivery, body_digest
from integrations.inbound import targets
from integrations.inbound.store import (
    HARD_LIMIT_BYTES,
    MAX_BODY_BYTES,
    inbox_row,
    last_delivery_due,
    request_inbox_drain,
    store_row,
    stored_headers,
)
from integrations.inbound.targets import HookTarget
from saas.extensions import is_postgres, write_intent
from saas.security import RejectionLimit
from saas.timeutil import utcnow
from tenants.scoping import bind_tenant, unbind_tenant

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
ENDPOINT = "hooks.receive_delivery"

rejections = RejectionLimit("WEBHOOK_REJECTION_LIMIT", scope="hooks")


@dataclass
class Receipt:
    """The answer to a delivery: HTTP status and JSON body, or the platform's own form of it (`raw`)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    raw: tuple[str, bytes] | None = None  # (content type, body) when the platform wants its own answer


NO_CHANNEL = Receipt(404, {"code": "not_found", "message": "no channel has this webhook URL"})


class WebhookEndpoint:
    """WSGI middleware: answers every request under /hooks/ itself and passes the rest to the app."""

    def __init__(self, app: Flask, inner: WSGIApplication) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return self.inner(environ, start_response)
        public_id = path[len(PREFIX) :]
        if not public_id or "/" in public_id:
            return _respond(start_response, NO_CHANNEL)
        if environ.get("REQUEST_METHOD") != "POST":
            not_posted = Receipt(405, {"code": "method_not_allowed", "message": "deliveries are POSTed"})
            return _respond(start_response, not_posted, [("Allow", "POST")])
        with self.app.app_context():
            return _respond(start_response, *_answer(environ, public_id))


def init_app(app: Flask) -> None:
    """Serve /hooks/ in front of Flask, and let Flask build its URLs."""
    app.add_url_rule("/hooks/<public_id>", endpoint=ENDPOINT, methods=["POST"], build_only=True)
    app.wsgi_app = WebhookEndpoint(app, app.wsgi_app)  # type: ignore[method-assign]


def _answer(environ: WSGIEnvironment, public_id: str) -> tuple[Receipt, list[tuple[str, str]]]:
    caller = public_id[:40]
    wait = rejections.retry_after(caller)
    if wait is not None:
        message = "too many rejected deliveries; slow down"
        return Receipt(429, {"code": "rate_limited", "message": message}), [("Retry-After", str(wait))]
    try:
        receipt = _receive(environ, public_id)
    except Exception:  # our failure, not the sender's: not counted; it retries, nothing was acknowledged
        log.exception("the webhook endpoint failed on a delivery for %s", caller)
        return Receipt(500, {"code": "internal_error", "message": "we could not take this delivery"}), []
    if receipt.status >= 400:
        rejections.count_rejection(caller)
    return receipt, []


def _receive(environ: WSGIEnvironment, public_id: str) -> Receipt:
    target = targets.lookup(public_id)
    if target is None:
        return NO_CHANNEL
    if not target.active:
        paused = "this channel is paused; deliver again later"
        return Receipt(503, {"code": "channel_paused", "message": paused})
    declared = _content_length(environ)
    if (declared or 0) > HARD_LIMIT_BYTES:
        return Receipt(
            413, {"code": "payload_too_large", "message": f"bodies are at most {HARD_LIMIT_BYTES} bytes"}
        )
    # With a length, read exactly that many bytes (a read past it would wait on a keep-alive connection).
    stream = get_input_stream(environ, safe_fallback=True)
    body = stream.read() if declared is not None else stream.read(HARD_LIMIT_BYTES + 1)
    content_type = environ.get("CONTENT_TYPE", "")
    # SQLite takes its write lock up front, like every writing request; PostgreSQL has nothing to take.
    writing: AbstractContextManager[None] = nullcontext() if is_postgres() else write_intent()
    token = bind_tenant(target.tenant_id)
    try:
        with writing:
            return receive(target, request_headers(environ), body, content_type, declared)
    finally:
        unbind_tenant(token)


def receive(
    channel: HookTarget,
    raw_headers: Mapping[str, str],
    body: bytes,
    content_type: str,
    declared_length: int | None,
) -> Receipt:
    """Verify, store and acknowledge one delivery for `channel` (its tenant is bound), answered in the
    platform's own form where it has one (Alipay reads the word `success`)."""
    receipt = _verify_and_store(channel, raw_headers, body, content_type, declared_length)
    answer = adapter_for(channel.kind).reply(receipt.status, receipt.body)
    if answer is None:
        return receipt
    status, answer_type, answer_body = answer
    return Receipt(status, receipt.body, (answer_type, answer_body))


def _verify_and_store(
    channel: HookTarget,
    raw_headers: Mapping[str, str],
    body: bytes,
    content_type: str,
    declared_length: int | None,
) -> Receipt:
    adapter = adapter_for(channel.kind)
    headers = stored_headers(raw_headers)
    if adapter.is_unsigned_ping(headers, body):
        return Receipt(200, {"ok": True, "ping": True})
    now = utcnow()
    secrets = channel.secrets_at(now)
    if not adapter.verify(headers, body, secrets, now.timestamp()):
        log.warning(
            "rejected a delivery with a bad signature: channel %s, %d bytes, signature header %s",
            channel.public_id,
            len(body),
            "present" if adapter.signature_header.lower() in headers else "missing",
        )
        return Receipt(401, {"code": "bad_signature", "message": "the signature does not match this channel"})
    too_large = len(body) > MAX_BODY_BYTES or (declared_length or 0) > MAX_BODY_BYTES
    if too_large:
        delivery_id = _keep_invalid(
            channel,
            headers,
            body,
            content_type,
            f"body of {len(body)} bytes exceeds the limit of {MAX_BODY_BYTES}",
        )
        return Receipt(
            413,
            {
                "code": "payload_too_large",
                "message": f"bodies are at most {MAX_BODY_BYTES} bytes",
                "kept": str(delivery_id),
            },
        )
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in adapter.content_types:
        delivery_id = _keep_invalid(
            channel, headers, body, content_type, f"content type {media_type or 'none'}"
        )
        return Receipt(
            415,
            {
                "code": "unsupported_media_type",
                "message": f"send {' or '.join(adapter.content_types)}",
                "kept": str(delivery_id),
            },
        )
    try:
        envelope = adapter.describe_with(headers, body, secrets)
    except InvalidDelivery as error:
        delivery_id = _keep_invalid(channel, headers, body, content_type, str(error))
        return Receipt(
            error.status, {"code": "invalid_delivery", "message": str(error), "kept": str(delivery_id)}
        )
    delivery_id, new = _store(channel, inbox_row(channel, envelope, headers, body, content_type))
    # A copy asks for a drain too: counting it locks the row until its commit, and a drain running meanwhile
    # skips locked rows (SKIP LOCKED), so the copy's own request is what makes sure the first gets processed.
    request_inbox_drain(channel.tenant_id)
    return Receipt(200, {"received": str(delivery_id), "duplicate": not new})


def _store(target: HookTarget, values: dict[str, Any]) -> tuple[int | None, bool]:
    """Store an inbox row for the endpoint; remember when the channel's last delivery time was written."""
    due = last_delivery_due(target.last_delivery_at, values["received_at"])
    stored = store_row(target, values)
    if due:  # written with the delivery: not again from this process for a while
        targets.remember_delivery(target, values["received_at"])
    return stored


def _keep_invalid(
    channel: HookTarget, headers: dict[str, str], body: bytes, content_type: str, why: str, topic: str = ""
) -> int | None:
    envelope = Envelope(topic or "invalid", f"invalid:{body_digest(body)}")
    delivery_id, _new = _store(
        channel, inbox_row(channel, envelope, headers, body, content_type, status="invalid", note=why)
    )
    return delivery_id


def request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """Return the request's headers with lower-case names, as the inbox stores them."""
    headers = {
        name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name[:5] == "HTTP_"
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


def _content_length(environ: WSGIEnvironment) -> int | None:
    try:
        return max(0, int(environ["CONTENT_LENGTH"]))
    except (KeyError, ValueError):
        return None


_HEADERS = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]


def _respond(
    start_response: StartResponse, receipt: Receipt, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    if receipt.raw is not None:  # the platform's own answer (Alipay's "success", WeChat Pay's 204)
        content_type, body = receipt.raw
        found = [("Content-Type", content_type)] if content_type else []
        headers = [*found, ("X-Content-Type-Options", "nosniff"), ("Content-Length", str(len(body)))]
    else:
        body = json.dumps(receipt.body).encode()
        headers = [*_HEADERS, ("Content-Length", str(len(body)))]
    headers.extend(extra or [])
    start_response(f"{receipt.status} {HTTPStatus(receipt.status).phrase}", headers)
    return [body]

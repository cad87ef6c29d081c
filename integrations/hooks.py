"""The public webhook endpoint `/hooks/<public_id>`: no login, no CSRF; the channel names the tenant.

This is the hot path of a flash sale, so it does only what acknowledging needs: find the channel (kept in
memory for a few seconds, see hook_targets), verify, store the raw delivery with one insert and commit, and
make sure a job will drain the tenant's inbox. Rejected deliveries count against the channel's rejection
limit; accepted ones are never refused for rate.

It is a small WSGI layer in front of Flask (`WebhookEndpoint`, installed by `init_app`), not a Flask view:
a delivery needs none of a page's machinery (session cookie, login, CSRF, per-route rate limits, HTML
security headers, matching against every route), and that machinery was most of a delivery's CPU
(bench/webhooks.py). Flask only builds the URL (`url_for("hooks.receive_delivery", public_id=…)`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from http import HTTPStatus
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.wsgi import get_input_stream

from integrations import hook_targets
from integrations.receiving import HARD_LIMIT_BYTES, Receipt, postgres_dsn, receive
from saas.extensions import write_intent
from saas.security import RejectionLimit
from tenants.scoping import bind_tenant, unbind_tenant

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
ENDPOINT = "hooks.receive_delivery"

rejections = RejectionLimit("WEBHOOK_REJECTION_LIMIT", scope="hooks")
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
    target = hook_targets.lookup(public_id)
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
    writing: AbstractContextManager[None] = nullcontext() if postgres_dsn() is not None else write_intent()
    token = bind_tenant(target.tenant_id)
    try:
        with writing:
            return receive(target, request_headers(environ), body, content_type, declared)
    finally:
        unbind_tenant(token)


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

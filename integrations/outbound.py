"""Outbound webhooks: tenants' endpoints receive signed events, retried on a schedule, logged per attempt.

Signature: `Quanyi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` under the endpoint's
secret (the same scheme our inbound webhook accepts; docs/webhooks.md). Retries after 30 s, 2 min, 10 min,
1 h and 6 h (`next_attempt_at`; the periodic sweep sends due ones). An endpoint that fails
`DISABLE_AFTER_FAILURES` attempts in a row is disabled and its tenant's owners are mailed.

`emit(event_type, payload, key=…)` is the one entry point. Inner packages trigger it without importing
this package by publishing the event (`saas.events.publish`); `integrations.receivers` subscribes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import keyring
from integrations import secretbox, signing, ssrf
from integrations.models import OutboundAttempt, OutboundDelivery, WebhookEndpoint
from saas import jobs
from saas.auth.models import User
from saas.extensions import db
from saas.ids import new_id
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Membership, Tenant
from tenants.outbox import queue_mail
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "order.fulfilled",
    "order.refunded",
    "order.cancelled",
    "grant.delivered",
    "grant.redeemed",
    "stock.low",
    "subscription.renewed",
    "subscription.canceled",
    "risk.flagged",
    "webhook.test",
)
RETRY_SCHEDULE = (30, 120, 600, 3600, 6 * 3600)
DISABLE_AFTER_FAILURES = 15
TIMEOUT_SECONDS = 10
LEASE = dt.timedelta(minutes=2)
SIGNATURE_HEADER = "Quanyi-Signature"


class EndpointError(ValueError):
    """A user-facing refusal of an endpoint action."""


# ---------------------------------------------------------------- endpoints


def _allow_private_urls() -> bool:
    return bool(current_app.config.get("OUTBOUND_WEBHOOKS_ALLOW_PRIVATE", False))


def _refusal(error: ssrf.UnsafeTarget) -> str:
    """Say in the user's words why a URL cannot receive webhooks."""
    if error.reason == "credentials":
        return _("Leave user names and passwords out of the URL; every delivery is signed instead.")
    if error.reason == "unresolvable":
        return _("The host %(h)s does not resolve.", h=error.host)
    if error.reason == "not_public":
        return _("The host %(h)s is not on the public internet.", h=error.host)
    return _("Give an http:// or https:// URL.")


def check_url(url: str) -> str:
    """Accept an http(s) URL without credentials to a public address (no SSRF into our network)."""
    url = url.strip()
    if len(url) > 2000:
        raise EndpointError(_("Give an http:// or https:// URL."))
    try:
        ssrf.check_target(url, allow_private=_allow_private_urls())
    except ssrf.UnsafeTarget as error:
        raise EndpointError(_refusal(error)) from error
    if current_app.config["ENV_NAME"] == "production" and not url.lower().startswith("https://"):
        raise EndpointError(_("Endpoints must use https."))
    return url


def _check_event_types(event_types: list[str]) -> list[str]:
    chosen = sorted(set(event_types))
    if not chosen:
        raise EndpointError(_("Choose at least one event."))
    unknown = [e for e in chosen if e != "*" and e not in EVENT_TYPES]
    if unknown:
        raise EndpointError(_("Unknown events: %(e)s.", e=", ".join(unknown)))
    return chosen


def create_endpoint(url: str, event_types: list[str], description: str = "") -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; return it and its signing secret (shown once, revealable later)."""
    keyring.ensure_tenant_keys()
    endpoint = WebhookEndpoint(
        url=check_url(url), event_types=_check_event_types(event_types), description=description.strip()[:200]
    )
    secret = secretbox.new_secret("qsec_")
    endpoint.secret_ciphertext = secretbox.seal("endpoint", endpoint.id, secret)
    endpoint.secret_hint = secretbox.hint(secret)
    db.session.add(endpoint)
    audit.record(
        "webhook_endpoint.created",
        "webhook_endpoint",
        endpoint.id,
        url=endpoint.url,
        events=endpoint.event_types,
    )
    db.session.commit()
    return endpoint, secret


def endpoint_secret(endpoint: WebhookEndpoint) -> bytes:
    """Return an endpoint's signing secret."""
    return secretbox.open_sealed(endpoint.tenant_id, "endpoint", endpoint.id, endpoint.secret_ciphertext)


def reveal_endpoint_secret(endpoint: WebhookEndpoint) -> str:
    """Return an endpoint's secret in full (audited)."""
    audit.record("webhook_endpoint.secret_revealed", "webhook_endpoint", endpoint.id)
    db.session.commit()
    return endpoint_secret(endpoint).decode()


def set_endpoint_status(endpoint: WebhookEndpoint, active: bool, reason: str = "") -> None:
    """Enable (resetting the failure count) or disable an endpoint by hand."""
    endpoint.status = "active" if active else "disabled"
    endpoint.consecutive_failures = 0 if active else endpoint.consecutive_failures
    endpoint.disabled_at = None if active else utcnow()
    endpoint.disabled_reason = None if active else (reason or _("disabled by hand"))
    audit.record(
        "webhook_endpoint.enabled" if active else "webhook_endpoint.disabled",
        "webhook_endpoint",
        endpoint.id,
        reason=reason or None,
    )
    db.session.commit()


def list_endpoints() -> list[WebhookEndpoint]:
    """Return the bound tenant's endpoints."""
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def deliveries_of(endpoint_id: int, limit: int = 100) -> list[OutboundDelivery]:
    """Return an endpoint's latest deliveries."""
    return list(
        db.session.scalars(
            select(OutboundDelivery)
            .where(OutboundDelivery.endpoint_id == endpoint_id)
            .order_by(OutboundDelivery.id.desc())
            .limit(limit)
        )
    )


def attempts_of(delivery_ids: list[int]) -> dict[int, list[OutboundAttempt]]:
    """Return the attempts of some deliveries, oldest first."""
    found: dict[int, list[OutboundAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for attempt in db.session.scalars(
            select(OutboundAttempt)
            .where(OutboundAttempt.delivery_id.in_(delivery_ids))
            .order_by(OutboundAttempt.at)
        ):
            found[attempt.delivery_id].append(attempt)
    return found


# ---------------------------------------------------------------- emitting


_ENDPOINTS_CACHE = "quanyi_active_endpoints"


def _active_endpoints() -> list[WebhookEndpoint]:
    """The bound tenant's active endpoints, read once per transaction (a batch announces many events)."""
    cache: dict[int, list[WebhookEndpoint]] = db.session.info.setdefault(_ENDPOINTS_CACHE, {})
    tenant_id = current_tenant_id()
    if tenant_id not in cache:
        cache[tenant_id] = list(
            db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.status == "active"))
        )
    return cache[tenant_id]


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_endpoints(session: Session) -> None:
    session.info.pop(_ENDPOINTS_CACHE, None)


def _subscribed(event_type: str) -> list[WebhookEndpoint]:
    return [
        endpoint
        for endpoint in _active_endpoints()
        if "*" in endpoint.event_types or event_type in endpoint.event_types
    ]


def emit(event_type: str, payload: dict[str, Any], *, key: str | None = None) -> list[int]:
    """Queue `event_type` with `payload` for every active endpoint of the bound tenant that wants it.

    Call after your own commit: this commits the delivery rows, then starts their jobs. With `key`, an
    event about the same thing reaches an endpoint once however often it is emitted. Returns the new
    delivery ids.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    endpoints = _subscribed(event_type)
    if not endpoints:
        return []  # nothing to write: no commit, no round trip (fulfilment announces every order)
    created = []
    for endpoint in endpoints:
        delivery = OutboundDelivery(
            endpoint_id=endpoint.id,
            event_id=f"evt_{new_id()}",
            event_type=event_type,
            event_key=key,
            payload=payload,
            status="pending",
            next_attempt_at=utcnow(),
        )
        try:
            with db.session.begin_nested():
                db.session.add(delivery)
        except IntegrityError:
            continue  # this endpoint has this event already
        created.append(delivery.id)
    db.session.commit()
    for delivery_id in created:
        enqueue_send(delivery_id)
    return created


def enqueue_send(delivery_id: int) -> None:
    """Start the job that sends a delivery; if that fails, the periodic sweep sends it."""
    try:
        jobs.enqueue(
            "integrations.tasks.send_outbound",
            current_tenant_id(),
            delivery_id,
            queue="integrations",
            timeout=60,
        )
    except Exception:
        log.exception("could not enqueue outbound delivery %s; the sweep will send it", delivery_id)


# ---------------------------------------------------------------- sending


def event_body(delivery: OutboundDelivery) -> bytes:
    """Return the JSON body of a delivery (the same bytes on every attempt)."""
    document = {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _claim(delivery_id: int, now: dt.datetime, manual: bool) -> bool:
    statuses = ("pending", "retrying", "failed") if manual else ("pending", "retrying")
    claimed = db.session.execute(
        update(OutboundDelivery)
        .where(
            OutboundDelivery.id == delivery_id,
            OutboundDelivery.status.in_(statuses),
            (OutboundDelivery.lease_until.is_(None)) | (OutboundDelivery.lease_until < now),
        )
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    db.session.commit()
    return bool(claimed)


def post(
    url: str, body: bytes, headers: dict[str, str], *, allow_private: bool = False
) -> tuple[int | None, str | None]:
    """POST a body; return (status code or None, error text or None). Redirects count as failure.

    Unless private targets are allowed, the connection goes straight to the endpoint (no proxy from the
    environment) and is refused when its peer address is not public.
    """

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[Any] = [NoRedirect]
    if not allow_private:
        handlers += [urllib.request.ProxyHandler({}), ssrf.PublicOnlyHTTPHandler, ssrf.PublicOnlyHTTPSHandler]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            response.read(1024)
            return int(response.status), None
    except urllib.error.HTTPError as error:
        return int(error.code), f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))[:500]


def send(delivery_id: int, *, manual: bool = False) -> str:
    """Send one delivery now (if due and not taken); record the attempt; schedule a retry or give up."""
    now = utcnow()
    if not _claim(delivery_id, now, manual):
        return "skipped"
    delivery = db.session.get(OutboundDelivery, (current_tenant_id(), delivery_id), populate_existing=True)
    assert delivery is not None
    endpoint = db.session.get(
        WebhookEndpoint, (delivery.tenant_id, delivery.endpoint_id), populate_existing=True
    )
    assert endpoint is not None
    if not endpoint.is_active and not manual:
        delivery.status, delivery.lease_until = "failed", None
        delivery.last_error = _("the endpoint is disabled")
        db.session.commit()
        return delivery.status
    body = event_body(delivery)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Quanyi-Webhooks/1.0",
        "Quanyi-Event": delivery.event_type,
        "Quanyi-Delivery": delivery.event_id,
        SIGNATURE_HEADER: signing.sign_timestamped(endpoint_secret(endpoint), body, timestamp),
    }
    url = endpoint.url
    db.session.commit()  # no transaction stays open across the network call
    allow_private = _allow_private_urls()
    try:
        ssrf.check_target(url, allow_private=allow_private)  # again: the name may resolve elsewhere now
    except ssrf.UnsafeTarget as refused:
        log.warning("refused to send delivery %s: %s", delivery_id, refused)
        return _record(delivery_id, None, _refusal(refused), 0, manual)
    started = time.monotonic()
    status_code, error = post(url, body, headers, allow_private=allow_private)
    duration_ms = int((time.monotonic() - started) * 1000)
    return _record(delivery_id, status_code, error, duration_ms, manual)


def _record(
    delivery_id: int, status_code: int | None, error: str | None, duration_ms: int, manual: bool
) -> str:
    now = utcnow()
    delivery = db.session.get(OutboundDelivery, (current_tenant_id(), delivery_id), populate_existing=True)
    assert delivery is not None
    endpoint = db.session.get(
        WebhookEndpoint, (delivery.tenant_id, delivery.endpoint_id), populate_existing=True
    )
    assert endpoint is not None
    ok = status_code is not None and 200 <= status_code < 300
    db.session.add(
        OutboundAttempt(
            delivery_id=delivery.id,
            at=now,
            status_code=status_code,
            duration_ms=duration_ms,
            error=None if ok else (error or f"HTTP {status_code}"),
            manual=manual,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_duration_ms = status_code, duration_ms
    delivery.lease_until = None
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at, delivery.last_error = (
            "succeeded",
            now,
            None,
            None,
        )
        endpoint.consecutive_failures, endpoint.last_success_at = 0, now
        db.session.commit()
        return delivery.status
    delivery.last_error = error or f"HTTP {status_code}"
    if delivery.attempts <= len(RETRY_SCHEDULE):
        delivery.status = "retrying"
        delivery.next_attempt_at = now + dt.timedelta(seconds=RETRY_SCHEDULE[delivery.attempts - 1])
    else:
        delivery.status, delivery.next_attempt_at = "failed", None
    endpoint.consecutive_failures += 1
    disabled = endpoint.is_active and endpoint.consecutive_failures >= DISABLE_AFTER_FAILURES
    if disabled:
        endpoint.status, endpoint.disabled_at = "disabled", now
        endpoint.disabled_reason = _("%(n)s failed attempts in a row", n=endpoint.consecutive_failures)
        audit.record(
            "webhook_endpoint.disabled",
            "webhook_endpoint",
            endpoint.id,
            reason=endpoint.disabled_reason,
            actor="system: outbound webhooks",
        )
    url, status = endpoint.url, delivery.status
    db.session.commit()
    if disabled:
        _mail_owners(url)
    return status


def _mail_owners(url: str) -> None:
    tenant = db.session.get(Tenant, current_tenant_id())
    owners = list(
        db.session.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == current_tenant_id(), Membership.role == "owner")
        )
    )
    name = tenant.name if tenant else ""
    queue_mail(
        owners,
        _("Webhook endpoint disabled: %(url)s", url=url[:120]),
        _(
            "Quanyi stopped sending events to %(url)s for %(shop)s after %(n)s failed attempts in a row.\n\n"
            "Fix the endpoint, then enable it again on the Webhooks page; failed deliveries can be "
            "redelivered "
            "from there.",
            url=url,
            shop=name,
            n=DISABLE_AFTER_FAILURES,
        ),
        kind="endpoint_disabled",
    )


def redeliver(delivery: OutboundDelivery) -> None:
    """Send a delivery again now, by hand (audited), whatever its state."""
    delivery.status, delivery.next_attempt_at, delivery.lease_until = "pending", utcnow(), None
    delivery_id = delivery.id
    audit.record("webhook_delivery.redelivered", "webhook_delivery", delivery_id)
    db.session.commit()
    try:
        jobs.enqueue(
            "integrations.tasks.send_outbound",
            current_tenant_id(),
            delivery_id,
            True,
            queue="integrations",
            timeout=60,
        )
    except Exception:
        log.exception("could not enqueue redelivery %s; the sweep will send it", delivery_id)


def send_test(endpoint: WebhookEndpoint) -> str:
    """Send a `webhook.test` event to one endpoint now (even a disabled one) and return the outcome."""
    delivery = OutboundDelivery(
        endpoint_id=endpoint.id,
        event_id=f"evt_{new_id()}",
        event_type="webhook.test",
        payload={"message": "hello from Quanyi"},
        status="pending",
        next_attempt_at=utcnow(),
    )
    db.session.add(delivery)
    delivery_id = delivery.id
    db.session.commit()
    return send(delivery_id, manual=True)


def send_due(now: dt.datetime | None = None, limit: int = 200) -> int:
    """Send the bound tenant's deliveries whose next attempt is due; return how many were tried."""
    now = now or utcnow()
    ids = list(
        db.session.scalars(
            select(OutboundDelivery.id)
            .where(
                OutboundDelivery.status.in_(("pending", "retrying")), OutboundDelivery.next_attempt_at <= now
            )
            .order_by(OutboundDelivery.next_attempt_at)
            .limit(limit)
        )
    )
    db.session.commit()
    for delivery_id in ids:
        send(delivery_id)
    return len(ids)

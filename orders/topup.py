"""Direct top-up (直充): supplier adapters behind one interface, and the job that runs a grant's top-up once.

The request id sent to the supplier is the grant id, so a repeated call is recognised by the supplier; the
grant carries the top-up state machine (queued → requesting → succeeded, or retrying → failed / waiting)
and a conditional UPDATE lets only one worker call the supplier for a grant at a time. Failures end in a
visible list in the back office, with retry and refund actions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from catalog.models import Right
from orders.delivery import queue_delivery, send_delivery
from orders.events import OrderError, actor_label
from orders.fulfilment import deliver, order_grants, settle
from orders.models import Customer, Grant, Order
from saas import jobs
from saas.extensions import db, immediate_transaction, is_postgres
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Quanyi-Signature"
TIMESTAMP_HEADER = "X-Quanyi-Timestamp"
DEFAULT_RETRY_DELAYS = (2.0, 10.0, 30.0)
DEFAULT_POLL_DELAYS = (2.0, 5.0, 15.0)
ATTENTION_STATES = ("failed", "waiting", "requesting")


class TopupError(Exception):
    """A top-up call failed. `transient` failures (timeouts, 5xx) are retried; others are final."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class TopupResponse:
    """The supplier's answer: `succeeded`, `processing` or `failed`, with its reference and message."""

    state: str
    reference: str = ""
    message: str = ""


class TopupAdapter(Protocol):
    """What every supplier adapter does: request a top-up (idempotent per request id) and query it."""

    def request(
        self, request_id: str, account: str, product: str, face_value: int, currency: str
    ) -> TopupResponse:
        """Ask the supplier to top the account up; the same request id never tops up twice."""

    def status(self, request_id: str) -> TopupResponse:
        """Ask the supplier how a request ended."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of `timestamp.body` under the shared secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SignedHttpAdapter:
    """A supplier reached over HTTPS with a JSON body signed by HMAC-SHA256 (settings: url, secret)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.url = str(settings.get("url") or "")
        self.status_url = str(settings.get("status_url") or self.url.rstrip("/") + "/status")
        self.secret = str(settings.get("secret") or "")
        self.timeout = float(settings.get("timeout") or 10)
        if not self.url.startswith(("http://", "https://")) or not self.secret:
            raise TopupError(_("The right's top-up settings need a URL and a secret."), transient=False)

    def _post(self, url: str, payload: dict[str, Any]) -> TopupResponse:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode() or "{}")
        except urllib.error.HTTPError as error:
            raise TopupError(
                _("The supplier answered HTTP %(code)s.", code=error.code), transient=error.code >= 500
            ) from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise TopupError(
                _("The supplier is unreachable: %(error)s", error=error), transient=True
            ) from error
        except ValueError as error:
            raise TopupError(
                _("The supplier answered something that is not JSON."), transient=True
            ) from error
        state = {
            "success": "succeeded",
            "succeeded": "succeeded",
            "processing": "processing",
            "failed": "failed",
        }.get(str(answer.get("status", "")).lower())
        if state is None:
            raise TopupError(
                _("The supplier answered an unknown status %(status)r.", status=answer.get("status")),
                transient=True,
            )
        return TopupResponse(state, str(answer.get("reference") or ""), str(answer.get("message") or ""))

    def request(
        self, request_id: str, account: str, product: str, face_value: int, currency: str
    ) -> TopupResponse:
        return self._post(
            self.url,
            {
                "request_id": request_id,
                "account": account,
                "product": product,
                "face_value": face_value,
                "currency": currency,
            },
        )

    def status(self, request_id: str) -> TopupResponse:
        return self._post(self.status_url, {"request_id": request_id})


DEMO_FAILING_ACCOUNT = "13800000000"
# What the demo supplier answers, as a Chinese supplier would: in Chinese only (supplier text is data).
DEMO_FAILURE = "演示：充值账号 13800000000 不存在——这是演示数据中有意保留的失败示例，可重试或退款。"


class DemoSupplierAdapter:
    """The demo shop's supplier: answers at once, tops nothing up for real (no network, no settings).

    Every request succeeds, except for DEMO_FAILING_ACCOUNT: the one deliberate, labelled failure that shows
    the failed top-ups list with its retry and refund actions.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def request(
        self, request_id: str, account: str, product: str, face_value: int, currency: str
    ) -> TopupResponse:
        if account.endswith(DEMO_FAILING_ACCOUNT):  # +8613800000000 as stored
            return TopupResponse("failed", "", DEMO_FAILURE)
        return TopupResponse("succeeded", f"DEMO-{request_id}", "演示供应商：模拟充值成功 (demo supplier)")

    def status(self, request_id: str) -> TopupResponse:
        return TopupResponse("succeeded", f"DEMO-{request_id}", "")


ADAPTERS: dict[str, type[SignedHttpAdapter] | type[DemoSupplierAdapter]] = {
    "signed_http": SignedHttpAdapter,
    "demo": DemoSupplierAdapter,
}


def adapter_for(settings: dict[str, Any]) -> TopupAdapter:
    """Build the adapter a right's `topup_settings` names (default: signed HTTP)."""
    name = str(settings.get("adapter") or "signed_http")
    if name not in ADAPTERS:
        raise TopupError(_("Unknown top-up adapter %(name)r.", name=name), transient=False)
    return ADAPTERS[name](settings)


# ---------------------------------------------------------------- the job


def _claim(grant_id: int) -> bool:
    """Let exactly one worker call the supplier for this grant now."""
    with immediate_transaction(db.session()):
        claimed = db.session.execute(
            update(Grant)
            .where(
                Grant.id == grant_id,
                Grant.status == "processing",
                Grant.topup_state.in_(("queued", "retrying", "waiting")),
            )
            .values(topup_state="requesting", topup_attempts=Grant.topup_attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        db.session.commit()
    return bool(claimed)


def _delays(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(current_app.config.get(name, default))


def _call_supplier(grant: Grant, settings: dict[str, Any], right: Right | None) -> TopupResponse:
    """Request the top-up, retrying transient failures, then poll while the supplier is processing."""
    adapter = adapter_for(settings)
    product = str(settings.get("product") or (right.name if right else grant.right_name))
    face_value = right.face_value if right else 0
    currency = right.currency if right else "CNY"
    retry_delays = _delays("TOPUP_RETRY_DELAYS", DEFAULT_RETRY_DELAYS)
    for attempt in range(len(retry_delays) + 1):
        try:
            response = adapter.request(
                str(grant.id), grant.topup_account or "", product, face_value, currency
            )
            break
        except TopupError as error:
            if not error.transient or attempt == len(retry_delays):
                raise
            log.warning("top-up of grant %s failed (%s); retrying", grant.id, error)
            time.sleep(retry_delays[attempt])
    for delay in _delays("TOPUP_POLL_DELAYS", DEFAULT_POLL_DELAYS):
        if response.state != "processing":
            break
        time.sleep(delay)
        response = adapter.status(str(grant.id))
    return response


def run_topup(grant_id: int) -> str:
    """Job body (tenant bound): run one grant's top-up unless another worker has it or it is done."""
    if not _claim(grant_id):
        return "skipped"
    grant = db.session.get(Grant, (current_tenant_id(), grant_id), populate_existing=True)
    assert grant is not None
    right = db.session.get(Right, (grant.tenant_id, grant.right_id))
    settings = dict(right.topup_settings or {}) if right is not None else {}
    try:
        response = _call_supplier(grant, settings, right)
    except TopupError as error:
        response = TopupResponse("failed", "", str(error))
    return _record_result(grant_id, response)


def _record_result(grant_id: int, response: TopupResponse) -> str:
    """Write the supplier's answer on the grant (and the order), in one transaction; deliver on success."""
    now = utcnow()
    delivery_id = None
    with immediate_transaction(db.session()):
        grant = db.session.get(Grant, (current_tenant_id(), grant_id), populate_existing=True)
        assert grant is not None
        order = _lock_order(grant.order_id)
        grant = db.session.get(Grant, (current_tenant_id(), grant_id), populate_existing=True)
        assert grant is not None
        if grant.status != "processing":  # refunded while we were calling: keep what the refund decided
            grant.topup_state = f"late_{response.state}"[:16]
            audit.record(
                "topup.after_refund", "grant", grant.id, state=response.state, reference=response.reference
            )
            db.session.commit()
            return grant.topup_state
        grant.topup_reference = response.reference or grant.topup_reference
        grant.topup_error = response.message or None
        if response.state == "succeeded":
            grant.topup_state = "succeeded"
            deliver(grant, now, None)
            settle(order, order_grants(order.id), now, actor="system: top-up", reason="top-up confirmed")
            customer = (
                db.session.get(Customer, (order.tenant_id, order.customer_id)) if order.customer_id else None
            )
            delivery_id = queue_delivery(order, customer, 1, kind="delivery", actor="system: top-up")
            audit.record("topup.succeeded", "grant", grant.id, reference=response.reference)
        elif response.state == "processing":
            grant.topup_state = "waiting"
            audit.record("topup.waiting", "grant", grant.id, reference=response.reference)
        else:
            grant.topup_state, grant.status = "failed", "failed"
            audit.record("topup.failed", "grant", grant.id, error=response.message)
        db.session.commit()
        state = grant.topup_state or ""
    if delivery_id is not None:
        send_delivery(delivery_id)
    return state


def _lock_order(order_id: int) -> Order:
    statement = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if is_postgres():
        statement = statement.with_for_update()
    order = db.session.scalar(statement)
    assert order is not None
    return order


def retry_topup(grant: Grant, *, actor: str | None = None) -> None:
    """Put a failed or stuck top-up back in the queue (support or operator action)."""
    if grant.kind != "topup" or grant.topup_state not in ATTENTION_STATES:
        raise OrderError(_("Only failed or stuck top-ups can be retried."))
    grant_id, label = grant.id, actor_label(actor)
    with immediate_transaction(db.session()):
        db.session.execute(
            update(Grant)
            .where(
                Grant.id == grant_id,
                Grant.status.in_(("failed", "processing")),
                Grant.topup_state.in_(ATTENTION_STATES),
            )
            .values(status="processing", topup_state="retrying", topup_error=None)
            .execution_options(synchronize_session=False)
        )
        audit.record("topup.retried", "grant", grant_id, actor=label)
        db.session.commit()
    jobs.enqueue(
        "orders.tasks.run_topup", current_tenant_id(), grant_id, queue="fulfilment", retries=3, timeout=120
    )


def topups_needing_attention() -> list[Grant]:
    """Return top-ups that failed, wait on the supplier, or look stuck in a call."""
    return list(
        db.session.scalars(
            select(Grant)
            .where(
                Grant.kind == "topup",
                or_(Grant.status == "failed", Grant.topup_state.in_(("waiting", "requesting"))),
                Grant.status.in_(("failed", "processing")),
            )
            .order_by(Grant.created_at.desc())
            .limit(500)
        )
    )

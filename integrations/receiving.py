"""Receive a webhook delivery: verify it, store it raw in the inbox, acknowledge, and hand it to a job.

The inbox is in the database, so a delivery is safe once its row is committed: if Redis is down the
enqueue fails, is logged, and the periodic sweep processes the row later. A bad signature changes nothing
and is logged without the body. Signed deliveries we cannot use (too large, wrong content type,
malformed) are answered 4xx and kept, status `invalid`, for someone to look at.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from integrations import hook_inbox
from integrations.adapters import adapter_for
from integrations.adapters.base import Envelope, InvalidDelivery, body_digest
from integrations.hook_targets import HookTarget, remember_delivery
from integrations.models import Channel, InboxDelivery
from saas import jobs
from saas.extensions import db, is_postgres
from saas.ids import new_id
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # what we process
HARD_LIMIT_BYTES = 8 * 1024 * 1024  # what we read at all (to verify and keep an oversized signed body)
DRAIN_TIMEOUT = 600  # seconds; a drain stops taking new deliveries well before (integrations.tasks)
PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass
class Receipt:
    """The answer to a delivery: HTTP status and JSON body, or the platform's own form of it (`raw`)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    raw: tuple[str, bytes] | None = None  # (content type, body) when the platform wants its own answer


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers worth keeping, with lower-case names (no credentials or cookies)."""
    return {
        name.lower(): value[:1000] for name, value in headers.items() if name.lower() not in PRIVATE_HEADERS
    }


def _insert_ignoring_duplicates(values: dict[str, Any]) -> bool:
    """Insert an inbox row unless (tenant, channel, dedupe key) exists; tell whether it was inserted."""
    insert = pg_insert if is_postgres() else sqlite_insert
    statement = (  # values as parameters, not in the statement: it compiles once, not per delivery
        insert(InboxDelivery.__table__)
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel_id", "dedupe_key"])
        .returning(InboxDelivery.__table__.c.id)
    )
    return db.session.execute(statement, values).first() is not None


class InboxOwner(Protocol):
    """The channel a delivery is stored for: a Channel row, or the webhook endpoint's HookTarget."""

    @property
    def tenant_id(self) -> int: ...

    @property
    def id(self) -> int: ...

    @property
    def last_delivery_at(self) -> dt.datetime | None: ...


def _count_duplicate(channel_id: int, dedupe_key: str) -> None:
    db.session.execute(
        update(InboxDelivery)
        .where(InboxDelivery.channel_id == channel_id, InboxDelivery.dedupe_key == dedupe_key)
        .values(duplicates=InboxDelivery.duplicates + 1)
        .execution_options(synchronize_session=False)
    )


LAST_DELIVERY_RESOLUTION = dt.timedelta(minutes=1)


def last_delivery_due(last: dt.datetime | None, now: dt.datetime) -> bool:
    """Tell whether a channel's "last delivery" time is worth writing (not once per delivery on a hot row)."""
    return last is None or now - last > LAST_DELIVERY_RESOLUTION


def inbox_row(
    channel: InboxOwner,
    envelope: Envelope,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    *,
    status: str = "pending",
    note: str = "",
) -> dict[str, Any]:
    """Return the column values of a new inbox row for a delivery received now."""
    return {
        "tenant_id": channel.tenant_id,
        "id": new_id(),
        "channel_id": channel.id,
        "dedupe_key": envelope.dedupe_key,
        "topic": envelope.topic,
        "status": status,
        "headers": headers,
        "body": body,
        "content_type": content_type[:120],
        "api_version": envelope.api_version,
        "external_order_id": envelope.external_order_id,
        "note": note[:2000],
        "attempts": 0,
        "duplicates": 0,
        "received_at": utcnow(),
    }


def store(
    channel: InboxOwner,
    envelope: Envelope,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    *,
    status: str = "pending",
    note: str = "",
) -> tuple[int | None, bool]:
    """Store a delivery in the inbox through the session and commit; return (its id, whether it is new)."""
    return _store_row(
        channel, inbox_row(channel, envelope, headers, body, content_type, status=status, note=note)
    )


def _store_row(channel: InboxOwner, values: dict[str, Any]) -> tuple[int | None, bool]:
    """Insert an `inbox_row` through the session and commit; return (its id, whether it is new)."""
    inserted = _insert_ignoring_duplicates(values)
    if not inserted:
        _count_duplicate(channel.id, values["dedupe_key"])
    if last_delivery_due(channel.last_delivery_at, values["received_at"]):
        db.session.execute(
            update(Channel)
            .where(Channel.id == channel.id)
            .values(last_delivery_at=values["received_at"])
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    if inserted:
        return values["id"], True
    existing = db.session.scalar(
        select(InboxDelivery.id).where(
            InboxDelivery.channel_id == channel.id, InboxDelivery.dedupe_key == values["dedupe_key"]
        )
    )
    return existing, False


def enqueue_processing(tenant_id: int, delivery_id: int) -> bool:
    """Start the job that processes a stored delivery; a failure (Redis down) is logged, not raised."""
    try:
        jobs.enqueue(
            "integrations.tasks.process_delivery", tenant_id, delivery_id, queue="integrations", timeout=300
        )
    except Exception:
        log.exception(
            "could not enqueue inbox delivery %s of tenant %s; the periodic sweep will process it",
            delivery_id,
            tenant_id,
        )
        return False
    return True


def request_inbox_drain(tenant_id: int) -> bool:
    """Make sure a job will process the tenant's pending deliveries soon; a failure is logged, not raised.

    Requests coalesce: while one drain of the tenant's inbox waits in the queue, more deliveries add
    nothing (it will find them), so a flash sale costs one queue entry per drain, not one per delivery.
    """
    try:
        jobs.enqueue(
            "integrations.tasks.drain_inbox",
            tenant_id,
            queue="integrations",
            timeout=DRAIN_TIMEOUT,
            coalesce=f"drain-inbox:{tenant_id}",
        )
    except Exception:
        log.exception("could not start draining the inbox of tenant %s; the periodic sweep will", tenant_id)
        return False
    return True


def _keep_invalid(
    channel: HookTarget, headers: dict[str, str], body: bytes, content_type: str, why: str, topic: str = ""
) -> int | None:
    envelope = Envelope(topic or "invalid", f"invalid:{body_digest(body)}")
    row = inbox_row(channel, envelope, headers, body, content_type, status="invalid", note=why)
    delivery_id, _new = _store_for_hook(channel, row)
    return delivery_id


def _store_for_hook(target: HookTarget, values: dict[str, Any]) -> tuple[int | None, bool]:
    """Store an inbox row for the webhook endpoint: on PostgreSQL in one round trip (hook_inbox)."""
    received_at = values["received_at"]
    due = last_delivery_due(target.last_delivery_at, received_at)
    dsn = postgres_dsn()
    if dsn is not None:
        stored = hook_inbox.store(dsn, values, mark_channel=due)
        result = stored.id, stored.new
    else:
        result = _store_row(target, values)
    if due:  # written with the delivery: not again from this process for a while
        remember_delivery(target, received_at)
    return result


def postgres_dsn() -> str | None:
    """The app's PostgreSQL connection string for the driver itself (the app's role, so RLS applies).

    None when the app's database is SQLite. Worked out once per app: every delivery asks.
    """
    extensions = current_app.extensions
    if "quanyi.hook_dsn" not in extensions:
        url = db.engine.url
        extensions["quanyi.hook_dsn"] = (
            url.set(drivername="postgresql").render_as_string(hide_password=False) if is_postgres() else None
        )
    dsn: str | None = extensions["quanyi.hook_dsn"]
    return dsn


def receive(
    channel: HookTarget,
    raw_headers: Mapping[str, str],
    body: bytes,
    content_type: str,
    declared_length: int | None,
) -> Receipt:
    """Verify, store and acknowledge one delivery for `channel` (its tenant is bound), answered in the
    platform's own form where it has one (Alipay reads the word `success`)."""
    receipt = _receive(channel, raw_headers, body, content_type, declared_length)
    answer = adapter_for(channel.kind).reply(receipt.status, receipt.body)
    if answer is None:
        return receipt
    status, answer_type, answer_body = answer
    return Receipt(status, receipt.body, (answer_type, answer_body))


def _receive(
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
    delivery_id, new = _store_for_hook(channel, inbox_row(channel, envelope, headers, body, content_type))
    if new:
        request_inbox_drain(channel.tenant_id)
    return Receipt(200, {"received": str(delivery_id), "duplicate": not new})

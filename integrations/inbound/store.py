"""The inbox store: a received delivery becomes one row of `webhook_inbox`, committed, before it is answered.

One store for every way in: the webhook endpoint, the CSV upload and the demo. A delivery is stored unless
its (tenant, channel, dedupe key) is known, in which case the copy is counted on the stored row instead;
either way the caller learns the row's id and whether it is new. One statement per database, side by side
(as `orders.allocation` does): on PostgreSQL a single `INSERT … ON CONFLICT DO NOTHING` that also counts
the duplicate in the same round trip; on SQLite, which has no data-modifying CTE, the insert and then the
count, under the write lock every writing request takes (`saas.extensions.write_intent`). Both run through
the session, so the row is written as the app's role with the tenant bound (row-level security applies).

The inbox is in the database, so a delivery is safe once its row is committed: if Redis is down the
enqueue fails, is logged, and the periodic sweep processes the row later.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import bindparam, text

from integrations.adapters.base import Envelope
from integrations.models import InboxDelivery
from saas import jobs
from saas.extensions import UTCDateTime, db, is_postgres
from saas.ids import new_id
from saas.timeutil import utcnow
from tenants.scoping import current_tenant_id

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # what we process
HARD_LIMIT_BYTES = 8 * 1024 * 1024  # what we read at all (to verify and keep an oversized signed body)
DRAIN_TIMEOUT = 600  # seconds; a drain stops taking new deliveries well before (integrations.tasks)
PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
LAST_DELIVERY_RESOLUTION = dt.timedelta(minutes=1)

COLUMNS = (
    "tenant_id",
    "id",
    "channel_id",
    "dedupe_key",
    "topic",
    "status",
    "headers",
    "body",
    "content_type",
    "api_version",
    "external_order_id",
    "note",
    "attempts",
    "duplicates",
    "received_at",
)
_VALUES = ", ".join(f":{column}" for column in COLUMNS)
_SAME_KEY = "tenant_id = :tenant_id AND channel_id = :channel_id AND dedupe_key = :dedupe_key"

# Insert, or count a duplicate, in one round trip. The UPDATE cannot see a row inserted after the statement
# began: a copy racing its first copy returns no row, and is counted by _COUNT_DUPLICATE once that is in.
_STORE_POSTGRES = f"""
WITH inserted AS (
    INSERT INTO webhook_inbox ({", ".join(COLUMNS)}) VALUES ({_VALUES})
    ON CONFLICT (tenant_id, channel_id, dedupe_key) DO NOTHING
    RETURNING id
), counted AS (
    UPDATE webhook_inbox SET duplicates = duplicates + 1
    WHERE {_SAME_KEY} AND NOT EXISTS (SELECT 1 FROM inserted)
    RETURNING id
)
SELECT id, true AS new FROM inserted UNION ALL SELECT id, false AS new FROM counted
"""

# SQLite: the writer holds the write lock (BEGIN IMMEDIATE), so nothing can come between the two statements.
_STORE_SQLITE = f"""
INSERT INTO webhook_inbox ({", ".join(COLUMNS)}) VALUES ({_VALUES})
ON CONFLICT (tenant_id, channel_id, dedupe_key) DO NOTHING
RETURNING id, 1 AS new
"""

_COUNT_DUPLICATE = (
    f"UPDATE webhook_inbox SET duplicates = duplicates + 1 WHERE {_SAME_KEY} RETURNING id, 0 AS new"
)
_MARK_CHANNEL = "UPDATE channels SET last_delivery_at = :at WHERE tenant_id = :tenant_id AND id = :channel_id"


def _typed(sql: str) -> Any:
    """Return the statement with its parameters typed like the inbox's columns (JSON headers, UTC times)."""
    table = InboxDelivery.__table__
    return text(sql).bindparams(
        *(bindparam(name, type_=table.c[name].type) for name in COLUMNS if f":{name}" in sql)
    )


_STATEMENTS: dict[str, Any] = {}


def _statement(name: str) -> Any:
    """Compile-once statements: every delivery runs one of them."""
    if not _STATEMENTS:
        _STATEMENTS.update(
            postgres=_typed(_STORE_POSTGRES),
            sqlite=_typed(_STORE_SQLITE),
            duplicate=text(_COUNT_DUPLICATE),
            mark_channel=text(_MARK_CHANNEL).bindparams(bindparam("at", type_=UTCDateTime())),
        )
    return _STATEMENTS[name]


class InboxOwner(Protocol):
    """The channel a delivery is stored for: a Channel row, or the webhook endpoint's HookTarget."""

    @property
    def tenant_id(self) -> int: ...

    @property
    def id(self) -> int: ...

    @property
    def last_delivery_at(self) -> dt.datetime | None: ...


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers worth keeping, with lower-case names (no credentials or cookies)."""
    return {
        name.lower(): value[:1000] for name, value in headers.items() if name.lower() not in PRIVATE_HEADERS
    }


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
    """Store a delivery in the inbox of the bound tenant and commit; return (its id, whether it is new)."""
    return store_row(
        channel, inbox_row(channel, envelope, headers, body, content_type, status=status, note=note)
    )


def store_row(channel: InboxOwner, values: dict[str, Any]) -> tuple[int | None, bool]:
    """Store an `inbox_row` unless its dedupe key is known (then count the copy), commit; return (id, new).

    The channel's last delivery time is written with it when it is due (at most once a minute).
    """
    session = db.session
    values = {**values, "tenant_id": current_tenant_id()}  # raw tenant SQL binds the bound tenant (law 4)
    found = session.execute(_statement("postgres" if is_postgres() else "sqlite"), values).first()
    if found is None:  # a known key (SQLite), or a first copy committed while this statement ran
        found = session.execute(_statement("duplicate"), values).first()
    if last_delivery_due(channel.last_delivery_at, values["received_at"]):
        marked = {"at": values["received_at"], "tenant_id": values["tenant_id"], "channel_id": channel.id}
        session.execute(_statement("mark_channel"), marked)
    session.commit()
    if found is None:
        return None, False
    return int(found[0]), bool(found[1])


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

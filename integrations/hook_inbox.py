"""Store webhook deliveries on PostgreSQL at flash-sale speed: one round trip per delivery.

The webhook endpoint acknowledges only what is committed, so each delivery costs a transaction. Through the
ORM session that was a pool checkout with its ping, BEGIN, the RLS settings, the insert and COMMIT, each a
round trip, and most of a delivery's CPU (bench/webhooks.py). Here each server thread keeps one autocommit
connection of the app's own role (row-level security applies as everywhere) used for nothing else, so its
RLS setting can be session-wide and is only sent when the tenant changes; a delivery is then one statement,
its own durable transaction. There is no ping: a connection found dead (a failover) is replaced and the
delivery sent again, which is safe because the insert ignores a (tenant, channel, dedupe key) it already has.

SQLite (the embedded default) and the back office store through `integrations.receiving.store` instead.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg

log = logging.getLogger(__name__)

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
_RLS = "SELECT set_config('app.tenant_id', %s, false), set_config('app.unscoped', '', false)"
# Insert, or count a duplicate: one statement, so a delivery is one round trip with no branch in it.
# (The UPDATE cannot see a row inserted after the statement began: a copy racing its first copy is counted
# by a second statement, _COUNT_DUPLICATE.)
_STORE = (
    f"WITH inserted AS (INSERT INTO webhook_inbox ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('%s::json' if c == 'headers' else '%s' for c in COLUMNS)}) "
    "ON CONFLICT (tenant_id, channel_id, dedupe_key) DO NOTHING RETURNING id), "
    "counted AS (UPDATE webhook_inbox SET duplicates = duplicates + 1 "
    "WHERE tenant_id = %s AND channel_id = %s AND dedupe_key = %s "
    "AND NOT EXISTS (SELECT 1 FROM inserted) RETURNING id) "
    "SELECT id, true FROM inserted UNION ALL SELECT id, false FROM counted"
)
_COUNT_DUPLICATE = (
    "UPDATE webhook_inbox SET duplicates = duplicates + 1 "
    "WHERE tenant_id = %s AND channel_id = %s AND dedupe_key = %s RETURNING id"
)
_MARK_CHANNEL = "UPDATE channels SET last_delivery_at = %s WHERE tenant_id = %s AND id = %s"


@dataclass(frozen=True)
class Stored:
    """What became of a delivery: its inbox id, and whether it is new (not a duplicate)."""

    id: int | None
    new: bool


class _HookConnection:
    """One thread's connection, and the tenant its RLS setting names."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.cursor = self.conn.cursor()
        self.tenant_id: int | None = None

    def bind(self, tenant_id: int) -> None:
        if self.tenant_id != tenant_id:
            self.tenant_id = None  # unknown until the setting is confirmed
            self.cursor.execute(_RLS, (str(tenant_id),))
            self.tenant_id = tenant_id


_connections = threading.local()


def store(dsn: str, values: dict[str, Any], *, mark_channel: bool) -> Stored:
    """Insert an inbox row unless its dedupe key is known (then count the duplicate), committed; say which.

    `values` holds every column of COLUMNS; `mark_channel` also sets the channel's last delivery time.
    """
    try:
        return _store(_connection(dsn), values, mark_channel)
    except psycopg.OperationalError:
        log.warning("the webhook inbox connection failed; reconnecting once", exc_info=True)
        _drop_connection()
        return _store(_connection(dsn), values, mark_channel)


def _store(hook: _HookConnection, values: dict[str, Any], mark_channel: bool) -> Stored:
    tenant_id, channel_id = values["tenant_id"], values["channel_id"]
    hook.bind(tenant_id)
    key = (tenant_id, channel_id, values["dedupe_key"])
    row = hook.cursor.execute(_STORE, (*_row(values), *key), prepare=True).fetchone()
    if row is None:  # its first copy was being stored at the same moment: it is committed now
        row = (*(hook.cursor.execute(_COUNT_DUPLICATE, key).fetchone() or (None,)), False)
    if mark_channel:
        hook.cursor.execute(_MARK_CHANNEL, (values["received_at"], tenant_id, channel_id))
    return Stored(None if row[0] is None else int(row[0]), bool(row[1]))


def _row(values: dict[str, Any]) -> list[Any]:
    """Return a row's values in COLUMNS order, as the driver sends them."""
    return [json.dumps(values[c]) if c == "headers" else values[c] for c in COLUMNS]


def _connection(dsn: str) -> _HookConnection:
    known: _HookConnection | None = getattr(_connections, "current", None)
    if known is not None and known.dsn == dsn and not known.conn.closed:
        return known
    _drop_connection()
    _connections.current = _HookConnection(dsn)
    return _connections.current


def _drop_connection() -> None:
    known: _HookConnection | None = getattr(_connections, "current", None)
    _connections.current = None
    if known is not None:
        known.conn.close()

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

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq

log = logging.getLogger(__name__)
ENCODING = "utf-8"

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
# by a second statement, _COUNT_DUPLICATE.) Numbered parameters: it is prepared and run through libpq itself.
_N = len(COLUMNS)
_STORE = (
    f"WITH inserted AS (INSERT INTO webhook_inbox ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}::json' if c == 'headers' else f'${i}' for i, c in enumerate(COLUMNS, 1))}) "
    "ON CONFLICT (tenant_id, channel_id, dedupe_key) DO NOTHING RETURNING id), "
    "counted AS (UPDATE webhook_inbox SET duplicates = duplicates + 1 "
    f"WHERE tenant_id = ${_N + 1} AND channel_id = ${_N + 2} AND dedupe_key = ${_N + 3} "
    "AND NOT EXISTS (SELECT 1 FROM inserted) RETURNING id) "
    "SELECT id, true FROM inserted UNION ALL SELECT id, false FROM counted"
).encode()
_STORE_NAME = b"quanyi_hook_store"
# The body goes as bytes, the rest as text (the three dedupe key parameters too).
_STORE_FORMATS = [1 if c == "body" else 0 for c in COLUMNS] + [0] * 3
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
        # UTF-8 whatever the database's default: run_store encodes its text parameters itself.
        self.conn = psycopg.connect(dsn, autocommit=True, client_encoding=ENCODING)
        self.cursor = self.conn.cursor()
        self.tenant_id: int | None = None
        self.prepared = False

    def bind(self, tenant_id: int) -> None:
        if self.tenant_id != tenant_id:
            self.tenant_id = None  # unknown until the setting is confirmed
            self.cursor.execute(_RLS, (str(tenant_id),))
            self.tenant_id = tenant_id

    def run_store(self, params: list[bytes | None]) -> tuple[int, bool] | None:
        """Run _STORE, prepared once per connection, straight through libpq: (id, new) or None.

        The driver's cursor spent 0.05 ms or more of CPU per delivery adapting parameters and managing its
        prepared statements; this path has one statement with parameters already in PostgreSQL's text format.
        """
        pgconn = self.conn.pgconn
        if not self.prepared:
            _check(pgconn, pgconn.prepare(_STORE_NAME, _STORE))
            self.prepared = True
        result = pgconn.exec_prepared(_STORE_NAME, params, _STORE_FORMATS)  # type: ignore[arg-type]  # None: NULL
        _check(pgconn, result)
        if result.ntuples == 0:
            return None
        found = result.get_value(0, 0)
        assert found is not None  # an inbox id
        return int(found), result.get_value(0, 1) == b"t"


def _check(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> None:
    """Raise what the driver would for a failed libpq call (OperationalError when the connection is gone)."""
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    raise psycopg.errors.error_from_result(result, encoding=ENCODING)


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
    row = hook.run_store([*_row(values), *(str(k).encode(ENCODING) for k in key)])
    if row is None:  # its first copy was being stored at the same moment: it is committed now
        row = (*(hook.cursor.execute(_COUNT_DUPLICATE, key).fetchone() or (None,)), False)
    if mark_channel:
        hook.cursor.execute(_MARK_CHANNEL, (values["received_at"], tenant_id, channel_id))
    return Stored(None if row[0] is None else int(row[0]), bool(row[1]))


def _row(values: dict[str, Any]) -> list[bytes | None]:
    """Return a row's values in COLUMNS order, in PostgreSQL's text format (the body as bytes)."""
    return [_text(c, values[c]) for c in COLUMNS]


def _text(column: str, value: Any) -> bytes | None:
    if value is None or column == "body":
        return value
    if column == "headers":
        return json.dumps(value).encode(ENCODING)
    if isinstance(value, dt.datetime):
        return value.isoformat().encode(ENCODING)
    return str(value).encode(ENCODING)


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

# ruff: noqa: E501
"""The reference drain of bench/drain.py: plain psycopg, set-based, BATCH orders per transaction.

Arguments: url tenant_id channel_id right_id checkout plan_id bundle_id snapshot_json public_id batch.
Prints `span <start> <end>` (epoch seconds) when the inbox is empty.
"""

import datetime as dt
import json
import sys
import time

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, sys.argv[5])
from saas.ids import new_id

url, tenant_id, channel_id, right_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
plan_id, bundle_id, snapshot, public_id = (
    int(sys.argv[6]),
    int(sys.argv[7]),
    json.loads(sys.argv[8]),
    sys.argv[9],
)
BATCH = int(sys.argv[10])
done = 0
conn = psycopg.connect(url)
started = time.time()
while True:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id),))
        now = dt.datetime.now(dt.UTC)
        cur.execute(
            "WITH pick AS (SELECT tenant_id, id FROM webhook_inbox WHERE tenant_id = %s AND channel_id = %s "
            "AND status = 'pending' ORDER BY received_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE webhook_inbox w SET status = 'processing', attempts = w.attempts + 1 FROM pick "
            "WHERE w.tenant_id = pick.tenant_id AND w.id = pick.id RETURNING w.id, w.body",
            (tenant_id, channel_id, BATCH),
        )
        claimed = cur.fetchall()
        if not claimed:
            break
        items = []
        for delivery_id, body in claimed:
            payload = json.loads(bytes(body))
            items.append((delivery_id, payload, new_id(), new_id()))
        cur.executemany(
            "INSERT INTO customers (tenant_id, id, email, name, notes, created_at, updated_at) "
            "SELECT %s, c.id, c.email, c.name, '', %s, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
            "AS c(id, email, name)",
            [
                (
                    tenant_id,
                    now,
                    now,
                    [i[2] for i in items],
                    [i[1]["email"] for i in items],
                    ["Li Lei"] * len(items),
                )
            ],
        )
        cur.execute(
            "INSERT INTO customer_external_ids (tenant_id, id, customer_id, channel, external_id, created_at) "
            "SELECT %s, c.id, c.customer_id, %s, c.ext, %s FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) "
            "AS c(id, customer_id, ext)",
            (
                tenant_id,
                public_id,
                now,
                [new_id() for _ in items],
                [i[2] for i in items],
                [str(i[1]["customer"]["id"]) for i in items],
            ),
        )
        cur.execute(
            "INSERT INTO orders (tenant_id, id, channel, external_id, source, customer_id, status, currency, "
            "total, refunded_amount, note, created_by, created_at, placed_at, paid_at) "
            "SELECT %s, o.id, %s, o.ext, 'channel', o.customer_id, 'paid', 'CNY', 3990, 0, '', %s, %s, %s, %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS o(id, ext, customer_id)",
            (
                tenant_id,
                public_id,
                "channel bench",
                now,
                now,
                now,
                [i[3] for i in items],
                [str(i[1]["id"]) for i in items],
                [i[2] for i in items],
            ),
        )
        line_ids = [new_id() for _ in items]
        cur.execute(
            "INSERT INTO order_lines (tenant_id, id, order_id, position, plan_id, bundle_id, sku, title, "
            "quantity, unit_price, currency, total, refunded_amount, snapshot) "
            "SELECT %s, l.id, l.order_id, 0, %s, %s, %s, 'Bench', 1, 3990, 'CNY', 3990, 0, %s "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS l(id, order_id)",
            (
                tenant_id,
                plan_id,
                bundle_id,
                "BENCH-VIP-MONTH",
                Jsonb(snapshot),
                line_ids,
                [i[3] for i in items],
            ),
        )
        cur.execute(
            "WITH pick AS (SELECT id FROM card_keys WHERE tenant_id = %s AND right_id = %s "
            "AND status = 'available' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE card_keys k SET status = 'delivered', delivery_count = k.delivery_count + 1, "
            "delivered_at = %s FROM pick WHERE k.tenant_id = %s AND k.id = pick.id RETURNING k.id",
            (tenant_id, right_id, len(items), now, tenant_id),
        )
        keys = [row[0] for row in cur.fetchall()]
        statuses = ["delivered" if n < len(keys) else "backordered" for n in range(len(items))]
        cur.execute(
            "INSERT INTO grants (tenant_id, id, order_id, order_line_id, customer_id, unit_index, item_index, "
            "right_id, right_name, kind, status, card_key_id, unit_cost, mask, link_url, created_at, refunded_amount, "
            "topup_attempts, queued_at, delivered_at) "
            "SELECT %s, g.id, g.order_id, g.line_id, g.customer_id, 0, 0, %s, 'Bench', 'card_key', g.status, "
            "g.key_id, 1000, '****', '', now(), 0, 0, %s, CASE WHEN g.status = 'delivered' THEN %s::timestamptz END "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[]) "
            "AS g(id, order_id, line_id, customer_id, status, key_id)",
            (
                tenant_id,
                right_id,
                now,
                now,
                [new_id() for _ in items],
                [i[3] for i in items],
                line_ids,
                [i[2] for i in items],
                statuses,
                keys + [None] * (len(items) - len(keys)),
            ),
        )
        cur.execute(
            "UPDATE orders o SET status = s.status FROM unnest(%s::bigint[], %s::text[]) AS s(id, status) "
            "WHERE o.tenant_id = %s AND o.id = s.id",
            (
                [i[3] for i in items],
                ["fulfilled" if s == "delivered" else "backordered" for s in statuses],
                tenant_id,
            ),
        )
        delivered = [i for i, s in zip(items, statuses, strict=True) if s == "delivered"]
        cur.execute(
            "INSERT INTO deliveries (tenant_id, id, order_id, kind, method, recipient, status, grant_count, "
            "actor, note, attempts, last_error, created_at) "
            "SELECT %s, d.id, d.order_id, 'delivery', 'email', d.recipient, 'queued', 1, 'bench', '', 0, '', %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS d(id, order_id, recipient)",
            (
                tenant_id,
                now,
                [new_id() for _ in delivered],
                [i[3] for i in delivered],
                [i[1]["email"] for i in delivered],
            ),
        )
        events = []
        for item, status in zip(items, statuses, strict=True):
            final = "fulfilled" if status == "delivered" else "backordered"
            events += [(item[3], None, "pending"), (item[3], "pending", "paid"), (item[3], "paid", final)]
        cur.execute(
            "INSERT INTO order_events (tenant_id, id, order_id, from_status, to_status, actor, reason, at) "
            "SELECT %s, e.id, e.order_id, e.f, e.t, 'bench', '', %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS e(id, order_id, f, t)",
            (
                tenant_id,
                now,
                [new_id() for _ in events],
                [e[0] for e in events],
                [e[1] for e in events],
                [e[2] for e in events],
            ),
        )
        audits = [
            (item[3], action)
            for item in items
            for action in ("order.created", "order.paid", "order.fulfilled")
        ]
        cur.execute(
            "INSERT INTO audit_events (tenant_id, id, actor, action, object_type, object_id, details, created_at) "
            "SELECT %s, a.id, 'bench', a.action, 'order', a.object_id, '{}'::json, %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS a(id, action, object_id)",
            (tenant_id, now, [new_id() for _ in audits], [a[1] for a in audits], [str(a[0]) for a in audits]),
        )
        cur.execute(
            "UPDATE webhook_inbox w SET status = 'processed', order_id = s.order_id, processed_at = %s, "
            "lease_until = NULL, note = 'done' FROM unnest(%s::bigint[], %s::bigint[]) AS s(id, order_id) "
            "WHERE w.tenant_id = %s AND w.id = s.id",
            (now, [i[0] for i in items], [i[3] for i in items], tenant_id),
        )
        done += len(items)
print("span", started, time.time(), flush=True)

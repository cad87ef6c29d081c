"""Benchmark: a flash sale end to end, from signed webhook deliveries to the buyers' mails, with a reference.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/flash_sale.py --orders 20000 [--workers 1] [--rounds 2]

1. Creates the PostgreSQL database `quanyi_bench_flash_<pid>` next to BENCH_DATABASE_URL (a user who may
   create databases and roles), migrates it with `quanyi db upgrade` under row-level security, and serves
   it as the app's non-owner role. One tenant sells a one-off plan of one card-key right through a Shopify
   channel, with keys for 90 % of the orders (the rest backorder); a second tenant holds the reference's
   plan and keys. Every order is a new customer with an email.
2. Starts a local SMTP server (aiosmtpd; it records when it accepted each mail), gunicorn serving
   `quanyi.wsgi:app` (2 workers, gthread) on loopback, and `--workers` `quanyi worker` processes on Redis
   (BENCH_REDIS_URL, default db 12, emptied first), which drain **during** the load.
3. `--rounds` times, alternating: our round, where a load generator (2 processes × 8 threads, keep-alive)
   sends its share of `--orders` signed `orders/paid` deliveries of distinct orders as fast as they are
   acknowledged, and the clock runs from the first acknowledgement to the last order fulfilled or
   backordered; then the reference's round over as many inbox rows of the same kind (same bodies, signed
   the same way): plain psycopg, set-based, 100 orders per transaction, in `--workers` processes, doing the
   same durable work (claim the inbox rows by SKIP LOCKED, verify, customers, orders, lines, keys by one
   SKIP LOCKED statement per batch, grants, delivery records, order events, audit rows, rows processed).
4. Waits for the mails, then checks: no key in two grants, every acknowledged delivery ended fulfilled,
   backordered or held. Every process it started (gunicorn master and workers, the RQ workers and their
   work horses, the SMTP server, the load and reference processes) is stopped when it ends, also on a
   failure, Ctrl-C or SIGTERM; the database is dropped (unless --keep).

The last line is machine-readable:
`flash_sale: ours=<orders/s> reference=<orders/s> ratio=<x> ack_p99_ms=<n> deliver_p99_ms=<n>
message_p99_ms=<n> duplicates=<n> lost=<n>` (one line), where deliver is a delivery's acknowledgement → its
grant delivered, message the acknowledgement → the customer's mail accepted by the SMTP server (a mail that
had not come when the wait ended counts as arriving then: the figure is a lower bound).
Goal (issue #20): ratio ≥ 0.5, deliver_p99 ≤ 2 s, message_p99 ≤ 10 s, ack_p99 ≤ 50 ms, duplicates = lost = 0.

Measured 2026-12-06 with the per-order drain, one worker, on a shared 2-core machine at load average 13–23
(other sessions' test suites): 20,000 orders, round 1 only (stopped in round 2 for time): ours 10,000 in
2,043 s (4.9/s), reference 10,000 in 24.9 s (402/s), ratio 0.012; every order fulfilled, no key in two
grants; deliver p99 ≈ 1,900 s (the backlog); no mail at all during the drain (the worker serves the
`integrations` queue before `mail`, and the drain re-queues itself). 2,000 orders (2 rounds): `ours=8
reference=222 ratio=0.04 ack_p99_ms=448 deliver_p99_ms=118201 message_p99_ms=370627 duplicates=0 lost=0`
(763 of 1,800 mails within the 120 s wait). On a quieter moment, 2,000 orders: ours 28–33/s, reference
1,029–1,264/s.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import APP_ROLE, MASTER_KEY, OUT, ROOT, Children, make_app, post_kept_alive

sys.path.insert(0, str(ROOT))

SECRET = "shpss_flash_sale_secret_0123456789"
SKU = "FLASH-VIDEO-MONTH"
PRICE, PRICE_MINOR = "19.90", 1990
KEY_SHARE = 0.9
BIN = Path(sys.executable).parent
QUEUES = ("integrations", "fulfilment", "mail", "default")
ENDED = ("fulfilled", "backordered", "held")  # where an acknowledged paid order may end
ANALYZE_EVERY = 30.0  # seconds; this machine's PostgreSQL runs without autovacuum (see bench/webhooks.py)
STALL_SECONDS = 180.0  # a round ends early when nothing more ends for this long (what is left is lost)
WARM_UP = 40  # deliveries before the clock (imports, connections, caches); not counted
REFERENCE_BATCH = 100

# The SMTP server: records the acceptance time of every recipient's mail, one "<unix time> <address>" line.
SMTP_SERVER = """
import signal, sys, time
from aiosmtpd.controller import Controller

class Recorder:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        for recipient in envelope.rcpt_tos:
            self.out.write(f"{now:.6f} {recipient}\\n")
        self.out.flush()
        return "250 accepted"

out = open(sys.argv[2], "a", encoding="utf-8")
controller = Controller(Recorder(out), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    signal.pause()
finally:
    controller.stop()
"""


@dataclass(frozen=True)
class Shop:
    """What a tenant of the benchmark sells and through which channel."""

    tenant_id: int
    channel_id: int
    public_id: str
    right_id: int
    right_name: str
    plan_id: int
    bundle_id: int
    snapshot: str  # the plan's snapshot as an order line keeps it (JSON)


# ---------------------------------------------------------------- set-up


def database_url(base: str, name: str, username: str | None = None) -> str:
    import sqlalchemy as sa

    url = sa.engine.make_url(base).set(database=name)
    if username:
        url = url.set(username=username, password=None)
    return url.render_as_string(hide_password=False)


def admin_execute(url: str, *statements: str) -> None:
    """Run statements outside a transaction as the URL's user."""
    import psycopg

    with psycopg.connect(plain_dsn(url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]  # our own literal SQL


def plain_dsn(url: str) -> str:
    """Return a libpq connection string for a SQLAlchemy-style URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def app_env(url: str, redis_url: str, smtp_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QUANYI_ENV="development",
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        QUANYI_MASTER_KEY=MASTER_KEY,
        SECRET_KEY="bench",
        QUANYI_INSTANCE_PATH=str(OUT / "instance-flash"),
        PYTHONPATH=str(ROOT),
    )
    return env


def migrate(owner_url: str, env: dict[str, str]) -> None:
    """Create the app's role and the schema with row-level security for it."""
    admin_execute(
        owner_url,
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN "
        f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; END IF; END $$",
    )
    migrate_env = {**env, "DATABASE_URL": owner_url, "QUANYI_APP_DB_ROLE": APP_ROLE}
    subprocess.run([str(BIN / "quanyi"), "db", "upgrade"], env=migrate_env, check=True, capture_output=True)


def prepare(owner_url: str, name: str, keys: int, mapped: bool) -> Shop:
    """Create a tenant selling a one-off card-key plan through a Shopify channel, with `keys` keys."""
    from catalog import inventory
    from catalog import services as catalog_services
    from integrations import channels
    from integrations.channels import ChannelSettings
    from saas.extensions import db
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    app = make_app(owner_url)
    with app.app_context():
        tenant = Tenant(slug=f"{name}-{uuid.uuid4().hex[:6]}", name=f"Flash {name}")
        db.session.add(tenant)
        db.session.commit()
        with tenant_bound(tenant.id):
            right = catalog_services.create_right(
                {"name": "视频会员月卡", "kind": "card_key", "face_value": 3000, "validity_days": 31}
            )
            bundle = catalog_services.create_bundle({"name": "视频会员月卡"})
            catalog_services.set_bundle_items(bundle, [(right.id, 1)])
            plan = catalog_services.create_plan(
                bundle, {"name": "月卡", "price": PRICE_MINOR, "period_unit": "month", "renewable": False}
            )
            catalog_services.change_bundle_status(bundle, "active")
            channel, _ = channels.create_channel(
                "shopify", ChannelSettings(name=f"{name} Shopify"), secret=SECRET
            )
            if mapped:
                channels.add_mapping(channel, "sku", SKU, plan.id)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "keys.txt"
                path.write_text("".join(f"FS{uuid.uuid4().hex[:18].upper()}\n" for _ in range(keys)))
                inventory.import_local_file(path, right_id=right.id, supplier="闪购供货商", unit_cost="8.00")
            shop = Shop(
                tenant.id,
                channel.id,
                channel.public_id,
                right.id,
                right.name,
                plan.id,
                bundle.id,
                json.dumps(plan.snapshot(), ensure_ascii=False),
            )
            db.session.commit()
        db.engine.dispose()
    return shop


# ---------------------------------------------------------------- deliveries and load


def delivery(order_id: int) -> tuple[bytes, dict[str, str]]:
    """Return a signed Shopify `orders/paid` delivery of a new order by a new customer with an email."""
    body = json.dumps(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "email": f"buyer{order_id}@example.com",
            "currency": "CNY",
            "financial_status": "paid",
            "total_price": PRICE,
            "created_at": "2026-11-11T00:00:00+08:00",
            "customer": {"id": order_id, "first_name": "Flash", "last_name": f"Buyer {order_id}"},
            "line_items": [
                {
                    "id": 1,
                    "sku": SKU,
                    "variant_id": 1,
                    "product_id": 1,
                    "quantity": 1,
                    "price": PRICE,
                    "title": "视频会员月卡",
                }
            ],
        }
    ).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Webhook-Id": f"wh-{order_id}",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Api-Version": "2025-07",
    }


Sent = tuple[int, float, float, int]  # order id, sent at, answered at (unix time), HTTP status (0: failed)


def _send_all(port: int, path: str, order_ids: list[int], results: list[Sent]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for order_id in order_ids:
        body, headers = delivery(order_id)
        sent = time.time()
        connection, status = post_kept_alive(connection, path, body, headers)
        results.append((order_id, sent, time.time(), status))
    connection.close()


def _load_process(args: tuple[int, str, list[int], int]) -> list[Sent]:
    port, path, order_ids, threads = args
    results: list[Sent] = []
    senders = [
        threading.Thread(target=_send_all, args=(port, path, order_ids[t::threads], results))
        for t in range(threads)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return results


def send_load(port: int, path: str, order_ids: list[int], processes: int, threads: int) -> list[Sent]:
    """Send every delivery as fast as they are acknowledged; return what each got."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(abs, range(processes))  # the load processes exist before the first delivery
        parts = pool.map(
            _load_process, [(port, path, order_ids[p::processes], threads) for p in range(processes)]
        )
    return [sent for part in parts for sent in part]


# ---------------------------------------------------------------- serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} stopped at start (exit {process.returncode}); see {OUT}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port}")


def start_services(
    children: Children, env: dict[str, str], workers: int, smtp_port: int, mail_log: Path
) -> int:
    """Start the SMTP server, gunicorn and the workers; return gunicorn's port."""
    logs = OUT / "flash"
    logs.mkdir(parents=True, exist_ok=True)
    smtp = children.start(
        [sys.executable, "-c", SMTP_SERVER, str(smtp_port), str(mail_log)],
        stdout=subprocess.DEVNULL,
        stderr=(logs / "smtp.log").open("wb"),
    )
    wait_for_port(smtp_port, smtp, "the SMTP server")
    port = free_port()
    web = children.start(
        [
            *(str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4"),
            *("-b", f"127.0.0.1:{port}", "--keep-alive", "30", "--log-level", "warning"),
            "quanyi.wsgi:app",
        ],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=(logs / "gunicorn.log").open("wb"),
    )
    wait_for_port(port, web, "gunicorn")
    for index in range(workers):
        children.start(
            [str(BIN / "quanyi"), "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(logs / f"worker-{index + 1}.log").open("wb"),
        )
    return port


# ---------------------------------------------------------------- watching our drain


def utc_seconds(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp() if value.tzinfo is None else value.timestamp()


class Watcher:
    """Reads, as the database owner, how far the shop's orders got."""

    def __init__(self, owner_url: str, shop: Shop) -> None:
        import psycopg

        self.conn = psycopg.connect(plain_dsn(owner_url), autocommit=True)
        self.shop = shop
        self.analyzed = time.monotonic()

    def ended(self) -> int:
        """Count the shop's orders that ended (fulfilled, backordered, held), and deliveries held with none.

        Counted over the whole shop (an index-only scan), not per order id: the watcher must not take the
        CPU the drain it watches needs.
        """
        shop = self.shop
        orders = self.conn.execute(
            "SELECT count(*) FROM orders WHERE tenant_id = %s AND status = ANY(%s)",
            (shop.tenant_id, list(ENDED)),
        ).fetchone()
        return int(orders[0] if orders else 0) + len(self.held_without_order())

    def held_without_order(self) -> set[str]:
        """Return the external ids of deliveries held (or dead) before they made an order."""
        rows = self.conn.execute(
            "SELECT external_order_id FROM webhook_inbox WHERE tenant_id = %s AND status IN ('held', 'dead') "
            "AND order_id IS NULL",
            (self.shop.tenant_id,),
        ).fetchall()
        return {str(e) for (e,) in rows}

    def last_ended_at(self, external_ids: list[str]) -> float | None:
        """Return when the last of these orders was fulfilled, backordered or held (unix time)."""
        row = self.conn.execute(
            "SELECT max(e.at) FROM order_events e JOIN orders o ON o.tenant_id = e.tenant_id AND o.id = "
            "e.order_id "
            "WHERE o.tenant_id = %s AND o.channel = %s AND o.external_id = ANY(%s) AND e.to_status = ANY(%s)",
            (self.shop.tenant_id, self.shop.public_id, external_ids, list(ENDED)),
        ).fetchone()
        return utc_seconds(row[0]) if row and row[0] else None

    def wait_until_ended(self, expected: int, say: str) -> int:
        """Wait until `expected` orders of the shop ended, or nothing moved for STALL_SECONDS; return how "
        "many."""
        done, moved = -1, time.monotonic()
        while True:
            now_done = self.ended()
            if now_done != done:
                done, moved = now_done, time.monotonic()
            if done >= expected or time.monotonic() - moved > STALL_SECONDS:
                return done
            if time.monotonic() - self.analyzed > ANALYZE_EVERY:
                print(f"{say}: {done} of {expected} ended", flush=True)
                self.conn.execute("ANALYZE")
                self.analyzed = time.monotonic()
            time.sleep(0.5)

    def statuses(self, external_ids: list[str]) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT external_id, status FROM orders WHERE tenant_id = %s AND channel = %s AND external_id = "
            "ANY(%s)",
            (self.shop.tenant_id, self.shop.public_id, external_ids),
        ).fetchall()
        return {str(e): str(s) for e, s in rows}

    def delivered_at(self, external_ids: list[str]) -> dict[str, float]:
        rows = self.conn.execute(
            "SELECT o.external_id, min(g.delivered_at) FROM grants g "
            "JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id "
            "WHERE o.tenant_id = %s AND o.channel = %s AND o.external_id = ANY(%s) AND g.delivered_at IS "
            "NOT NULL "
            "GROUP BY o.external_id",
            (self.shop.tenant_id, self.shop.public_id, external_ids),
        ).fetchall()
        return {str(e): utc_seconds(at) for e, at in rows}

    def keys_in_two_grants(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM (SELECT tenant_id, card_key_id FROM grants WHERE card_key_id IS NOT NULL "
            "GROUP BY tenant_id, card_key_id HAVING count(*) > 1) twice"
        ).fetchone()
        return int(row[0]) if row else 0


def mails_accepted(mail_log: Path) -> dict[str, float]:
    """Return when the SMTP server first accepted a mail to each address."""
    accepted: dict[str, float] = {}
    if mail_log.exists():
        for line in mail_log.read_text(encoding="utf-8").splitlines():
            at, _, address = line.partition(" ")
            accepted.setdefault(address.lower(), float(at))
    return accepted


def wait_for_mails(mail_log: Path, wanted: set[str], timeout: float) -> dict[str, float]:
    """Wait until a mail reached every wanted address, or none came for a minute, or `timeout`."""
    deadline, count, moved = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        accepted = mails_accepted(mail_log)
        arrived = len(wanted & accepted.keys())
        if arrived != count:
            count, moved = arrived, time.monotonic()
        if arrived >= len(wanted) or time.monotonic() > deadline or time.monotonic() - moved > 60:
            return accepted
        time.sleep(1)


# ---------------------------------------------------------------- the reference


def stage_reference_rows(owner_url: str, shop: Shop, order_ids: list[int]) -> None:
    """Store inbox rows of the same kind as the webhook's (signed bodies, headers) for the reference shop."""
    import psycopg

    from saas.ids import new_ids

    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(plain_dsn(owner_url)) as conn, conn.cursor() as cursor:
        columns = (
            "tenant_id, id, channel_id, dedupe_key, topic, status, headers, body, content_type, api_version,"
            " external_order_id, note, attempts, duplicates, received_at"
        )
        with cursor.copy(f"COPY webhook_inbox ({columns}) FROM STDIN") as copy:
            for row_id, order_id in zip(new_ids(len(order_ids)), order_ids, strict=True):
                body, headers = delivery(order_id)
                stored = {name.lower(): value for name, value in headers.items()}
                copy.write_row(
                    (
                        *(shop.tenant_id, row_id, shop.channel_id, f"shopify:wh-{order_id}", "orders/paid"),
                        *("pending", json.dumps(stored), body, "application/json", "2025-07", str(order_id)),
                        *("", 0, 0, now),
                    )
                )


CLAIM = """
WITH pick AS (
    SELECT id FROM webhook_inbox WHERE tenant_id = %(t)s AND status = 'pending'
    ORDER BY received_at, id LIMIT %(n)s FOR UPDATE SKIP LOCKED
)
UPDATE webhook_inbox w SET status = 'processing', attempts = w.attempts + 1, lease_until = %(lease)s
FROM pick WHERE w.tenant_id = %(t)s AND w.id = pick.id
RETURNING w.id, w.body, w.headers
"""
ALLOCATE = """
WITH pick AS (
    SELECT id FROM card_keys
    WHERE tenant_id = %(t)s AND right_id = %(r)s AND status = 'available'
      AND (expires_at IS NULL OR expires_at > %(now)s)
    ORDER BY expires_at NULLS LAST, batch_id, id LIMIT %(n)s FOR UPDATE SKIP LOCKED
)
UPDATE card_keys k SET status = 'delivered', delivery_count = k.delivery_count + 1, delivered_at = %(now)s
FROM pick WHERE k.tenant_id = %(t)s AND k.id = pick.id
RETURNING k.id, k.mask
"""


def reference_batch(cursor: Any, shop: Shop, rows: list[tuple[Any, ...]]) -> int:
    """Process claimed inbox rows set-based: one statement per table for the whole batch."""
    from saas.ids import new_ids

    now = dt.datetime.now(dt.UTC)
    t, key = shop.tenant_id, SECRET.encode()
    paid: list[tuple[int, dict[str, Any]]] = []
    refused: list[int] = []
    for row_id, body, headers in rows:
        expected = base64.b64encode(hmac.new(key, bytes(body), hashlib.sha256).digest()).decode()
        document = json.loads(bytes(body))
        line = document["line_items"][0]
        good = hmac.compare_digest(expected, headers.get("x-shopify-hmac-sha256", ""))
        if good and line["sku"] == SKU and line["price"] == PRICE:
            paid.append((row_id, document))
        else:
            refused.append(row_id)
    external = [str(d["id"]) for _row, d in paid]
    known = {
        e
        for (e,) in cursor.execute(
            "SELECT external_id FROM orders WHERE tenant_id = %s AND channel = %s AND external_id = ANY(%s)",
            (t, shop.public_id, external),
        )
    }
    paid = [(r, d) for r, d in paid if str(d["id"]) not in known]  # a replay changes nothing
    emails = [d["email"].lower() for _r, d in paid]
    customers = dict(
        cursor.execute(
            "SELECT email, id FROM customers WHERE tenant_id = %s AND email = ANY(%s)", (t, emails)
        ).fetchall()
    )
    new_emails = sorted(set(emails) - customers.keys())
    names = {
        d["email"].lower(): f"{d['customer']['first_name']} {d['customer']['last_name']}" for _r, d in paid
    }
    fresh = new_ids(len(new_emails))
    cursor.execute(
        "INSERT INTO customers (tenant_id, id, email, name, notes, created_at, updated_at) "
        "SELECT %s, c.id, c.email, c.name, '', %s, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS "
        "c(id, email, name)",
        (t, now, now, fresh, new_emails, [names[e] for e in new_emails]),
    )
    customers.update(zip(new_emails, fresh, strict=True))
    cursor.execute(
        "INSERT INTO customer_external_ids (tenant_id, id, customer_id, channel, external_id, created_at) "
        "SELECT %s, c.id, c.customer_id, %s, c.external_id, %s FROM unnest(%s::bigint[], %s::bigint[], "
        "%s::text[]) "
        "AS c(id, customer_id, external_id) ON CONFLICT DO NOTHING",
        (
            t,
            shop.public_id,
            now,
            new_ids(len(paid)),
            [customers[d["email"].lower()] for _r, d in paid],
            [str(d["customer"]["id"]) for _r, d in paid],
        ),
    )
    keys = cursor.execute(ALLOCATE, {"t": t, "r": shop.right_id, "now": now, "n": len(paid)}).fetchall()
    n = len(paid)
    order_ids, line_ids, grant_ids = new_ids(n), new_ids(n), new_ids(n)
    statuses = ["fulfilled" if i < len(keys) else "backordered" for i in range(n)]
    customer_ids = [customers[d["email"].lower()] for _r, d in paid]
    cursor.execute(
        "INSERT INTO orders (tenant_id, id, channel, external_id, source, customer_id, status, currency, "
        "total,"
        " refunded_amount, note, created_by, created_at, placed_at, paid_at, fulfilled_at) "
        "SELECT %s, o.id, %s, o.external_id, 'channel', o.customer_id, o.status, 'CNY', %s, 0, '', "
        "'reference',"
        " %s, %s, %s, CASE WHEN o.status = 'fulfilled' THEN %s END "
        "FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[]) AS o(id, external_id, customer_id, "
        "status)",
        (
            t,
            shop.public_id,
            PRICE_MINOR,
            now,
            now,
            now,
            now,
            order_ids,
            [str(d["id"]) for _r, d in paid],
            customer_ids,
            statuses,
        ),
    )
    cursor.execute(
        "INSERT INTO order_lines (tenant_id, id, order_id, position, plan_id, bundle_id, sku, title, "
        "quantity,"
        " unit_price, currency, total, refunded_amount, snapshot) "
        "SELECT %s, l.id, l.order_id, 0, %s, %s, %s, '视频会员月卡 · 月卡', 1, %s, 'CNY', %s, 0, %s::json "
        "FROM unnest(%s::bigint[], %s::bigint[]) AS l(id, order_id)",
        (t, shop.plan_id, shop.bundle_id, SKU, PRICE_MINOR, PRICE_MINOR, shop.snapshot, line_ids, order_ids),
    )
    key_ids = [k[0] for k in keys] + [None] * (n - len(keys))
    masks = [k[1] for k in keys] + [""] * (n - len(keys))
    cursor.execute(
        "INSERT INTO grants (tenant_id, id, order_id, order_line_id, customer_id, unit_index, item_index, "
        "right_id,"
        " right_name, kind, status, queued_at, card_key_id, mask, link_url, unit_cost, created_at, "
        "delivered_at,"
        " refunded_amount, topup_attempts) "
        "SELECT %s, g.id, g.order_id, g.line_id, g.customer_id, 0, 0, %s, %s, 'card_key',"
        " CASE WHEN g.key_id IS NULL THEN 'backordered' ELSE 'delivered' END, %s, g.key_id, g.mask, '', "
        "800, %s,"
        " CASE WHEN g.key_id IS NULL THEN NULL ELSE %s::timestamp END, 0, 0 "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[])"
        " AS g(id, order_id, line_id, customer_id, key_id, mask)",
        (
            t,
            shop.right_id,
            shop.right_name,
            now,
            now,
            now,
            grant_ids,
            order_ids,
            line_ids,
            customer_ids,
            key_ids,
            masks,
        ),
    )
    fulfilled = [i for i in range(n) if statuses[i] == "fulfilled"]
    cursor.execute(
        "INSERT INTO deliveries (tenant_id, id, order_id, kind, method, recipient, grant_count, actor, "
        "note, status,"
        " attempts, last_error, created_at) "
        "SELECT %s, d.id, d.order_id, 'delivery', 'email', d.recipient, 1, 'reference', '', 'queued', 0, "
        "'', %s "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS d(id, order_id, recipient)",
        (t, now, new_ids(len(fulfilled)), [order_ids[i] for i in fulfilled], [emails[i] for i in fulfilled]),
    )
    cursor.execute(
        "INSERT INTO order_events (tenant_id, id, order_id, from_status, to_status, actor, reason, at) "
        "SELECT %s, e.id, e.order_id, e.from_status, e.to_status, 'reference', '', %s "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS e(id, order_id, from_status, "
        "to_status)",
        (t, now, new_ids(2 * n), order_ids * 2, [None] * n + ["paid"] * n, ["paid"] * n + statuses),
    )
    details = [
        json.dumps({"status": s, "key": str(k) if k else None})
        for s, k in zip(statuses, key_ids, strict=True)
    ]
    cursor.execute(
        "INSERT INTO audit_events (tenant_id, id, created_at, actor, action, object_type, object_id, "
        "details) "
        "SELECT %s, a.id, %s, 'reference', a.action, 'order', a.object_id, a.details::json "
        "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS a(id, action, object_id, details)",
        (
            t,
            now,
            new_ids(2 * n),
            ["order.created"] * n + ["order.fulfilled"] * n,
            [str(o) for o in order_ids] * 2,
            ["{}"] * n + details,
        ),
    )
    cursor.execute(
        "UPDATE webhook_inbox w SET status = p.status, processed_at = %s, order_id = p.order_id, "
        "lease_until = NULL "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS p(id, order_id, status) "
        "WHERE w.tenant_id = %s AND w.id = p.id",
        (
            now,
            [r for r, _d in paid] + refused,
            order_ids + [None] * len(refused),
            ["processed"] * n + ["held"] * len(refused),
            t,
        ),
    )
    return len(rows)


def _reference_process(args: tuple[str, Shop]) -> int:
    """Drain the reference shop's inbox, REFERENCE_BATCH rows per transaction, until it is empty."""
    import psycopg

    app_url, shop = args
    processed = 0
    with psycopg.connect(plain_dsn(app_url)) as conn:
        while True:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", (str(shop.tenant_id),))
                lease = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
                rows = cursor.execute(
                    CLAIM, {"t": shop.tenant_id, "n": REFERENCE_BATCH, "lease": lease}
                ).fetchall()
                if not rows:
                    return processed
                processed += reference_batch(cursor, shop, rows)


def run_reference(app_url: str, shop: Shop, processes: int) -> tuple[float, int]:
    """Drain the staged rows with `processes` reference processes; return (seconds, rows processed)."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(abs, range(processes))
        started = time.monotonic()
        counts = pool.map(_reference_process, [(app_url, shop)] * processes)
        return time.monotonic() - started, sum(counts)


# ---------------------------------------------------------------- figures


def p99(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=20_000, help="paid orders sent to us (and to the reference)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="`quanyi worker` processes (and reference processes)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="turns each side gets, alternating")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=8, help="sending threads per load generator process")
    parser.add_argument("--mail-timeout", type=float, default=900.0, help="seconds to wait for the mails")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    options = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        raise SystemExit(
            "set BENCH_DATABASE_URL (a PostgreSQL URL whose user may create databases and roles)"
        )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"quanyi_bench_flash_{os.getpid()}"
    children = Children()  # everything started below is stopped with its descendants, whatever happens
    admin_execute(database_url(base, "postgres"), f'CREATE DATABASE "{name}"')
    try:
        run(options, database_url(base, name), database_url(base, name, APP_ROLE), redis_url, children)
    finally:
        children.stop_all()
        if not options.keep:
            admin_execute(database_url(base, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(options: Any, owner_url: str, app_url: str, redis_url: str, children: Children) -> None:
    from redis import Redis

    smtp_port = free_port()
    env = app_env(app_url, redis_url, smtp_port)
    migrate(owner_url, env)
    keys = int(options.orders * KEY_SHARE)
    ours = prepare(owner_url, "ours", keys + WARM_UP, mapped=True)
    reference = prepare(owner_url, "reference", keys, mapped=False)
    admin_execute(owner_url, "ANALYZE")
    Redis.from_url(redis_url).flushdb()  # this benchmark's own Redis database: nothing left from a run before
    mail_log = Path(tempfile.mkdtemp(prefix="flash-mail-")) / "accepted.txt"
    port = start_services(children, env, options.workers, smtp_port, mail_log)
    path = f"/hooks/{ours.public_id}"
    watcher = Watcher(owner_url, ours)
    print(
        f"database {owner_url.rsplit('/', 1)[-1]}; {options.workers} worker(s); {options.orders} orders",
        flush=True,
    )

    warm = [10**8 + i for i in range(WARM_UP)]
    expected = sum(1 for *_rest, status in send_load(port, path, warm, 1, 4) if 200 <= status < 300)
    watcher.wait_until_ended(expected, "warm-up")

    sent: list[Sent] = []
    our_seconds = reference_seconds = 0.0
    reference_done = 0
    share = options.orders // options.rounds
    for round_index in range(options.rounds):
        count = share if round_index < options.rounds - 1 else options.orders - share * round_index
        first = 2 * 10**8 + round_index * 10**6
        round_ids = list(range(first, first + count))
        results = send_load(port, path, round_ids, options.processes, options.threads)
        sent.extend(results)
        acknowledged = [str(i) for i, _s, _a, status in results if 200 <= status < 300]
        expected += len(acknowledged)
        ended = watcher.wait_until_ended(expected, f"round {round_index + 1}")
        started = min(answered for _i, _s, answered, status in results if 200 <= status < 300)
        last = watcher.last_ended_at(acknowledged) or time.time()
        our_seconds += last - started
        print(
            f"round {round_index + 1}: ours {len(acknowledged)} acknowledged, {ended} ended in "
            f"{last - started:.1f} s ({len(acknowledged) / (last - started):.0f}/s)",
            flush=True,
        )
        admin_execute(owner_url, "ANALYZE")
        stage_reference_rows(
            owner_url, reference, [3 * 10**8 + round_index * 10**6 + i for i in range(count)]
        )
        seconds, done = run_reference(app_url, reference, options.workers)
        reference_seconds += seconds
        reference_done += done
        print(
            f"round {round_index + 1}: reference {done} in {seconds:.1f} s ({done / seconds:.0f}/s)",
            flush=True,
        )
        admin_execute(owner_url, "ANALYZE")

    acknowledged_at = {str(i): answered for i, _s, answered, status in sent if 200 <= status < 300}
    wanted = list(acknowledged_at)
    statuses = watcher.statuses(wanted)
    fulfilled = [e for e in wanted if statuses.get(e) == "fulfilled"]
    mails = wait_for_mails(mail_log, {f"buyer{e}@example.com" for e in fulfilled}, options.mail_timeout)
    waited_until = time.time()  # a mail still missing now arrives later than this, if ever: a lower bound
    delivered = watcher.delivered_at(wanted)
    deliver_ms = [(delivered[e] - acknowledged_at[e]) * 1000 for e in wanted if e in delivered]
    message_ms = [
        (mails.get(f"buyer{e}@example.com", waited_until) - acknowledged_at[e]) * 1000 for e in fulfilled
    ]
    ack_ms = [(answered - sent_at) * 1000 for _i, sent_at, answered, status in sent if 200 <= status < 300]
    held = watcher.held_without_order()
    lost = sum(1 for e in wanted if statuses.get(e) not in ENDED and e not in held)
    refused = len(sent) - len(wanted)
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    arrived = sum(1 for e in fulfilled if f"buyer{e}@example.com" in mails)
    print(
        f"ours: {counts}; {refused} deliveries not acknowledged; mails {arrived} of {len(fulfilled)}; "
        f"reference processed {reference_done}",
        flush=True,
    )
    if arrived < len(fulfilled):
        print(f"message_p99 is a lower bound: {len(fulfilled) - arrived} mails had not arrived", flush=True)
    ours_rate = len(wanted) / our_seconds if our_seconds else 0.0
    reference_rate = reference_done / reference_seconds if reference_seconds else 0.0
    ratio = ours_rate / reference_rate if reference_rate else 0.0
    print(
        f"flash_sale: ours={ours_rate:.0f} reference={reference_rate:.0f} ratio={ratio:.2f} "
        f"ack_p99_ms={p99(ack_ms):.0f} deliver_p99_ms={p99(deliver_ms):.0f} "
        f"message_p99_ms={p99(message_ms):.0f} "
        f"duplicates={watcher.keys_in_two_grants()} lost={lost}",
        flush=True,
    )


if __name__ == "__main__":
    main()

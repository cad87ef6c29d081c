"""Benchmark: fulfil N paid single-key orders with W concurrent worker processes from K keys, on PostgreSQL.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/allocate.py --orders 20000 --keys 15000 --workers 4

A fresh database is created beside the one in the URL (and dropped at the end). Our path is the real one:
each worker process runs `orders.fulfilment.fulfil_orders` on its share of the paid orders, `--batch` orders
per transaction (claim with one conditional UPDATE, grants, SKIP LOCKED allocation per right, statuses,
events, audit, delivery log); `--batch 1` is one order per transaction. The reference is a bare SQL loop
with the same concurrency: one `WITH pick … FOR UPDATE SKIP LOCKED UPDATE … RETURNING` and one commit per
order, on a copy of the same keys. The product is a one-off (non-renewable) plan with one card-key right,
so no subscription work follows; customers have no email, so no mail is composed. The run checks K orders
fulfilled, N-K backordered and no key in two grants, and prints as its last line:
`allocate: ours=<s> reference=<s> ratio=<x> duplicates=<n>`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saas.config import sqlalchemy_url
from saas.ids import new_id, new_ids

REFERENCE_SQL = """
WITH pick AS (
    SELECT id FROM ref_card_keys
    WHERE tenant_id = %(t)s AND right_id = %(r)s AND status = 'available'
      AND (expires_at IS NULL OR expires_at > now())
    ORDER BY expires_at NULLS LAST, batch_id, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE ref_card_keys k SET status = 'delivered', delivery_count = k.delivery_count + 1, delivered_at = now()
FROM pick WHERE k.tenant_id = %(t)s AND k.id = pick.id RETURNING k.id
"""


def database_urls(base: str) -> tuple[str, str, str]:
    """Return (admin url, bench database url, bench database name)."""
    url = sa.engine.make_url(sqlalchemy_url(base))
    name = f"quanyi_bench_{uuid.uuid4().hex[:8]}"
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    return admin, url.set(database=name).render_as_string(hide_password=False), name


def bench_app(url: str) -> Any:
    """Create the app on the bench database (testing config: fixed keys, jobs inline)."""
    from quanyi.app import create_app

    os.environ.setdefault("QUANYI_INSTANCE_PATH", "/tmp/quanyi-bench-instance")
    return create_app(
        {
            "ENV_NAME": "testing",
            "DATABASE_URL": url,
            "SERVER_NAME": None,
            "MAIL_DIR": "/tmp/quanyi-bench-instance/mail",
        }
    )


def prepare(url: str, orders: int, keys: int) -> tuple[int, int, list[int]]:
    """Create the schema, a tenant with one card-key right, `keys` keys, and `orders` paid orders."""
    from catalog.models import Bundle, BundleItem, Plan, Right
    from saas.extensions import db
    from saas.timeutil import utcnow
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    app = bench_app(url)
    with app.app_context():
        db.create_all()
        tenant = Tenant(slug="bench", name="Bench Shop")
        db.session.add(tenant)
        db.session.commit()
        tenant_id = tenant.id
        with tenant_bound(tenant_id):
            right = Right(name="视频月卡", kind="card_key", currency="CNY", validity_days=30)
            bundle = Bundle(name="视频月卡", status="active")
            db.session.add_all([right, bundle])
            db.session.flush()
            plan = Plan(
                bundle_id=bundle.id,
                name="月卡",
                period_unit="month",
                price=1990,
                currency="CNY",
                renewable=False,
            )
            db.session.add_all([plan, BundleItem(bundle_id=bundle.id, right_id=right.id, quantity=1)])
            db.session.commit()
            snapshot = plan.snapshot()
            right_id, plan_id, bundle_id = right.id, plan.id, bundle.id
        order_ids = _load_rows(db, tenant_id, right_id, plan_id, bundle_id, snapshot, orders, keys, utcnow())
        db.engine.dispose()
    return tenant_id, right_id, order_ids


def _load_rows(
    db: Any,
    tenant_id: int,
    right_id: int,
    plan_id: int,
    bundle_id: int,
    snapshot: dict[str, Any],
    orders: int,
    keys: int,
    now: Any,
) -> list[int]:
    import json

    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch_id = new_id()
        cursor.execute(
            "INSERT INTO card_key_batches (tenant_id, id, right_id, supplier, unit_cost, currency,"
            " source_filename, source_checksum, file_format, imported_by, rows_read, imported,"
            " duplicates_in_file, duplicates_in_stock, rejected, created_at)"
            " VALUES (%s, %s, %s, 'bench', 800, 'CNY', '', '', '{}', '', 0, %s, 0, 0, 0, %s)",
            (tenant_id, batch_id, right_id, keys, now),
        )
        columns = (
            "tenant_id, id, right_id, batch_id, status, code_hash, ciphertext, mask, max_deliveries,"
            " delivery_count, created_at"
        )
        for table in ("card_keys", "ref_card_keys"):
            if table == "ref_card_keys":
                cursor.execute(
                    "CREATE TABLE ref_card_keys (LIKE card_keys INCLUDING DEFAULTS INCLUDING INDEXES)"
                )
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for key_id in new_ids(keys):
                    copy.write_row(
                        (
                            tenant_id,
                            key_id,
                            right_id,
                            batch_id,
                            "available",
                            key_id.to_bytes(32, "big"),
                            os.urandom(40),
                            "BENCH••••••",
                            1,
                            0,
                            now,
                        )
                    )
            cursor.execute(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.01,"
                " autovacuum_vacuum_threshold = 1000)"
            )
        customer_ids = new_ids(orders)
        order_ids = new_ids(orders)
        line_ids = new_ids(orders)
        with cursor.copy(
            "COPY customers (tenant_id, id, phone, name, notes, created_at, updated_at) FROM STDIN"
        ) as c:
            for n, customer_id in enumerate(customer_ids):
                c.write_row((tenant_id, customer_id, f"1390000{n:05d}", "", "", now, now))
        with cursor.copy(
            "COPY orders (tenant_id, id, channel, external_id, source, customer_id, status, currency,"
            " total, refunded_amount, note, created_by, created_at, placed_at, paid_at) FROM STDIN"
        ) as c:
            for n, (order_id, customer_id) in enumerate(zip(order_ids, customer_ids, strict=True)):
                c.write_row(
                    (
                        tenant_id,
                        order_id,
                        "bench",
                        f"B{n}",
                        "api",
                        customer_id,
                        "paid",
                        "CNY",
                        1990,
                        0,
                        "",
                        "bench",
                        now,
                        now,
                        now,
                    )
                )
        text = json.dumps(snapshot)
        with cursor.copy(
            "COPY order_lines (tenant_id, id, order_id, position, plan_id, bundle_id, sku, title,"
            " quantity, unit_price, currency, total, refunded_amount, snapshot) FROM STDIN"
        ) as c:
            for order_id, line_id in zip(order_ids, line_ids, strict=True):
                c.write_row(
                    (
                        tenant_id,
                        line_id,
                        order_id,
                        0,
                        plan_id,
                        bundle_id,
                        "",
                        "视频月卡 · 月卡",
                        1,
                        1990,
                        "CNY",
                        1990,
                        0,
                        text,
                    )
                )
        raw.commit()
    finally:
        raw.close()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return order_ids


# ---------------------------------------------------------------- workers


def our_worker(
    url: str, tenant_id: int, order_ids: list[int], batch: int, ready: Any, start: Any, done: Any
) -> None:
    """Fulfil the given paid orders through the real service, `batch` orders per transaction."""
    from orders.fulfilment import fulfil_orders
    from saas.extensions import db
    from tenants.scoping import tenant_bound

    app = bench_app(url)
    with app.app_context(), tenant_bound(tenant_id):
        db.session.execute(sa.text("SELECT 1"))
        db.session.commit()
        ready.put(os.getpid())
        start.wait()
        acted = 0
        for at in range(0, len(order_ids), batch):
            acted += len(fulfil_orders(order_ids[at : at + batch], actor="bench worker"))
        done.put(acted)


def reference_worker(
    url: str, tenant_id: int, right_id: int, count: int, ready: Any, start: Any, done: Any
) -> None:
    """Allocate one key per transaction with bare SQL, `count` times."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        ready.put(os.getpid())
        start.wait()
        taken = 0
        for _ in range(count):
            with conn.cursor() as cursor:
                cursor.execute(REFERENCE_SQL, {"t": tenant_id, "r": right_id})
                taken += cursor.fetchone() is not None
            conn.commit()
        done.put(taken)


def run_parallel(target: Any, args_per_worker: list[tuple[Any, ...]]) -> tuple[float, list[int]]:
    """Start one process per args, release them together, return (seconds, results)."""
    ctx = mp.get_context("spawn")
    ready, done, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    processes = [ctx.Process(target=target, args=(*args, ready, start, done)) for args in args_per_worker]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    results = [done.get(timeout=3600) for _ in processes]
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {process.exitcode})")
    return elapsed, results


def verify(url: str, tenant_id: int, keys: int, orders: int) -> int:
    """Check the outcome; return the number of keys in two live grants."""
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM orders WHERE tenant_id = :t GROUP BY status"),
                {"t": tenant_id},
            ).all()
        )
        duplicates = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT card_key_id FROM grants WHERE tenant_id = :t"
                " AND card_key_id IS NOT NULL AND status IN ('reserved', 'delivered', 'redeemed')"
                " GROUP BY card_key_id HAVING count(*) > 1) d"
            ),
            {"t": tenant_id},
        ).scalar_one()
        grants = conn.execute(
            sa.text("SELECT count(*) FROM grants WHERE tenant_id = :t"), {"t": tenant_id}
        ).scalar_one()
        delivered_keys = conn.execute(
            sa.text("SELECT count(*) FROM card_keys WHERE tenant_id = :t AND status = 'delivered'"),
            {"t": tenant_id},
        ).scalar_one()
        reference_taken = conn.execute(
            sa.text("SELECT count(*) FROM ref_card_keys WHERE status = 'delivered'")
        ).scalar_one()
    engine.dispose()
    fulfilled, backordered = statuses.get("fulfilled", 0), statuses.get("backordered", 0)
    expected_fulfilled = min(keys, orders)
    print(
        f"orders by status: {statuses}; grants: {grants}; keys delivered: {delivered_keys}; "
        f"reference keys taken: {reference_taken}"
    )
    problems = []
    if fulfilled != expected_fulfilled or backordered != orders - expected_fulfilled:
        problems.append(
            f"expected {expected_fulfilled} fulfilled and {orders - expected_fulfilled} backordered"
        )
    if grants != orders or delivered_keys != expected_fulfilled or reference_taken != expected_fulfilled:
        problems.append("grant or key counts are off")
    if duplicates:
        problems.append(f"{duplicates} keys are in two grants")
    if problems:
        print("FAILED: " + "; ".join(problems))
    return int(duplicates) + (1000000 if problems and not duplicates else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--keys", type=int, default=15000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="orders a worker fulfils per transaction (1: one order per transaction)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    options = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        raise SystemExit("set BENCH_DATABASE_URL (a PostgreSQL URL whose user may create databases)")
    admin_url, url, name = database_urls(base)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        started = time.perf_counter()
        tenant_id, right_id, order_ids = prepare(url, options.orders, options.keys)
        print(
            f"prepared {options.orders} paid orders and {options.keys} keys (x2) in "
            f"{time.perf_counter() - started:.1f}s; {options.workers} workers"
        )
        w = options.workers
        ours, acted = run_parallel(
            our_worker, [(url, tenant_id, order_ids[i::w], options.batch) for i in range(w)]
        )
        print(
            f"ours: {sum(acted)} orders fulfilled or backordered in {ours:.2f}s"
            f" ({options.orders / ours:.0f}/s), {options.batch} orders per transaction"
        )
        per_worker = [options.orders // w + (1 if i < options.orders % w else 0) for i in range(w)]
        reference, taken = run_parallel(reference_worker, [(url, tenant_id, right_id, n) for n in per_worker])
        print(f"reference: {sum(taken)} keys taken in {reference:.2f}s ({options.orders / reference:.0f}/s)")
        duplicates = verify(url, tenant_id, options.keys, options.orders)
        print(
            f"allocate: ours={ours:.2f} reference={reference:.2f} ratio={ours / reference:.2f} "
            f"duplicates={duplicates}"
        )
        if duplicates:
            raise SystemExit(1)
    finally:
        if not options.keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

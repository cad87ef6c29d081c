"""Benchmark: drain a full channel inbox, ours (`integrations.tasks.drain_inbox`) against a plain-psycopg
set-based reference doing the same durable work, 100 orders per transaction.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/drain.py --orders 3000 --workers 1

1. Creates its own database `quanyi_bench_drain_<hex>` next to BENCH_DATABASE_URL and migrates it with
   `quanyi db upgrade` (row-level security, the app role); adds a tenant, a one-off plan of one card-key
   right with keys for 90 % of the orders, and two Shopify channels with the SKU mapped (one per contender).
2. Stores --orders paid Shopify deliveries (distinct orders, each a new customer) in each channel's inbox,
   as the webhook endpoint does, then ANALYZEs (autovacuum's work in production).
3. Ours: --workers processes each run `drain_inbox` for the tenant (what `quanyi worker` runs for the
   webhook's drain job); the jobs the drain queues (delivery mails, the helper drain) go nowhere, as to a
   Redis no sender reads yet. Timed from the start until every delivery is settled.
4. Reference: --workers processes of plain psycopg over the other channel's rows, each transaction claiming
   100 rows `FOR UPDATE SKIP LOCKED` and writing per table with one statement: customers and their channel
   ids, orders, lines, keys (one `SKIP LOCKED` statement for the batch's count), grants, delivery records,
   order events (pending, paid, fulfilled/backordered) and audit rows (created, paid, fulfilled), then
   marking the rows processed; as the app role, with the tenant set per transaction.
5. Checks: every order once, no key in two grants. Drops the database at the end (--keep to keep it).

The last line is machine-readable: `drain: ours=<orders/s> reference=<orders/s> ratio=<x>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import MASTER_KEY, OUT, ROOT, make_app

sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
SKU = "BENCH-VIP-MONTH"
BATCH = 100  # the reference's orders per transaction

OURS = textwrap.dedent(
    """
    import sys, time

    from saas import jobs
    from quanyi.app import create_app


    class Nowhere(jobs.JobRunner):
        def submit(self, spec):
            pass


    tenant_id = int(sys.argv[1])
    app = create_app({"JOBS_MODE": "inline", "PERIODIC_JOBS_ENABLED": False})
    app.extensions["quanyi.jobs"] = Nowhere(app)
    from integrations.tasks import drain_inbox

    with app.app_context():
        if len(sys.argv) > 2:  # --profile: also time each kind of statement
            import collections
            import sqlalchemy as sa
            from saas.extensions import db

            spent = collections.Counter()
            calls = collections.Counter()

            def before(conn, cursor, statement, params, context, many):
                conn.info["bench_t"] = time.perf_counter()

            def after(conn, cursor, statement, params, context, many):
                kind = " ".join(statement.split()[:4])[:70]
                spent[kind] += time.perf_counter() - conn.info.pop("bench_t", time.perf_counter())
                calls[kind] += 1

            sa.event.listen(db.engine, "before_cursor_execute", before)
            sa.event.listen(db.engine, "after_cursor_execute", after)
        started = time.time()
        if len(sys.argv) > 2:  # --profile: where the time goes, into the file named
            import cProfile

            cProfile.run("drain_inbox(tenant_id)", sys.argv[2])
        else:
            drain_inbox(tenant_id)
        print("span", started, time.time(), flush=True)
        if len(sys.argv) > 2:
            for kind, seconds in spent.most_common(15):
                print(f"{seconds:8.2f} s {calls[kind]:6d}  {kind}", flush=True)
    """
)


# ---------------------------------------------------------------- set-up


def database_url(base: str, name: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)


def admin_execute(url: str, sql: str) -> None:
    import sqlalchemy as sa

    from saas.config import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def app_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QUANYI_ENV="development",
        DATABASE_URL=url,
        QUANYI_MASTER_KEY=MASTER_KEY,
        SECRET_KEY="bench",
        QUANYI_INSTANCE_PATH=str(OUT / "instance-drain"),
        PYTHONPATH=str(ROOT),
        MAIL_DIR=str(OUT / "mail-drain"),
    )
    env.pop("REDIS_URL", None)
    return env


def prepare(url: str, keys: int) -> dict[str, Any]:
    """Create a tenant, its plan with `keys` card keys, and a Shopify channel with the SKU mapped."""
    from catalog import inventory
    from catalog import services as catalog_services
    from integrations import channels
    from integrations.channels import ChannelSettings
    from saas.extensions import db
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    app = make_app(url)
    with app.app_context():
        tenant = Tenant(slug=f"bench-{uuid.uuid4().hex[:6]}", name="Bench Shop")
        db.session.add(tenant)
        db.session.commit()
        tenant_id = tenant.id
        with tenant_bound(tenant_id):
            right = catalog_services.create_right({"name": "腾讯视频VIP月卡", "kind": "card_key"})
            bundle = catalog_services.create_bundle({"name": "Bench bundle"})
            catalog_services.set_bundle_items(bundle, [(right.id, 1)])
            plan = catalog_services.create_plan(
                bundle, {"name": "月卡", "price": 3990, "period_unit": "month", "renewable": False}
            )
            catalog_services.change_bundle_status(bundle, "active")
            folder = OUT / "drain-keys"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "keys.txt"
            stamp = uuid.uuid4().hex[:6].upper()
            path.write_text(
                "\n".join(f"K{stamp}{n:010d}----S{stamp}{n:012d}" for n in range(keys)) + "\n",
                encoding="utf-8",
            )
            inventory.import_local_file(
                path, right_id=right.id, supplier="bench", unit_cost="10.00", expires_on=None, options={}
            )
            settings = ChannelSettings(name="Bench")
            channel, _ = channels.create_channel("shopify", settings, secret="shpss_bench")
            channels.add_mapping(channel, "sku", SKU, plan.id)
            return {
                "tenant_id": tenant_id,
                "channel": (channel.id, channel.public_id),
                "right_id": right.id,
                "plan": (plan.id, plan.bundle_id, plan.snapshot()),
            }


def shopify_order(number: int, first: int) -> dict[str, Any]:
    return {
        "id": number,
        "name": f"#{number}",
        "email": f"buyer{number}@example.com",
        "currency": "CNY",
        "financial_status": "paid",
        "total_price": "39.90",
        "created_at": "2026-03-01T10:00:00+08:00",
        "customer": {"id": first + number, "first_name": "Li", "last_name": "Lei"},
        "line_items": [
            {"id": 1, "sku": SKU, "variant_id": 1, "product_id": 1, "quantity": 1, "price": "39.90"}
        ],
    }


def store_inbox(url: str, tenant_id: int, channel_id: int, orders: int, first: int) -> None:
    """Store `orders` paid deliveries in a channel's inbox with COPY (as the owner: no RLS in the way)."""
    import psycopg

    from saas.ids import new_id

    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        columns = (
            "tenant_id, id, channel_id, dedupe_key, topic, status, headers, body, content_type, "
            "external_order_id, note, attempts, duplicates, received_at"
        )
        with cur.copy(f"COPY webhook_inbox ({columns}) FROM STDIN") as copy:
            for n in range(orders):
                number = first + n
                body = json.dumps(shopify_order(number, first)).encode()
                copy.write_row(
                    (
                        tenant_id,
                        new_id(),
                        channel_id,
                        f"shopify:wh-{number}",
                        "orders/paid",
                        "pending",
                        json.dumps({"X-Shopify-Topic": "orders/paid"}),
                        body,
                        "application/json",
                        str(number),
                        "",
                        0,
                        0,
                        now + dt.timedelta(microseconds=n),
                    )
                )
    admin_execute(url, "ANALYZE")


def settled(url: str, tenant_id: int, channel_id: int) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_inbox WHERE tenant_id = %s AND channel_id = %s "
            "AND status NOT IN ('pending', 'processing')",
            (tenant_id, channel_id),
        ).fetchone()
        return int(row[0]) if row else 0


def run_workers(name: str, command: list[list[str]], env: dict[str, str], wait_for: Any, total: int) -> float:
    """Start the processes, wait until `wait_for()` reaches `total`; return the seconds it took.

    Timed by the workers themselves, from the first one's start (after its imports and app set-up) to the
    last one's end.
    """
    logs = [(OUT / f"drain-{name}-{n}.log").open("wb") for n in range(len(command))]
    processes = [
        subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        for args, log in zip(command, logs, strict=True)
    ]
    try:
        for process, log in zip(processes, logs, strict=True):
            process.wait(timeout=3600)
            log.close()
            if process.returncode != 0:
                raise SystemExit(f"a worker failed: see {log.name}")
        spans = [
            line.split()[1:]
            for n in range(len(command))
            for line in (OUT / f"drain-{name}-{n}.log").read_text().splitlines()
            if line.startswith("span ")
        ]
        elapsed = max(float(end) for _start, end in spans) - min(float(start) for start, _end in spans)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    done = wait_for()
    if done != total:
        raise SystemExit(f"only {done} of {total} deliveries were settled")
    return elapsed


# ---------------------------------------------------------------- the reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000, help="deliveries in each inbox")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for each contender")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    parser.add_argument("--profile", action="store_true", help="cProfile our first worker (bench/out)")
    parser.add_argument("--code", help="run our workers on another checkout (e.g. main, for 'before')")
    options = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        raise SystemExit("set BENCH_DATABASE_URL (a PostgreSQL URL whose user may create databases)")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"quanyi_bench_drain_{uuid.uuid4().hex[:8]}"
    admin_execute(base, f'CREATE DATABASE "{name}"')
    url = database_url(base, name)
    try:
        env = app_env(url)
        subprocess.run([str(BIN / "quanyi"), "db", "upgrade"], env=env, check=True, capture_output=True)
        keys = options.orders * 9 // 10
        mine, theirs = prepare(url, keys), prepare(url, keys)  # a tenant each: a drain takes its tenant's
        tenant_id, (ours_channel, _ours_public) = mine["tenant_id"], mine["channel"]
        ref_tenant, (ref_channel, ref_public) = theirs["tenant_id"], theirs["channel"]
        store_inbox(url, tenant_id, ours_channel, options.orders, 1_000_000)
        store_inbox(url, ref_tenant, ref_channel, options.orders, 5_000_000)
        print(f"database {name}: {options.orders} deliveries per contender, {options.workers} worker(s)")

        ours_command = [[sys.executable, "-c", OURS, str(tenant_id)] for _ in range(options.workers)]
        if options.profile:
            ours_command[0].append(str(OUT / "drain.prof"))
        ours_env = dict(env, PYTHONPATH=options.code) if options.code else env
        ours = run_workers(
            "ours",
            ours_command,
            ours_env,
            lambda: settled(url, tenant_id, ours_channel),
            options.orders,
        )
        plan_id, bundle_id, snapshot = theirs["plan"]
        reference_args = [
            sys.executable,
            str(Path(__file__).resolve().parent / "drain_reference.py"),
            url,
            str(ref_tenant),
            str(ref_channel),
            str(theirs["right_id"]),
            str(ROOT),
            str(plan_id),
            str(bundle_id),
            json.dumps(snapshot),
            ref_public,
            str(BATCH),
        ]
        reference = run_workers(
            "reference",
            [reference_args] * options.workers,
            env,
            lambda: settled(url, ref_tenant, ref_channel),
            options.orders,
        )
        check(url, tenant_id)
        check(url, ref_tenant)
        ours_rate, ref_rate = options.orders / ours, options.orders / reference
        print(f"ours: {ours:.1f} s; reference: {reference:.1f} s", flush=True)
        print(
            f"drain: ours={ours_rate:.0f} reference={ref_rate:.0f} ratio={ours_rate / ref_rate:.2f}",
            flush=True,
        )
    finally:
        if not options.keep:
            admin_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check(url: str, tenant_id: int) -> None:
    """Fail unless each order exists once and no key is in two grants."""
    import psycopg

    with psycopg.connect(url) as conn:
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT card_key_id FROM grants WHERE tenant_id = %s "
            "AND card_key_id IS NOT NULL GROUP BY card_key_id HAVING count(*) > 1) AS t",
            (tenant_id,),
        ).fetchone()
        repeated = conn.execute(
            "SELECT count(*) FROM (SELECT channel, external_id FROM orders WHERE tenant_id = %s "
            "GROUP BY channel, external_id HAVING count(*) > 1) AS t",
            (tenant_id,),
        ).fetchone()
    if (twice and twice[0]) or (repeated and repeated[0]):
        raise SystemExit(f"keys in two grants: {twice}; orders twice: {repeated}")


if __name__ == "__main__":
    main()

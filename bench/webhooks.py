"""Benchmark: signed Shopify orders/paid deliveries against our webhook endpoint, and against a reference.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/15 \
        .venv/bin/python bench/webhooks.py --seconds 20

1. Creates a throwaway PostgreSQL database next to BENCH_DATABASE_URL and migrates it with
   `quanyi db upgrade`; adds a tenant, a plan (a generated-code right: no stock to size), a Shopify channel
   with its SKU mapped.
2. Serves the app with gunicorn (2 workers, gthread) on loopback, JOBS_MODE rq with REDIS_URL (or the
   in-process thread runner without it), and a minimal Flask app on the same gunicorn settings that only
   verifies the HMAC and answers 200 (the reference).
3. A load generator (2 processes × threads, keep-alive http.client) sends signed deliveries of distinct
   orders to each in turn, --rounds times, --seconds in all for each: alternating evens out this shared
   machine's drifts, which moved a single pair of runs by ±15%.
4. Counts acknowledged deliveries missing from the inbox (lost), starts one RQ worker (with
   --worker-during-load it ran from the start, competing for the same 2 cores as on a single-machine
   install; otherwise it stands for workers on their own machines), waits for it to drain, and checks that
   every acknowledged order was fulfilled, analyzing the tables every minute meanwhile (autovacuum's work in
   production; this machine runs PostgreSQL without it). The database is dropped at the end (--keep).

Goal: ratio ≥ 0.5, lost = 0, every order fulfilled. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchkit, also when gunicorn imports this module
from benchkit import MASTER_KEY, OUT, ROOT, Children, make_app, post_kept_alive

sys.path.insert(0, str(ROOT))

SECRET = "shpss_bench_app_secret_0123456789"
SKU = "BENCH-VIP-MONTH"
PRICE = "39.90"
BIN = Path(sys.executable).parent
# While the worker drains, the tables are analyzed this often (seconds), as autovacuum would do in production.
# This machine's PostgreSQL runs without autovacuum: unanalyzed, the growing tables kept plans made when they
# were empty (foreign-key checks scanning every order), and the drain ran at half speed (13 vs 25 orders/s).
ANALYZE_EVERY = 60.0


# ---------------------------------------------------------------- the reference app


def reference_app() -> Any:
    """A minimal Flask app that only verifies the Shopify HMAC and answers 200 (gunicorn factory)."""
    from flask import Flask, request

    app = Flask("reference")
    key = SECRET.encode()

    @app.post("/hooks/<public_id>")
    def receive(public_id: str) -> Any:
        body = request.get_data()
        expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
        given = (request.headers.get("X-Shopify-Hmac-Sha256") or "").encode()
        if not hmac.compare_digest(expected, given):
            return {"code": "bad_signature"}, 401
        return {"received": True}, 200

    return app


# An RQ worker that runs jobs in its own process (SimpleWorker): `quanyi worker` forks a work horse per
# job (RQ's default), which costs 1–2 s per job on a loaded 2-core machine.
WORKER = """
from rq import Queue, SimpleWorker
from saas import jobs
from quanyi.app import create_app
app = create_app()
jobs.register_worker_app(app)
with app.app_context():
    connection = jobs.redis_connection(app)
    names = ("integrations", "fulfilment", "mail", "default")
    queues = [Queue(name, connection=connection) for name in names]
    SimpleWorker(queues, connection=connection).work(with_scheduler=False)
"""


# ---------------------------------------------------------------- set-up


def database_url(base: str, name: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)


def admin_execute(base: str, sql: str, database: str | None = "postgres") -> None:
    """Run `sql` as BENCH_DATABASE_URL's user, in `database` (None: the one `base` names)."""
    import sqlalchemy as sa

    from saas.config import sqlalchemy_url

    url = database_url(base, database) if database else base
    engine = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def app_env(url: str, redis_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QUANYI_ENV="development",
        DATABASE_URL=url,
        QUANYI_MASTER_KEY=MASTER_KEY,
        SECRET_KEY="bench",
        QUANYI_INSTANCE_PATH=str(OUT / "instance-webhooks"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def prepare(url: str) -> tuple[int, int, str]:
    """Create the tenant, plan and Shopify channel; return (tenant id, channel id, public id)."""
    from catalog import services as catalog_services
    from integrations import channels
    from integrations.channels import ChannelSettings
    from tenants.models import Tenant
    from tenants.scoping import tenant_bound

    app = make_app(url)
    from saas.extensions import db

    with app.app_context():
        tenant = Tenant(slug=f"bench-{uuid.uuid4().hex[:6]}", name="Bench Shop")
        db.session.add(tenant)
        db.session.commit()
        tenant_id = tenant.id
        with tenant_bound(tenant_id):
            right = catalog_services.create_right(
                {
                    "name": "美团外卖红包",
                    "kind": "code",
                    "face_value": 1500,
                    "code_prefix": "MT",
                    "code_length": 12,
                }
            )
            bundle = catalog_services.create_bundle({"name": "Bench bundle"})
            catalog_services.set_bundle_items(bundle, [(right.id, 1)])
            plan = catalog_services.create_plan(
                bundle, {"name": "月卡", "price": 3990, "period_unit": "month"}
            )
            catalog_services.change_bundle_status(bundle, "active")  # a draft's orders are refused
            channel, _ = channels.create_channel(
                "shopify", ChannelSettings(name="Bench Shopify"), secret=SECRET
            )
            channels.add_mapping(channel, "sku", SKU, plan.id)
            return tenant_id, channel.id, channel.public_id


# ---------------------------------------------------------------- serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gunicorn(
    children: Children, target: str, env: dict[str, str], port: int, threads: int
) -> subprocess.Popen[bytes]:
    process = children.start(
        [
            str(BIN / "gunicorn"),
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
            target,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    children.stop(process)
    raise SystemExit(f"gunicorn did not start: {process.stderr.read().decode() if process.stderr else ''}")


# ---------------------------------------------------------------- load


def delivery(order_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "email": f"buyer{order_id % 1000}@example.com",
            "currency": "CNY",
            "financial_status": "paid",
            "total_price": PRICE,
            "created_at": "2026-03-01T10:00:00+08:00",
            "customer": {"id": order_id % 5000, "first_name": "Bench", "last_name": "Buyer"},
            "line_items": [
                {
                    "id": 1,
                    "sku": SKU,
                    "variant_id": 1,
                    "product_id": 1,
                    "quantity": 1,
                    "price": PRICE,
                    "title": "Bench bundle",
                }
            ],
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Webhook-Id": f"wh-{order_id}",
        "X-Shopify-Hmac-Sha256": base64.b64encode(
            hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
        ).decode(),
        "X-Shopify-Api-Version": "2025-07",
    }
    return body, headers


def _thread_load(
    port: int,
    path: str,
    seconds: float,
    first_id: int,
    max_requests: int,
    results: list[tuple[int, float, int]],
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.monotonic() + seconds
    order_id = first_id
    while time.monotonic() < deadline and order_id < first_id + max_requests:
        body, headers = delivery(order_id)
        started = time.monotonic()
        connection, status = post_kept_alive(connection, path, body, headers)
        results.append((order_id, time.monotonic() - started, status))
        order_id += 1
    connection.close()


def _process_load(args: tuple[int, str, float, int, int, int]) -> list[tuple[int, float, int]]:
    port, path, seconds, process_index, threads, max_requests = args
    results: list[tuple[int, float, int]] = []
    workers = [
        threading.Thread(
            target=_thread_load,
            args=(port, path, seconds, 10**9 + (process_index * 100 + t) * 10**5, max_requests, results),
        )
        for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def warm_up(port: int, path: str, count: int = 40) -> list[int]:
    """Send a few deliveries first (imports, connections, caches); return the acknowledged ids."""
    results: list[tuple[int, float, int]] = []
    threads = [
        threading.Thread(
            target=_thread_load, args=(port, path, 30.0, 9 * 10**8 + t * 1000, count // 4, results)
        )
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [order_id for order_id, _latency, status in results if 200 <= status < 300]


def run_load(
    port: int, path: str, seconds: float, processes: int, threads: int, round_index: int
) -> dict[str, Any]:
    """Send deliveries of distinct orders for `seconds`; return rate, latencies and the acknowledged ids."""
    pool = multiprocessing.get_context("spawn").Pool(processes)
    pool.map(abs, range(processes))  # the load processes exist before the clock starts
    started = time.monotonic()
    with pool:
        parts = pool.map(
            _process_load,
            [(port, path, seconds, round_index * 10 + p, threads, 100_000) for p in range(processes)],
        )
    elapsed = time.monotonic() - started
    results = [r for part in parts for r in part]
    acknowledged = [order_id for order_id, _latency, status in results if 200 <= status < 300]
    return {
        "elapsed": elapsed,
        "latencies": [latency for _id, latency, _status in results],
        "acknowledged": acknowledged,
        "errors": len(results) - len(acknowledged),
    }


def summary(rounds: list[dict[str, Any]], warmed: list[int]) -> dict[str, Any]:
    """Combine an app's rounds: requests per second over all of them, p99, every acknowledged order id."""
    acknowledged = [order_id for r in rounds for order_id in r["acknowledged"]]
    latencies = sorted(latency for r in rounds for latency in r["latencies"])
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return {
        "rate": len(acknowledged) / sum(r["elapsed"] for r in rounds),
        "p99_ms": p99,
        "acknowledged": warmed + acknowledged,
        "errors": sum(r["errors"] for r in rounds),
    }


# ---------------------------------------------------------------- checking


def inbox_and_orders(
    url: str, tenant_id: int, channel_id: int, public_id: str
) -> tuple[set[str], dict[str, int], set[str]]:
    """Return the stored dedupe keys, the inbox rows by status, and the fulfilled external order ids."""
    import sqlalchemy as sa

    from saas.config import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        keys = {
            k
            for (k,) in conn.execute(
                sa.text("SELECT dedupe_key FROM webhook_inbox WHERE tenant_id = :t AND channel_id = :c"),
                {"t": tenant_id, "c": channel_id},
            )
        }
        statuses = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM webhook_inbox WHERE tenant_id = :t GROUP BY status"),
                {"t": tenant_id},
            ).all()
        )
        fulfilled = {
            e
            for (e,) in conn.execute(
                sa.text(
                    "SELECT external_id FROM orders "
                    "WHERE tenant_id = :t AND channel = :c AND status = 'fulfilled'"
                ),
                {"t": tenant_id, "c": public_id},
            )
        }
    engine.dispose()
    return keys, {str(k): int(v) for k, v in statuses.items()}, fulfilled


def start_worker(children: Children, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (OUT / "webhooks-worker.log").open("wb")
    return children.start([sys.executable, "-c", WORKER], env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per app, over all rounds")
    parser.add_argument("--rounds", type=int, default=2, help="turns each app gets, alternating")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per load generator process")
    parser.add_argument("--server-threads", type=int, default=4, help="gthread threads per gunicorn worker")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    parser.add_argument(
        "--worker-during-load", action="store_true", help="run the RQ worker during the load too"
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="measure the web path alone (nothing drains)"
    )
    options = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        raise SystemExit("set BENCH_DATABASE_URL (a PostgreSQL URL whose user may create databases)")
    redis_url = os.environ.get("REDIS_URL")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"quanyi_bench_webhooks_{uuid.uuid4().hex[:8]}"
    admin_execute(base, f'CREATE DATABASE "{name}"')
    url = database_url(base, name)
    children = Children()  # every process started below is stopped with its descendants, whatever happens
    try:
        env = app_env(url, redis_url)
        subprocess.run([str(BIN / "quanyi"), "db", "upgrade"], env=env, check=True, capture_output=True)
        tenant_id, channel_id, public_id = prepare(url)
        path = f"/hooks/{public_id}"
        print(f"mode: {'rq ' + redis_url if redis_url else 'thread'}; database {name}", flush=True)
        if redis_url:
            from redis import Redis
            from rq import Queue

            connection = Redis.from_url(redis_url)
            for queue in ("integrations", "fulfilment", "mail", "default"):
                Queue(queue, connection=connection).empty()  # nothing left over from an earlier run

        servers = {}
        for app, target in (("ref", "bench.webhooks:reference_app()"), ("ours", "wsgi:app")):
            servers[app] = free_port()  # taken by this gunicorn before the next port is picked
            start_gunicorn(children, target, env, servers[app], options.server_threads)
        ref_port, our_port = servers["ref"], servers["ours"]
        warmed = {"ref": warm_up(ref_port, path), "ours": warm_up(our_port, path)}
        if options.worker_during_load and redis_url and not options.no_worker:
            start_worker(children, env)
        turns: dict[str, list[dict[str, Any]]] = {"ref": [], "ours": []}
        seconds = options.seconds / options.rounds
        for round_index in range(options.rounds):
            for app, port in (("ref", ref_port), ("ours", our_port)):
                turn = run_load(port, path, seconds, options.processes, options.threads, round_index)
                turns[app].append(turn)
                rate = len(turn["acknowledged"]) / turn["elapsed"]
                print(f"round {round_index + 1}: {app} {rate:.0f} req/s, errors {turn['errors']}", flush=True)
        ref, ours = summary(turns["ref"], warmed["ref"]), summary(turns["ours"], warmed["ours"])
        print(
            f"reference: {ref['rate']:.0f} req/s, p99 {ref['p99_ms']:.1f} ms, errors {ref['errors']}; "
            f"ours: {ours['rate']:.0f} req/s, p99 {ours['p99_ms']:.1f} ms, errors {ours['errors']}",
            flush=True,
        )

        acknowledged = {f"shopify:wh-{order_id}" for order_id in ours["acknowledged"]}
        keys, _statuses, _done = inbox_and_orders(url, tenant_id, channel_id, public_id)
        lost = len(acknowledged - keys)
        if redis_url and not options.no_worker and not options.worker_during_load:
            start_worker(children, env)
        wanted = {str(order_id) for order_id in ours["acknowledged"]}
        deadline = time.monotonic() + (0 if options.no_worker else options.drain_timeout)
        drain_started = last_analyzed = time.monotonic()
        while True:
            _keys, statuses, fulfilled = inbox_and_orders(url, tenant_id, channel_id, public_id)
            if wanted <= fulfilled or time.monotonic() > deadline:
                break
            if time.monotonic() - last_analyzed > ANALYZE_EVERY:
                print(f"draining: {len(wanted & fulfilled)} of {len(wanted)} fulfilled", flush=True)
                admin_execute(url, "ANALYZE", database=None)
                last_analyzed = time.monotonic()
            time.sleep(5)
        drained = time.monotonic() - drain_started
        missing = len(wanted - fulfilled)
        print(
            f"inbox: {statuses}; fulfilled {len(wanted & fulfilled)} of {len(wanted)} acknowledged orders "
            f"({drained:.0f} s after the load), not fulfilled: {missing}",
            flush=True,
        )
        ratio = ours["rate"] / ref["rate"] if ref["rate"] else 0.0
        print(
            f"webhooks: ours={ours['rate']:.0f} reference={ref['rate']:.0f} ratio={ratio:.2f} "
            f"p99_ms={ours['p99_ms']:.0f} lost={lost}",
            flush=True,
        )
    finally:
        children.stop_all()
        if not options.keep:
            admin_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

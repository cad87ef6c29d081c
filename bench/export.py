"""Benchmark: a reconciliation CSV of N detail lines through the product, against `COPY (same query)`.

    export BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/quanyi_bench_export
    .venv/bin/python bench/export.py --lines 1000000

1. Recreates the schema (as the owner, with row-level security) and generates one tenant's January with
   INSERT … SELECT generate_series: orders on a channel with fees, one or two lines each, a delivered
   grant per line, and refunds — N detail lines in all (95 % order lines, 5 % refunds).
2. reference: `COPY (<the run's detail query>) TO STDOUT (FORMAT csv, HEADER)` into a file — the same
   SQL the product streams, with PostgreSQL formatting the rows itself (run twice; the faster counts).
3. ours: `reports.reconciliation.services.create_run(…, formats=("csv",))` as the app's own role under
   RLS — the job the back office starts: count for progress, stream the detail through a server-side
   cursor, sum it, write the CSV (BOM, tenant-local dates, exact money, formula-safe text),
   hash it, store the run.

The database named by BENCH_DATABASE_URL is created if missing and its tables are recreated: point it at
a database of its own. Goal: ours ≤ 3 × reference, peak RSS ≤ 300 MB. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    APP_ROLE,
    OUT,
    ROOT,
    ensure_postgres_database,
    fresh_schema,
    make_app,
    peak_rss_mb,
)

sys.path.insert(0, str(ROOT))

TENANT_ID = 1_000_001
CHANNEL_ID = 2_000_001
REFUND_SHARE = 20  # one detail line in 20 is a refund
TWO_LINE_EVERY = 4  # every 4th order has a second line


def generate(owner_dsn: str, lines: int) -> dict[str, int]:
    """Write one tenant's January of `lines` detail lines with INSERT … SELECT generate_series."""
    import psycopg

    refunds = lines // REFUND_SHARE
    sale_lines = lines - refunds
    # orders + orders / TWO_LINE_EVERY = sale_lines
    orders = sale_lines * TWO_LINE_EVERY // (TWO_LINE_EVERY + 1)
    second_lines = sale_lines - orders
    january = "TIMESTAMPTZ '2025-12-31 16:00:00+00'"  # 1 January, 00:00 in Shanghai
    spread = f"{january} + (n::bigint * (31 * 86400 - 1) / {orders}) * INTERVAL '1 second'"
    statements = [
        f"""INSERT INTO tenants (id, slug, name, time_zone, locale, currency, settings, created_at)
            VALUES ({TENANT_ID}, 'bench', '基准测试商户 Bench', 'Asia/Shanghai', 'zh_CN', 'CNY', '{{}}',
              now())""",
        f"""INSERT INTO channels (tenant_id, id, kind, name, public_id, status, currency, secret_hint,
              fee_percent_bp, fee_fixed, price_tolerance_bp, settings, created_at, updated_at)
            VALUES ({TENANT_ID}, {CHANNEL_ID}, 'generic', '天猫旗舰店', 'tmall', 'active', 'CNY', '',
              250, 30, 100, '{{}}', now(), now())""",
        f"""INSERT INTO orders (tenant_id, id, channel, external_id, source, status, currency, total,
              refunded_amount, note, created_by, created_at, placed_at, paid_at, fulfilled_at)
            SELECT {TENANT_ID}, n, 'tmall', 'TM' || lpad(n::text, 12, '0'), 'channel', 'fulfilled', 'CNY',
              CASE WHEN n % {TWO_LINE_EVERY} = 0 THEN 1990 + 990 ELSE 1990 END, 0, '', 'bench',
              {spread}, {spread}, {spread}, {spread}
            FROM generate_series(1, {orders}) AS n""",
        f"""INSERT INTO order_lines (tenant_id, id, order_id, position, sku, title, quantity, unit_price,
              currency, total, refunded_amount, snapshot)
            SELECT {TENANT_ID}, n, n, 0, 'VIP-M', '视频会员月卡 · 月卡', 1, 1990, 'CNY', 1990, 0, '{{}}'
            FROM generate_series(1, {orders}) AS n""",
        f"""INSERT INTO order_lines (tenant_id, id, order_id, position, sku, title, quantity, unit_price,
              currency, total, refunded_amount, snapshot)
            SELECT {TENANT_ID}, 100000000 + n, n, 1, 'MUSIC-M', '音乐会员月卡 · 月卡', 1, 990, 'CNY', 990, 0,
              '{{}}'
            FROM generate_series({TWO_LINE_EVERY}, {orders}, {TWO_LINE_EVERY}) AS n
            LIMIT {second_lines}""",
        f"""INSERT INTO grants (tenant_id, id, order_id, order_line_id, unit_index, item_index, right_id,
              right_name, kind, status, mask, link_url, unit_cost, created_at, delivered_at,
              topup_attempts, refunded_amount)
            SELECT {TENANT_ID}, l.id, l.order_id, l.id, 0, 0, 1, '视频月卡', 'card_key', 'delivered', '****',
              '', CASE WHEN l.position = 0 THEN 800 ELSE 500 END, o.paid_at, o.paid_at, 0, 0
            FROM order_lines l JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
            WHERE l.tenant_id = {TENANT_ID}""",
        f"""INSERT INTO refunds (tenant_id, id, order_id, order_line_id, grant_ids, scope, amount, currency,
              reason, source, actor, created_at)
            SELECT {TENANT_ID}, n, n * {REFUND_SHARE // 2}, NULL, '[]', 'order', 1990, 'CNY', '客户申请退款',
              'back_office', 'bench',
              {january} + (n::bigint * (31 * 86400 - 1) / {refunds}) * INTERVAL '1 second'
            FROM generate_series(1, {refunds}) AS n""",
    ]
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("ANALYZE")
        counted = conn.execute(
            "SELECT (SELECT count(*) FROM order_lines), (SELECT count(*) FROM refunds)"
        ).fetchone()
    assert counted is not None
    return {"orders": orders, "sale_lines": int(counted[0]), "refunds": int(counted[1])}


def january_run_values(app: Any) -> tuple[Any, Any]:
    """Return the January period and an unsaved run describing it (for the reference's SQL)."""
    from reports.reconciliation import services
    from reports.reconciliation.models import ReconciliationRun
    from tenants.scoping import tenant_bound

    with app.app_context(), tenant_bound(TENANT_ID):
        period = services.parse_month("2026-01", "Asia/Shanghai")
        run = ReconciliationRun(
            period_kind=period.kind,
            period_label=period.label,
            starts_on=period.starts_on,
            ends_on=period.ends_on,
            period_start=period.start,
            period_end=period.end,
            time_zone=period.zone,
            currency="CNY",
        )
        return period, run


def run_reference(owner_dsn: str, run: Any, path: Path) -> float:
    """COPY the run's detail query to a file; return seconds."""
    import re

    import psycopg

    from reports.reconciliation import services

    sql = re.sub(r":(\w+)", r"%(\1)s", services.detail_sql(one_channel=False))
    params = {**services.detail_parameters(run), "tenant_id": TENANT_ID}
    with psycopg.connect(owner_dsn) as conn:
        query = psycopg.ClientCursor(conn).mogrify(sql, params)
        started = time.perf_counter()
        conn.execute(services.REPORT_SESSION_SETTINGS)  # type: ignore[arg-type]  (as the product)
        with (
            path.open("wb") as out,
            conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy,  # type: ignore[arg-type]
        ):
            for block in copy:
                out.write(block)
        return time.perf_counter() - started


def run_ours(app: Any, period: Any) -> tuple[float, tuple[int, str], Path]:
    """Make a CSV-only run through the product; return seconds, its (lines, status) and its file."""
    from reports.reconciliation import services
    from reports.reconciliation.services import RunRequest
    from tenants.scoping import tenant_bound

    with app.app_context(), tenant_bound(TENANT_ID):
        started = time.perf_counter()
        run = services.create_run(RunRequest(period, None, ("csv",)), created_by="bench")
        seconds = time.perf_counter() - started
        [export] = services.files_of(run.id)
        return seconds, (run.line_count, run.status), Path(app.config["FILES_DIR"]) / export.path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000, help="detail lines in the run")
    parser.add_argument("--keep-data", action="store_true", help="reuse the data of the previous run")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url or not url.startswith("postgres"):
        sys.exit("set BENCH_DATABASE_URL to a PostgreSQL database of its own")
    import sqlalchemy as sa

    OUT.mkdir(parents=True, exist_ok=True)
    owner_dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    ensure_postgres_database(url)
    app_url = str(sa.engine.make_url(url).set(username=APP_ROLE, password=None).render_as_string(False))
    if not args.keep_data:
        started = time.perf_counter()
        app_url = fresh_schema(url)
        counts = generate(owner_dsn, args.lines)
        print(f"generated {counts} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    app = make_app(app_url)
    period, run = january_run_values(app)
    reference_file = OUT / "reference.csv"
    first = run_reference(owner_dsn, run, reference_file)
    ours, made, our_file = run_ours(app, period)
    second = run_reference(owner_dsn, run, reference_file)
    reference = min(first, second)
    lines, status = made
    rss = peak_rss_mb()
    print(
        f"lines={lines} status={status} reference runs={first:.2f}s,{second:.2f}s"
        f" ours_file={our_file.stat().st_size // 10**6}MB"
        f" reference_file={reference_file.stat().st_size // 10**6}MB",
        file=sys.stderr,
    )
    print(f"export: ours={ours:.2f} reference={reference:.2f} ratio={ours / reference:.2f} rss_mb={rss}")


if __name__ == "__main__":
    main()

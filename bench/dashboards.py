"""Benchmark: every dashboard dataset through the app's own query path vs one hand-written SQL aggregate.

    export BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/quanyi_bench_dashboards
    .venv/bin/python bench/dashboards.py --orders 1000000 --grants 3000000

1. Recreates the schema (as the owner, with row-level security and the app's non-owner role) and fills it
   with INSERT … SELECT generate_series: a tenant with --orders orders over the last 365 days and --grants
   grants (delivered, ~60 % redeemed, 5 % of orders refunded ten days later), card-key stock, channels with
   fees and daily spend, subscriptions with renewals and cancellations; plus two tenants of a fifth the size
   as noise. VACUUM ANALYZE.
2. Builds the tenant's rollups with the product's `rebuild_rollups()` (timed, reported).
3. For each dataset and two periods (the last 90 days, the last 365 days): ours = the function the pages
   and the API call, as the app's database role under RLS; reference = one hand-written SQL aggregate over
   the raw tables for the same numbers, on the same connection. The numbers are asserted equal. Each side
   runs once to warm up, then the best of three is kept.

The last line is machine-readable: `dashboards: ours=<s> reference=<s> ratio=<x>` for the dataset whose own
path is slowest. Goal: ratio ≤ 1.0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from benchkit import APP_ROLE, ROOT, ensure_postgres_database, fresh_schema, make_app

sys.path.insert(0, str(ROOT))

ZONE = "Asia/Shanghai"
BUNDLES = 5
CHANNELS = ("ch_0", "ch_1", "ch_2", "ch_3", "shop")  # the first four are connected channels
SPAN_DAYS = 365
KEYS_PER_RIGHT = 20_000


# ---------------------------------------------------------------- data


def fill_tenant(conn: Any, tenant_id: int, slug: str, orders: int, per_order: int, now: dt.datetime) -> None:
    """Insert one tenant's catalog, channels, orders, lines, grants, refunds, stock and subscriptions."""
    from sqlalchemy import text

    rights = BUNDLES * per_order
    p = {"t": tenant_id, "n": orders, "g": per_order, "now": now, "span": SPAN_DAYS * 86400, "tz": ZONE}

    def run(sql: str, **extra: Any) -> None:
        conn.execute(text(sql), {**p, **extra})

    run(
        "INSERT INTO tenants (id, slug, name, time_zone, locale, currency, settings, created_at) "
        "VALUES (:t, :slug, :slug, :tz, 'zh_CN', 'CNY', '{}', :now)",
        slug=slug,
    )
    run(
        """INSERT INTO rights (tenant_id, id, name, provider, description, kind, face_value, unit_cost,
          currency,
               reusable, max_deliveries, code_prefix, code_length, topup_settings, link_url,
                 created_at, updated_at)
           SELECT :t, r, '权益 ' || r, '', '',
                  CASE WHEN r % 5 < 3 THEN 'card_key' WHEN r % 5 = 3 THEN 'code' ELSE 'topup' END,
                  1000, 300 + 10 * r, 'CNY', false, 1, '', 12, '{}', '', :now, :now
           FROM generate_series(1, :rights) r""",
        rights=rights,
    )
    run(
        """INSERT INTO bundles (tenant_id, id, name, description, cover_text, status, created_at, updated_at)
           SELECT :t, 1000 + b, '权益包 ' || b, '', '', 'active', :now, :now FROM generate_series(0, 4) b"""
    )
    run(
        """INSERT INTO bundle_items (tenant_id, id, bundle_id, right_id, quantity, position)
           SELECT :t, 2000 + b * :g + k, 1000 + b, 1 + b * :g + k, 1, k
           FROM generate_series(0, 4) b, generate_series(0, :g - 1) k"""
    )
    run(
        """INSERT INTO plans (tenant_id, id, bundle_id, name, period_unit, price, currency, renewable,
          position,
               version, created_at, updated_at)
           SELECT :t, 3000 + b, 1000 + b, '月卡 ' || b, 'month', 1990 + 1000 * b, 'CNY', true, 0, 1,
                  :now, :now
           FROM generate_series(0, 4) b"""
    )
    run(
        """INSERT INTO channels (tenant_id, id, kind, name, public_id, status, currency, secret_hint,
               fee_percent_bp, fee_fixed, price_tolerance_bp, settings, created_at, updated_at)
           SELECT :t, 4000 + c, 'generic', '渠道 ' || c, 'ch_' || c, 'active', 'CNY', '',
                  200 + 50 * c, 10 * c, 100, '{}', :now, :now
           FROM generate_series(0, 3) c"""
    )
    run(
        """INSERT INTO channel_spend (tenant_id, id, channel_id, day, amount, currency, category, note,
               created_by, created_at)
           SELECT :t, 5000 + c * 1000 + d, 4000 + c, CAST((:now AT TIME ZONE :tz) AS DATE) - d,
                  10000 + 1000 * c, 'CNY', 'ad_spend', '', 'bench', :now
           FROM generate_series(0, 3) c, generate_series(0, :span / 86400) d"""
    )
    # Orders: paid evenly over the last year; channel cycles every order, bundle every five.
    run(
        """CREATE TEMP TABLE bench_orders ON COMMIT DROP AS
           SELECT i::bigint AS i, 100000000 + i::bigint AS id,
                  :now - make_interval(secs => (i::float8 * :span / :n)) AS paid_at,
                  (ARRAY['ch_0','ch_1','ch_2','ch_3','shop'])[1 + i % 5] AS channel,
                  (i / 5) % 5 AS b, i % 20 = 0 AS refunded
           FROM generate_series(1, :n) i"""
    )
    run(
        """INSERT INTO orders (tenant_id, id, channel, external_id, source, status, currency, total,
               refunded_amount, note, created_by, created_at, placed_at, paid_at, fulfilled_at, refunded_at)
           SELECT :t, id, channel, 'B' || i, 'channel', CASE WHEN refunded
             THEN 'refunded' ELSE 'fulfilled' END,
                  'CNY', 1990 + 1000 * b, CASE WHEN refunded THEN 1990 + 1000 * b ELSE 0 END, '', 'bench',
                  paid_at, paid_at, paid_at, paid_at, NULL
           FROM bench_orders"""
    )
    run(
        """INSERT INTO order_lines (tenant_id, id, order_id, position, plan_id, bundle_id, sku, title,
          quantity,
               unit_price, currency, total, refunded_amount, snapshot)
           SELECT :t, id, id, 0, 3000 + b, 1000 + b, '', '月卡 ' || b, 1, 1990 + 1000 * b, 'CNY',
                  1990 + 1000 * b, CASE WHEN refunded THEN 1990 + 1000 * b ELSE 0 END, '{}'
           FROM bench_orders"""
    )
    # Grants: per_order per order; ~60 % redeemed after a skewed number of seconds (0 – 23 days).
    run(
        """INSERT INTO grants (tenant_id, id, order_id, order_line_id, unit_index, item_index,
          right_id, right_name,
               kind, status, mask, link_url, unit_cost, created_at, refunded_amount, topup_attempts,
               queued_at, delivered_at, redeemed_at, seconds_to_redeem, revoked_at)
           SELECT :t, 1000000000::bigint + o.i * :g + k, o.id, o.id, 0, k, 1 + o.b * :g + k, '权益',
                  CASE WHEN (o.b * :g + k + 1) % 5 < 3 THEN 'card_key'
                       WHEN (o.b * :g + k + 1) % 5 = 3 THEN 'code' ELSE 'topup' END,
                  CASE WHEN o.refunded AND x.r >= 6 THEN 'revoked' WHEN x.r < 6
                    THEN 'redeemed' ELSE 'delivered' END,
                  '', '', 300 + 10 * (1 + o.b * :g + k), o.paid_at, 0, 0,
                  o.paid_at, o.paid_at + interval '5 seconds',
                  CASE WHEN x.r < 6 THEN o.paid_at + interval '5 seconds' + make_interval(secs => x.s) END,
                  CASE WHEN x.r < 6 THEN x.s END,
                  CASE WHEN o.refunded AND x.r >= 6 THEN o.paid_at + interval '10 days' END
           FROM bench_orders o CROSS JOIN generate_series(0, :g - 1) k
           CROSS JOIN LATERAL (SELECT ((o.i * 7 + k * 3) % 10) AS r,
                                      ((o.i * 2654435761 + k * 40503) % 2000003)::bigint
                                      * ((o.i * 40503 + k * 7919) % 2000003)::bigint / 2000003 AS s) x"""
    )
    run(
        """INSERT INTO refunds (tenant_id, id, order_id, grant_ids, scope, amount, currency, reason,
          source, actor,
               created_at)
           SELECT :t, id, id, '[]', 'order', 1990 + 1000 * b, 'CNY', 'bench', 'back_office', 'bench',
                  LEAST(paid_at + interval '10 days', :now)
           FROM bench_orders WHERE refunded"""
    )
    run(
        """INSERT INTO card_keys (tenant_id, id, right_id, status, code_hash, ciphertext, mask,
          max_deliveries,
               delivery_count, created_at)
           SELECT :t, 2000000000::bigint + r * 1000000 + k, r, 'available',
                  decode(md5(:t || '-' || r || '-' || k), 'hex'), '\\x00'::bytea, '****', 1, 0, :now
           FROM generate_series(1, :rights) r, generate_series(1, :keys) k WHERE r % 5 < 3""",
        rights=rights,
        keys=KEYS_PER_RIGHT * max(1, orders // 1_000_000) if orders >= 1_000_000 else max(100, orders // 50),
    )
    # Subscriptions: every tenth order; renewed a month later (5 days early … 5 late) unless i % 20 = 1.
    run(
        """INSERT INTO subscriptions (tenant_id, id, order_id, order_line_id, plan_id, plan_name, bundle_name,
               period_unit, quantity, price, currency, channel, status, auto_renew, time_zone, anchor_at,
               anchor_period, current_period_number, current_period_start, current_period_end, started_at,
               created_at, updated_at)
           SELECT :t, id, id, id, 3000 + b, '月卡 ' || b, '权益包 ' || b, 'month', 1, 1990 + 1000 * b, 'CNY',
                  channel, CASE WHEN i % 30 = 1 THEN 'canceled' ELSE 'active' END, i % 3 <> 0, :tz,
                    paid_at, 1, 2,
                  paid_at + interval '30 days', paid_at + interval '60 days', paid_at, paid_at, paid_at
           FROM bench_orders WHERE i % 10 = 1"""
    )
    run(
        """INSERT INTO subscription_renewals (tenant_id, id, subscription_id, period_number, idempotency_key,
               channel, plan_id, plan_name, period_unit, amount, currency, paid_at, due_at, days_from_due,
               seconds_from_due, timing, status_before, reactivated, period_start, period_end, order_channel,
               order_external_id, actor, recorded_at)
           SELECT :t, id, id, 2, 'r' || i, channel, 3000 + b, '月卡 ' || b, 'month', 1990 + 1000 * b, 'CNY',
                  paid_at + interval '30 days' + make_interval(days => ((i % 11) - 5)::int),
                  paid_at + interval '30 days', (i % 11) - 5, ((i % 11) - 5) * 86400,
                  CASE WHEN i % 11 < 5 THEN 'early' WHEN i % 11 = 5 THEN 'on_time' ELSE 'late' END,
                  'active', false, paid_at + interval '30 days', paid_at + interval '60 days', channel,
                    'B' || i,
                  'bench', paid_at + interval '30 days'
           FROM bench_orders
           WHERE i % 10 = 1 AND i % 20 <> 1
             AND paid_at + interval '30 days' + make_interval(days => ((i % 11) - 5)::int) <= :now"""
    )
    run(
        """INSERT INTO subscription_cancellations (tenant_id, id, subscription_id, ticket_number, kind,
          source,
               reason_code, reason_text, requested_at, effective_at, refund_policy, refundable_amount,
                 currency,
               days_total, days_unused, refund_status, actor)
           SELECT :t, id, id, 'T' || i, 'at_period_end', 'customer',
                  (ARRAY['no_longer_needed','too_expensive','unsatisfied','other'])[1 + (i / 30) % 4], '',
                  LEAST(paid_at + interval '20 days', :now), paid_at + interval '30 days', 'none', 0, 'CNY',
                  30, 0, 'none', 'bench'
           FROM bench_orders WHERE i % 30 = 1"""
    )
    run("DROP TABLE bench_orders")


def generate(owner_url: str, orders: int, grants: int, now: dt.datetime) -> list[int]:
    """Fill the bench tenant and two noise tenants; return their ids (the bench tenant first)."""
    import sqlalchemy as sa

    engine = sa.create_engine(owner_url)
    per_order = max(1, grants // orders)
    tenants = [
        (9001, "bench", orders),
        (9002, "noise-a", max(1, orders // 5)),
        (9003, "noise-b", max(1, orders // 5)),
    ]
    for tenant_id, slug, count in tenants:
        started = time.perf_counter()
        with engine.begin() as conn:
            fill_tenant(conn, tenant_id, slug, count, per_order, now)
        print(
            f"  {slug}: {count:,} orders, {count * per_order:,} grants in"
            f" {time.perf_counter() - started:.1f} s"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return [t[0] for t in tenants]


# ---------------------------------------------------------------- the comparisons


def reference(sql: str, params: dict[str, Any]) -> list[Any]:
    """Run a hand-written aggregate on the app's connection (same role, same RLS, tenant bound)."""
    from tenants.scoping import tenant_query

    return list(tenant_query(sql, params))


def as_map(rows: list[Any]) -> dict[Any, tuple[Any, ...]]:
    return {row[0]: tuple(int(v) if v is not None else None for v in row[1:]) for row in rows}


def datasets_to_compare(
    filters: Any, params: dict[str, Any]
) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """Return (name, ours, reference) pairs; each callable returns comparable numbers."""
    from reports import datasets

    names = {
        "bundles": datasets.bundle_names(),
        "rights": datasets.right_names(),
        "channels": datasets.channel_names(),
    }
    day = "CAST((%s AT TIME ZONE :tz) AS DATE)"

    def ours_sales_over_time() -> Any:
        table = datasets.sales_over_time(filters, "CNY")
        return {
            dt.date.fromisoformat(r["day"]): (r["orders"], r["revenue"]) for r in table.rows if r["orders"]
        }

    def ref_sales_over_time() -> Any:
        return as_map(
            reference(
                f"""SELECT {day % "paid_at"}, COUNT(*), SUM(total) FROM orders
                    WHERE tenant_id = :tenant_id AND paid_at >= :start AND paid_at < :end AND currency = 'CNY'
                    GROUP BY 1""",
                params,
            )
        )

    def ours_by_bundle() -> Any:
        return {
            r["bundle"]: (r["orders"], r["units"], r["revenue"])
            for r in datasets.sales_by_bundle(filters, "CNY").rows
        }

    def ref_by_bundle() -> Any:
        rows = reference(
            """SELECT l.bundle_id, COUNT(DISTINCT o.id), SUM(l.quantity), SUM(l.total)
               FROM order_lines l JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
               WHERE l.tenant_id = :tenant_id AND o.paid_at >= :start AND o.paid_at < :end
                 AND l.currency = 'CNY'
               GROUP BY l.bundle_id""",
            params,
        )
        return {names["bundles"][row[0]]: tuple(int(v) for v in row[1:]) for row in rows}

    def ours_stock() -> Any:
        return {r["right"]: (r["available"], r["delivered_30d"]) for r in datasets.stock_rows(filters)}

    def ref_stock() -> Any:
        rows = reference(
            f"""SELECT r.name,
                   (SELECT COALESCE(SUM(k.max_deliveries - k.delivery_count), 0) FROM card_keys k
                     WHERE k.tenant_id = r.tenant_id AND k.right_id = r.id AND k.status = 'available'),
                   (SELECT COUNT(*) FROM grants g WHERE g.tenant_id = r.tenant_id AND g.right_id = r.id
                     AND {day % "g.delivered_at"} > CAST((:now AT TIME ZONE :tz) AS DATE) - 30
                     AND g.delivered_at < :now + interval '1 day')
               FROM rights r WHERE r.tenant_id = :tenant_id AND r.kind = 'card_key'
                 AND r.archived_at IS NULL""",
            params,
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}

    grant_sums = """SUM(CASE WHEN g.status <> 'revoked' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN g.redeemed_at IS NOT NULL AND g.status <> 'revoked' THEN 1 ELSE 0 END)"""
    grant_where = "g.tenant_id = :tenant_id AND g.delivered_at >= :start AND g.delivered_at < :end"

    def ours_redemption_over_time() -> Any:
        table, _ = datasets.redemption_over_time(filters)
        return {
            dt.date.fromisoformat(r["day"]): (r["delivered"], r["redeemed"])
            for r in table.rows
            if r["delivered"]
        }

    def ref_redemption_over_time() -> Any:
        rows = reference(
            f"SELECT {day % 'g.delivered_at'}, {grant_sums} FROM grants g WHERE {grant_where} GROUP BY 1",
            params,
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows if row[1]}

    def ours_breakdown(dimension: str, key: str, label: str) -> Callable[[], Any]:
        def run() -> Any:
            table = datasets._named_breakdown(filters, dimension, key, "", "", lambda k: str(k))
            return {str(r[key]): (r["delivered"], r["redeemed"]) for r in table.rows}

        return run

    def ref_breakdown(sql_key: str, join: str) -> Callable[[], Any]:
        def run() -> Any:
            rows = reference(
                f"SELECT {sql_key}, {grant_sums} FROM grants g {join} WHERE {grant_where} GROUP BY {sql_key}",
                params,
            )
            return {str(row[0]): (int(row[1]), int(row[2])) for row in rows}

        return run

    lines = "JOIN order_lines l ON l.tenant_id = g.tenant_id AND l.id = g.order_line_id"
    orders_join = "JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id"

    def ours_histogram() -> Any:
        return [r["grants"] for r in datasets.time_to_redeem_histogram(filters).rows]

    def ref_histogram() -> Any:
        from reports.rollups import redeem_bucket_sums

        row = reference(f"SELECT {redeem_bucket_sums()} FROM grants g WHERE {grant_where}", params)[0]
        return [int(v or 0) for v in row]

    def ours_percentiles() -> Any:
        count, median, p90 = datasets.redeem_time_percentiles(filters)
        return count, round(median or 0, 3), round(p90 or 0, 3)

    def ref_percentiles() -> Any:
        row = reference(
            f"""SELECT COUNT(*), percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY g.seconds_to_redeem)
                FROM grants g WHERE {grant_where} AND g.redeemed_at IS NOT NULL AND g.status <> 'revoked'
                AND g.seconds_to_redeem IS NOT NULL""",
            params,
        )[0]
        return int(row[0]), round(row[1][0], 3), round(row[1][1], 3)

    def ours_roi() -> Any:
        keys = ("orders", "revenue", "refunds", "fees", "cost", "spend")
        return {r["channel"]: tuple(r[k] for k in keys) for r in datasets.channel_roi_rows(filters, "CNY")}

    def ref_roi() -> Any:
        rows = reference(
            f"""WITH sold AS (
                  SELECT o.channel, COUNT(*) AS orders, SUM(o.total) AS revenue,
                         SUM(COALESCE((o.total * c.fee_percent_bp + 5000) / 10000 + c.fee_fixed, 0)) AS fees
                  FROM orders o LEFT JOIN channels c ON c.tenant_id = o.tenant_id AND c.public_id = o.channel
                  WHERE o.tenant_id = :tenant_id AND o.paid_at >= :start AND o.paid_at < :end
                    AND o.currency = 'CNY'
                  GROUP BY o.channel),
                back AS (
                  SELECT o.channel, SUM(r.amount) AS refunds FROM refunds r
                  JOIN orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
                  WHERE r.tenant_id = :tenant_id AND r.created_at >= :start AND r.created_at < :end
                    AND r.currency = 'CNY' GROUP BY o.channel),
                cogs AS (
                  SELECT o.channel, SUM(g.unit_cost) AS cost FROM grants g {orders_join}
                  WHERE {grant_where} GROUP BY o.channel),
                spent AS (
                  SELECT c.public_id AS channel, SUM(s.amount) AS spend FROM channel_spend s
                  JOIN channels c ON c.tenant_id = s.tenant_id AND c.id = s.channel_id
                  WHERE s.tenant_id = :tenant_id AND s.day >= :first AND s.day <= :last AND s.currency = 'CNY'
                  GROUP BY c.public_id)
               SELECT k.channel, COALESCE(sold.orders, 0), COALESCE(sold.revenue, 0),
                 COALESCE(back.refunds, 0),
                      COALESCE(sold.fees, 0), COALESCE(cogs.cost, 0), COALESCE(spent.spend, 0)
               FROM (SELECT channel FROM sold UNION SELECT channel FROM back UNION SELECT channel FROM cogs
                     UNION SELECT channel FROM spent) k
               LEFT JOIN sold ON sold.channel = k.channel LEFT JOIN back ON back.channel = k.channel
               LEFT JOIN cogs ON cogs.channel = k.channel LEFT JOIN spent ON spent.channel = k.channel""",
            params,
        )
        return {names["channels"].get(row[0], row[0]): tuple(int(v) for v in row[1:]) for row in rows}

    def ours_renewal_timing() -> Any:
        return {r["days"]: r["renewals"] for r in datasets.renewal_timing(filters).rows}

    def ref_renewal_timing() -> Any:
        rows = reference(
            """SELECT days_from_due, COUNT(*) FROM subscription_renewals
               WHERE tenant_id = :tenant_id AND paid_at >= :start AND paid_at < :end
                 GROUP BY days_from_due""",
            params,
        )
        return {int(row[0]): int(row[1]) for row in rows}

    def ours_day_of_month() -> Any:
        return {
            r["day_of_month"]: r["renewals"]
            for r in datasets.renewals_by_day_of_month(filters).rows
            if r["renewals"]
        }

    def ref_day_of_month() -> Any:
        rows = reference(
            """SELECT EXTRACT(DAY FROM paid_at AT TIME ZONE :tz)::int, COUNT(*) FROM subscription_renewals
               WHERE tenant_id = :tenant_id AND paid_at >= :start AND paid_at < :end GROUP BY 1""",
            params,
        )
        return {int(row[0]): int(row[1]) for row in rows}

    def ours_renewal_rates() -> Any:
        return {
            (r["plan"], r["cohort"]): (r["started"], r["renewed"])
            for r in datasets.renewal_rates(filters).rows
        }

    def ref_renewal_rates() -> Any:
        rows = reference(
            """SELECT s.plan_name, to_char(s.started_at AT TIME ZONE :tz, 'YYYY-MM'), COUNT(*),
                      COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM subscription_renewals r
                                       WHERE r.tenant_id = s.tenant_id AND r.subscription_id = s.id))
               FROM subscriptions s WHERE s.tenant_id = :tenant_id AND s.started_at >= :start
                 AND s.started_at < :end
               GROUP BY 1, 2""",
            params,
        )
        return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in rows}

    def ours_cancellations() -> Any:
        return sorted(r["cancellations"] for r in datasets.cancellation_reasons(filters).rows)

    def ref_cancellations() -> Any:
        rows = reference(
            """SELECT COALESCE(reason_code, 'none'), COUNT(*) FROM subscription_cancellations
               WHERE tenant_id = :tenant_id AND requested_at >= :start AND requested_at < :end
                 AND undone_at IS NULL
               GROUP BY 1""",
            params,
        )
        return sorted(int(row[1]) for row in rows)

    return [
        ("sales.over_time", ours_sales_over_time, ref_sales_over_time),
        ("sales.by_bundle", ours_by_bundle, ref_by_bundle),
        ("sales.stock", ours_stock, ref_stock),
        ("redemption.over_time", ours_redemption_over_time, ref_redemption_over_time),
        (
            "redemption.by_bundle",
            ours_breakdown("bundle_id", "bundle", ""),
            ref_breakdown("l.bundle_id", lines),
        ),
        ("redemption.by_right", ours_breakdown("right_id", "right", ""), ref_breakdown("g.right_id", "")),
        (
            "redemption.by_channel",
            ours_breakdown("channel", "channel", ""),
            ref_breakdown("o.channel", orders_join),
        ),
        ("redemption.time_to_redeem", ours_histogram, ref_histogram),
        ("redemption.percentiles", ours_percentiles, ref_percentiles),
        ("channel_roi.per_channel", ours_roi, ref_roi),
        ("renewals.timing", ours_renewal_timing, ref_renewal_timing),
        ("renewals.day_of_month", ours_day_of_month, ref_day_of_month),
        ("renewals.rates", ours_renewal_rates, ref_renewal_rates),
        ("renewals.cancellations", ours_cancellations, ref_cancellations),
    ]


def best_of(runs: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Run `func` once to warm up, then `runs` times; return the best time and the result."""
    from saas.extensions import db

    result = func()
    db.session.commit()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
        db.session.commit()
    return best, result


def compare(app: Any, tenant_id: int, now: dt.datetime) -> list[tuple[str, float, float]]:
    """Time every dataset both ways over two periods; assert equal numbers; return (name, ours, reference)."""
    from reports.filters import Filters, Period, today_in
    from reports.localtime import local_midnight
    from tenants.scoping import tenant_bound

    results = []
    today = today_in(ZONE)
    for days in (90, 365):
        period = Period("custom", today - dt.timedelta(days=days - 1), today, ZONE)
        filters = Filters(period)
        params = {
            "start": period.utc_start,
            "end": period.utc_end,
            "first": period.start,
            "last": period.end,
            "tz": ZONE,
            "now": local_midnight(today, ZONE),
        }
        with app.app_context(), tenant_bound(tenant_id):
            for name, ours, ref in datasets_to_compare(filters, params):
                ours_s, ours_value = best_of(3, ours)
                ref_s, ref_value = best_of(3, ref)
                assert ours_value == ref_value, (
                    f"{name} ({days} days) differs:\n ours {ours_value}\n ref  {ref_value}"
                )
                label = f"{name}[{days}d]"
                print(f"  {label:<38} ours {ours_s * 1000:9.1f} ms   reference {ref_s * 1000:9.1f} ms")
                results.append((label, ours_s, ref_s))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--grants", type=int, default=3_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse the data already loaded (skip generating)")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        raise SystemExit("set BENCH_DATABASE_URL to a PostgreSQL database of its own")
    from saas.config import sqlalchemy_url

    owner_url = sqlalchemy_url(url)
    ensure_postgres_database(owner_url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    import sqlalchemy as sa

    app_url = str(sa.engine.make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string(False))
    if not args.keep:
        print(
            f"generating {args.orders:,} orders and {args.grants:,} grants (+ two noise tenants of a fifth)"
        )
        app_url = fresh_schema(owner_url)
        generate(owner_url, args.orders, args.grants, now)
    app = make_app(app_url)
    from reports import rollups
    from tenants.scoping import tenant_bound

    with app.app_context(), tenant_bound(9001):
        started = time.perf_counter()
        result = rollups.rebuild_rollups()
        print(
            f"rollups rebuilt for the bench tenant: {result.days} days in"
            f" {time.perf_counter() - started:.1f} s"
        )
    results = compare(app, 9001, now)
    name, ours_s, ref_s = max(results, key=lambda r: r[1])
    slowest_ratio = Decimal(str(ours_s / ref_s)).quantize(Decimal("0.001"))
    worst = max(results, key=lambda r: r[1] / r[2])
    print(f"slowest dataset (ours): {name}; highest ratio: {worst[0]} = {worst[1] / worst[2]:.3f}")
    print(f"dashboards: ours={ours_s:.4f} reference={ref_s:.4f} ratio={slowest_ratio}")


if __name__ == "__main__":
    main()

"""Keep the daily rollups current: recompute the tenant-local days that changed, or all of them.

A day's rollup rows are always recomputed whole from the raw tables (GROUP BY in the database), so a
recomputation is idempotent and a day recomputed twice is simply right twice. `refresh_rollups()` folds in
what changed since the tenant's watermark: it finds the touched days through rows written since then (app
ids grow with time, so `id >= id_floor(since)` is a primary-key range scan) and grants delivered since then.
The watermark trails the run's start by `OVERLAP`, so a transaction that committed late is still seen.

Every function works in the bound tenant and commits its own work.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from reports.localtime import (
    as_date,
    db_time,
    local_day_sql,
    local_midnight,
    zone_params,
)
from reports.models import (
    REDEEM_TIME_BUCKETS,
    DailyGrants,
    DailyLines,
    DailyOrders,
    DailyRefunds,
    RollupState,
)
from saas.extensions import db
from saas.ids import EPOCH_MS, new_id
from saas.timeutil import utcnow
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_query

log = logging.getLogger(__name__)

OVERLAP = dt.timedelta(minutes=10)
ROLLUP_MODELS = (DailyOrders, DailyLines, DailyRefunds, DailyGrants)
_ID_SHIFT = 22  # node (10) + sequence (12) bits below the milliseconds of saas.ids


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did: how many tenant-local days it recomputed and whether it rebuilt everything."""

    days: int
    full: bool


def id_floor(moment: dt.datetime) -> int:
    """Return the smallest app id a row written at `moment` or later can have."""
    return max(0, int(moment.timestamp() * 1000) - EPOCH_MS) << _ID_SHIFT


def tenant_zone() -> str:
    """Return the bound tenant's time zone."""
    tenant = db.session.get(Tenant, current_tenant_id())
    assert tenant is not None
    return tenant.time_zone or "Asia/Shanghai"


# ---------------------------------------------------------------- what each rollup sums


def _orders_sql(day: str) -> str:
    return f"""
        SELECT {day} AS day, o.channel, o.currency, COUNT(*) AS orders, SUM(o.total) AS revenue,
               SUM(COALESCE((o.total * c.fee_percent_bp + 5000) / 10000 + c.fee_fixed, 0)) AS fees
        FROM orders o
        LEFT JOIN channels c ON c.tenant_id = o.tenant_id AND c.public_id = o.channel
        WHERE o.tenant_id = :tenant_id AND o.paid_at >= :start AND o.paid_at < :end
        GROUP BY 1, o.channel, o.currency
    """


def _lines_sql(day: str) -> str:
    return f"""
        SELECT {day} AS day, o.channel, COALESCE(l.bundle_id, 0) AS bundle_id, l.currency,
               COUNT(DISTINCT o.id) AS orders, SUM(l.quantity) AS units, SUM(l.total) AS revenue
        FROM order_lines l
        JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
        WHERE l.tenant_id = :tenant_id AND o.tenant_id = :tenant_id
          AND o.paid_at >= :start AND o.paid_at < :end
        GROUP BY 1, o.channel, COALESCE(l.bundle_id, 0), l.currency
    """


def _refunds_sql(day: str) -> str:
    return f"""
        SELECT {day} AS day, o.channel, r.currency, COUNT(*) AS refunds, SUM(r.amount) AS amount
        FROM refunds r
        JOIN orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
        WHERE r.tenant_id = :tenant_id AND r.created_at >= :start AND r.created_at < :end
        GROUP BY 1, o.channel, r.currency
    """


def redeem_bucket_sums(prefix: str = "g.") -> str:
    """Return the SUM(CASE …) columns that split redeemed grants by time to redeem."""
    redeemed = f"{prefix}redeemed_at IS NOT NULL AND {prefix}status <> 'revoked'"
    seconds = f"{prefix}seconds_to_redeem"
    columns = []
    lower = None
    for name, upper in REDEEM_TIME_BUCKETS:
        bounds = [redeemed, f"{seconds} IS NOT NULL"]
        if lower is not None:
            bounds.append(f"{seconds} >= {lower}")
        if upper is not None:
            bounds.append(f"{seconds} < {upper}")
        columns.append(f"SUM(CASE WHEN {' AND '.join(bounds)} THEN 1 ELSE 0 END) AS {name}")
        lower = upper
    return ",\n               ".join(columns)


def _grants_sql(day: str) -> str:
    return f"""
        SELECT {day} AS day, o.channel, COALESCE(l.bundle_id, 0) AS bundle_id, g.right_id,
               SUM(CASE WHEN g.status <> 'revoked' THEN 1 ELSE 0 END) AS delivered,
               SUM(CASE WHEN g.status = 'revoked' THEN 1 ELSE 0 END) AS revoked,
               SUM(CASE WHEN g.redeemed_at IS NOT NULL AND g.status <> 'revoked' THEN 1 ELSE 0 END)
                 AS redeemed,
               SUM(g.unit_cost) AS cost,
               {redeem_bucket_sums()}
        FROM grants g
        JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id
        JOIN order_lines l ON l.tenant_id = g.tenant_id AND l.id = g.order_line_id
        WHERE g.tenant_id = :tenant_id AND g.delivered_at >= :start AND g.delivered_at < :end
        GROUP BY 1, o.channel, COALESCE(l.bundle_id, 0), g.right_id
    """


# (model, SQL builder, the raw time column the day comes from)
_ROLLUPS: tuple[tuple[type[Any], Any, str], ...] = (
    (DailyOrders, _orders_sql, "o.paid_at"),
    (DailyLines, _lines_sql, "o.paid_at"),
    (DailyRefunds, _refunds_sql, "r.created_at"),
    (DailyGrants, _grants_sql, "g.delivered_at"),
)


# ---------------------------------------------------------------- recomputing days


def day_ranges(days: Iterable[dt.date]) -> Iterator[tuple[dt.date, dt.date]]:
    """Group days into runs of consecutive days: yields (first, last) of each run."""
    ordered = sorted(set(days))
    if not ordered:
        return
    first = last = ordered[0]
    for day in ordered[1:]:
        if day == last + dt.timedelta(days=1):
            last = day
            continue
        yield first, last
        first = last = day
    yield first, last


def recompute_days(days: Iterable[dt.date], zone: str | None = None) -> int:
    """Recompute the rollup rows of the given tenant-local days (not committed); return how many days."""
    zone = zone or tenant_zone()
    count = 0
    for first, last in day_ranges(days):
        start, end = local_midnight(first, zone), local_midnight(last + dt.timedelta(days=1), zone)
        for model, _, _ in _ROLLUPS:
            db.session.execute(
                delete(model)
                .where(model.day >= first, model.day <= last)
                .execution_options(synchronize_session=False)
            )
        _insert_aggregates(zone, start, end)
        count += (last - first).days + 1
    return count


def _insert_aggregates(zone: str, start: dt.datetime, end: dt.datetime) -> None:
    params = {"start": db_time(start), "end": db_time(end), **zone_params(zone)}
    tenant_id = current_tenant_id()
    for model, build_sql, column in _ROLLUPS:
        rows = tenant_query(build_sql(local_day_sql(column, zone)), params).mappings().all()
        if rows:
            db.session.execute(
                insert(model),
                [{**row, "day": as_date(row["day"]), "tenant_id": tenant_id, "id": new_id()} for row in rows],
            )


def rebuild_rollups() -> RefreshResult:
    """Recompute every rollup row of the bound tenant from the raw tables, and commit."""
    zone = tenant_zone()
    started = utcnow()
    for model, _, _ in _ROLLUPS:
        db.session.execute(delete(model).execution_options(synchronize_session=False))
    far_past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    _insert_aggregates(zone, far_past, started + dt.timedelta(days=3660))
    days = _count_days()
    _save_state(started, days)
    db.session.commit()
    return RefreshResult(days, True)


def _count_days() -> int:
    seen: set[dt.date] = set()
    for model, _, _ in _ROLLUPS:
        seen.update(as_date(day) for day in db.session.scalars(select(model.day).distinct()))
    return len(seen)


def _state() -> RollupState | None:
    return db.session.scalar(select(RollupState).where(RollupState.name == "daily"))


def _save_state(started: dt.datetime, days: int) -> None:
    state = _state()
    if state is None:
        state = RollupState(name="daily")
        db.session.add(state)
    state.watermark = started - OVERLAP
    state.refreshed_at = started
    state.days_recomputed = days


def refreshed_at() -> dt.datetime | None:
    """Return when the bound tenant's rollups were last brought up to date (None: never)."""
    state = _state()
    return state.refreshed_at if state is not None else None


def touched_days(since: dt.datetime, zone: str) -> set[dt.date]:
    """Return the tenant-local days whose rollup rows may have changed since `since`."""
    params = {"floor": id_floor(since), "since": db_time(since), **zone_params(zone)}
    changed_orders = """
        SELECT order_id FROM order_events WHERE tenant_id = :tenant_id AND id >= :floor
        UNION SELECT id FROM orders WHERE tenant_id = :tenant_id AND id >= :floor
        UNION SELECT order_id FROM refunds WHERE tenant_id = :tenant_id AND id >= :floor
    """
    paid_day, delivered_day = local_day_sql("o.paid_at", zone), local_day_sql("g.delivered_at", zone)
    statements = [
        f"""SELECT DISTINCT {paid_day} AS day FROM orders o
            WHERE o.tenant_id = :tenant_id AND o.paid_at IS NOT NULL AND o.id IN ({changed_orders})""",
        f"""SELECT DISTINCT {delivered_day} AS day FROM grants g
            WHERE g.tenant_id = :tenant_id AND g.delivered_at IS NOT NULL
              AND g.order_id IN ({changed_orders})""",
        f"""SELECT DISTINCT {delivered_day} AS day FROM grants g
            WHERE g.tenant_id = :tenant_id AND g.delivered_at >= :since""",
        f"""SELECT DISTINCT {delivered_day} AS day FROM grants g
            WHERE g.tenant_id = :tenant_id AND g.delivered_at IS NOT NULL AND g.id IN (
                SELECT grant_id FROM redemptions WHERE tenant_id = :tenant_id AND id >= :floor)""",
        f"""SELECT DISTINCT {local_day_sql("r.created_at", zone)} AS day FROM refunds r
            WHERE r.tenant_id = :tenant_id AND r.id >= :floor""",
        # A channel whose fees changed: every day it sold on.
        """SELECT DISTINCT d.day FROM report_daily_orders d
            JOIN channels c ON c.tenant_id = d.tenant_id AND c.public_id = d.channel
            WHERE d.tenant_id = :tenant_id AND c.updated_at >= :since""",
    ]
    days: set[dt.date] = set()
    for sql in statements:
        days.update(as_date(day) for (day,) in tenant_query(sql, params) if day is not None)
    return days


def refresh_rollups() -> RefreshResult:
    """Fold the bound tenant's changes since the last run into the rollups (all of it the first time)."""
    state = _state()
    if state is None or state.watermark is None:
        return rebuild_rollups()
    zone = tenant_zone()
    started = utcnow()
    days = touched_days(state.watermark, zone)
    count = recompute_days(days, zone)
    _save_state(started, count)
    db.session.commit()
    return RefreshResult(count, False)

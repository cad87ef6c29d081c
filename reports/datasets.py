"""The dashboards' datasets: aggregated by the database, mostly from the daily rollups.

Sales, redemption and channel ROI read the rollups of `reports.models` (one GROUP BY each); stock reads the
card-key table's current state; renewal timing reads the subscription tables (far fewer rows than orders);
the time-to-redeem percentiles read the raw grants of the period (PostgreSQL `percentile_cont`, or exact
percentiles over a GROUP BY histogram elsewhere). Python only folds the aggregated rows into tables.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from catalog.models import Bundle, Right
from catalog.stock import beyond_a_year, days_of_cover
from integrations.models import Channel
from reports import filters as filtering
from reports.filters import Filters
from reports.localtime import (
    as_date,
    db_day,
    db_time,
    is_postgres,
    local_day_of,
    local_day_of_month_sql,
    local_month_sql,
    zone_params,
)
from reports.models import REDEEM_TIME_BUCKETS
from reports.tables import MORE_THAN_A_YEAR, Column, Dashboard, Table, one_place, ratio
from saas.extensions import db
from saas.labels import label
from saas.timeutil import utcnow
from tenants.scoping import tenant_query

DASHBOARDS: dict[str, Any] = {
    "redemption": _l("Redemption"),
    "channel_roi": _l("Channel ROI"),
    "renewals": _l("Renewal timing"),
    "sales": _l("Sales and stock"),
}
POOR_REDEMPTION_MIN_DELIVERED = 10
STOCK_WINDOW_DAYS = 30
LOW_COVER_DAYS = Decimal(7)
UPCOMING_DAYS = 30
UPCOMING_LIMIT = 500
BUCKET_LABELS: dict[str, Any] = {
    "redeemed_1h": _l("under 1 hour"),
    "redeemed_6h": _l("1–6 hours"),
    "redeemed_1d": _l("6–24 hours"),
    "redeemed_3d": _l("1–3 days"),
    "redeemed_7d": _l("3–7 days"),
    "redeemed_14d": _l("7–14 days"),
    "redeemed_30d": _l("14–30 days"),
    "redeemed_later": _l("30 days or more"),
}


# ---------------------------------------------------------------- SQL fragments


def _ids(values: Iterable[int]) -> str:
    """Return an SQL list of integers (inlined: they are ints, never text)."""
    listed = ",".join(str(int(v)) for v in values)
    return f"({listed})" if listed else "(NULL)"


def _period_where(filters: Filters, prefix: str = "") -> tuple[list[str], dict[str, Any]]:
    """Return conditions and parameters for rollup rows of the period (and the channel)."""
    conditions = [f"{prefix}tenant_id = :tenant_id", f"{prefix}day >= :first", f"{prefix}day <= :last"]
    params: dict[str, Any] = {"first": db_day(filters.period.start), "last": db_day(filters.period.end)}
    if filters.channel:
        conditions.append(f"{prefix}channel = :channel")
        params["channel"] = filters.channel
    return conditions, params


def _grant_where(filters: Filters) -> tuple[str, dict[str, Any]]:
    conditions, params = _period_where(filters)
    if filters.bundle_id:
        conditions.append("bundle_id = :bundle_id")
        params["bundle_id"] = filters.bundle_id
    if filters.right_id:
        conditions.append("right_id = :right_id")
        params["right_id"] = filters.right_id
    return " AND ".join(conditions), params


def _rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in tenant_query(sql, params).mappings()]


# ---------------------------------------------------------------- names


def channel_names() -> dict[str, str]:
    """Map each connected channel's public id (what orders carry) to its name."""
    return {
        public_id: name for public_id, name in db.session.execute(select(Channel.public_id, Channel.name))
    }


def channel_label(channel: str, names: dict[str, str]) -> str:
    """Return how a channel is shown: its name when connected, else what the orders say."""
    return names.get(channel, channel)


def bundle_names() -> dict[int, str]:
    """Map bundle ids to names (0: lines that sold no bundle)."""
    names = {bundle_id: name for bundle_id, name in db.session.execute(select(Bundle.id, Bundle.name))}
    names[0] = _("(no bundle)")
    return names


def right_names() -> dict[int, str]:
    """Map right ids to names."""
    return {right_id: name for right_id, name in db.session.execute(select(Right.id, Right.name))}


def channels_in_use() -> list[tuple[str, str]]:
    """Return (value, label) of every channel that sold something or is connected, for the filter."""
    names = channel_names()
    sold = {
        c
        for (c,) in tenant_query(
            "SELECT DISTINCT channel FROM report_daily_orders WHERE tenant_id = :tenant_id"
        )
    }
    return sorted(((c, channel_label(c, names)) for c in sold | set(names)), key=lambda pair: pair[1])


# ---------------------------------------------------------------- redemption


def _rate_row(row: dict[str, Any]) -> dict[str, Any]:
    delivered, redeemed = int(row["delivered"] or 0), int(row["redeemed"] or 0)
    return {**row, "delivered": delivered, "redeemed": redeemed, "rate": ratio(redeemed, delivered)}


RATE_COLUMNS = [
    Column("delivered", _l("Delivered")),
    Column("redeemed", _l("Redeemed")),
    Column("rate", _l("Redemption rate"), "ratio"),
]


def _grant_breakdown(filters: Filters, dimension: str) -> list[dict[str, Any]]:
    where, params = _grant_where(filters)
    return [
        _rate_row(row)
        for row in _rows(
            f"""SELECT {dimension} AS k, SUM(delivered) AS delivered, SUM(redeemed) AS redeemed
                FROM report_daily_grants WHERE {where} GROUP BY {dimension} ORDER BY {dimension}""",
            params,
        )
    ]


def week_start(day: dt.date) -> dt.date:
    """Return the Monday of the day's week (delivery cohorts are weeks)."""
    return day - dt.timedelta(days=day.weekday())


def redemption_over_time(filters: Filters) -> tuple[Table, Table]:
    """Return the redemption rate per delivery day and per delivery week (cohort)."""
    daily = {as_date(row["k"]): row for row in _grant_breakdown(filters, "day")}
    weekly: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for day, row in daily.items():
        weekly[week_start(day)][0] += row["delivered"]
        weekly[week_start(day)][1] += row["redeemed"]
    over_time = Table(
        "over_time",
        _("Redemption rate by delivery day"),
        [Column("day", _("Delivery day"), "date"), *RATE_COLUMNS],
        [
            {"day": day.isoformat(), **_rate_row(daily.get(day, {"delivered": 0, "redeemed": 0}))}
            for day in filters.period.days
        ]
        if daily
        else [],
    )
    for row in over_time.rows:
        row.pop("k", None)
    cohorts = Table(
        "cohorts",
        _("Redemption by delivery cohort (week)"),
        [Column("week", _("Week starting"), "date"), *RATE_COLUMNS],
        [
            {"week": week.isoformat(), **_rate_row({"delivered": d, "redeemed": r})}
            for week, (d, r) in sorted(weekly.items())
        ],
    )
    return over_time, cohorts


def _named_breakdown(
    filters: Filters, dimension: str, key: str, title: str, label: str, name_of: Callable[[Any], str]
) -> Table:
    rows = [
        {key: name_of(row["k"]), **{c.key: row[c.key] for c in RATE_COLUMNS}}
        for row in _grant_breakdown(filters, dimension)
    ]
    rows.sort(key=lambda row: (-row["delivered"], row[key]))
    return Table(f"by_{key}", title, [Column(key, label, "text"), *RATE_COLUMNS], rows)


def time_to_redeem_histogram(filters: Filters) -> Table:
    """Return how many redeemed grants took how long, from the rollup's buckets."""
    where, params = _grant_where(filters)
    sums = ", ".join(f"SUM({name}) AS {name}" for name, _ in REDEEM_TIME_BUCKETS)
    row = tenant_query(f"SELECT {sums} FROM report_daily_grants WHERE {where}", params).mappings().one()
    rows = [
        {"bucket": str(BUCKET_LABELS[name]), "grants": int(row[name] or 0)} for name, _ in REDEEM_TIME_BUCKETS
    ]
    return Table(
        "time_to_redeem",
        _("Time from delivery to redemption"),
        [Column("bucket", _("Redeemed within"), "text"), Column("grants", _("Grants"))],
        rows if any(r["grants"] for r in rows) else [],
    )


def _raw_grant_filters(filters: Filters) -> tuple[str, str, dict[str, Any]]:
    """Return joins, conditions and parameters selecting the period's redeemed grants from raw tables."""
    joins, conditions = (
        [],
        [
            "g.tenant_id = :tenant_id",
            "g.delivered_at >= :start",
            "g.delivered_at < :end",
            "g.redeemed_at IS NOT NULL",
            "g.status <> 'revoked'",
            "g.seconds_to_redeem IS NOT NULL",
        ],
    )
    params: dict[str, Any] = {
        "start": db_time(filters.period.utc_start),
        "end": db_time(filters.period.utc_end),
    }
    if filters.channel:
        joins.append("JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id")
        conditions.append("o.channel = :channel")
        params["channel"] = filters.channel
    if filters.bundle_id:
        joins.append("JOIN order_lines l ON l.tenant_id = g.tenant_id AND l.id = g.order_line_id")
        conditions.append("l.bundle_id = :bundle_id")
        params["bundle_id"] = filters.bundle_id
    if filters.right_id:
        conditions.append("g.right_id = :right_id")
        params["right_id"] = filters.right_id
    return " ".join(joins), " AND ".join(conditions), params


def percentile_cont(histogram: list[tuple[int, int]], fraction: float) -> float | None:
    """Return PostgreSQL's percentile_cont over values given as sorted (value, count) pairs."""
    total = sum(count for _, count in histogram)
    if not total:
        return None
    position = fraction * (total - 1)
    lower_rank = int(position)
    weight = position - lower_rank

    def value_at(rank: int) -> int:
        seen = 0
        for value, count in histogram:
            seen += count
            if rank < seen:
                return value
        return histogram[-1][0]

    low = value_at(lower_rank)
    if weight == 0:
        return float(low)
    return float(low) + weight * (value_at(lower_rank + 1) - low)


PERCENTILES = (0.5, 0.9)


def bucket_counts(filters: Filters) -> list[tuple[int, int]]:
    """Return (lower bound in seconds, redeemed grants) per time-to-redeem bucket, from the rollup."""
    where, params = _grant_where(filters)
    sums = ", ".join(f"SUM({name}) AS {name}" for name, _ in REDEEM_TIME_BUCKETS)
    row = tenant_query(f"SELECT {sums} FROM report_daily_grants WHERE {where}", params).mappings().one()
    bounds, lower = [], -(2**62)  # the first bucket has no lower bound
    for name, upper in REDEEM_TIME_BUCKETS:
        bounds.append((lower, int(row[name] or 0)))
        lower = upper or lower
    return bounds


def _value_at_rank(filters: Filters, buckets: list[tuple[int, int]], rank: int) -> list[int]:
    """Return the values at `rank` and `rank + 1` (0-based, ascending) of the period's times to redeem.

    The rollup's bucket counts say which bucket holds the rank, so the query walks the partial index on
    (tenant, seconds to redeem) from that bucket's lower bound and stops two rows past the rank, instead of
    sorting every redeemed grant of the period.
    """
    below, lower = 0, 0
    for bound, count in buckets:
        if below + count > rank:
            lower = bound
            break
        below += count
    _, where, params = _raw_grant_filters(filters)
    rows = tenant_query(
        f"""SELECT g.seconds_to_redeem FROM grants g
            WHERE {where} AND g.seconds_to_redeem >= :lower
            ORDER BY g.seconds_to_redeem OFFSET :skip LIMIT 2""",
        {**params, "lower": lower, "skip": rank - below},
    )
    return [int(value) for (value,) in rows]


def _seek_percentiles(filters: Filters) -> tuple[int, float | None, float | None] | None:
    """Return percentile_cont's answers by seeking ranks (None when the rollup disagrees with the rows)."""
    buckets = bucket_counts(filters)
    count = sum(n for _, n in buckets)
    if not count:
        return 0, None, None
    answers: list[float] = []
    for fraction in PERCENTILES:
        position = fraction * (count - 1)
        rank = int(position)
        values = _value_at_rank(filters, buckets, rank)
        if len(values) < (2 if rank + 1 < count else 1):
            return None  # the rollup is behind the raw rows: let the database sort them all
        weight = position - rank
        answers.append(float(values[0]) + (weight * (values[1] - values[0]) if weight else 0.0))
    return count, answers[0], answers[1]


def redeem_time_percentiles(filters: Filters) -> tuple[int, float | None, float | None]:
    """Return (redeemed grants, median seconds, p90 seconds) of the period's redeemed grants.

    The same numbers as PostgreSQL's percentile_cont. Without a channel or bundle filter, ranks are sought
    through the rollup's histogram and a partial index (see `_value_at_rank`); otherwise the database sorts
    the period's values (PostgreSQL), or they are read as a GROUP BY histogram (SQLite).
    """
    joins, where, params = _raw_grant_filters(filters)
    if is_postgres() and not joins:
        sought = _seek_percentiles(filters)
        if sought is not None:
            return sought
    if is_postgres():
        row = tenant_query(
            f"""SELECT COUNT(*) AS n,
                       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY g.seconds_to_redeem) AS p
                FROM grants g {joins} WHERE {where}""",
            params,
        ).one()
        count, percentiles = int(row.n), row.p
        if not count or percentiles is None:
            return 0, None, None
        return count, float(percentiles[0]), float(percentiles[1])
    histogram = [
        (int(value), int(n))
        for value, n in tenant_query(
            f"""SELECT g.seconds_to_redeem, COUNT(*) FROM grants g {joins} WHERE {where}
                GROUP BY g.seconds_to_redeem ORDER BY g.seconds_to_redeem""",
            params,
        )
    ]
    count = sum(n for _, n in histogram)
    return count, percentile_cont(histogram, 0.5), percentile_cont(histogram, 0.9)


def time_to_redeem_summary(filters: Filters) -> Table:
    """Return the median and 90th percentile time to redeem, in hours."""
    count, median, p90 = redeem_time_percentiles(filters)

    def hours(seconds: float | None) -> str | None:
        return None if seconds is None else one_place(Decimal(str(seconds)) / 3600)

    return Table(
        "time_to_redeem_summary",
        _("Time to redeem"),
        [
            Column("redeemed", _("Redeemed grants")),
            Column("median_hours", _("Median (hours)"), "hours"),
            Column("p90_hours", _("90th percentile (hours)"), "hours"),
        ],
        [{"redeemed": count, "median_hours": hours(median), "p90_hours": hours(p90)}] if count else [],
    )


def shared_vs_single_use(filters: Filters) -> Table:
    """Return the period's redemptions split by who used the right: the buyer or a family member."""
    rows = tenant_query(
        """SELECT r.member_customer_id IS NOT NULL AS shared, COUNT(*) AS n FROM redemptions r
           WHERE r.tenant_id = :tenant_id AND r.outcome = 'redeemed' AND r.at >= :start AND r.at < :end
           GROUP BY r.member_customer_id IS NOT NULL""",
        {"start": filters.period.utc_start, "end": filters.period.utc_end},
    ).all()
    counts = {bool(shared): int(n) for shared, n in rows}
    total = sum(counts.values())
    return Table(
        "shared_vs_single_use",
        _("Shared vs single use"),
        [
            Column("who", _("Used by"), "text"),
            Column("redemptions", _("Redemptions")),
            Column("share", _("Of all redemptions"), "ratio"),
        ],
        [
            {
                "who": _("the buyer"),
                "redemptions": counts.get(False, 0),
                "share": ratio(counts.get(False, 0), total),
            },
            {
                "who": _("a family member (shared)"),
                "redemptions": counts.get(True, 0),
                "share": ratio(counts.get(True, 0), total),
            },
        ]
        if total
        else [],
        note=_("Redemptions recorded in the period, whatever the channel, bundle or right filter."),
    )


def poorly_redeemed(by_right: list[dict[str, Any]], overall: str | None) -> list[dict[str, Any]]:
    """Pick rights that sold well but are redeemed poorly.

    Sold well: at least POOR_REDEMPTION_MIN_DELIVERED grants delivered and at least the median delivered
    count of the rights in the period. Redeemed poorly: a rate below half the overall rate.
    """
    if overall is None:
        return []
    counts = sorted(row["delivered"] for row in by_right)
    median = counts[len(counts) // 2] if counts else 0
    threshold = Decimal(overall) / 2
    return [
        row
        for row in by_right
        if row["delivered"] >= max(POOR_REDEMPTION_MIN_DELIVERED, median)
        and row["rate"] is not None
        and Decimal(row["rate"]) < threshold
    ]


def redemption(filters: Filters, currency: str) -> Dashboard:
    """Return the redemption dashboard: rate by day, bundle, right, channel and cohort; time to redeem."""
    over_time, cohorts = redemption_over_time(filters)
    bundles, rights, channels = bundle_names(), right_names(), channel_names()
    by_bundle = _named_breakdown(
        filters,
        "bundle_id",
        "bundle",
        _("Redemption by bundle"),
        _("Bundle"),
        lambda k: bundles.get(int(k), f"#{k}"),
    )
    by_right = _named_breakdown(
        filters,
        "right_id",
        "right",
        _("Redemption by right"),
        _("Right"),
        lambda k: rights.get(int(k), f"#{k}"),
    )
    by_channel = _named_breakdown(
        filters,
        "channel",
        "channel",
        _("Redemption by channel"),
        _("Channel"),
        lambda k: channel_label(str(k), channels),
    )
    delivered = sum(row["delivered"] for row in by_right.rows)
    overall = ratio(sum(row["redeemed"] for row in by_right.rows), delivered)
    poor = Table(
        "sold_well_redeemed_poorly",
        _("Sold well, redeemed poorly"),
        by_right.columns,
        poorly_redeemed(by_right.rows, overall),
        note=_(
            "Rights with at least %(n)d grants delivered and at least the median of the period, redeemed at "
            "under half the overall rate.",
            n=POOR_REDEMPTION_MIN_DELIVERED,
        ),
    )
    return Dashboard(
        "redemption",
        str(DASHBOARDS["redemption"]),
        currency,
        [
            over_time,
            by_bundle,
            by_right,
            by_channel,
            cohorts,
            time_to_redeem_histogram(filters),
            time_to_redeem_summary(filters),
            poor,
            shared_vs_single_use(filters),
        ],
        notes=[
            _("Redemption rate = redeemed grants ÷ delivered grants, by the day each grant was delivered.")
        ],
    )


# ---------------------------------------------------------------- channel ROI


def _by_channel(sql: str, params: dict[str, Any]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for row in _rows(sql, params):
        channel = str(row.pop("channel"))
        found[channel] = {k: int(v or 0) for k, v in row.items()}
    return found


def _spend_by_channel(filters: Filters, currency: str) -> dict[str, int]:
    params: dict[str, Any] = {
        "first": db_day(filters.period.start),
        "last": db_day(filters.period.end),
        "currency": currency,
    }
    channel = ""
    if filters.channel:
        channel = "AND c.public_id = :channel"
        params["channel"] = filters.channel
    rows = tenant_query(
        f"""SELECT c.public_id AS channel, SUM(s.amount) AS spend
            FROM channel_spend s JOIN channels c ON c.tenant_id = s.tenant_id AND c.id = s.channel_id
            WHERE s.tenant_id = :tenant_id AND s.day >= :first AND s.day <= :last AND s.currency = :currency
            {channel}
            GROUP BY c.public_id""",
        params,
    )
    return {str(channel_id): int(spend or 0) for channel_id, spend in rows}


ROI_DEFINITION = _l(
    "ROI = profit after spend ÷ channel spend, where profit after spend = revenue − refunds − channel fees "
    "− cost of goods − channel spend. “—” when the channel has no spend; %(all)s when the spend brought "
    "nothing back; below %(all)s when refunds, fees and costs also exceeded the sales.",
    all="−100%",
)


def roi_figures(orders: int, revenue: int, refunds: int, fees: int, cost: int, spend: int) -> dict[str, Any]:
    """Return a channel's money: gross profit, margin, profit after spend and ROI — defined here only.

    Gross profit = revenue − refunds − fees − cost of goods; margin = gross profit ÷ revenue (None without
    revenue); profit after spend = gross profit − spend; ROI = profit after spend ÷ spend (None without
    spend, never a misleading 0 %). So spend with no sales is −100 %, and refunds larger than the period's
    sales (refunds count on the day refunded) push ROI below −100 %.
    """
    gross_profit = revenue - refunds - fees - cost
    profit = gross_profit - spend
    return {
        "orders": orders,
        "revenue": revenue,
        "refunds": refunds,
        "fees": fees,
        "cost": cost,
        "spend": spend,
        "gross_profit": gross_profit,
        "margin": ratio(gross_profit, revenue),
        "profit": profit,
        "roi": ratio(profit, spend),
    }


ROI_COLUMNS = [
    Column("orders", _l("Orders")),
    Column("revenue", _l("Gross revenue"), "money"),
    Column("refunds", _l("Refunds"), "money"),
    Column("fees", _l("Channel fees"), "money"),
    Column("cost", _l("Cost of goods"), "money"),
    Column("spend", _l("Channel spend"), "money"),
    Column("gross_profit", _l("Gross profit"), "money"),
    Column("margin", _l("Margin"), "ratio"),
    Column("profit", _l("Profit after spend"), "money"),
    Column("roi", _l("ROI"), "ratio", definition=ROI_DEFINITION),
]


def channel_roi_rows(filters: Filters, currency: str) -> list[dict[str, Any]]:
    """Return per channel: orders, revenue, refunds, fees, cost of goods, spend, profit, margin, ROI."""
    conditions, params = _period_where(filters)
    where = " AND ".join(conditions)
    params["currency"] = currency
    sales = _by_channel(
        f"""SELECT channel, SUM(orders) AS orders, SUM(revenue) AS revenue, SUM(fees) AS fees
            FROM report_daily_orders WHERE {where} AND currency = :currency GROUP BY channel""",
        params,
    )
    refunds = _by_channel(
        f"""SELECT channel, SUM(amount) AS refunds FROM report_daily_refunds
            WHERE {where} AND currency = :currency GROUP BY channel""",
        params,
    )
    costs = _by_channel(
        f"SELECT channel, SUM(cost) AS cost FROM report_daily_grants WHERE {where} GROUP BY channel", params
    )
    spend = _spend_by_channel(filters, currency)
    names = channel_names()
    rows = []
    for channel in sorted(set(sales) | set(refunds) | set(costs) | set(spend)):
        sold = sales.get(channel, {})
        rows.append(
            {
                "channel": channel_label(channel, names),
                **roi_figures(
                    sold.get("orders", 0),
                    sold.get("revenue", 0),
                    refunds.get(channel, {}).get("refunds", 0),
                    sold.get("fees", 0),
                    costs.get(channel, {}).get("cost", 0),
                    spend.get(channel, 0),
                ),
            }
        )
    rows.sort(key=lambda row: (-row["revenue"], row["channel"]))
    return rows


def channel_trend_rows(filters: Filters, currency: str) -> list[dict[str, Any]]:
    """Return revenue and gross profit per channel per day (days with activity only)."""
    conditions, params = _period_where(filters)
    where = " AND ".join(conditions)
    params["currency"] = currency
    figures: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    queries = (
        ("revenue", "revenue", "report_daily_orders", True),
        ("fees", "fees", "report_daily_orders", True),
        ("refunds", "amount", "report_daily_refunds", True),
        ("cost", "cost", "report_daily_grants", False),
    )
    for key, column, table, has_currency in queries:
        currency_filter = "AND currency = :currency" if has_currency else ""
        for row in _rows(
            f"""SELECT day, channel, SUM({column}) AS v FROM {table} WHERE {where} {currency_filter}
                GROUP BY day, channel""",
            params,
        ):
            figures[(as_date(row["day"]).isoformat(), str(row["channel"]))][key] += int(row["v"] or 0)
    names = channel_names()
    rows = []
    for (day, channel), f in sorted(figures.items()):
        rows.append(
            {
                "day": day,
                "channel": channel_label(channel, names),
                "revenue": f["revenue"],
                "gross_profit": f["revenue"] - f["refunds"] - f["fees"] - f["cost"],
            }
        )
    return rows


def channel_roi(filters: Filters, currency: str) -> Dashboard:
    """Return the channel ROI dashboard: the money per channel for the period, and its trend."""
    per_channel = Table(
        "per_channel",
        _("Channel ROI"),
        [Column("channel", _("Channel"), "text"), *ROI_COLUMNS],
        channel_roi_rows(filters, currency),
    )
    trend = Table(
        "trend",
        _("Gross profit per channel over time"),
        [
            Column("day", _("Day"), "date"),
            Column("channel", _("Channel"), "text"),
            Column("revenue", _("Gross revenue"), "money"),
            Column("gross_profit", _("Gross profit"), "money"),
        ],
        channel_trend_rows(filters, currency),
    )
    notes = [
        _(
            "Gross profit = revenue − refunds − channel fees − cost of goods; "
            "margin = gross profit ÷ revenue. "
            "Orders and revenue count on the day paid, refunds on the day refunded, "
            "cost of goods on the day delivered."
        )
    ]
    if filters.narrows_catalog:
        notes.append(_("Channel ROI is per channel: the bundle and right filters do not apply to it."))
    return Dashboard(
        "channel_roi", str(DASHBOARDS["channel_roi"]), currency, [per_channel, trend], notes=notes
    )


# ---------------------------------------------------------------- sales and stock


def sales_over_time(filters: Filters, currency: str) -> Table:
    """Return orders and revenue per day of the period (from the line rollup when a bundle is chosen)."""
    conditions, params = _period_where(filters)
    params["currency"] = currency
    bundles = filtering.bundles_matching(filters)
    table = "report_daily_orders"
    if bundles is not None:
        table = "report_daily_lines"
        conditions.append(f"bundle_id IN {_ids(bundles)}")
    daily = {
        as_date(row["day"]): row
        for row in _rows(
            f"""SELECT day, SUM(orders) AS orders, SUM(revenue) AS revenue FROM {table}
                WHERE {" AND ".join(conditions)} AND currency = :currency GROUP BY day""",
            params,
        )
    }
    rows = [
        {
            "day": day.isoformat(),
            "orders": int(daily[day]["orders"] or 0) if day in daily else 0,
            "revenue": int(daily[day]["revenue"] or 0) if day in daily else 0,
        }
        for day in filters.period.days
    ]
    return Table(
        "over_time",
        _("Orders and revenue by day"),
        [
            Column("day", _("Day"), "date"),
            Column("orders", _("Orders")),
            Column("revenue", _("Revenue"), "money"),
        ],
        rows if daily else [],
    )


def sales_by_bundle(filters: Filters, currency: str) -> Table:
    """Return orders, units and revenue per bundle for the period."""
    conditions, params = _period_where(filters)
    params["currency"] = currency
    bundles = filtering.bundles_matching(filters)
    if bundles is not None:
        conditions.append(f"bundle_id IN {_ids(bundles)}")
    names = bundle_names()
    rows: list[dict[str, Any]] = [
        {
            "bundle": names.get(int(row["bundle_id"]), f"#{row['bundle_id']}"),
            "orders": int(row["orders"] or 0),
            "units": int(row["units"] or 0),
            "revenue": int(row["revenue"] or 0),
        }
        for row in _rows(
            f"""SELECT bundle_id, SUM(orders) AS orders, SUM(units) AS units, SUM(revenue) AS revenue
                FROM report_daily_lines WHERE {" AND ".join(conditions)} AND currency = :currency
                GROUP BY bundle_id""",
            params,
        )
    ]
    rows.sort(key=lambda row: (-row["revenue"], row["bundle"]))
    return Table(
        "by_bundle",
        _("Sales by bundle"),
        [
            Column("bundle", _("Bundle"), "text"),
            Column("orders", _("Orders")),
            Column("units", _("Units")),
            Column("revenue", _("Revenue"), "money"),
        ],
        rows,
    )


def stock_rows(filters: Filters) -> list[dict[str, Any]]:
    """Return stock per card-key right now: available units, deliveries of the last 30 days, days of cover."""
    statement = (
        select(Right).where(Right.kind == "card_key", Right.archived_at.is_(None)).order_by(Right.name)
    )
    wanted = filtering.rights_matching(filters)
    if wanted is not None:
        statement = statement.where(Right.id.in_(wanted))
    rights = list(db.session.scalars(statement))
    if not rights:
        return []
    available = {
        int(right_id): int(units or 0)
        for right_id, units in tenant_query(
            f"""SELECT right_id, SUM(max_deliveries - delivery_count) FROM card_keys
                WHERE tenant_id = :tenant_id AND status = 'available'
                  AND right_id IN {_ids(r.id for r in rights)}
                GROUP BY right_id""",
        )
    }
    zone = filters.period.zone
    today = local_day_of(utcnow(), zone)
    recent = {
        int(right_id): int(units or 0)
        for right_id, units in tenant_query(
            f"""SELECT right_id, SUM(delivered + revoked) FROM report_daily_grants
                WHERE tenant_id = :tenant_id AND day > :since AND day <= :today
                AND right_id IN {_ids(r.id for r in rights)} GROUP BY right_id""",
            {"since": db_day(today - dt.timedelta(days=STOCK_WINDOW_DAYS)), "today": db_day(today)},
        )
    }
    rows = []
    for right in rights:
        units, delivered = available.get(right.id, 0), recent.get(right.id, 0)
        cover = days_of_cover(units, delivered, STOCK_WINDOW_DAYS)
        below = right.low_stock_threshold is not None and units < right.low_stock_threshold
        rows.append(
            {
                "right": right.name,
                "available": units,
                "delivered_30d": delivered,
                "days_of_cover": MORE_THAN_A_YEAR if beyond_a_year(cover) else one_place(cover),
                "threshold": right.low_stock_threshold,
                "low": below or (cover is not None and cover < LOW_COVER_DAYS),
            }
        )
    return rows


STOCK_COLUMNS = [
    Column("right", _l("Right"), "text"),
    Column("available", _l("Available")),
    Column("delivered_30d", _l("Delivered, last 30 days")),
    Column("days_of_cover", _l("Days of cover"), "days"),
    Column("threshold", _l("Alert below")),
]


def sales(filters: Filters, currency: str) -> Dashboard:
    """Return the sales and stock dashboard: orders and revenue over time, by bundle; stock and cover."""
    stock = stock_rows(filters)
    return Dashboard(
        "sales",
        str(DASHBOARDS["sales"]),
        currency,
        [
            sales_over_time(filters, currency),
            sales_by_bundle(filters, currency),
            Table(
                "stock",
                _("Stock by right"),
                STOCK_COLUMNS,
                [{k: v for k, v in row.items() if k != "low"} for row in stock],
                note=_(
                    "Now, whatever the period: days of cover = available ÷ the last 30 days' "
                    "daily deliveries; beyond a year it says so."
                ),
            ),
            Table(
                "low_stock",
                _("Low stock"),
                STOCK_COLUMNS,
                [{k: v for k, v in row.items() if k != "low"} for row in stock if row["low"]],
                note=_("Below the right's alert threshold, or less than %(days)d days of cover.", days=7),
            ),
        ],
        notes=[_("Revenue counts paid orders on the day they were paid, before refunds.")]
        + ([_("A right filter shows the bundles that contain the right.")] if filters.right_id else []),
    )


# ---------------------------------------------------------------- renewal timing


def _subscription_where(filters: Filters, alias: str) -> tuple[str, dict[str, Any]]:
    conditions, params = [], {}
    if filters.channel:
        conditions.append(f"{alias}.channel = :channel")
        params["channel"] = filters.channel
    plans = filtering.plans_matching(filters)
    if plans is not None:
        conditions.append(f"{alias}.plan_id IN {_ids(plans)}")
    return "".join(f" AND {c}" for c in conditions), params


def _period_params(filters: Filters) -> dict[str, Any]:
    return {
        "start": db_time(filters.period.utc_start),
        "end": db_time(filters.period.utc_end),
        **zone_params(filters.period.zone),
    }


def renewal_rates(filters: Filters) -> Table:
    """Return per plan and start-month cohort: subscriptions started, how many renewed, the rate."""
    extra, params = _subscription_where(filters, "s")
    params.update(_period_params(filters))
    month = local_month_sql("s.started_at", filters.period.zone)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for row in _rows(
        f"""SELECT s.plan_id, MAX(s.plan_name) AS plan, {month} AS month, COUNT(*) AS started,
                   COUNT(renewed.subscription_id) AS renewed
            FROM subscriptions s
            LEFT JOIN (SELECT DISTINCT subscription_id FROM subscription_renewals
                       WHERE tenant_id = :tenant_id) renewed ON renewed.subscription_id = s.id
            WHERE s.tenant_id = :tenant_id AND s.started_at >= :start AND s.started_at < :end {extra}
            GROUP BY 1, 3""",
        params,
    ):
        cohort = str(row["month"])
        entry = rows.setdefault(
            (int(row["plan_id"]), cohort), {"plan": row["plan"], "cohort": cohort, "started": 0, "renewed": 0}
        )
        entry["started"] += int(row["started"] or 0)
        entry["renewed"] += int(row["renewed"] or 0)
    return Table(
        "renewal_rates",
        _("Renewal rate by plan and cohort"),
        [
            Column("plan", _("Plan"), "text"),
            Column("cohort", _("Started in"), "text"),
            Column("started", _("Subscriptions")),
            Column("renewed", _("Renewed at least once")),
            Column("rate", _("Renewal rate"), "ratio"),
        ],
        [
            {**entry, "rate": ratio(entry["renewed"], entry["started"])}
            for _, entry in sorted(rows.items(), key=lambda item: (item[1]["plan"], item[1]["cohort"]))
        ],
    )


def renewal_timing(filters: Filters) -> Table:
    """Return renewals paid in the period by days from the period end (negative: before it)."""
    extra, params = _subscription_where(filters, "r")
    params.update(_period_params(filters))
    rows = _rows(
        f"""SELECT r.days_from_due AS days, COUNT(*) AS renewals FROM subscription_renewals r
            WHERE r.tenant_id = :tenant_id AND r.paid_at >= :start AND r.paid_at < :end {extra}
            GROUP BY r.days_from_due ORDER BY r.days_from_due""",
        params,
    )
    return Table(
        "timing",
        _("When renewals happen, relative to the period end"),
        [Column("days", _("Days from period end")), Column("renewals", _("Renewals"))],
        [{"days": int(row["days"]), "renewals": int(row["renewals"])} for row in rows],
    )


def renewals_by_day_of_month(filters: Filters) -> Table:
    """Return renewals paid in the period by the tenant-local day of the month they were paid."""
    extra, params = _subscription_where(filters, "r")
    params.update(_period_params(filters))
    dom = local_day_of_month_sql("r.paid_at", filters.period.zone)
    counts = {
        int(row["dom"]): int(row["renewals"])
        for row in _rows(
            f"""SELECT {dom} AS dom, COUNT(*) AS renewals FROM subscription_renewals r
                WHERE r.tenant_id = :tenant_id AND r.paid_at >= :start AND r.paid_at < :end {extra}
                GROUP BY 1""",
            params,
        )
    }
    return Table(
        "day_of_month",
        _("Renewals by day of the month"),
        [Column("day_of_month", _("Day of month")), Column("renewals", _("Renewals"))],
        [{"day_of_month": d, "renewals": counts.get(d, 0)} for d in range(1, 32)] if counts else [],
    )


def upcoming_expiries(filters: Filters) -> Table:
    """Return live subscriptions whose period ends in the next 30 days, with their auto-renew state."""
    extra, params = _subscription_where(filters, "s")
    now = utcnow()
    params.update({"now": db_time(now), "until": db_time(now + dt.timedelta(days=UPCOMING_DAYS))})
    rows = _rows(
        f"""SELECT s.id, s.plan_name, s.bundle_name, s.channel, s.current_period_end, s.auto_renew, s.status,
                   s.price, s.currency
            FROM subscriptions s
            WHERE s.tenant_id = :tenant_id AND s.status IN ('active', 'past_due')
              AND s.current_period_end >= :now AND s.current_period_end < :until {extra}
            ORDER BY s.current_period_end, s.id LIMIT {UPCOMING_LIMIT}""",
        params,
    )
    names = channel_names()
    zone = filters.period.zone
    return Table(
        "upcoming",
        _("Expiring in the next 30 days"),
        [
            Column("subscription", _("Subscription"), "text"),
            Column("plan", _("Plan"), "text"),
            Column("channel", _("Channel"), "text"),
            Column("period_end", _("Period ends"), "date"),
            Column("auto_renew", _("Auto-renew"), "text"),
            Column("status", _("Status"), "text"),
            Column("price", _("Renewal price"), "money"),
        ],
        [
            {
                "subscription": str(row["id"]),
                "plan": row["plan_name"],
                "channel": channel_label(str(row["channel"]), names),
                "period_end": local_day_of(_aware(row["current_period_end"]), zone).isoformat(),
                "auto_renew": _("On") if row["auto_renew"] else _("Off"),
                "status": label("subscription_status", row["status"]),
                "price": int(row["price"]),
            }
            for row in rows
        ],
        note=_("From now, whatever the period; at most %(n)d rows.", n=UPCOMING_LIMIT),
    )


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def cancellation_reasons(filters: Filters) -> Table:
    """Return cancellations requested in the period (not undone) by reason."""
    extra, params = _subscription_where(filters, "s")
    params.update(_period_params(filters))
    join = "JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id" if extra else ""
    rows = _rows(
        f"""SELECT COALESCE(c.reason_code, 'none') AS reason, COUNT(*) AS cancellations
            FROM subscription_cancellations c {join}
            WHERE c.tenant_id = :tenant_id AND c.requested_at >= :start AND c.requested_at < :end
              AND c.undone_at IS NULL {extra}
            GROUP BY COALESCE(c.reason_code, 'none') ORDER BY COUNT(*) DESC""",
        params,
    )
    labels = {
        "no_longer_needed": _("No longer needed"),
        "too_expensive": _("Too expensive"),
        "unsatisfied": _("Unsatisfied"),
        "other": _("Other"),
        "none": _("No reason given"),
    }
    return Table(
        "cancellation_reasons",
        _("Cancellation reasons"),
        [Column("reason", _("Reason"), "text"), Column("cancellations", _("Cancellations"))],
        [
            {
                "reason": labels.get(str(r["reason"]), str(r["reason"])),
                "cancellations": int(r["cancellations"]),
            }
            for r in rows
        ],
    )


def renewals(filters: Filters, currency: str) -> Dashboard:
    """Return the renewal timing dashboard."""
    return Dashboard(
        "renewals",
        str(DASHBOARDS["renewals"]),
        currency,
        [
            renewal_rates(filters),
            renewal_timing(filters),
            renewals_by_day_of_month(filters),
            upcoming_expiries(filters),
            cancellation_reasons(filters),
        ],
        notes=[
            _(
                "Cohorts are subscriptions started in the period, by month; renewal rate = those renewed at "
                "least once ÷ those started. Timing counts renewals paid in the period."
            )
        ],
    )


BUILDERS: dict[str, Callable[[Filters, str], Dashboard]] = {
    "redemption": redemption,
    "channel_roi": channel_roi,
    "renewals": renewals,
    "sales": sales,
}


def build(name: str, filters: Filters, currency: str) -> Dashboard:
    """Return the named dashboard's datasets for the filters."""
    return BUILDERS[name](filters, currency)


# ---------------------------------------------------------------- overview


def headline(filters: Filters, currency: str) -> Table:
    """Return the period's headline figures for the dashboards' index."""
    conditions, params = _period_where(filters)
    where = " AND ".join(conditions)
    params["currency"] = currency
    sold = tenant_query(
        f"""SELECT COALESCE(SUM(orders), 0) AS orders, COALESCE(SUM(revenue), 0) AS revenue
            FROM report_daily_orders WHERE {where} AND currency = :currency""",
        params,
    ).one()
    refunded = tenant_query(
        f"SELECT COALESCE(SUM(amount), 0) FROM report_daily_refunds WHERE {where} AND currency = :currency",
        params,
    ).scalar()
    grants = tenant_query(
        f"""SELECT COALESCE(SUM(delivered), 0) AS delivered, COALESCE(SUM(redeemed), 0) AS redeemed
            FROM report_daily_grants WHERE {where}""",
        params,
    ).one()
    figures = [
        ("orders", _("Paid orders"), "count", int(sold.orders)),
        ("revenue", _("Gross revenue"), "money", int(sold.revenue)),
        ("refunds", _("Refunds"), "money", int(refunded or 0)),
        ("delivered", _("Grants delivered"), "count", int(grants.delivered)),
        (
            "redemption_rate",
            _("Redemption rate"),
            "ratio",
            ratio(int(grants.redeemed), int(grants.delivered)),
        ),
    ]
    rows = [
        {"metric": label, "kind": kind, "value": value, "key": key} for key, label, kind, value in figures
    ]
    has_any = any(row["value"] for row in rows if row["kind"] != "ratio")
    return Table(
        "headline",
        _("This period"),
        [Column("metric", _("Metric"), "text"), Column("value", _("Value"), "text")],
        rows if has_any else [],
    )

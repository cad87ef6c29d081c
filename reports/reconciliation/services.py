"""Reconciliation runs (对账): the period in the tenant's time zone, the detail query, totals, use cases.

A run covers the orders **paid** in its period and the refunds **made** in it (an order paid in January and
refunded in February shows its sale in January's run and its refund in February's), for one channel or
all, in one currency. Its detail has one row per order line and per refund; its totals are summed from
that same stream of rows while the export files are written, so every file adds up to the run.

Money stays integer minor units here; exports turn it into `Decimal` or exact text, never `float`.
Channel fees are the channel's percent × the order's gross (rounded half up to the minor unit) plus its
fixed fee per order; an order's fee is spread over its lines in proportion to their totals so that the
lines add up to the order exactly.
"""

from __future__ import annotations

import calendar
import contextlib
import contextvars
import datetime as dt
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select
from sqlalchemy.sql.elements import TextClause

from reports.reconciliation.models import EXPORT_FORMATS, ReconciliationFile, ReconciliationRun
from saas.extensions import UTCDateTime, db
from tenants import audit
from tenants.jobruns import start_job_run
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_query, tenant_sql

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_RANGE_DAYS = 366
BIG_RUN_TIMEOUT = 4 * 3600


class ReconciliationError(ValueError):
    """A user-facing refusal of a reconciliation action."""


# ---------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """A reporting period: local first and last day in a time zone, and the UTC instants that bound it."""

    kind: str  # month, range
    label: str
    starts_on: dt.date
    ends_on: dt.date  # inclusive
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive
    zone: str


def _local_midnight(day: dt.date, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def month_period(year: int, month: int, zone: str) -> Period:
    """Return the tenant's month: from local midnight on the 1st to local midnight on the next 1st."""
    if not 1 <= month <= 12 or not 2000 <= year <= 2200:
        raise ReconciliationError(_("Choose a month as YYYY-MM."))
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return Period(
        "month",
        f"{year:04d}-{month:02d}",
        first,
        last,
        _local_midnight(first, zone),
        _local_midnight(last + dt.timedelta(days=1), zone),
        zone,
    )


def range_period(first: dt.date, last: dt.date, zone: str) -> Period:
    """Return a custom range of whole local days, both ends included."""
    if last < first:
        raise ReconciliationError(_("The period ends before it starts."))
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ReconciliationError(_("A period is at most %(days)d days long.", days=MAX_RANGE_DAYS))
    return Period(
        "range",
        f"{first.isoformat()} – {last.isoformat()}",
        first,
        last,
        _local_midnight(first, zone),
        _local_midnight(last + dt.timedelta(days=1), zone),
        zone,
    )


def parse_month(text: str, zone: str) -> Period:
    """Read `YYYY-MM` as the tenant's month."""
    match = MONTH.match((text or "").strip())
    if not match:
        raise ReconciliationError(_("Choose a month as YYYY-MM."))
    return month_period(int(match.group(1)), int(match.group(2)), zone)


def previous_month(now: dt.datetime, zone: str) -> Period:
    """Return the month before the one `now` falls in, in `zone`."""
    local = now.astimezone(ZoneInfo(zone))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return month_period(year, month, zone)


def run_period(run: ReconciliationRun) -> Period:
    """Return the period a run was made for."""
    return Period(
        run.period_kind,
        run.period_label,
        run.starts_on,
        run.ends_on,
        run.period_start,
        run.period_end,
        run.time_zone,
    )


# ---------------------------------------------------------------- the detail query

# One statement for both databases: integer arithmetic only (integer division rounds as written), window
# functions, no dialect functions. `{channel}` becomes a filter on one channel or nothing; `{fees_*}` joins
# the integrations channel table for the fee settings when it exists in this build.
_DETAIL_SQL = """
WITH line_cost AS (
  SELECT g.order_line_id AS line_id, CAST(SUM(g.unit_cost) AS BIGINT) AS cost
  FROM grants g
  JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id
  WHERE g.tenant_id = :tenant_id AND g.delivered_at IS NOT NULL
    AND o.paid_at >= :start AND o.paid_at < :end AND o.currency = :currency{channel}
  GROUP BY g.order_line_id
),
sale_lines AS (
  SELECT o.id AS order_id, o.external_id AS external_id, {channel_name} AS channel_name, o.paid_at AS at,
    l.id AS line_id, l.position AS position, l.sku AS sku, l.title AS title, l.quantity AS quantity,
    l.unit_price AS unit_price, l.total AS gross, o.total AS order_total,
    (o.total * {fee_bp} + 5000) / 10000 + {fee_fixed} AS order_fee,
    CAST(SUM(l.total) OVER (PARTITION BY o.id ORDER BY l.position, l.id) AS BIGINT) AS running_total,
    ROW_NUMBER() OVER (PARTITION BY o.id ORDER BY l.position, l.id) AS nth,
    COALESCE(lc.cost, 0) AS cost
  FROM orders o
  JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id{fees_join}
  LEFT JOIN line_cost lc ON lc.line_id = l.id
  WHERE o.tenant_id = :tenant_id AND o.paid_at >= :start AND o.paid_at < :end
    AND o.currency = :currency{channel}
),
sale_fees AS (
  SELECT s.*,
    CASE WHEN s.order_total = 0 THEN (CASE WHEN s.nth = 1 THEN s.order_fee ELSE 0 END)
      ELSE s.order_fee * s.running_total / s.order_total
        - s.order_fee * (s.running_total - s.gross) / s.order_total END AS fee
  FROM sale_lines s
)
SELECT kind, at, order_id, external_id, channel_name, line_no, sku, title, quantity, unit_price,
  gross, refund, fee, net, cost, profit, refund_id, note
FROM (
  SELECT 'sale' AS kind, f.at AS at, f.order_id AS order_id, f.external_id AS external_id,
    f.channel_name AS channel_name, f.position + 1 AS line_no, f.sku AS sku, f.title AS title,
    f.quantity AS quantity, f.unit_price AS unit_price, f.gross AS gross, 0 AS refund, f.fee AS fee,
    f.gross - f.fee AS net, f.cost AS cost, f.gross - f.fee - f.cost AS profit, NULL AS refund_id,
    '' AS note, f.line_id AS sort_id
  FROM sale_fees f
  UNION ALL
  SELECT 'refund', r.created_at, o.id, o.external_id, {channel_name}, l.position + 1, COALESCE(l.sku, ''),
    COALESCE(l.title, ''), 0, 0, 0, r.amount, 0, 0 - r.amount, 0, 0 - r.amount, r.id, r.reason, r.id
  FROM refunds r
  JOIN orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
  LEFT JOIN order_lines l ON l.tenant_id = r.tenant_id AND l.id = r.order_line_id{fees_join}
  WHERE r.tenant_id = :tenant_id AND r.created_at >= :start AND r.created_at < :end
    AND r.currency = :currency{channel}
) AS detail
ORDER BY at, order_id, kind DESC, line_no, sort_id
"""

DETAIL_FIELDS = (
    "kind",
    "at",
    "order_id",
    "external_id",
    "channel_name",
    "line_no",
    "sku",
    "title",
    "quantity",
    "unit_price",
    "gross",
    "refund",
    "fee",
    "net",
    "cost",
    "profit",
    "refund_id",
    "note",
)


class DetailLine(NamedTuple):
    """One row of a run's detail: an order line sold, or a refund (amounts in minor units)."""

    kind: str  # sale, refund
    at: dt.datetime  # UTC: payment time of a sale, time of a refund
    order_id: int
    external_id: str  # the channel's order id
    channel_name: str
    line_no: int | None
    sku: str
    title: str
    quantity: int
    unit_price: int
    gross: int
    refund: int
    fee: int
    net: int
    cost: int
    profit: int
    refund_id: int | None
    note: str


def channels_table_present() -> bool:
    """Tell whether this build has the integrations channel table (for fee settings)."""
    return "channels" in db.metadata.tables


def detail_sql(*, one_channel: bool, with_fees: bool | None = None) -> str:
    """Return the detail query's SQL text (`:tenant_id`, `:start`, `:end`, `:currency`, `:channel`)."""
    with_fees = channels_table_present() if with_fees is None else with_fees
    return _DETAIL_SQL.format(
        channel=" AND o.channel = :channel" if one_channel else "",
        channel_name="COALESCE(ch.name, o.channel)" if with_fees else "o.channel",
        fee_bp="COALESCE(ch.fee_percent_bp, 0)" if with_fees else "0",
        fee_fixed="COALESCE(ch.fee_fixed, 0)" if with_fees else "0",
        fees_join="\n  LEFT JOIN channels ch ON ch.tenant_id = o.tenant_id AND ch.public_id = o.channel"
        if with_fees
        else "",
    )


def detail_parameters(run: ReconciliationRun, channel: str | None = None) -> dict[str, Any]:
    """Return the detail query's parameters for a run (without `tenant_id`, which the helper binds)."""
    params: dict[str, Any] = {"start": run.period_start, "end": run.period_end, "currency": run.currency}
    if channel or run.channel:
        params["channel"] = channel or run.channel
    return params


def detail_statement(
    run: ReconciliationRun, channel: str | None = None, *, dialect: str = "sqlite"
) -> tuple[TextClause, dict[str, Any]]:
    """Return the run's detail query, typed for the database, with its parameters (law 4 helper).

    `channel` narrows a run over every channel to one of them (a channel's settlement file). PostgreSQL
    returns aware datetimes itself; SQLite's text dates are read back as UTC.
    """
    params = detail_parameters(run, channel)
    statement, params = tenant_sql(detail_sql(one_channel="channel" in params), params)
    statement = statement.bindparams(
        bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    )
    if dialect == "postgresql":  # a textual SELECT (so it streams through a server-side cursor), untyped
        return statement.columns(), params  # type: ignore[return-value]
    return statement.columns(at=UTCDateTime()), params  # type: ignore[return-value]


REPORT_SESSION_SETTINGS = (
    "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; SET LOCAL cursor_tuple_fraction = 1.0"
)
PREFETCH_DEPTH = 3


def stream_detail(
    run: ReconciliationRun, batch: int = 10_000, channel: str | None = None
) -> Iterator[DetailLine]:
    """Yield the run's detail rows in order, fetched in batches (a server-side cursor on PostgreSQL).

    On PostgreSQL the next batch is fetched by a helper thread while this one is being written, so the
    database and the writer work at the same time; memory stays at a few batches.
    """
    connection = db.session.connection()
    statement, params = detail_statement(run, channel, dialect=connection.dialect.name)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # One long read of every row: JIT compilation costs more than it saves (12 s of a 29 s run at 1M
        # lines), a bigger sort/hash budget keeps the window and the final sort off the disk, and the
        # cursor is planned for reading it all (the default plans a cursor for its first 10 %).
        connection.exec_driver_sql(REPORT_SESSION_SETTINGS)
    result = connection.execute(
        statement, params, execution_options={"stream_results": True, "yield_per": batch}
    )
    make = DetailLine._make
    try:
        partitions = _prefetched(result.partitions()) if postgres else result.partitions()
        for partition in partitions:
            for row in partition:
                yield make(row)
    finally:
        result.close()


_DONE = object()


def _prefetched(partitions: Iterator[Any]) -> Iterator[Any]:
    """Iterate `partitions` one step ahead in a thread (with this context: tenant binding, RLS)."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_DEPTH)
    stop = threading.Event()

    def pump() -> None:
        try:
            for partition in partitions:
                while not stop.is_set():
                    try:
                        ready.put(partition, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as error:  # handed to the reader, who raises it
            ready.put(error)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(pump,), daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let the pump finish its fetch before the cursor is closed
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        thread.join()


_COUNT_SQL = """
SELECT
  (SELECT COUNT(*) FROM order_lines l JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
   WHERE l.tenant_id = :tenant_id AND o.paid_at >= :start AND o.paid_at < :end
     AND o.currency = :currency{channel})
  + (SELECT COUNT(*) FROM refunds r JOIN orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
   WHERE r.tenant_id = :tenant_id AND r.created_at >= :start AND r.created_at < :end
     AND r.currency = :currency{channel})
"""


def count_detail_rows(run: ReconciliationRun) -> int:
    """Count the run's detail rows (for progress) without running the detail query itself."""
    sql = _COUNT_SQL.format(channel=" AND o.channel = :channel" if run.channel else "")
    statement, params = tenant_sql(sql, detail_parameters(run))
    statement = statement.bindparams(
        bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    )
    return int(db.session.execute(statement, params).scalar() or 0)


# ---------------------------------------------------------------- totals


@dataclass
class Totals:
    """Sums of a detail stream, built line by line (orders are counted as the stream moves past them)."""

    order_count: int = 0
    line_count: int = 0
    refund_count: int = 0
    gross: int = 0
    refunds: int = 0
    fees: int = 0
    net: int = 0
    cost_of_goods: int = 0
    gross_profit: int = 0
    _last_order: int | None = field(default=None, repr=False)

    def add(self, line: DetailLine) -> None:
        """Count one detail row."""
        self.line_count += 1
        if line.kind == "refund":
            self.refund_count += 1
        elif line.order_id != self._last_order:
            self.order_count += 1
            self._last_order = line.order_id
        self.gross += line.gross
        self.refunds += line.refund
        self.fees += line.fee
        self.net += line.net
        self.cost_of_goods += line.cost
        self.gross_profit += line.profit

    def as_dict(self) -> dict[str, int]:
        """Return the sums by name."""
        return {
            "order_count": self.order_count,
            "line_count": self.line_count,
            "refund_count": self.refund_count,
            "gross": self.gross,
            "refunds": self.refunds,
            "fees": self.fees,
            "net": self.net,
            "cost_of_goods": self.cost_of_goods,
            "gross_profit": self.gross_profit,
        }


MONEY_TOTALS = ("gross", "refunds", "fees", "net", "cost_of_goods", "gross_profit")

_KEYS_BY_BATCH_SQL = """
SELECT k.batch_id AS batch_id, MIN(b.supplier) AS supplier, MIN(g.right_name) AS right_name,
  MIN(b.unit_cost) AS batch_unit_cost, COUNT(*) AS keys, CAST(SUM(g.unit_cost) AS BIGINT) AS cost
FROM grants g
JOIN orders o ON o.tenant_id = g.tenant_id AND o.id = g.order_id
JOIN card_keys k ON k.tenant_id = g.tenant_id AND k.id = g.card_key_id
LEFT JOIN card_key_batches b ON b.tenant_id = k.tenant_id AND b.id = k.batch_id
WHERE g.tenant_id = :tenant_id AND g.delivered_at IS NOT NULL
  AND o.paid_at >= :start AND o.paid_at < :end AND o.currency = :currency{channel}
GROUP BY k.batch_id
ORDER BY k.batch_id
"""


def keys_delivered_by_batch(run: ReconciliationRun) -> list[dict[str, Any]]:
    """Return the card keys delivered for the run's orders, per supplier batch, with their cost."""
    sql = _KEYS_BY_BATCH_SQL.format(channel=" AND o.channel = :channel" if run.channel else "")
    statement, params = tenant_sql(sql, detail_parameters(run))
    statement = statement.bindparams(
        bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    )
    return [
        {
            "batch_id": None if row.batch_id is None else str(row.batch_id),
            "supplier": row.supplier or "",
            "right_name": row.right_name or "",
            "unit_cost": int(row.batch_unit_cost or 0),
            "keys": int(row.keys),
            "cost": int(row.cost or 0),
        }
        for row in db.session.execute(statement, params)
    ]


def other_currency_orders(run: ReconciliationRun) -> int:
    """Count the period's paid orders in another currency than the run's (left out of it)."""
    sql = (
        "SELECT COUNT(*) FROM orders o WHERE o.tenant_id = :tenant_id AND o.paid_at >= :start"
        " AND o.paid_at < :end AND o.currency <> :currency"
        + (" AND o.channel = :channel" if run.channel else "")
    )
    statement, params = tenant_sql(sql, detail_parameters(run))
    statement = statement.bindparams(
        bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    )
    return int(db.session.execute(statement, params).scalar() or 0)


# ---------------------------------------------------------------- reading


def get_run(run_id: int) -> ReconciliationRun | None:
    """Return one of the bound tenant's runs."""
    return db.session.get(ReconciliationRun, (current_tenant_id(), run_id))


def list_runs(limit: int = 100) -> list[ReconciliationRun]:
    """Return the bound tenant's runs, newest first."""
    return list(
        db.session.scalars(
            select(ReconciliationRun).order_by(
                ReconciliationRun.created_at.desc(), ReconciliationRun.id.desc()
            )
        ).fetchmany(limit)
    )


def files_of(run_id: int) -> list[ReconciliationFile]:
    """Return a run's export files in format order."""
    rows = db.session.scalars(select(ReconciliationFile).where(ReconciliationFile.run_id == run_id))
    order = {fmt: n for n, fmt in enumerate(EXPORT_FORMATS)}
    return sorted(rows, key=lambda f: order.get(f.format, 99))


def record_download(export: ReconciliationFile) -> None:
    """Note in the audit log who downloaded which export; commit."""
    audit.record(
        "reconciliation.file_downloaded",
        "reconciliation_file",
        export.id,
        run_id=str(export.run_id),
        format=export.format,
        sha256=export.sha256,
    )
    db.session.commit()


def known_channels() -> list[str]:
    """Return the channel values the tenant's orders carry (for the run form)."""
    rows = tenant_query(
        "SELECT DISTINCT channel FROM orders WHERE tenant_id = :tenant_id ORDER BY channel LIMIT 200"
    )
    return [str(row[0]) for row in rows]


def run_count() -> int:
    """Return how many runs the bound tenant has."""
    return int(db.session.scalar(select(func.count()).select_from(ReconciliationRun)) or 0)


# ---------------------------------------------------------------- use cases


@dataclass(frozen=True)
class RunRequest:
    """What to reconcile: a period, one channel or all (None), which files to write."""

    period: Period
    channel: str | None = None
    formats: tuple[str, ...] = EXPORT_FORMATS
    schedule_key: str | None = None


def _check(request: RunRequest) -> None:
    if request.channel is not None and not 0 < len(request.channel) <= 64:
        raise ReconciliationError(_("The channel is at most 64 characters."))
    unknown = [f for f in request.formats if f not in EXPORT_FORMATS]
    if unknown or not request.formats:
        raise ReconciliationError(_("Choose at least one of CSV, XLSX and PDF."))


def create_run(
    request: RunRequest, *, created_by_id: int | None = None, created_by: str | None = None
) -> ReconciliationRun:
    """Record a run, commit, then build it as a job run with progress; return the run.

    The audit row is committed with the run. In the embedded and production modes the job continues in
    the background; the run's page follows its progress.
    """
    _check(request)
    tenant = db.session.get(Tenant, current_tenant_id())
    assert tenant is not None
    period = request.period
    actor = created_by or audit.current_actor()[1]
    run = ReconciliationRun(
        period_kind=period.kind,
        period_label=period.label,
        starts_on=period.starts_on,
        ends_on=period.ends_on,
        period_start=period.start,
        period_end=period.end,
        time_zone=period.zone,
        channel=(request.channel or "").strip() or None,
        currency=tenant.currency,
        schedule_key=request.schedule_key,
        created_by_id=created_by_id,
        created_by=actor,
    )
    db.session.add(run)
    audit.record(
        "reconciliation.run_created",
        "reconciliation_run",
        run.id,
        period=period.label,
        channel=run.channel or "*",
        formats=list(request.formats),
        scheduled=bool(request.schedule_key),
    )
    db.session.commit()
    run_id = run.id
    title = _("Reconciliation %(period)s", period=period.label)
    job = start_job_run(
        "reconciliation",
        title,
        "reports.reconciliation.tasks.build_run",
        run_id,
        list(request.formats),
        queue="reports",
        timeout=BIG_RUN_TIMEOUT,
        created_by_id=created_by_id,
    )
    started = db.session.get(ReconciliationRun, (current_tenant_id(), run_id), populate_existing=True)
    assert started is not None
    started.job_run_id = job.id
    db.session.commit()
    return started

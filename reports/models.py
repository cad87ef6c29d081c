"""Daily rollups the dashboards read, and the refresh watermark of each tenant.

Each rollup row sums one tenant-local day (`day`, in the tenant's time zone) of one combination of
dimensions. The rows are recomputed from the raw tables, a day at a time, by `reports.rollups`; nothing else
writes them. `bundle_id` is 0 for order lines that sold no bundle (a unique key cannot hold NULLs).

Money is integer minor units; the currency is part of the key where the facts carry one. Grants carry no
currency: their cost is in the tenant's currency (the catalog prices batches in it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

import orders.subscriptions.models  # noqa: F401  (renewal dashboards read its tables)
from orders.models import Grant
from saas.extensions import db
from tenants.scoping import TenantOwned

# Time-to-redeem buckets of the grant rollup: (column, upper bound in seconds, exclusive; None: no bound).
REDEEM_TIME_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("redeemed_1h", 3600),
    ("redeemed_6h", 6 * 3600),
    ("redeemed_1d", 86400),
    ("redeemed_3d", 3 * 86400),
    ("redeemed_7d", 7 * 86400),
    ("redeemed_14d", 14 * 86400),
    ("redeemed_30d", 30 * 86400),
    ("redeemed_later", None),
)


class DailyOrders(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Paid orders of one day, channel and currency: count, gross revenue and the channel's fees."""

    __tablename__ = "report_daily_orders"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "channel", "currency"),)

    day: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[int] = mapped_column(default=0)
    fees: Mapped[int] = mapped_column(default=0)


class DailyLines(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Paid order lines of one day, channel, bundle and currency: orders, units and revenue."""

    __tablename__ = "report_daily_lines"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "channel", "bundle_id", "currency"),)

    day: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(64))
    bundle_id: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(default=0)
    units: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[int] = mapped_column(default=0)


class DailyRefunds(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Refunds booked on one day (the refund's day, not the order's), per channel and currency."""

    __tablename__ = "report_daily_refunds"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "channel", "currency"),)

    day: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    refunds: Mapped[int] = mapped_column(default=0)
    amount: Mapped[int] = mapped_column(default=0)


class DailyGrants(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Grants delivered on one day (their delivery cohort), per channel, bundle and right.

    `delivered` leaves out grants revoked by a refund (they can no longer be redeemed); `redeemed` counts
    the delivered ones redeemed so far, split by time to redeem in the `redeemed_*` buckets; `cost` is the
    unit cost of every grant delivered that day, revoked ones included (their keys are spent).
    """

    __tablename__ = "report_daily_grants"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "channel", "bundle_id", "right_id"),)

    day: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(64))
    bundle_id: Mapped[int] = mapped_column(default=0)
    right_id: Mapped[int] = mapped_column()
    delivered: Mapped[int] = mapped_column(default=0)
    revoked: Mapped[int] = mapped_column(default=0)
    redeemed: Mapped[int] = mapped_column(default=0)
    cost: Mapped[int] = mapped_column(default=0)
    redeemed_1h: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_6h: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_1d: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_3d: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_7d: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_14d: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_30d: Mapped[int] = mapped_column(Integer, default=0)
    redeemed_later: Mapped[int] = mapped_column(Integer, default=0)


class RollupState(TenantOwned, db.Model):  # type: ignore[name-defined]
    """How far a tenant's rollups are current: changes since `watermark` are still to be folded in."""

    __tablename__ = "report_rollup_state"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(32), default="daily")
    watermark: Mapped[dt.datetime | None]
    refreshed_at: Mapped[dt.datetime | None]
    days_recomputed: Mapped[int] = mapped_column(default=0)  # by the last run


# Reports find grants by delivery time: the rollup refresh (grants delivered since the last run) and the
# time-to-redeem percentiles over a period. Declared here, on the orders table, because reports need it.
Index("ix_grants_tenant_delivered", Grant.tenant_id, Grant.delivered_at)
# The time-to-redeem percentiles seek a rank in this partial index (redeemed grants only, in order of time to
# redeem) instead of sorting a period's grants; delivered_at and right_id ride along for the filters.
Index(
    "ix_grants_tenant_redeem_time",
    Grant.tenant_id,
    Grant.seconds_to_redeem,
    postgresql_include=["delivered_at", "right_id"],
    postgresql_where=text(
        "redeemed_at IS NOT NULL AND status <> 'revoked' AND seconds_to_redeem IS NOT NULL"
    ),
    sqlite_where=text("redeemed_at IS NOT NULL AND status <> 'revoked' AND seconds_to_redeem IS NOT NULL"),
)

"""Reconciliation runs (对账), their export files, uploaded channel settlements and the differences found.

Foreign keys between these tables are composite and include `tenant_id` (DESIGN law 1); relationships are
avoided on purpose, reads are explicit queries. Money is integer minor units plus a currency code; times
are aware UTC, and a run remembers the tenant time zone its period was cut in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned

RUN_STATUSES = ("queued", "running", "succeeded", "failed")
EXPORT_FORMATS = ("csv", "xlsx", "pdf")
SETTLEMENT_STATUSES = ("uploaded", "matching", "matched", "failed")
# What a settlement row or one of our records came to: only `matched` is not a difference.
MATCH_KINDS = ("matched", "missing_in_settlement", "missing_in_ours", "amount_mismatch", "fee_mismatch")
DIFFERENCE_KINDS = MATCH_KINDS[1:]


def _run_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "run_id"],
        ["reconciliation_runs.tenant_id", "reconciliation_runs.id"],
        ondelete="CASCADE",
    )


class ReconciliationRun(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One reconciliation of a period (the tenant's month or a custom range) for one or all channels.

    The totals are those of the run's detail as it was written to its files: every file's lines add up to
    them. `schedule_key` makes the scheduled monthly run unique per tenant-month.
    """

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "schedule_key"),
        Index("ix_reconciliation_runs_tenant_created", "tenant_id", "created_at"),
    )

    period_kind: Mapped[str] = mapped_column(String(8))  # month, range
    period_label: Mapped[str] = mapped_column(String(40))  # 2026-01, or 2026-01-05 – 2026-01-20
    starts_on: Mapped[dt.date] = mapped_column(Date)  # first local day
    ends_on: Mapped[dt.date] = mapped_column(Date)  # last local day (inclusive)
    period_start: Mapped[dt.datetime]  # UTC, inclusive
    period_end: Mapped[dt.datetime]  # UTC, exclusive
    time_zone: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(64))  # orders.channel; None for every channel
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    schedule_key: Mapped[str | None] = mapped_column(String(40))  # monthly:2026-01 for the scheduled run
    job_run_id: Mapped[int | None] = mapped_column()
    order_count: Mapped[int] = mapped_column(default=0)
    line_count: Mapped[int] = mapped_column(default=0)  # detail rows: order lines and refunds
    refund_count: Mapped[int] = mapped_column(default=0)
    gross: Mapped[int] = mapped_column(default=0)
    refunds: Mapped[int] = mapped_column(default=0)
    fees: Mapped[int] = mapped_column(default=0)
    net: Mapped[int] = mapped_column(default=0)
    cost_of_goods: Mapped[int] = mapped_column(default=0)
    gross_profit: Mapped[int] = mapped_column(default=0)
    keys_by_batch: Mapped[list[dict[str, Any]]] = mapped_column(db.JSON, default=list)
    other_currency_orders: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeeded", "failed")


class ReconciliationFile(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One export of a run (CSV, XLSX or PDF) kept on disk with its SHA-256 checksum."""

    __tablename__ = "reconciliation_files"
    __table_args__ = (_run_fk(), UniqueConstraint("tenant_id", "run_id", "format"))

    run_id: Mapped[int] = mapped_column()
    format: Mapped[str] = mapped_column(String(8))  # one of EXPORT_FORMATS
    filename: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))  # relative to FILES_DIR
    size: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Settlement(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A channel's settlement or payout file uploaded against a run, and how its rows were read."""

    __tablename__ = "settlements"
    __table_args__ = (_run_fk(), Index("ix_settlements_tenant_run", "tenant_id", "run_id"))

    run_id: Mapped[int] = mapped_column()
    channel: Mapped[str | None] = mapped_column(String(64))  # whose settlement; None: the run's scope
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(500))  # relative to FILES_DIR
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(default=0)
    encoding: Mapped[str] = mapped_column(String(20))
    has_header: Mapped[bool] = mapped_column(default=True)
    header: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    sample: Mapped[list[list[str]]] = mapped_column(db.JSON, default=list)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)  # role -> column index
    status: Mapped[str] = mapped_column(String(12), default="uploaded")
    rows_read: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # match kind -> rows
    unreadable: Mapped[list[dict[str, Any]]] = mapped_column(db.JSON, default=list)  # line, problem
    job_run_id: Mapped[int | None] = mapped_column()
    uploaded_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    matched_at: Mapped[dt.datetime | None]


class SettlementMatch(TenantOwned, db.Model):  # type: ignore[name-defined]
    """One settlement row or one of our records, what it matched, and (for a difference) its resolution.

    Both sides are kept so a difference can be read without opening the file: the channel's order id,
    amount, fee and date as the file says, and ours.
    """

    __tablename__ = "settlement_matches"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "settlement_id"], ["settlements.tenant_id", "settlements.id"], ondelete="CASCADE"
        ),
        Index("ix_settlement_matches_settlement", "tenant_id", "settlement_id", "kind"),
    )

    settlement_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(24))  # one of MATCH_KINDS
    record_type: Mapped[str] = mapped_column(String(8))  # order, refund
    external_id: Mapped[str] = mapped_column(String(128))  # the channel's order id
    line_no: Mapped[int | None] = mapped_column(Integer)  # row of the file (None: only ours)
    order_id: Mapped[int | None] = mapped_column()
    refund_id: Mapped[int | None] = mapped_column()
    ours_amount: Mapped[int | None] = mapped_column()
    ours_fee: Mapped[int | None] = mapped_column()
    ours_at: Mapped[dt.datetime | None]
    theirs_amount: Mapped[int | None] = mapped_column()
    theirs_fee: Mapped[int | None] = mapped_column()
    theirs_date: Mapped[str | None] = mapped_column(String(40))  # as written in the file
    note: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)

    @property
    def is_difference(self) -> bool:
        return self.kind != "matched"

    @property
    def amount_difference(self) -> int | None:
        """Return theirs − ours, when both sides have an amount."""
        if self.ours_amount is None or self.theirs_amount is None:
            return None
        return self.theirs_amount - self.ours_amount

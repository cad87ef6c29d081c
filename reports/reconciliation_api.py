"""REST API of reconciliation: create a run, read it, list runs, list a run's files (scope reports.export)."""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from pydantic import BaseModel, Field
from sqlalchemy import select

from reports import reconciliation
from reports.reconciliation import ReconciliationError, RunRequest
from reports.reconciliation_models import EXPORT_FORMATS, ReconciliationFile, ReconciliationRun
from saas.errors import ApiError
from saas.extensions import db
from tenants import roles
from tenants.api import RequestModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404
from tenants.scoping import current_tenant_id

bp = api_blueprint("reconciliation_api")
TAG = "reconciliation"


class RunIn(RequestModel):
    """A run for a month (`month`) or for a range of whole days (`starts_on` … `ends_on`, inclusive)."""

    month: str | None = Field(None, description="YYYY-MM, the tenant's month in its time zone")
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    channel: str | None = Field(None, description="orders.channel to reconcile; null for every channel")
    formats: list[str] = Field(list(EXPORT_FORMATS), description="files to write: csv, xlsx, pdf")


class BatchOut(BaseModel):
    batch_id: str | None
    supplier: str
    right_name: str
    unit_cost: int
    keys: int
    cost: int


class RunOut(BaseModel):
    """A run and its totals; money in minor units of `currency`."""

    id: str
    status: str
    period_kind: str
    period_label: str
    starts_on: dt.date
    ends_on: dt.date
    period_start: dt.datetime
    period_end: dt.datetime
    time_zone: str
    channel: str | None
    currency: str
    order_count: int
    line_count: int
    refund_count: int
    gross: int
    refunds: int
    fees: int
    net: int
    cost_of_goods: int
    gross_profit: int
    keys_by_batch: list[BatchOut]
    job_id: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None


class FileOut(BaseModel):
    id: str
    format: str
    filename: str
    size: int
    sha256: str
    rows: int
    created_at: dt.datetime


class FileList(BaseModel):
    items: list[FileOut]


def run_out(run: ReconciliationRun) -> RunOut:
    """Describe a run for the API."""
    return RunOut(
        id=str(run.id),
        status=run.status,
        period_kind=run.period_kind,
        period_label=run.period_label,
        starts_on=run.starts_on,
        ends_on=run.ends_on,
        period_start=run.period_start,
        period_end=run.period_end,
        time_zone=run.time_zone,
        channel=run.channel,
        currency=run.currency,
        order_count=run.order_count,
        line_count=run.line_count,
        refund_count=run.refund_count,
        gross=run.gross,
        refunds=run.refunds,
        fees=run.fees,
        net=run.net,
        cost_of_goods=run.cost_of_goods,
        gross_profit=run.gross_profit,
        keys_by_batch=[BatchOut(**batch) for batch in run.keys_by_batch or []],
        job_id=None if run.job_run_id is None else str(run.job_run_id),
        created_at=run.created_at,
        finished_at=run.finished_at,
        error=run.error,
    )


def _file_out(export: ReconciliationFile) -> FileOut:
    return FileOut(
        id=str(export.id),
        format=export.format,
        filename=export.filename,
        size=export.size,
        sha256=export.sha256,
        rows=export.row_count,
        created_at=export.created_at,
    )


def _period(body: RunIn) -> reconciliation.Period:
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, current_tenant_id())
    assert tenant is not None
    if body.month:
        return reconciliation.parse_month(body.month, tenant.time_zone)
    if body.starts_on and body.ends_on:
        return reconciliation.range_period(body.starts_on, body.ends_on, tenant.time_zone)
    raise ReconciliationError("give month (YYYY-MM) or both starts_on and ends_on")


@api_endpoint(
    bp,
    "/reports/reconciliation/runs",
    "POST",
    summary="Start a reconciliation run (its files are written by a background job)",
    scope=roles.REPORTS_EXPORT,
    tag=TAG,
    request_model=RunIn,
    response_model=RunOut,
    status=201,
)
def create_run(body: RunIn) -> RunOut:
    try:
        run = reconciliation.create_run(
            RunRequest(_period(body), (body.channel or "").strip() or None, tuple(body.formats))
        )
    except ReconciliationError as error:
        raise ApiError(422, "invalid", str(error)) from error
    return run_out(run)


@api_endpoint(
    bp,
    "/reports/reconciliation/runs",
    "GET",
    summary="List reconciliation runs, newest first",
    scope=roles.REPORTS_EXPORT,
    tag=TAG,
    response_model=RunOut,
    paginated=True,
)
def list_runs() -> tuple[list[RunOut], str | None]:
    rows, next_cursor = paginate(select(ReconciliationRun), ReconciliationRun.id)
    return [run_out(run) for run in rows], next_cursor


@api_endpoint(
    bp,
    "/reports/reconciliation/runs/<int:reconciliation_run_id>",
    "GET",
    summary="Read a reconciliation run and its totals",
    scope=roles.REPORTS_EXPORT,
    tag=TAG,
    response_model=RunOut,
    errors=(404,),
)
def get_run(reconciliation_run_id: int) -> RunOut:
    return run_out(api_get_or_404(ReconciliationRun, reconciliation_run_id, _("No such reconciliation run.")))


@api_endpoint(
    bp,
    "/reports/reconciliation/runs/<int:reconciliation_run_id>/files",
    "GET",
    summary="List a run's export files with their SHA-256 checksums",
    scope=roles.REPORTS_EXPORT,
    tag=TAG,
    response_model=FileList,
    errors=(404,),
)
def list_files(reconciliation_run_id: int) -> FileList:
    run = api_get_or_404(ReconciliationRun, reconciliation_run_id, _("No such reconciliation run."))
    return FileList(items=[_file_out(f) for f in reconciliation.files_of(run.id)])

"""REST API of reconciliation: create a run, read it, list runs, list a run's files (scope reports.export)."""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from pydantic import BaseModel, Field
from sqlalchemy import select

from reports.reconciliation import services
from reports.reconciliation.models import EXPORT_FORMATS, ReconciliationRun
from reports.reconciliation.services import ReconciliationError, RunRequest
from saas.errors import ApiError
from saas.extensions import db
from tenants import roles
from tenants.api import Id, RequestModel, ResponseModel, api_blueprint, api_endpoint, paginate
from tenants.lookup import api_get_or_404
from tenants.models import Tenant
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


class BatchOut(ResponseModel):
    batch_id: str | None
    supplier: str
    right_name: str
    unit_cost: int
    keys: int
    cost: int


class RunOut(ResponseModel):
    """A run and its totals; money in minor units of `currency`."""

    id: Id
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
    job_id: Id | None = Field(validation_alias="job_run_id")
    created_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None


class FileOut(ResponseModel):
    id: Id
    format: str
    filename: str
    size: int
    sha256: str
    rows: int = Field(validation_alias="row_count")
    created_at: dt.datetime


class FileList(BaseModel):
    items: list[FileOut]


def _period(body: RunIn) -> services.Period:
    tenant = db.session.get(Tenant, current_tenant_id())
    assert tenant is not None
    if body.month:
        return services.parse_month(body.month, tenant.time_zone)
    if body.starts_on and body.ends_on:
        return services.range_period(body.starts_on, body.ends_on, tenant.time_zone)
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
        run = services.create_run(
            RunRequest(_period(body), (body.channel or "").strip() or None, tuple(body.formats))
        )
    except ReconciliationError as error:
        raise ApiError(422, "invalid", str(error)) from error
    return RunOut.model_validate(run)


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
    return [RunOut.model_validate(run) for run in rows], next_cursor


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
    return RunOut.model_validate(
        api_get_or_404(ReconciliationRun, reconciliation_run_id, _("No such reconciliation run."))
    )


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
    return FileList(items=[FileOut.model_validate(f) for f in services.files_of(run.id)])

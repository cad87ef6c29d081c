"""REST API of the dashboards: each dashboard's tables as JSON, with the same filters as the pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import request
from pydantic import BaseModel

from reports import datasets, rollups
from reports.filters import FilterError, parse_filters
from saas.errors import ApiError
from saas.extensions import db
from tenants import roles
from tenants.api import QueryParam, api_blueprint, api_endpoint
from tenants.models import Tenant
from tenants.scoping import current_tenant_id

bp = api_blueprint("reports_api")

FILTER_PARAMS = [
    QueryParam("period", "last_7_days, last_30_days (default), last_90_days, this_month, last_month, custom"),
    QueryParam("start", "first day of a custom period, YYYY-MM-DD, in the tenant's time zone"),
    QueryParam("end", "last day of a custom period (inclusive), YYYY-MM-DD"),
    QueryParam("channel", "only this channel (what orders carry: a connected channel's public id)"),
    QueryParam("bundle", "only this bundle id"),
    QueryParam("right", "only this right id"),
]


class ColumnOut(BaseModel):
    key: str
    label: str
    kind: str


class TableOut(BaseModel):
    """One chart's numbers: money in minor units, ratios and days as decimal strings (days of cover beyond a
    year: ">365"), null where none exists (a ROI without spend)."""

    key: str
    title: str
    note: str
    columns: list[ColumnOut]
    rows: list[dict[str, Any]]


class PeriodOut(BaseModel):
    preset: str
    start: dt.date
    end: dt.date
    time_zone: str


class DashboardOut(BaseModel):
    """A dashboard's datasets for the requested filters."""

    dashboard: str
    title: str
    currency: str
    period: PeriodOut
    channel: str | None
    bundle_id: str | None
    right_id: str | None
    refreshed_at: dt.datetime | None
    empty: bool
    notes: list[str]
    tables: list[TableOut]


def dashboard_json(name: str) -> DashboardOut:
    """Build the named dashboard for the request's filters and return it as the API shows it."""
    tenant = db.session.get(Tenant, current_tenant_id())
    assert tenant is not None
    try:
        filters = parse_filters(request.args, tenant.time_zone or "Asia/Shanghai")
    except FilterError as error:
        raise ApiError(400, "invalid_filter", str(error)) from error
    dashboard = datasets.build(name, filters, tenant.currency)
    return DashboardOut(
        dashboard=name,
        title=dashboard.title,
        currency=dashboard.currency,
        period=PeriodOut(
            preset=filters.period.preset,
            start=filters.period.start,
            end=filters.period.end,
            time_zone=filters.period.zone,
        ),
        channel=filters.channel,
        bundle_id=str(filters.bundle_id) if filters.bundle_id else None,
        right_id=str(filters.right_id) if filters.right_id else None,
        refreshed_at=rollups.refreshed_at(),
        empty=dashboard.is_empty,
        notes=dashboard.notes,
        tables=[TableOut.model_validate(table.as_json()) for table in dashboard.tables],
    )


@api_endpoint(
    bp,
    "/reports/redemption",
    "GET",
    summary="Redemption dashboard",
    scope=roles.REPORTS_VIEW,
    tag="reports",
    response_model=DashboardOut,
    query=FILTER_PARAMS,
    errors=(400,),
)
def redemption_report() -> DashboardOut:
    return dashboard_json("redemption")


@api_endpoint(
    bp,
    "/reports/channel-roi",
    "GET",
    summary="Channel ROI dashboard",
    scope=roles.REPORTS_VIEW,
    tag="reports",
    response_model=DashboardOut,
    query=FILTER_PARAMS,
    errors=(400,),
)
def channel_roi_report() -> DashboardOut:
    return dashboard_json("channel_roi")


@api_endpoint(
    bp,
    "/reports/renewals",
    "GET",
    summary="Renewal timing dashboard",
    scope=roles.REPORTS_VIEW,
    tag="reports",
    response_model=DashboardOut,
    query=FILTER_PARAMS,
    errors=(400,),
)
def renewals_report() -> DashboardOut:
    return dashboard_json("renewals")


@api_endpoint(
    bp,
    "/reports/sales",
    "GET",
    summary="Sales and stock dashboard",
    scope=roles.REPORTS_VIEW,
    tag="reports",
    response_model=DashboardOut,
    query=FILTER_PARAMS,
    errors=(400,),
)
def sales_report() -> DashboardOut:
    return dashboard_json("sales")

"""Back-office dashboard pages, the CSV of every chart's table, and plotly.js served from the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from catalog.models import Bundle, Right
from reports import charts, datasets, rollups
from reports.filters import PRESETS, FilterError, Filters, default_filters, parse_filters
from reports.tables import Dashboard, display
from saas import jobs
from saas.csvfile import MIME_TYPE
from saas.extensions import db
from tenants import roles
from tenants.context import current_tenant, requires

bp = Blueprint("reports", __name__, url_prefix="/t/<tenant_slug>/reports")
assets = Blueprint("report_assets", __name__)

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
PLOTLY_URL = f"/assets/reports/plotly-{plotly.__version__}.min.js"
ONE_YEAR = 365 * 24 * 3600


@assets.get(PLOTLY_URL)
def plotly_js() -> ResponseReturnValue:
    """Serve plotly.js from the installed plotly package (versioned URL, cached for a year)."""
    response = send_file(PLOTLY_JS, mimetype="text/javascript", max_age=ONE_YEAR, conditional=True)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


def read_filters() -> tuple[Filters, str | None]:
    """Return the filters of this request, or the defaults and what was wrong with the given ones."""
    zone = current_tenant().time_zone or "Asia/Shanghai"
    try:
        return parse_filters(request.args, zone), None
    except FilterError as error:
        return default_filters(zone), str(error)


def filter_choices() -> dict[str, Any]:
    """Return the options of the filter bar: presets, channels, bundles and rights."""
    return {
        "presets": PRESETS,
        "channels": datasets.channels_in_use(),
        "bundles": list(db.session.execute(select(Bundle.id, Bundle.name).order_by(Bundle.name))),
        "rights": list(db.session.execute(select(Right.id, Right.name).order_by(Right.name))),
    }


def _page(template: str, filters: Filters, error: str | None, **context: Any) -> ResponseReturnValue:
    return render_template(
        template,
        filters=filters,
        filter_error=error,
        choices=filter_choices(),
        refreshed_at=rollups.refreshed_at(),
        dashboards=datasets.DASHBOARDS,
        display=display,
        chart_json=charts.chart_json,
        plotly_url=PLOTLY_URL,
        csv_url=csv_url,
        **context,
    ), (400 if error else 200)


@bp.get("/")
@login_required
@requires(roles.REPORTS_VIEW)
def dashboards() -> ResponseReturnValue:
    """The dashboards' index: this period's headline figures and a link to each dashboard."""
    filters, error = read_filters()
    headline = datasets.headline(filters, current_tenant().currency)
    return _page("reports/dashboards/index.html", filters, error, headline=headline)


def _dashboard_page(name: str) -> ResponseReturnValue:
    filters, error = read_filters()
    dashboard = charts.attach_charts(datasets.build(name, filters, current_tenant().currency))
    return _page("reports/dashboards/dashboard.html", filters, error, dashboard=dashboard)


@bp.get("/redemption")
@login_required
@requires(roles.REPORTS_VIEW)
def redemption() -> ResponseReturnValue:
    """Redemption: rate over time and by bundle, right, channel and cohort; time to redeem."""
    return _dashboard_page("redemption")


@bp.get("/channel-roi")
@login_required
@requires(roles.REPORTS_VIEW)
def channel_roi() -> ResponseReturnValue:
    """Channel ROI: orders, revenue, refunds, fees, cost of goods, spend, profit, margin and ROI."""
    return _dashboard_page("channel_roi")


@bp.get("/renewals")
@login_required
@requires(roles.REPORTS_VIEW)
def renewals() -> ResponseReturnValue:
    """Renewal timing: rates by plan and cohort, days from period end, day of month, expiries, reasons."""
    return _dashboard_page("renewals")


@bp.get("/sales")
@login_required
@requires(roles.REPORTS_VIEW)
def sales() -> ResponseReturnValue:
    """Sales and stock: orders and revenue over time, by bundle; stock and days of cover."""
    return _dashboard_page("sales")


@bp.get("/table.csv")
@login_required
@requires(roles.REPORTS_VIEW)
def download_table() -> ResponseReturnValue:
    """Download one chart's table as CSV (`?dashboard=…&table=…` plus the page's filters)."""
    name = request.args.get("dashboard", "")
    if name not in datasets.BUILDERS:
        abort(404)
    tenant = current_tenant()
    try:
        filters = parse_filters(request.args, tenant.time_zone or "Asia/Shanghai")
    except FilterError as error:
        return Response(str(error), status=400, mimetype="text/plain")
    # The file is the shop's document, in the shop's language whoever downloads it (like its exports).
    with force_locale(tenant.locale or "zh_CN"):
        dashboard: Dashboard = datasets.build(name, filters, tenant.currency)
        table = dashboard.table(request.args.get("table", ""))
        if table is None:
            abort(404)
        body = table.as_csv()
    period = f"{filters.period.start.isoformat()}_{filters.period.end.isoformat()}"
    filename = f"{tenant.slug}-{name}-{table.key}-{period}.csv"
    return Response(
        body,
        mimetype=MIME_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/refresh")
@login_required
@requires(roles.REPORTS_VIEW)
def refresh_figures() -> ResponseReturnValue:
    """Rebuild the tenant's rollups from the raw tables now (a job: a large shop takes a while)."""
    tenant_id = current_tenant().id
    jobs.enqueue(
        "reports.rollup_tasks.rebuild_tenant_rollups",
        tenant_id,
        queue="reports",
        timeout=1800,
        coalesce=f"rollups.rebuild:{tenant_id}",  # ten clicks queue one rebuild
    )
    flash(_("The figures are being recomputed from your orders; reload in a moment."), "info")
    back = request.form.get("next", "")
    home = url_for("reports.dashboards")
    return redirect(back if back.startswith(home) and "//" not in back else home)


def csv_url(dashboard: str, table: str, filters: Filters) -> str:
    """Return the download link of one table under the current filters."""
    args: dict[str, Any] = {"dashboard": dashboard, "table": table, **filters.query_args()}
    return url_for("reports.download_table", **args)

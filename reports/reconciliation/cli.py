"""CLI: `quanyi reconciliation run` (a month or a range, one channel or all) and `… schedule`."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from reports.reconciliation import services, tasks
from reports.reconciliation.services import ReconciliationError, RunRequest
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.models import Tenant
from tenants.scoping import tenant_bound


@click.group("reconciliation")
def reconciliation_group() -> None:
    """Reconciliation (对账) runs."""


@reconciliation_group.command("run")
@click.option("--tenant", "tenant_slug", required=True, help="The tenant's slug.")
@click.option("--month", default=None, help="YYYY-MM in the tenant's time zone (default: last month).")
@click.option("--from", "starts_on", default=None, help="First day YYYY-MM-DD (with --to).")
@click.option("--to", "ends_on", default=None, help="Last day YYYY-MM-DD, included.")
@click.option("--channel", default=None, help="One channel (orders.channel); default: all.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["csv", "xlsx", "pdf"]))
@with_appcontext
def run_command(
    tenant_slug: str,
    month: str | None,
    starts_on: str | None,
    ends_on: str | None,
    channel: str | None,
    formats: tuple[str, ...],
) -> None:
    """Make a reconciliation run and print its totals and files."""
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    if tenant is None:
        raise click.ClickException(f"no tenant {tenant_slug!r}")
    tenant_id, zone = tenant.id, tenant.time_zone
    with tenant_bound(tenant_id):
        try:
            if starts_on or ends_on:
                if not (starts_on and ends_on):
                    raise ReconciliationError("give both --from and --to")
                period = services.range_period(
                    dt.date.fromisoformat(starts_on), dt.date.fromisoformat(ends_on), zone
                )
            elif month:
                period = services.parse_month(month, zone)
            else:
                period = services.previous_month(utcnow(), zone)
            run = services.create_run(
                RunRequest(period, channel, formats or ("csv", "xlsx", "pdf")), created_by="cli"
            )
        except (ReconciliationError, ValueError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"run {run.id} ({run.period_label}, {run.channel or 'all channels'}): {run.status}")
        if run.status == "succeeded":
            click.echo(
                f"orders={run.order_count} lines={run.line_count} gross={run.gross} refunds={run.refunds}"
                f" fees={run.fees} net={run.net} cost={run.cost_of_goods} profit={run.gross_profit}"
            )
            for export in services.files_of(run.id):
                click.echo(f"{export.format}: {export.path} sha256={export.sha256}")


@reconciliation_group.command("schedule")
@with_appcontext
def schedule_command() -> None:
    """Make every monthly run that is due now (what the periodic job does)."""
    made = tasks.schedule_monthly_reconciliation_everywhere()
    click.echo(f"{made} monthly run(s) made")

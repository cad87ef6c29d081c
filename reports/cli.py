"""CLI: `quanyi reports rebuild-rollups --tenant SLUG` (or `--all`)."""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from reports import rollup_tasks
from saas.extensions import db
from tenants.models import Tenant


@click.group("reports")
def reports_group() -> None:
    """Dashboards and reports."""


@click.command("rebuild-rollups")
@click.option("--tenant", "tenant_slug", default=None, help="The tenant's slug.")
@click.option("--all", "every_tenant", is_flag=True, help="Rebuild every tenant's rollups.")
@with_appcontext
def rebuild_rollups_command(tenant_slug: str | None, every_tenant: bool) -> None:
    """Recompute the dashboards' daily rollups from the raw tables."""
    if bool(tenant_slug) == every_tenant:
        raise click.UsageError("give either --tenant SLUG or --all")
    statement = select(Tenant.id, Tenant.slug).order_by(Tenant.slug)
    if tenant_slug:
        statement = statement.where(Tenant.slug == tenant_slug)
    tenants = list(db.session.execute(statement))
    db.session.commit()
    if not tenants:
        raise click.ClickException(f"no tenant with the slug {tenant_slug!r}")
    for tenant_id, slug in tenants:
        started = time.perf_counter()
        days = rollup_tasks.rebuild_tenant_rollups(tenant_id)
        click.echo(f"{slug}: {days} days rebuilt in {time.perf_counter() - started:.2f} s")


reports_group.add_command(rebuild_rollups_command)

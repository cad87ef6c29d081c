"""CLI: demo data and tenant administration."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from tenants import demo, services


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Create the demo tenant with a member of each role (idempotent) and print the logins."""
    from flask import current_app

    from saas.jobs import InlineRunner

    # The demo's jobs run one after another in this process: background threads writing the same SQLite
    # file at the same time as the demo steps would trip over its single writer lock.
    current_app.extensions["quanyi.jobs"] = InlineRunner(current_app._get_current_object())  # type: ignore[attr-defined]
    tenant, logins, created = demo.create_demo_tenant()
    click.echo(("Created" if created else "Found") + f" demo tenant {tenant.name!r} at /t/{tenant.slug}/")
    for role, email, password in logins:
        click.echo(f"  {role:<9} {email:<32} {password}")


@click.group("tenants")
def tenants_group() -> None:
    """Manage tenants."""


@tenants_group.command("create")
@click.option("--name", required=True)
@click.option("--slug", required=True)
@click.option("--owner-email", required=True)
@click.option("--owner-password", required=True, prompt=True, hide_input=True)
@with_appcontext
def create_tenant(name: str, slug: str, owner_email: str, owner_password: str) -> None:
    """Create a tenant and its owner."""
    try:
        tenant, user = services.sign_up(name, slug, owner_email, "", owner_password)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Created tenant {tenant.slug} owned by {user.email}")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(tenants_group)

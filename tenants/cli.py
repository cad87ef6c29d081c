"""CLI: demo data and tenant administration."""

from __future__ import annotations

import secrets

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from saas.jobs import InlineRunner
from tenants import demo, services


@click.command("demo")
@click.option(
    "--in-production",
    is_flag=True,
    help="Create the demo tenant even though QUANYI_ENV=production (its logins get random passwords).",
)
@with_appcontext
def demo_command(in_production: bool) -> None:
    """Create the demo tenant with a member of each role (idempotent) and print the logins."""
    production = current_app.config["ENV_NAME"] == "production"
    if production and not in_production:
        raise click.ClickException(
            "QUANYI_ENV=production: the demo tenant would add real accounts and data to this database. "
            "Run `quanyi demo --in-production` if that is what you want."
        )
    # In production the well-known demo password would open a real owner account to anyone.
    password = secrets.token_urlsafe(12) if production else demo.DEMO_PASSWORD
    # The demo's jobs run one after another in this process: background threads writing the same SQLite
    # file at the same time as the demo steps would trip over its single writer lock.
    current_app.extensions["quanyi.jobs"] = InlineRunner(current_app._get_current_object())  # type: ignore[attr-defined]
    tenant, logins, created = demo.create_demo_tenant(password)
    click.echo(("Created" if created else "Found") + f" demo tenant {tenant.name!r} at /t/{tenant.slug}/")
    for role, email, new_password in logins:
        shown = new_password or (demo.DEMO_PASSWORD if not production else "(its password is unchanged)")
        click.echo(f"  {role:<9} {email:<32} {shown}")


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

"""Dashboards, report queries, reconciliation exports."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask

RECONCILIATION_SETUP = Path(__file__).resolve().parent / "reconciliation_setup.py"


def init_app(app: Flask) -> None:
    """Register the dashboards (pages, API, plotly asset, CLI, demo step) and the reconciliation half."""
    from reports import api, cli, dashboards, demo, models  # noqa: F401  (models: tables for create_all)
    from saas.periodic import PeriodicJob, register_periodic_job
    from tenants.demo import register_demo_step

    app.register_blueprint(dashboards.bp)
    app.register_blueprint(dashboards.assets)
    app.register_blueprint(api.bp)
    if RECONCILIATION_SETUP.exists():
        from reports import reconciliation_setup

        reconciliation_setup.init_app(app)
    _add_cli(app)
    register_periodic_job(
        app,
        PeriodicJob(
            "refresh-dashboard-rollups", "reports.rollup_tasks.refresh_rollups_everywhere", 300, "reports"
        ),
    )
    register_demo_step(app, demo.rebuild_demo_rollups)


def _add_cli(app: Flask) -> None:
    """Add `reports rebuild-rollups`, into the reconciliation's `reports` group if it made one."""
    from reports import cli

    existing = app.cli.commands.get("reports")
    if isinstance(existing, click.Group) and existing is not cli.reports_group:
        existing.add_command(cli.rebuild_rollups_command)
    else:
        app.cli.add_command(cli.reports_group)
